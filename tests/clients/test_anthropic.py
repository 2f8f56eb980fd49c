"""The anthropic SDK through ``aigw serve``: see cases.py."""

from __future__ import annotations

import anthropic
import pytest

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "sk-ant-client"


@pytest.mark.parametrize("case_id", ["anthropic.messages", "anthropic.messages.stream"])
def test_anthropic_messages(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    kwargs = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": case_id}]}

    def call() -> str:
        if not case.stream:
            block = client.messages.create(**kwargs).content[0]  # type: ignore[call-overload]
            assert block.type == "text"
            return str(block.text)
        with client.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
            return "".join(stream.text_stream)

    with anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key=KEY, max_retries=0) as client:
        gw.check(case, call, KEY)
