"""docs/security.md backs each claim with tests: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security.md"


def test_every_test_file_and_function_the_security_page_names_exists() -> None:
    text = DOC.read_text()
    files = set(re.findall(r"`(tests/[\w/]+\.py)", text))
    assert files, "the page names no tests"
    for path in files:
        assert (ROOT / path).is_file(), path
    sources = "".join((ROOT / path).read_text() for path in files)
    names = set(re.findall(r"(?<![/\w])(test_\w+)(?!\.py)\b", text)) - {Path(f).stem for f in files}
    missing = sorted(n for n in names if f"def {n}(" not in sources)
    assert not missing, f"named in docs/security.md but not defined in the files it names: {missing}"
