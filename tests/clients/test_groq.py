"""The groq SDK through ``aigw serve`` (issue 11 defect 3: it calls {base_url}/openai/v1/…)."""

from __future__ import annotations

import groq
import pytest

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "gsk_client"


@pytest.mark.parametrize("case_id", ["groq.chat", "groq.chat.stream"])
def test_groq_chat(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            completion = client.chat.completions.create(model="llama-3.1-8b-instant", messages=messages)  # type: ignore[arg-type]
            return completion.choices[0].message.content or ""
        chunks = client.chat.completions.create(model="llama-3.1-8b-instant", messages=messages, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with groq.Groq(base_url=f"{gw.url}/groq", api_key=KEY, max_retries=0) as client:
        gw.check(case, call, KEY)
