"""The realtime relay end to end: real uvicorn, the real `websockets` client, the fake provider.

Frames both ways (text and binary, unchanged, in order), close codes both ways, the provider's
refusal and absence, the caps, a client or provider vanishing mid-session, and backpressure.
Nothing here asserts on timings: waits have generous bounds, and the tests that need the
gateway to act "at once" run with every timer that could act instead set to an hour.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from tests.realtime.conftest import OPENAI_PATH, open_ws, recv_json, session_rows, until


def test_openai_session_relayed_both_ways(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with open_ws(server) as ws:
        assert recv_json(ws)["type"] == "session.created"
        ws.send(json.dumps({"type": "session.update", "session": {"instructions": "be brief"}}))
        assert until(ws, "session.updated")[-1]["session"]["instructions"] == "be brief"
        ws.send(json.dumps({"type": "response.create"}))
        events = until(ws, "response.done")
        kinds = [e["type"] for e in events]
        assert kinds[0] == "response.created" and kinds.count("response.output_audio.delta") == 3
        assert events[-1]["response"]["usage"]["input_tokens"] == 12
    session = fake.last
    assert session.path == "/v1/realtime" and session.query == {"model": ["gpt-realtime"]}
    assert [e["type"] for e in session.events()] == ["session.update", "response.create"]


def test_text_and_binary_frames_unchanged_and_in_order(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    sent: list[str | bytes] = []
    for i in range(60):
        if i % 2:
            sent.append(bytes([i]) * (i * 97) + b"\x00\xff")  # arbitrary bytes, not UTF-8
        else:
            sent.append(json.dumps({"type": "fake.echo", "i": i, "text": "héllo ✓ " * i}, ensure_ascii=False))
    with open_ws(server) as ws:
        recv_json(ws)  # session.created
        for frame in sent:
            ws.send(frame)
        echoed = [ws.recv(timeout=10) for _ in sent]
    assert echoed == sent  # types too: str stays text, bytes stay binary
    assert fake.last.received == sent


def test_close_codes_pass_through_both_ways(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.close", "code": 4000, "reason": "provider says bye"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "provider says bye"

    with open_ws(server) as ws:
        recv_json(ws)
        ws.close(code=4321, reason="client says bye")
    session = fake.wait_for_sessions(2)[1]
    assert session.closed.wait(10)
    assert (session.close_code, session.close_reason) == (4321, "client says bye")
    first, second = sorted(session_rows(server, 2), key=lambda r: r["created_at"])
    assert first["metadata"]["realtime_close_code"] == 4000 and first["metadata"]["realtime_closed_by"] == "upstream"
    assert first["success"] is False and first["error_type"] == "4000"
    assert second["metadata"]["realtime_close_code"] == 4321 and second["metadata"]["realtime_closed_by"] == "client"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_upstream_refusal_is_a_readable_close(realtime_gateway, fake, status: int) -> None:
    _, server = realtime_gateway()
    fake.refuse(status)
    with open_ws(server) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4000 + status
    assert f"upstream refused the connection: {status}" in closed.value.rcvd.reason
    (row,) = session_rows(server)
    assert row["status_code"] == status and row["success"] is False
    assert row["metadata"] == {"realtime_close_code": 4000 + status, "realtime_closed_by": "gateway"}


def test_unreachable_upstream_closes_with_1011(realtime_gateway) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        _, server = realtime_gateway(providers={"openai": {"base_url": f"http://127.0.0.1:{port}/v1"}})
        with open_ws(server) as ws:
            with pytest.raises(ConnectionClosedError) as closed:
                ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1011 and "upstream unreachable" in closed.value.rcvd.reason
    (row,) = session_rows(server)
    assert row["status_code"] == 502 and row["error_type"] == "connect_error" and row["success"] is False


def test_upstream_drop_mid_session_closes_the_client_with_1011(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.drop"}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1011 and closed.value.rcvd.reason == "upstream connection lost"
    (row,) = session_rows(server)
    assert row["error_type"] == "upstream_lost" and row["success"] is False
    assert row["metadata"]["realtime_closed_by"] == "upstream"


def test_client_drop_closes_upstream_at_once(realtime_gateway, fake) -> None:
    # Idle and session caps are an hour away and pings are off: only the client's disconnect
    # can close the provider's socket here.
    _, server = realtime_gateway()
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")
        session = fake.last
        assert not session.closed.is_set()
        dropped_at = time.monotonic()
        ws.socket.shutdown(socket.SHUT_RDWR)  # vanish: no close frame
        ws.socket.close()
        assert session.closed.wait(10)
    assert session.close_code == 1001  # going away
    print(f"upstream closed {session.closed_at - dropped_at:.3f} s after the client vanished")
    (row,) = session_rows(server)
    assert row["error_type"] == "client_disconnect" and row["metadata"]["realtime_closed_by"] == "client"
    assert row["tokens_in"] == 12  # what was used before the drop is still accounted


def test_oversized_client_frame_closes_with_1009(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(realtime={"max_frame_bytes": 4096})
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.echo", "pad": "a" * 100}))
        recv_json(ws)
        ws.send(b"\x01" * 4097)
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1009 and "limit 4096 bytes" in closed.value.rcvd.reason
    session = fake.last
    assert session.closed.wait(10) and session.close_code == 1001
    assert len(session.received) == 1  # the oversized frame never reached the provider
    (row,) = session_rows(server)
    assert row["error_type"] == "frame_too_large" and row["metadata"]["realtime_closed_by"] == "gateway"


def test_oversized_upstream_frame_closes_with_1009(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(realtime={"max_frame_bytes": 4096})
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.big", "size": 5000}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1009 and "upstream frame too large" in closed.value.rcvd.reason
    assert fake.last.closed.wait(10)


def test_idle_sessions_are_closed(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(realtime={"idle_timeout_s": 0.5})
    with open_ws(server) as ws:
        recv_json(ws)
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == "idle for 0.5 s"
    assert fake.last.closed.wait(10) and fake.last.close_code == 1001
    (row,) = session_rows(server)
    assert row["error_type"] == "idle_timeout"


def test_session_length_is_capped(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(realtime={"max_session_s": 1})
    with open_ws(server) as ws:
        recv_json(ws)
        with pytest.raises(ConnectionClosedError) as closed:
            while True:  # traffic does not keep a session past its length
                ws.send(json.dumps({"type": "fake.echo"}))
                recv_json(ws, timeout=30)
                time.sleep(0.05)
    assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == "session length limit reached (1 s)"
    (row,) = session_rows(server)
    assert row["error_type"] == "session_limit"


def test_a_slow_client_slows_the_provider(realtime_gateway, fake) -> None:
    """Backpressure: the provider floods 400 frames of 64 KiB (25 MiB) at a client that reads
    nothing; with every hop awaiting its send, the provider gets stuck long before the end."""
    count, size = 400, 65536
    _, server = realtime_gateway()
    with open_ws(server, max_size=None, max_queue=4) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.flood", "count": count, "size": size}))
        session = fake.last
        # Wait until the provider's sending stalls (its count stops moving), however long the
        # socket buffers on the way take to fill.
        stalled_at, last, deadline = None, -1, time.monotonic() + 30
        while time.monotonic() < deadline:
            sent = session.sent
            if sent == last:
                if stalled_at is not None and time.monotonic() - stalled_at > 1:
                    break
                stalled_at = stalled_at or time.monotonic()
            else:
                last, stalled_at = sent, None
            time.sleep(0.05)
        assert session.sent < count, "the provider sent everything while the client read nothing"
        # Then everything arrives, complete and in order.
        frames = [ws.recv(timeout=30) for _ in range(count)]
    assert [int.from_bytes(f[:4], "big") for f in frames] == list(range(count))
    assert all(len(f) == size for f in frames)


def test_unknown_provider_and_providers_without_realtime_are_refused(realtime_gateway) -> None:
    _, server = realtime_gateway()
    for path, status, code in (("/nope/v1/realtime", 400, 2008), ("/anthropic/v1/messages", 404, 2004)):
        with pytest.raises(InvalidStatus) as refused:
            with open_ws(server, path):
                pass
        assert refused.value.response.status_code == status
        assert json.loads(refused.value.response.body)["error"][0]["code"] == code


def test_path_escapes_are_refused(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, "/openai/v1/%2e%2e/%2fadmin?model=x"):
            pass
    assert refused.value.response.status_code == 400
    assert fake.sessions == []


def test_mounted_gateway(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(gateway={"mount_path": "/ai"})
    with open_ws(server, "/ai" + OPENAI_PATH) as ws:
        assert recv_json(ws)["type"] == "session.created"
    assert fake.last.path == "/v1/realtime"


def test_providers_off_the_allow_list_are_refused(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(gateway={"providers": ["openai"]})
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, "/google-ai-studio?key=AIza-x"):
            pass
    assert refused.value.response.status_code == 400
    assert b"not enabled on this gateway" in refused.value.response.body and fake.sessions == []
