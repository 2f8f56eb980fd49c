"""The SQLite log store with its writer in a child process (``logs.writer = "process"``).

Why a process: a log row costs the gateway ~5 µs to build, then ~10 µs (a chat completion) to
~30 µs (a 7 kB stream) to redact and ~15-30 µs to insert. On a thread, the redaction holds the
interpreter lock the event loop needs, and the insert hands the lock back and forth with it, so
logging every request with its bodies took 15 % of a worker's throughput on chat completions
and 25 % on streams (benchmarks/README.md). Here the worker only builds the rows and sends them
to a child, which decodes their bodies, redacts and writes them with the same code a thread would
run (`body_text`, `redact_record`, `SQLiteLogStore`); it has an interpreter lock of its own.

What does not change: every row is still redacted before it is stored (the child gets the
gateway's secrets once, over its stdin, never on its command line), batches are written whole or
retried by the `LogWriter` (a child that died, or answers nothing for `ANSWER_TIMEOUT_S`, is
replaced on the next try), reads, patches
and deletes run in the worker on their own connections (SQLite's WAL lets several processes use
one file, as several workers already do).

The child is ``python -m aigw_asgi.telemetry.stores.sqlite_process`` with pipes on stdin and
stdout: each message is two 4-byte lengths, a pickle and a blob; it answers each batch with the
rows written. The bodies travel in the blob, as the request captured them (bytes, capped): one
``writev`` hands them to the pipe without being copied into the pickle first, and the child
decodes them (`body_text`). That halved what sending a 7 kB stream row costs the worker's
thread (benchmarks/README.md, fifth pass).
"""

from __future__ import annotations

import operator
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from ..records import BODY_FIELDS, LogRecord, body_text, redact_record
from .sqlite import SQLiteLogStore

try:
    import fcntl
except ImportError:  # Windows: pipes keep their size
    fcntl = None  # type: ignore[assignment]

_FIELDS = tuple(f.name for f in fields(LogRecord))
assert _FIELDS[-2:] == BODY_FIELDS, "the bodies are a LogRecord's last two fields"
_VALUES = operator.attrgetter(*_FIELDS[:-2])  # a record's values but the bodies, in field order, read in C
_HEADER = struct.Struct(">II")  # the pickle's length, the blob's
_IOV_MAX = 512  # buffers per writev (Linux allows 1024)
_CLOSE_TIMEOUT_S = 10.0
_PIPE_BYTES = 1 << 20
ANSWER_TIMEOUT_S = 60.0
"""How long the worker waits for the child to answer a batch before it kills it (a stuck child)."""

Row = tuple[LogRecord, tuple[str, ...]]
"""A row as `unredacted_records` gives it: the record and its request's own credentials."""
_NONE: tuple[str, ...] = ()


class ProcessSQLiteLogStore(SQLiteLogStore):
    """`SQLiteLogStore` whose writes happen in a child process that also redacts the rows.

    ``secrets``: what the gateway's `Redactor` knows (tokens, provider keys, the admin token).
    `LogWriter` hands it unredacted rows through `write_unredacted`; `write` (already redacted
    rows, e.g. an import) goes the same way and is redacted again, which changes nothing.
    """

    def __init__(self, path: str, *, secrets: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._secrets = secrets
        self._child: subprocess.Popen[bytes] | None = None
        self._child_refused = 0  # rows the child's STOP_INSERTING turned away, as of its last answer
        self._start_lock = threading.Lock()

    async def write(self, records: Sequence[LogRecord]) -> int:
        rows: list[Row] = [(record, _NONE) for record in records]
        return await self.write_unredacted(lambda: rows)

    async def write_built(self, build: Callable[[], list[LogRecord]]) -> int:
        return await self.write_unredacted(lambda: [(record, _NONE) for record in build()])

    async def write_unredacted(self, build: Callable[[], list[Row]]) -> int:
        """Build the rows on the store's thread and have the child redact and write them.

        A row's bodies may be the captured bytes (`records.raw_body`: the child decodes them) or
        text (a row built elsewhere): both arrive as they left.
        """
        child = self._child
        if child is None or child.poll() is not None:
            # Started from the event loop's thread (a fork-exec, ~1 ms, once per child), not the
            # store's: tools that walk a process tree through /proc/PID/task/PID/children (the
            # benchmark harness counting a server's CPU and memory) then find the child too.
            self._started()
        return int(await self._run(lambda: self._send(build())))

    def _send(self, rows: list[Row]) -> int:
        if not rows:
            return 0
        bodies: list[bytes] = []
        payload = [
            (_VALUES(record), extra, _body(record.request_body, bodies), _body(record.response_body, bodies))
            for record, extra in rows
        ]
        child = self._started()
        try:
            _put(child.stdin, ("write", payload), bodies)
            answer, _ = _get(child.stdout, ANSWER_TIMEOUT_S)
        except Exception as exc:
            # Dead (EOF, a broken pipe), stuck past the bound (a batch takes milliseconds; SQLite's
            # own lock wait is 5 s) or anything else mid-exchange: the conversation's state is
            # unknown, so that child goes (killed unless it is already gone) and the writer's
            # retry starts a new one.
            self._stop(child, kill=not isinstance(exc, (EOFError, BrokenPipeError)))
            raise ConnectionError(f"the log writer process stopped ({type(exc).__name__})") from None
        if answer[0] != "ok":
            raise RuntimeError(f"the log writer process failed to write ({answer[1]})")
        _, written, refused = answer
        self.refused += refused - self._child_refused
        self._child_refused = refused
        return int(written)

    def _started(self) -> subprocess.Popen[bytes]:
        with self._start_lock:
            child = self._child
            if child is not None and child.poll() is None:
                return child
            if child is not None:
                self._stop(child)
            # The same aigw_asgi as this process, wherever it was imported from (an app that put
            # a source tree on sys.path itself would otherwise start a child that cannot find it).
            root = str(Path(__file__).resolve().parents[3])
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": root + os.pathsep + path if path else root}
            child = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
                env=env,
            )
            _widen(child.stdin)
            settings = {
                "path": self.path,
                "max_logs": self.max_logs,
                "strategy": self.strategy,
                "max_age": self.max_age,
                "secrets": sorted(self._secrets),
            }
            try:
                _put(child.stdin, ("start", settings))
            except OSError:
                self._stop(child)
                raise
            self._child = child
            self._child_refused = 0
            return child

    def _stop(self, child: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        if child is self._child:
            self._child = None
        if kill:
            child.kill()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            child.wait(_CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _close_child(self) -> None:
        """Ask the child to finish (it has written every batch it answered) and wait for it."""
        child = self._child
        if child is None:
            return
        try:
            _put(child.stdin, ("close",))
        except OSError:
            pass
        self._stop(child)

    async def aclose(self) -> None:
        if self._executor is not None:
            await self._run(self._close_child)
        elif self._child is not None:
            self._close_child()
        await super().aclose()


def _widen(stream: IO[bytes] | None) -> None:
    """A 1 MiB pipe instead of 64 kB (Linux): a batch of stream rows (~1.4 MB) then crosses in two
    writes instead of ~20, each a wake-up of the child and a hand-off of this thread's lock
    (measured 9.6 -> 7.6 µs of the worker's CPU per 7 kB row). Best effort: the size is capped
    by /proc/sys/fs/pipe-max-size, and other systems keep their default."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if stream is None or setpipe is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), setpipe, _PIPE_BYTES)
    except OSError:
        pass


def _body(body: str | bytes | None, into: list[bytes]) -> str | int | None:
    """A row's body as the pickle carries it: captured bytes go to the blob (``into``) and are
    named by their length there; text (an already built row: an import) travels as it is."""
    if not isinstance(body, bytes):
        return body
    into.append(body)
    return len(body)


def _records(payload: list[Any], blob: bytes) -> list[Row]:
    """The child's side of `_send`: the rows, their bodies taken from the blob and decoded."""
    out: list[Row] = []
    at = 0
    for values, extra, *bodies in payload:
        texts: list[str | None] = []
        for body in bodies:
            if isinstance(body, int):
                texts.append(body_text(blob[at : at + body], body))
                at += body
            else:
                texts.append(body)
        out.append((LogRecord(*values, *texts), extra))
    return out


def _put(stream: IO[bytes] | None, message: Any, blob: Sequence[bytes] = ()) -> None:
    """A message: its pickle and, after it, the ``blob`` parts as they are (no copy on this side)."""
    assert stream is not None
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    parts = [_HEADER.pack(len(data), sum(map(len, blob))), data, *blob]
    stream.flush()  # nothing is buffered there; writes go to the descriptor directly
    fd = stream.fileno()
    while parts:
        written = os.writev(fd, parts[:_IOV_MAX])
        while parts and written >= len(parts[0]):  # a pipe may take part of a large write
            written -= len(parts[0])
            parts.pop(0)
        if written:
            parts[0] = memoryview(parts[0])[written:]


def _get(stream: IO[bytes] | None, timeout: float | None = None) -> tuple[Any, bytes]:
    """One message and its blob; ``timeout`` (POSIX) bounds the wait for its first byte (`TimeoutError`)."""
    assert stream is not None
    if timeout is not None and hasattr(select, "poll"):
        # poll, not select: a worker holding a thousand connections has descriptors past select's
        # FD_SETSIZE (1024), where select.select raises ValueError.
        waiter = select.poll()
        waiter.register(stream.fileno(), select.POLLIN)
        if not waiter.poll(timeout * 1000):
            raise TimeoutError("no answer from the log writer process")
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other end closed the pipe")
    size, blob_size = _HEADER.unpack(header)
    data = stream.read(size + blob_size)
    if len(data) < size + blob_size:
        raise EOFError("the other end closed the pipe")
    return pickle.loads(data[:size]), data[size:]


def _serve(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """The child: redact and write each batch, answer with the rows written, until told to stop."""
    from ...redact import Redactor

    try:
        (kind, settings), _ = _get(inbox)
    except EOFError:
        return  # the worker went away before its first batch
    if kind != "start":
        raise SystemExit("aigw log writer: expected a start message")
    redactor = Redactor(settings["secrets"])
    store = SQLiteLogStore(
        settings["path"], max_logs=settings["max_logs"], strategy=settings["strategy"], max_age=settings["max_age"]
    )
    try:
        while True:
            try:
                message, blob = _get(inbox)
            except EOFError:
                return  # the worker is gone: nothing more will come
            if message[0] != "write":
                return
            try:
                records = [redact_record(record, redactor, extra) for record, extra in _records(message[1], blob)]
                written = store._write(records)
            except Exception as exc:  # the class name only: a message may quote a row
                _put(outbox, ("error", type(exc).__name__))
                continue
            _put(outbox, ("ok", written, store.refused))
    finally:
        if store._conn is not None:
            store._conn.close()


def main() -> None:
    import signal

    # The child lives exactly as long as its worker: it ends when the worker closes the pipe (or
    # dies). A Ctrl-C or a SIGTERM sent to the whole process group must not stop it before the
    # worker's last batch on shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    _serve(inbox, outbox)


if __name__ == "__main__":
    main()
