"""`ClientWatch`: cancels the request's task when the client leaves, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aigw_asgi._asgi import ClientWatch


async def test_a_disconnect_cancels_the_task_and_release_swallows_only_that() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def request() -> str:
        watch = ClientWatch(receive)
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
        watch = ClientWatch(receive)
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

    watch = ClientWatch(receive)
    await asyncio.sleep(0.01)
    assert 0 < calls <= 8 and not watch.left
    watch.stop()


async def test_stop_before_a_late_disconnect_keeps_the_task_running() -> None:
    """After the last body message a server answers ``receive`` with a disconnect: not a client leaving."""
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    watch = ClientWatch(receive)
    done.set()  # the response completed: the server wakes the watcher...
    watch.stop()  # ...but the request stopped watching first, without awaiting in between
    await asyncio.sleep(0.01)
    assert not watch.left
