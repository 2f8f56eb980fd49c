"""docs/clients.md is the matrix's rendering, and every case in it is run by a test."""

from __future__ import annotations

from pathlib import Path

from tests.clients import matrix
from tests.clients.cases import CASES

HERE = Path(__file__).parent


def test_every_case_is_run_by_a_test() -> None:
    sources = "".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != "test_matrix.py")
    unused = [case_id for case_id in CASES if f'"{case_id}"' not in sources]
    assert not unused, f"cases no test runs: {unused}"


def test_committed_page_is_the_rendering_of_every_case_passing() -> None:
    expected = matrix.render(matrix.all_passed())
    assert matrix.DOC.read_text() == expected, (
        "docs/clients.md is stale: AIGW_CLIENTS_RESULTS=/tmp/clients.json python -m pytest -q tests/clients "
        "&& python -m tests.clients.matrix /tmp/clients.json --write"
    )


def test_a_case_without_a_result_is_not_shown_as_passing() -> None:
    page = matrix.render({})
    assert "✅" not in page and page.count("❌") == len(CASES)
