"""The built-in HTTP/1.1 client against raw servers on loopback that answer byte for byte.

tests/test_transport.py runs the contract every transport keeps (errors, cookies, raw bodies,
the idle bound) against a real ASGI server; these tests cover what only a client of our own can
get wrong: framings, interim answers, HEAD, back-pressure, the pool, stale connections, header
injection and TLS.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aigw_asgi.config import UpstreamConfig
from aigw_asgi.errors import InvalidRequest, UpstreamTimeout, UpstreamUnreachable
from aigw_asgi.http1 import HIGH_WATER, Http1Transport
from aigw_asgi.transport import UpstreamStreamError
from tests.fakes.upstream import TIMER_SLACK_S
from tests.test_transport import read

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on loopback whose handler writes raw bytes; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.close_tasks()
        await self.server.wait_closed()

    async def close_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self.tasks.discard(task)
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request (head and Content-Length body); b"" when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


def keep_alive(answer: bytes, *, delay: float = 0.0) -> Callable[[RawServer], Handler]:
    """Answers every request on a connection with ``answer`` (after ``delay`` seconds)."""

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await server.read_request(reader):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(answer)
                await writer.drain()

        return handler

    return make


@pytest.fixture
async def serve_with() -> Any:
    """``await serve_with(make)``: a `RawServer` whose handler ``make(server)`` builds; closed after."""
    servers: list[RawServer] = []

    async def start(make: Callable[[RawServer], Handler]) -> RawServer:
        server = RawServer(lambda r, w: asyncio.sleep(0))
        server.handler = make(server)
        servers.append(server)
        return await server.__aenter__()

    yield start
    for server in servers:
        await server.close()


OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def test_framings_content_length_chunked_and_until_close(serve_with: Any) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
        b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    )
    transport = Http1Transport()
    try:
        server = await serve_with(keep_alive(chunked))
        resp = await transport.request("POST", f"{server.url}/v1/x", [], b"{}")
        assert resp.status == 200 and (b"content-type", b"text/event-stream") in resp.headers
        assert await read(resp) == b"data: 1\n\ndata: 2\n\n"

        async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await closing.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it, ")
            await writer.drain()
            writer.write(b"until the end")
            await writer.drain()

        closing = await serve_with(lambda s: until_close)
        resp = await transport.request("GET", f"{closing.url}/x", [], b"")
        assert await read(resp) == b"all of it, until the end"
    finally:
        await transport.aclose()


async def test_interim_answers_are_skipped_and_headers_kept_as_sent(serve_with: Any) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Mixed-Case: KeepMe\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    transport = Http1Transport()
    try:
        server = await serve_with(keep_alive(answer))
        resp = await transport.request("POST", f"{server.url}/x", [("x-one", "1")], b"{}")
        assert resp.status == 201
        assert [v for k, v in resp.headers if k == b"set-cookie"] == [b"a=1", b"b=2"]
        assert (b"x-mixed-case", b"KeepMe") in resp.headers
        assert await read(resp) == b"hello"
        head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"POST /x HTTP/1.1"
        assert b"host: 127.0.0.1:" + server.url.rsplit(":", 1)[1].encode() in head
        assert b"x-one: 1" in head and b"content-length: 2" in head
    finally:
        await transport.aclose()


async def test_credentials_in_the_provider_url_become_basic_auth(serve_with: Any) -> None:
    """``https://user:pass@host`` (a self-hosted model behind a proxy): sent as aiohttp sent it,
    unless the request carries its own Authorization."""
    transport = Http1Transport()
    try:
        server = await serve_with(keep_alive(OK))
        url = server.url.replace("http://", "http://us%40er:p%3Ass@") + "/x"
        await read(await transport.request("POST", url, [], b"{}"))
        await read(await transport.request("POST", url, [("Authorization", "Bearer own")], b"{}"))
        first, second = (r.split(b"\r\n\r\n")[0].split(b"\r\n") for r in server.requests)
        assert b"authorization: Basic dXNAZXI6cDpzcw==" in first  # base64("us@er:p:ss")
        assert b"Authorization: Bearer own" in second and not any(b"Basic" in line for line in second)
    finally:
        await transport.aclose()


async def test_a_head_answer_ends_at_its_headers(serve_with: Any) -> None:
    transport = Http1Transport(UpstreamConfig(idle_timeout_ms=5000))
    try:
        server = await serve_with(keep_alive(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
        resp = await asyncio.wait_for(transport.request("HEAD", f"{server.url}/x", [], b""), 2)
        assert resp.status == 200
        assert await asyncio.wait_for(read(resp), 2) == b""  # no wait for 1000 bytes that never come
    finally:
        await transport.aclose()


async def test_connections_are_reused_and_bounded(serve_with: Any) -> None:
    transport = Http1Transport(UpstreamConfig(max_connections=2))
    try:
        server = await serve_with(keep_alive(OK, delay=0.05))
        for _ in range(3):
            assert await read(await transport.request("POST", f"{server.url}/x", [], b"{}")) == b"{}"
        assert server.connections == 1  # one keep-alive connection for requests in turn

        async def one() -> bytes:
            return await read(await transport.request("POST", f"{server.url}/x", [], b"{}"))

        assert await asyncio.gather(*(one() for _ in range(8))) == [b"{}"] * 8
        assert server.max_open == 2  # eight at once waited for two connections
    finally:
        await transport.aclose()


async def test_a_waiter_cancelled_after_being_woken_passes_the_room_on(serve_with: Any) -> None:
    """With the pool full, a request woken for a free slot that is cancelled before it runs must
    hand the slot to the next waiter, not strand it (the pool's own bookkeeping, driven directly:
    the interleaving cannot be forced from outside)."""
    transport = Http1Transport(UpstreamConfig(max_connections=1))
    try:
        server = await serve_with(keep_alive(OK))
        await read(await transport.request("POST", f"{server.url}/x", [], b"{}"))  # the loop adopted
        origin, _ = transport._origin(f"{server.url}/x")
        for conn in origin.idle:
            conn.discard()  # the slot is free again: take it by hand, as a request in flight would
        origin.idle.clear()
        transport._open = 1
        quitter = asyncio.create_task(transport._connection(origin))
        patient = asyncio.create_task(transport._connection(origin))
        await asyncio.sleep(0.01)  # both wait for the slot
        transport._slot_freed()  # the slot comes back: the first waiter is woken...
        quitter.cancel()  # ...and cancelled before it runs
        conn = await asyncio.wait_for(patient, 2)  # the second gets the slot
        assert conn.counted and transport._open == 1
        conn.discard()
        with pytest.raises(asyncio.CancelledError):
            await quitter
    finally:
        await transport.aclose()


async def test_the_idle_timer_passes_to_the_next_request_lapses_when_idle_and_ends_with_the_connection(
    serve_with: Any,
) -> None:
    """One idle timer per connection, not one per request: a request that ends leaves it armed, the
    next on the connection takes it over (still bounded from its own last read), a connection idle
    in the pool lets it lapse, and closing the connection cancels it."""
    transport = Http1Transport(UpstreamConfig(idle_timeout_ms=300))
    try:
        quick = await serve_with(keep_alive(OK))
        await read(await transport.request("POST", f"{quick.url}/x", [], b"{}"))
        origin, _ = transport._origin(f"{quick.url}/x")
        (conn,) = origin.idle
        timer = conn._timer
        assert timer is not None and not timer.cancelled()  # left armed after the answer
        await read(await transport.request("POST", f"{quick.url}/x", [], b"{}"))
        assert conn._timer is timer  # the second request took it over: no new timer
        await asyncio.sleep(0.35)  # due while the connection sits idle in the pool: it lapses
        assert conn._timer is None and not conn.closed
        await read(await transport.request("POST", f"{quick.url}/x", [], b"{}"))
        assert conn._timer is not None and conn._timer is not timer  # a new request arms a new one
        timer = conn._timer
        conn.discard()
        assert conn._timer is None and timer.cancelled()

        # A silent answer on a connection whose timer was armed by the request before it (and
        # falls due during it) is cut the bound after its own start, not at the older due time.
        def quick_then_silent(server: RawServer) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                answered = 0
                while await server.read_request(reader):
                    if answered:
                        await asyncio.sleep(2.0)
                    answered += 1
                    writer.write(OK)
                    await writer.drain()

            return handler

        second_silent = await serve_with(quick_then_silent)
        await read(await transport.request("POST", f"{second_silent.url}/x", [], b"{}"))
        await asyncio.sleep(0.2)  # the first request's timer falls due ~0.1 s into the second
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await transport.request("POST", f"{second_silent.url}/x", [], b"{}")
        waited = time.monotonic() - started
        assert second_silent.connections == 1  # the second request did run on the first's connection
        assert 0.3 - TIMER_SLACK_S <= waited < 1.0, waited
    finally:
        await transport.aclose()


async def test_keepalive_expiry_opens_a_new_connection(serve_with: Any) -> None:
    transport = Http1Transport(UpstreamConfig(keepalive_s=0))
    try:
        server = await serve_with(keep_alive(OK))
        for _ in range(2):
            await read(await transport.request("POST", f"{server.url}/x", [], b"{}"))
        assert server.connections == 2
    finally:
        await transport.aclose()


async def test_a_stale_pooled_connection_is_retried_for_get_only(serve_with: Any) -> None:
    """The server took the request on a kept-alive connection and closed it without answering."""

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first = True
            while await server.read_request(reader):
                if not first:
                    return  # the second request on this connection: closed, no answer
                first = False
                writer.write(OK)
                await writer.drain()

        return handler

    transport = Http1Transport()
    try:
        server = await serve_with(make)
        await read(await transport.request("GET", f"{server.url}/x", [], b""))
        assert await read(await transport.request("GET", f"{server.url}/x", [], b"")) == b"{}"
        assert server.connections == 2  # retried once on a new connection

        with pytest.raises(UpstreamUnreachable) as caught:  # the 2nd connection's 2nd request
            await transport.request("POST", f"{server.url}/x", [], b"{}")
        assert "ServerDisconnected" in caught.value.message  # a POST is not replayed
        assert server.connections == 2
    finally:
        await transport.aclose()


async def test_a_cut_answer_and_garbage_are_errors(serve_with: Any) -> None:
    transport = Http1Transport()
    try:
        cut = await serve_with(lambda s: _answer_then_close(s, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
        resp = await transport.request("POST", f"{cut.url}/x", [], b"{}")
        with pytest.raises(UpstreamStreamError):
            await read(resp)

        garbage = await serve_with(lambda s: _answer_then_close(s, b"SMTP ready\r\n\r\n"))
        with pytest.raises(UpstreamUnreachable):
            await transport.request("POST", f"{garbage.url}/x", [], b"{}")

        endless = b"HTTP/1.1 200 OK\r\n" + b"x-filler: %s\r\n" % (b"f" * 1000) * 300  # 300 kB, no end
        huge = await serve_with(lambda s: _answer_then_close(s, endless, linger=30))
        with pytest.raises(UpstreamUnreachable):  # refused at 256 kB, not after the idle bound
            await asyncio.wait_for(transport.request("POST", f"{huge.url}/x", [], b"{}"), 5)
    finally:
        await transport.aclose()


def _answer_then_close(server: RawServer, answer: bytes, linger: float = 0) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(linger)

    return handler


async def test_an_abandoned_answer_closes_its_connection(serve_with: Any) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000
    transport = Http1Transport()
    try:
        server = await serve_with(keep_alive(big))
        resp = await transport.request("POST", f"{server.url}/x", [], b"{}")
        async for _ in resp.stream():
            break  # the client left after one chunk
        await resp.aclose()
        await read(await transport.request("POST", f"{server.url}/x", [], b"{}"))
        assert server.connections == 2  # the half-read connection was not put back in the pool
    finally:
        await transport.aclose()


async def test_a_slow_reader_pauses_the_socket(serve_with: Any) -> None:
    """Nothing is buffered without bound: a client that does not read stops the upstream reads."""
    size = 16 * 1024 * 1024
    sent = {"bytes": 0}

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"y" * 65536
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()
                sent["bytes"] += len(block)

        return handler

    transport = Http1Transport()
    try:
        server = await serve_with(make)
        resp = await transport.request("POST", f"{server.url}/x", [], b"{}")
        await asyncio.sleep(0.5)
        assert resp._size <= HIGH_WATER + 1024 * 1024  # what waits for the client stays bounded
        assert sent["bytes"] < size  # and the server is held back by TCP
        assert len(await read(resp)) == size
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    "headers",
    [[("x-evil", "a\r\nx-injected: 1")], [("x-evil", "a\nb")], [("x-evil\r\nx", "1")], [("x-nul", "a\x00b")]],
)
async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    headers: list[tuple[str, str]], serve_with: Any
) -> None:
    transport = Http1Transport()
    try:
        server = await serve_with(keep_alive(OK))
        with pytest.raises(InvalidRequest):
            await transport.request("POST", f"{server.url}/x", headers, b"{}")
        await asyncio.sleep(0.05)
        assert server.connections == 0 and server.requests == []
    finally:
        await transport.aclose()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made for this test (nothing stored in git)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigw-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_tls_verifies_the_certificate_and_sends_sni(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    seen: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment, func-returns-value]

    holder = RawServer(lambda r, w: asyncio.sleep(0))
    holder.handler = keep_alive(OK)(holder)
    server = await asyncio.start_server(holder._serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = Http1Transport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        try:
            resp = await trusting.request("POST", f"https://localhost:{port}/x", [], b"{}")
            assert await read(resp) == b"{}"
            assert seen == ["localhost"]
            assert f"host: localhost:{port}".encode() in holder.requests[0]
        finally:
            await trusting.aclose()

        default = Http1Transport()  # the system's trust store does not know this certificate
        try:
            with pytest.raises(UpstreamUnreachable) as caught:
                await default.request("POST", f"https://127.0.0.1:{port}/x", [], b"{}")
            assert "SSLCertVerificationError" in caught.value.message
        finally:
            await default.aclose()
    finally:
        await holder.close_tasks()
        server.close()
        await server.wait_closed()
