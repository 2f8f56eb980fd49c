"""The google-genai SDK (Gemini API) through ``aigw serve``: see cases.py."""

from __future__ import annotations

import pytest
from google import genai

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "AIza-client-key"


@pytest.mark.parametrize("case_id", ["genai.generate", "genai.generate.stream"])
def test_genai_generate_content(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]

    def call() -> str:
        if not case.stream:
            return client.models.generate_content(model="gemini-2.0-flash", contents=case_id).text or ""
        chunks = client.models.generate_content_stream(model="gemini-2.0-flash", contents=case_id)
        return "".join(chunk.text or "" for chunk in chunks)

    options = {"base_url": f"{gw.url}/google-ai-studio", "retry_options": {"attempts": 1}}
    with genai.Client(api_key=KEY, http_options=options) as client:  # type: ignore[arg-type]
        gw.check(case, call, KEY)
