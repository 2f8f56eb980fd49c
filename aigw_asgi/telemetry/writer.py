"""LogWriter: finished requests in, log rows out, in batches, off the request path.

The request path only calls `LogWriter.submit`, a ``put_nowait`` on a bounded queue. A background
task drains the queue in batches of ``logs.batch_size`` rows at most every ``logs.flush_interval_ms``:
it builds the rows (one per upstream attempt; decoding and redacting bodies) on a worker thread and
hands them to the `LogStore` (a store with ``write_unredacted``, the SQLite writer process, takes
them with their bodies undecoded and unredacted, and decodes and redacts them in its own
process). The task starts lazily in the running loop (a mounted gateway gets no lifespan events)
and `aclose` flushes and stops it. When the store cannot keep up and the queue is full, rows are
dropped and counted (``dropped``, with a warning) rather than making a client wait: logs must
never slow the traffic they describe.

A store that fails (Redis restarting, a locked or full disk) does not lose the batch at once: the
writer retries that one batch with backoff (`RETRY_DELAYS_S`, about 15 s in all) while new rows
wait in the bounded queue; only then are the batch's rows dropped and counted (``failed``).
Writes are idempotent (rows are keyed by their id), so a retry after a half-done write is safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..config import LogsConfig
from ..context import RequestContext
from .records import LogRecord, RecordSettings, raw_body, records_from_context, unredacted_records
from .stores import LogStore

logger = logging.getLogger("aigw_asgi.telemetry")

_WARN_EVERY_S = 10.0
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits between the tries of one batch on a failing store: an outage of ~15 s loses no row."""


class _Flush:
    """A marker put on the queue by `LogWriter.flush`: set once everything before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = asyncio.Event()


class LogWriter:
    """Queues finished requests and writes their rows to ``store`` in batches (module docstring)."""

    def __init__(
        self,
        store: LogStore,
        settings: RecordSettings,
        *,
        batch_size: int = 200,
        flush_interval_ms: int = 500,
        queue_size: int = 10_000,
    ) -> None:
        self.store = store
        self.settings = settings
        self._batch_size = batch_size
        self._interval = flush_interval_ms / 1000
        self._queue_size = queue_size
        self._queue: asyncio.Queue[RequestContext | _Flush] | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushes = 0
        self._warned_at = 0.0
        # Counters (rows): written to the store, dropped because the queue was full, lost to a
        # failing store. ``store.refused`` counts rows a full STOP_INSERTING store turned away.
        self.written = 0
        self.dropped = 0
        self.failed = 0

    @classmethod
    def from_config(cls, logs: LogsConfig, store: LogStore, settings: RecordSettings) -> LogWriter:
        return cls(
            store,
            settings,
            batch_size=logs.batch_size,
            flush_interval_ms=logs.flush_interval_ms,
            queue_size=logs.queue_size,
        )

    def submit(self, ctx: RequestContext) -> None:
        """Queue a finished request for writing; never waits (a full queue drops and counts)."""
        _trim(ctx, self.settings.max_body_bytes if self.settings.collect_payload else 0)
        queue = self._queue
        if queue is None or self._loop is not asyncio.get_running_loop() or self._task is None or self._task.done():
            queue = self._start_writer()
        try:
            queue.put_nowait(ctx)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_S:
                self._warned_at = now
                logger.warning(
                    "log queue full (logs.queue_size=%d): dropping rows; %d dropped so far",
                    self._queue_size,
                    self.dropped,
                )
            return
        if queue.qsize() >= self._batch_size and self._wake is not None:
            self._wake.set()

    # -- the writer -----------------------------------------------------------------------------

    def _start_writer(self) -> asyncio.Queue[RequestContext | _Flush]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue = asyncio.Queue(self._queue_size)
            self._wake = asyncio.Event()
            self._loop = loop
        self._task = loop.create_task(self._write_forever(self._queue), name="aigw-log-writer")
        return self._queue

    async def _write_forever(self, queue: asyncio.Queue[RequestContext | _Flush]) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            batch = [await queue.get()]
            if not isinstance(batch[0], _Flush) and queue.qsize() + 1 < self._batch_size and not self._flushes:
                # Give the batch time to fill, unless it is full or someone waits for a flush.
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), self._interval)
                except TimeoutError:
                    pass
            while len(batch) < self._batch_size:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._write(batch)

    async def _write(self, batch: list[RequestContext | _Flush]) -> None:
        contexts = [item for item in batch if not isinstance(item, _Flush)]
        if contexts:
            await self._write_rows(contexts)
        for item in batch:
            if isinstance(item, _Flush):
                item.done.set()

    async def _write_rows(self, contexts: list[RequestContext]) -> None:
        store = self.store
        # A store that redacts on its own side (the SQLite writer process) takes the rows as built.
        write_unredacted = getattr(store, "write_unredacted", None)
        records: list[Any] = []

        def build() -> list[Any]:
            if not records:
                built = _build_unredacted if write_unredacted is not None else _build
                records.extend(built(contexts, self.settings))
            return records

        for delay in (*RETRY_DELAYS_S, None):
            try:
                if write_unredacted is not None:
                    self.written += await write_unredacted(build)
                elif records:  # built on an earlier try: write the same rows again
                    self.written += await store.write(records)
                else:
                    # Row building decodes and redacts bodies: keep that CPU off the event loop. A
                    # store with a thread of its own builds there: one thread handoff per batch.
                    write_built = getattr(store, "write_built", None)
                    if write_built is not None:
                        self.written += await write_built(build)
                    else:
                        self.written += await store.write(await asyncio.to_thread(build))
                break
            except asyncio.CancelledError:
                self.failed += len(records) or len(contexts)  # shut down mid-outage
                raise
            except Exception as exc:
                # The class name only: a store's error message may carry its URL and password.
                what = f"log store {store.kind} failed ({type(exc).__name__})"
                if delay is None:
                    self.failed += len(records) or len(contexts)
                    self._warn(f"{what} {len(RETRY_DELAYS_S) + 1} times: a batch is lost, {self.failed} rows so far")
                    return
                self._warn(f"{what}; retrying the batch ({self.failed} rows lost so far)")
                await asyncio.sleep(delay)

    def _warn(self, message: str) -> None:
        """At most one warning per ``_WARN_EVERY_S``."""
        now = time.monotonic()
        if now - self._warned_at > _WARN_EVERY_S:
            self._warned_at = now
            logger.warning("%s", message)

    async def flush(self) -> None:
        """Wait until every row queued so far is written (the admin API calls this before reading)."""
        if self._queue is None or self._task is None or self._task.done():
            return
        if self._loop is not asyncio.get_running_loop():
            return
        marker = _Flush()
        self._flushes += 1
        try:
            await self._queue.put(marker)
            if self._wake is not None:
                self._wake.set()
            await marker.done.wait()
        finally:
            self._flushes -= 1

    def stats(self) -> dict[str, Any]:
        return {
            "store": self.store.kind,
            "queued": self._queue.qsize() if self._queue is not None else 0,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "refused": self.store.refused,
        }

    async def aclose(self) -> None:
        """Write what is queued (bounded wait), stop the writer and close the store."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            same_loop = self._loop is asyncio.get_running_loop()
            if same_loop:
                self._task = task  # flush() needs the running writer
                try:
                    await asyncio.wait_for(self.flush(), 10)
                except TimeoutError:
                    logger.warning("log store too slow at shutdown: %d rows not written", self._queue_qsize())
                self._task = None
            task.cancel()
            if same_loop:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._queue = None
        self._wake = None
        self._loop = None
        await self.store.aclose()

    def _queue_qsize(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0


def _trim(ctx: RequestContext, cap: int) -> None:
    """Keep no more of the request body than a row stores: queued contexts must stay small
    (a 25 MB upload would otherwise sit in memory until its row is written)."""
    if ctx.body is not None and len(ctx.body) > cap:
        ctx.body = ctx.body[:cap] if cap else None
    for child in ctx.children:
        _trim(child, cap)


def _build_unredacted(
    contexts: list[RequestContext], settings: RecordSettings
) -> list[tuple[LogRecord, tuple[str, ...]]]:
    """Rows for a store that redacts on its own side; their bodies stay bytes (it decodes them too)."""
    out: list[tuple[LogRecord, tuple[str, ...]]] = []
    for ctx in contexts:
        out.extend(unredacted_records(ctx, settings, raw_body))
    return out


def _build(contexts: list[RequestContext], settings: RecordSettings) -> list[LogRecord]:
    out: list[LogRecord] = []
    for ctx in contexts:
        out.extend(records_from_context(ctx, settings))
    return out
