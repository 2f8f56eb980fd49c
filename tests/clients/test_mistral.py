"""The mistralai SDK through ``aigw serve``: see cases.py."""

from __future__ import annotations

import pytest
from mistralai.client import Mistral

from tests.clients.cases import CASES, TEXT
from tests.clients.harness import Harness

KEY = "mistral-client-key"


@pytest.mark.parametrize("case_id", ["mistral.chat", "mistral.chat.stream"])
def test_mistral_chat(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            response = client.chat.complete(model="mistral-small-latest", messages=messages)  # type: ignore[arg-type]
            return str(response.choices[0].message.content)
        events = client.chat.stream(model="mistral-small-latest", messages=messages)  # type: ignore[arg-type]
        return "".join(str(e.data.choices[0].delta.content or "") for e in events if e.data.choices)

    with Mistral(api_key=KEY, server_url=f"{gw.url}/mistral") as client:
        gw.check(case, call, KEY)


def test_mistral_embeddings(gw: Harness) -> None:
    def call() -> str:
        response = client.embeddings.create(model="mistral-embed", inputs=["mistral.embeddings"])
        assert len(response.data) == 1 and len(response.data[0].embedding or []) == 8
        return TEXT  # an embedding has no text: the vector was checked

    with Mistral(api_key=KEY, server_url=f"{gw.url}/mistral") as client:
        gw.check(CASES["mistral.embeddings"], call, KEY)
