"""The openai SDK (OpenAI and AzureOpenAI clients) through ``aigw serve``: see cases.py."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.clients.cases import CASES
from tests.clients.harness import Harness

KEY = "sk-client-openai"
AZURE_KEY = "azure-client-key"
V = "2024-10-21"


def messages(case_id: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"matrix {case_id}"}]  # one prompt per case: no cross-test hits


@pytest.fixture
def client(gw: Harness) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/openai", api_key=KEY, max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, case_id: str, model: str, stream: bool) -> str:
    if not stream:
        completion = client.chat.completions.create(model=model, messages=messages(case_id))  # type: ignore[arg-type]
        return completion.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=messages(case_id), stream=True)  # type: ignore[arg-type]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def responses(client: openai.OpenAI, case_id: str, stream: bool) -> str:
    if not stream:
        return client.responses.create(model="gpt-4o-mini", input=f"matrix {case_id}").output_text
    with client.responses.stream(model="gpt-4o-mini", input=f"matrix {case_id}") as events:
        return events.get_final_response().output_text


@pytest.mark.parametrize("case_id", ["openai.chat", "openai.chat.stream"])
def test_openai_chat(gw: Harness, client: openai.OpenAI, case_id: str) -> None:
    case = CASES[case_id]
    gw.check(case, lambda: chat(client, case_id, "gpt-4o-mini", case.stream), KEY)


@pytest.mark.parametrize("case_id", ["openai.responses", "openai.responses.stream"])
def test_openai_responses(gw: Harness, client: openai.OpenAI, case_id: str) -> None:
    case = CASES[case_id]
    gw.check(case, lambda: responses(client, case_id, case.stream), KEY)
    if case.stream:  # the Responses API refuses stream_options: the gateway must not add it there
        assert "stream_options" not in (gw.fake.last.json or {})


def test_openai_embeddings(gw: Harness, client: openai.OpenAI) -> None:
    def embed() -> str:
        result = client.embeddings.create(model="text-embedding-3-small", input=["matrix openai.embeddings"])
        assert len(result.data) == 1 and len(result.data[0].embedding) == 8
        return "chunk0 chunk1 chunk2 chunk3 chunk4 "  # an embedding has no text: the vector was checked

    gw.check(CASES["openai.embeddings"], embed, KEY)


AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))


def test_openai_transcriptions(gw: Harness, client: openai.OpenAI) -> None:
    """Issue 11 defects 7 and 8: the form's model is logged (so a cost) and a repeat is a HIT."""

    def transcribe() -> str:
        return client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", AUDIO, "audio/wav")).text

    gw.check(CASES["openai.transcriptions"], transcribe, KEY)


# -- AzureOpenAI ------------------------------------------------------------------------------------


def azure(gw: Harness, **kwargs: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(api_key=AZURE_KEY, api_version=V, max_retries=0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("case_id", ["azure.chat", "azure.chat.stream"])
def test_azure_endpoint_and_deployment(gw: Harness, case_id: str) -> None:
    case = CASES[case_id]
    with azure(gw, azure_endpoint=f"{gw.url}/azure-openai/res1", azure_deployment="dep1") as client:
        gw.check(case, lambda: chat(client, case_id, "gpt-4o-mini", case.stream), AZURE_KEY)
    assert gw.fake.last.query["api-version"] == [V]


def test_azure_model_names_the_deployment(gw: Harness) -> None:
    with azure(gw, azure_endpoint=f"{gw.url}/azure-openai/res1") as client:
        gw.check(CASES["azure.chat.model-as-deployment"], lambda: chat(client, "az-model", "dep1", False), AZURE_KEY)


def test_azure_base_url_naming_the_deployment(gw: Harness) -> None:
    with azure(gw, base_url=f"{gw.url}/azure-openai/res1/dep1") as client:
        gw.check(CASES["azure.chat.base-url"], lambda: chat(client, "az-base", "gpt-4o-mini", False), AZURE_KEY)


def test_azure_v1_api_with_the_openai_client(gw: Harness) -> None:
    with openai.OpenAI(base_url=f"{gw.url}/azure-openai/res1/openai/v1", api_key=AZURE_KEY, max_retries=0) as c:
        gw.check(CASES["azure.v1.chat"], lambda: chat(c, "az-v1", "gpt-4o-mini", False), AZURE_KEY)
        gw.check(CASES["azure.v1.responses.stream"], lambda: responses(c, "az-v1-resp", True), AZURE_KEY)


def test_azure_transcriptions(gw: Harness) -> None:
    with azure(gw, azure_endpoint=f"{gw.url}/azure-openai/res1") as client:

        def transcribe() -> str:
            file = ("a.wav", AUDIO, "audio/wav")
            return client.audio.transcriptions.create(model="gpt-4o-transcribe", file=file).text

        # The SDK puts model= in the path as the deployment and in the form: the row names it.
        gw.check(CASES["azure.transcriptions"], transcribe, AZURE_KEY)
