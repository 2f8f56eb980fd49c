"""`Relay`: the ``send`` a ``/compat`` request's steps answer through, turning each answer into the surface's.

The step runner forwards exactly one step's answer (the first 2xx, or the last step's whatever it
is) and the relay sees which step it is from the parent's children. Per answer:

    passthrough 2xx   forwarded untouched (the target speaks the surface's format)
    stream 2xx        re-framed chunk by chunk (`StreamTranslator`), never held
    JSON 2xx          read whole (it is one JSON document), converted, sent with its new length
    any error         read whole, re-shaped as the surface's error with the upstream status kept
                      (gateway errors keep their code: 2003, 2005…)

Headers are the upstream's and the gateway's (``cf-aig-*``, ``retry-after``, rate-limit headers)
minus the framing ones a conversion changes.
"""

from __future__ import annotations

import zlib
from typing import Any

from .. import _json
from ..context import ErrorType, RequestContext
from ..errors import UpstreamError
from ..headers import header
from ..types import Headers, Message, Send
from .plan import CompatStep
from .surfaces import StreamTranslator, Surface

_REFRAMED = frozenset({b"content-length", b"content-type", b"content-encoding", b"etag"})
_MAX_BUFFERED = 32 * 1024 * 1024  # a non-stream answer larger than this is not a chat answer
_JSON = b"application/json"


def describe_error(body: bytes, status: int) -> tuple[str, Any]:
    """(message, code) from any error body: the gateway's envelope or a provider's own shape."""
    try:
        obj: Any = _json.loads(body) if body else None
    except ValueError:
        obj = None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):  # Gemini sometimes wraps it
        obj = obj[0]
    if isinstance(obj, dict):
        error = obj.get("error")
        if isinstance(error, list) and error and isinstance(error[0], dict):  # the Cloudflare envelope
            return str(error[0].get("message") or f"HTTP {status}"), error[0].get("code")
        if isinstance(error, dict):
            message = error.get("message") or error.get("type") or f"HTTP {status}"
            code = error.get("code")
            if isinstance(error.get("status"), str):  # Gemini: {"code": 400, "status": "INVALID_ARGUMENT"}
                code = error["status"]
            return str(message), code
        if isinstance(error, str) and error:
            return error, None
        if isinstance(obj.get("message"), str):
            return str(obj["message"]), obj.get("code")
    text = body.decode("utf-8", "replace").strip()
    return (text[:500] if text else f"upstream answered HTTP {status}"), None


def _surface_shaped(body: bytes, style: str) -> bool:
    try:
        obj = _json.loads(body)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    error = obj.get("error")
    if style == "anthropic":
        return obj.get("type") == "error" and isinstance(error, dict) and "message" in error
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


class Relay:
    """One request's ``send`` wrapper (see the module docstring)."""

    __slots__ = (
        "send",
        "parent",
        "steps",
        "base",
        "mode",
        "step",
        "status",
        "headers",
        "chunks",
        "size",
        "inflate",
        "translator",
    )

    def __init__(self, send: Send, parent: RequestContext, steps: list[CompatStep]) -> None:
        self.send = send
        self.parent = parent
        self.steps = steps
        self.base = len(parent.children)
        self.mode = ""  # "pass" | "stream" | "json" | "error"
        self.step = steps[0]
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.inflate: Any = None
        self.translator: StreamTranslator | None = None

    @property
    def surface(self) -> Surface:
        assert self.step.answer is not None
        return self.step.answer.surface

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(message)
        elif kind != "http.response.body" or self.mode == "pass":
            await self.send(message)
        else:
            await self._body(message.get("body", b""), bool(message.get("more_body", False)))

    async def _start(self, message: Message) -> None:
        index = min(max(len(self.parent.children) - 1 - self.base, 0), len(self.steps) - 1)
        self.step = step = self.steps[index]
        answer = step.answer
        assert answer is not None
        self.status = status = message["status"]
        headers = list(message.get("headers") or [])
        added: Headers = []  # SPEC §12: cf-aig-provider/-model on every answer
        destination = step.destination
        if destination is not None and header(headers, b"cf-aig-provider") is None:
            added.append((b"cf-aig-provider", destination.name.encode()))
        if destination is not None and header(headers, b"cf-aig-model") is None:
            added.append((b"cf-aig-model", destination.model.encode("latin-1", "replace")))
        self.headers = [h for h in headers if h[0].lower() not in _REFRAMED] + added
        encoding = (header(headers, b"content-encoding") or b"identity").strip().lower()
        if encoding in (b"gzip", b"x-gzip", b"deflate"):
            self.inflate = zlib.decompressobj(47)
        content_type = (header(headers, b"content-type") or b"").lower()
        if status >= 400:
            self.mode = "error"
        elif answer.passthrough:
            self.mode = "pass"
            await self.send({**message, "headers": headers + added})
        elif content_type.startswith(b"text/event-stream") and (translator := answer.stream()) is not None:
            self.mode = "stream"
            self.translator = translator
            self.headers += [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
            await self.send({"type": "http.response.start", "status": status, "headers": self.headers})
        else:
            self.mode = "json"

    def _inflated(self, body: bytes) -> bytes:
        if self.inflate is None or not body:
            return body
        try:
            return self.inflate.decompress(body)
        except zlib.error:
            self.inflate = None
            return b""

    async def _body(self, body: bytes, more: bool) -> None:
        body = self._inflated(body)
        if self.mode == "stream":
            translator = self.translator
            assert translator is not None
            out = translator.feed(body) if body else b""
            if not more:
                out += translator.finish()
            if translator.failed and self._child is not None:
                self._child.broke("the upstream stream failed or could not be translated", ErrorType.STREAM_ERROR)
            if out or not more:
                await self.send({"type": "http.response.body", "body": out, "more_body": more})
            return
        if self.size <= _MAX_BUFFERED:
            self.chunks.append(body)
            self.size += len(body)
        if more:
            return
        data = b"".join(self.chunks)
        self.chunks = []
        if self.mode == "error":
            await self._answer(self.status, self._error_body(data), _JSON)
        else:
            await self._convert(data)

    @property
    def _child(self) -> RequestContext | None:
        """The context of the step being answered (its log row)."""
        return self.parent.children[-1] if len(self.parent.children) > self.base else None

    def _error_body(self, data: bytes) -> bytes:
        answer = self.step.answer
        assert answer is not None
        if answer.passthrough and _surface_shaped(data, self.surface.error_style):
            return data
        message, code = describe_error(data, self.status)
        return _json.dumps(self.surface.error_json(self.status, message, code=code))

    async def _convert(self, data: bytes) -> None:
        answer = self.step.answer
        assert answer is not None and answer.convert is not None
        try:
            native = _json.loads(data)
            if not isinstance(native, dict):
                raise ValueError("not an object")
            if answer.request is not None and answer.request.stream:
                body, content_type = answer.stream_from_json(native), b"text/event-stream; charset=utf-8"
            else:
                body, content_type = _json.dumps(answer.convert(native)), _JSON
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            error = UpstreamError("The provider's answer could not be read")
            if self._child is not None:
                self._child.fail(error)
            body = _json.dumps(self.surface.error_json(error.status, error.message, code=error.code))
            await self._answer(error.status, body, _JSON)
            return
        await self._answer(self.status, body, content_type)

    async def _answer(self, status: int, body: bytes, content_type: bytes) -> None:
        headers = [*self.headers, (b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
