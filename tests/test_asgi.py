"""`ClientWatch`: cancels the request's task when the client leaves, and only then."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aigw_asgi._asgi import ClientWatch


async def test_a_disconnect_cancels_the_task_and_release_swallows_only_that() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def request() -> str:
        watch = ClientWatch(receive, after_s=0)
        try:
            gone.set()
            await asyncio.sleep(3600)  # the upstream call
            return "answered"
        except asyncio.CancelledError:
            if not watch.release():
                raise
            return "client left"
        finally:
            watch.stop()

    assert await asyncio.wait_for(request(), 5) == "client left"


async def test_someone_elses_cancellation_is_never_swallowed() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def request() -> None:
        watch = ClientWatch(receive, after_s=0)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            assert not watch.release()  # not the watcher's: re-raised
            raise
        finally:
            watch.stop()

    task = asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Both at once: the client left and the host cancels too. The host's cancellation wins.
    task = asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0)
    gone.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_receive_that_never_blocks_is_not_watched_forever() -> None:
    """A host whose ``receive`` keeps returning the body (no real server) must not spin the loop."""
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    watch = ClientWatch(receive, after_s=0)
    await asyncio.sleep(0.01)
    assert 0 < calls <= 8 and not watch.left
    watch.stop()


async def test_stop_before_a_late_disconnect_keeps_the_task_running() -> None:
    """After the last body message a server answers ``receive`` with a disconnect: not a client leaving."""
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    watch = ClientWatch(receive, after_s=0)
    done.set()  # the response completed: the server wakes the watcher...
    watch.stop()  # ...but the request stopped watching first, without awaiting in between
    await asyncio.sleep(0.01)
    assert not watch.left


async def test_a_mounted_gateway_answers_a_stalled_body_with_408() -> None:
    """The body deadline is the gateway's own: it holds under any ASGI server, not only ``aigw serve``."""
    from aigw_asgi import Gateway
    from aigw_asgi.config import config_from_dict

    gateway = Gateway(config_from_dict({"gateway": {"body_timeout_ms": 50}, "logs": {"store": "memory://"}}))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/openai/chat/completions",
        "raw_path": b"/openai/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 1),
    }
    parts = [{"type": "http.request", "body": b'{"model":', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop()
        await asyncio.sleep(3600)  # the rest of the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await asyncio.wait_for(gateway(scope, receive, send), 10)
    finally:
        await gateway.aclose()
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    error = json.loads(sent[1]["body"])["error"]
    assert error == [{"code": 2004, "message": "Request body not received within 0.05 s"}]


async def test_the_body_deadline_does_not_bound_the_wait_after_the_body() -> None:
    """After the body, ``receive`` waits for a disconnect as long as the answer takes."""
    from aigw_asgi._asgi import body_deadline

    messages = [{"type": "http.disconnect"}, {"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:
            await asyncio.sleep(0.1)  # longer than the deadline
        return messages.pop()

    bounded = body_deadline(receive, 0.02)
    assert (await bounded())["type"] == "http.request"
    assert (await bounded())["type"] == "http.disconnect"


async def test_the_body_deadline_arms_a_timer_only_for_a_receive_that_waits() -> None:
    """A body already in the server's buffer costs no timer; one that is awaited is bounded."""
    from aigw_asgi._asgi import body_deadline
    from aigw_asgi.errors import RequestTimeout

    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__name__", "") == "_expire":  # the deadline's, not asyncio.sleep's
            armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
    try:

        async def at_once() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        assert (await body_deadline(at_once, 5)())["body"] == b"{}"
        assert armed == []

        async def soon() -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {"type": "http.request", "body": b"late", "more_body": False}

        assert (await body_deadline(soon, 5)())["body"] == b"late"
        assert len(armed) == 1

        async def never() -> dict[str, Any]:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        with pytest.raises(RequestTimeout):
            await body_deadline(never, 0.02)()
    finally:
        loop.call_at = call_at  # type: ignore[method-assign]


class _BareAwaitable:
    """What granian's ``receive()`` returns: an awaitable whose iterator has ``__next__`` only."""

    def __init__(self, future: asyncio.Future[dict[str, Any]]) -> None:
        self._future = future

    def __await__(self) -> _BareAwaitable:
        return self

    def __iter__(self) -> _BareAwaitable:
        return self

    def __next__(self) -> asyncio.Future[dict[str, Any]]:
        if not self._future.done():
            self._future._asyncio_future_blocking = True
            return self._future
        raise StopIteration(self._future.result())


async def test_the_body_deadline_drives_a_server_awaitable_without_send_or_throw() -> None:
    """granian's awaitable has neither ``send`` nor ``throw``: read at once, after a wait, or timed out."""
    from aigw_asgi._asgi import body_deadline
    from aigw_asgi.errors import RequestTimeout

    loop = asyncio.get_running_loop()
    ready: asyncio.Future[dict[str, Any]] = loop.create_future()
    ready.set_result({"type": "http.request", "body": b"now", "more_body": False})
    assert (await body_deadline(lambda: _BareAwaitable(ready), 5)())["body"] == b"now"  # type: ignore[arg-type,return-value]

    later: asyncio.Future[dict[str, Any]] = loop.create_future()
    loop.call_later(0.01, later.set_result, {"type": "http.request", "body": b"later", "more_body": False})
    assert (await body_deadline(lambda: _BareAwaitable(later), 5)())["body"] == b"later"  # type: ignore[arg-type,return-value]

    never: asyncio.Future[dict[str, Any]] = loop.create_future()
    with pytest.raises(RequestTimeout):
        await body_deadline(lambda: _BareAwaitable(never), 0.02)()  # type: ignore[arg-type,return-value]


async def test_the_body_deadline_passes_other_cancellations_and_errors_through() -> None:
    """Only its own timer turns into a 408: a cancelled request stays cancelled, a broken receive raises."""
    from aigw_asgi._asgi import body_deadline

    async def never() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    waiting = asyncio.ensure_future(body_deadline(never, 5)())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    async def broken() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await body_deadline(broken, 5)()


async def test_the_watcher_starts_only_after_the_delay_and_stop_cancels_the_timer() -> None:
    """Fast answers never pay for a task; a slow one is watched from ``after_s`` on."""
    gone = asyncio.Event()
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await gone.wait()
        return {"type": "http.disconnect"}

    fast = ClientWatch(receive, after_s=0.05)
    fast.stop()  # answered before the delay
    await asyncio.sleep(0.1)
    assert calls == 0 and not fast.left

    async def slow_request() -> str:
        watch = ClientWatch(receive, after_s=0.01)
        try:
            gone.set()
            await asyncio.sleep(3600)
            return "answered"
        except asyncio.CancelledError:
            if not watch.release():
                raise
            return "client left"
        finally:
            watch.stop()

    assert await asyncio.wait_for(slow_request(), 5) == "client left" and calls == 1
