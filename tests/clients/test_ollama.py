"""The ollama SDK, and the openai SDK on Ollama's /v1, through ``aigw serve`` (issue 11 defect 7)."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import openai
import pytest

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "ollama"  # the OpenAI SDK needs a key; Ollama ignores it


@pytest.fixture
def client(gw: Harness) -> Iterator[ollama.Client]:
    client = ollama.Client(host=f"{gw.url}/ollama")
    yield client
    client._client.close()


@pytest.mark.parametrize("case_id", ["ollama.chat", "ollama.chat.stream"])
def test_ollama_chat(gw: Harness, client: ollama.Client, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            return client.chat(model="llama3.2", messages=messages).message.content or ""
        return "".join(
            part.message.content or "" for part in client.chat(model="llama3.2", messages=messages, stream=True)
        )

    gw.check(case, call, "")


@pytest.mark.parametrize("case_id", ["ollama.openai.chat", "ollama.openai.chat.stream"])
def test_ollama_openai_compatible_chat(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            completion = c.chat.completions.create(model="llama3.2", messages=messages)  # type: ignore[arg-type]
            return completion.choices[0].message.content or ""
        chunks = c.chat.completions.create(model="llama3.2", messages=messages, stream=True)  # type: ignore[arg-type]
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    with openai.OpenAI(base_url=f"{gw.url}/ollama/v1", api_key=KEY, max_retries=0) as c:
        gw.check(case, call, KEY)
