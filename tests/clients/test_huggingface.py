"""The huggingface_hub InferenceClient through ``aigw serve``: see cases.py."""

from __future__ import annotations

import pytest
from huggingface_hub import InferenceClient

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "hf_clientkey"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("case_id", ["huggingface.chat", "huggingface.chat.stream"])
def test_huggingface_chat_completion(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    messages = [{"role": "user", "content": case_id}]

    def call() -> str:
        if not case.stream:
            output = client.chat_completion(model=MODEL, messages=messages)
            return output.choices[0].message.content or ""
        chunks = client.chat_completion(model=MODEL, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with InferenceClient(base_url=f"{gw.url}/huggingface", api_key=KEY) as client:
        gw.check(case, call, KEY)


def test_huggingface_text_generation(gw: Harness) -> None:
    with InferenceClient(model=f"{gw.url}/huggingface/{MODEL}", api_key=KEY) as client:
        gw.check(CASES["huggingface.text_generation"], lambda: client.text_generation("hf text"), KEY)
