"""The cohere SDK (v2 client) through ``aigw serve``: see cases.py."""

from __future__ import annotations

from collections.abc import Iterator

import cohere
import httpx
import pytest

from tests.clients.cases import CASES, TEXT
from tests.clients.harness import Harness

KEY = "cohere-client-key"


@pytest.fixture
def client(gw: Harness) -> Iterator[cohere.ClientV2]:
    with httpx.Client(timeout=30) as http:  # ours, so it is closed when the test ends
        yield cohere.ClientV2(api_key=KEY, base_url=f"{gw.url}/cohere", httpx_client=http)


@pytest.mark.parametrize("case_id", ["cohere.chat", "cohere.chat.stream"])
def test_cohere_chat(gw: Harness, client: cohere.ClientV2, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            response = client.chat(model="command-r", messages=messages)  # type: ignore[arg-type]
            assert response.message.content is not None
            return "".join(getattr(part, "text", "") for part in response.message.content)
        text = ""
        for event in client.chat_stream(model="command-r", messages=messages):  # type: ignore[arg-type]
            if event.type == "content-delta" and event.delta and event.delta.message:
                text += event.delta.message.content.text or ""  # type: ignore[union-attr]
        return text

    gw.check(case, call, KEY)


def test_cohere_embed(gw: Harness, client: cohere.ClientV2) -> None:
    def call() -> str:
        response = client.embed(
            model="embed-v4.0", texts=["cohere.embed"], input_type="search_query", embedding_types=["float"]
        )
        assert response.embeddings.float_ is not None and len(response.embeddings.float_[0]) == 8
        return TEXT  # an embedding has no text: the vector was checked

    gw.check(CASES["cohere.embed"], call, KEY)
