"""Each realtime provider shape end to end: OpenAI (GA and beta events), Gemini Live, Azure, custom."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.realtime.conftest import GEMINI_PATH, open_ws, recv_json, session_rows, until


def test_cloudflare_spelling_without_a_path(realtime_gateway, fake) -> None:
    """``/openai?model=…`` as Cloudflare documents it, with the beta header: beta event names."""
    _, server = realtime_gateway()
    headers = {"authorization": "Bearer sk-client", "openai-beta": "realtime=v1"}
    with open_ws(server, "/openai?model=gpt-4o-realtime-preview", additional_headers=headers) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        kinds = [e["type"] for e in until(ws, "response.done")]
    assert "response.audio.delta" in kinds
    session = fake.last
    assert session.path == "/v1/realtime" and session.query_string == "model=gpt-4o-realtime-preview"
    assert session.headers["openai-beta"] == "realtime=v1"
    (row,) = session_rows(server)
    assert row["model"] == "gpt-4o-realtime-preview" and row["tokens_out"] == 34


def test_gemini_live_setup_and_turns(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with open_ws(server, GEMINI_PATH + "?key=AIza-client-123", additional_headers={}) as ws:
        ws.send(json.dumps({"setup": {"model": "models/gemini-2.0-flash-live-001"}}))
        assert json.loads(ws.recv(timeout=10)) == {"setupComplete": {}}
        for _ in range(2):
            turn = {"turns": [{"role": "user", "parts": [{"text": "hi"}]}], "turnComplete": True}
            ws.send(json.dumps({"clientContent": turn}))
            content = ws.recv(timeout=10)
            assert isinstance(content, bytes)  # Gemini's JSON comes in binary frames: relayed as such
            assert json.loads(content)["serverContent"]["modelTurn"]["parts"][0]["text"] == "Hello there."
            assert json.loads(ws.recv(timeout=10))["serverContent"]["turnComplete"] is True
        ws.send(json.dumps({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=16000"}}}))
    session = fake.last
    assert session.path == "/" + GEMINI_PATH.split("/", 2)[2] and session.query == {"key": ["AIza-client-123"]}
    (row,) = session_rows(server)
    assert row["provider"] == "google-ai-studio" and row["model"] == "gemini-2.0-flash-live-001"
    assert (row["tokens_in"], row["tokens_out"], row["cached_tokens_in"]) == (24, 68, 4)  # two turns summed
    assert row["metadata"]["realtime_frames_up"] == 4 and row["metadata"]["realtime_frames_down"] == 5


def test_azure_realtime_path_and_deployment(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(providers={"azure-openai": {"api_key": "az-stored-key-1"}})
    path = "/azure-openai/my-res/gpt-4o-rt/realtime?api-version=2024-10-01-preview"
    with open_ws(server, path, additional_headers={}) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")
    session = fake.last
    assert session.path == "/openai/realtime"
    assert session.query == {"api-version": ["2024-10-01-preview"], "deployment": ["gpt-4o-rt"]}
    assert session.headers["api-key"] == "az-stored-key-1" and "authorization" not in session.headers
    (row,) = session_rows(server)
    # The row names the model the provider says answered (session.created), as for HTTP answers.
    assert row["provider"] == "azure-openai" and row["model"] == "gpt-realtime" and row["tokens_in"] == 12


def test_custom_provider_with_a_realtime_url(realtime_gateway, fake, fake_upstream) -> None:
    providers = {
        "custom-voice": {"base_url": f"{fake_upstream.url}/v1", "realtime_url": f"{fake_upstream.url}/custom/live"},
        "custom-plain": {"base_url": f"{fake_upstream.url}/v1"},
    }
    _, server = realtime_gateway(providers=providers)
    with open_ws(server, "/custom-voice/v1/realtime?model=voice-1") as ws:
        assert recv_json(ws)["session"]["model"] == "voice-1"
    assert fake.last.path == "/custom/live" and fake.last.query_string == "model=voice-1"
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, "/custom-plain?model=x"):
            pass
    assert refused.value.response.status_code == 404
    assert b"realtime_url" in refused.value.response.body
