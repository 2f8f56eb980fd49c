"""The three client surfaces and the three target wire formats, as data, and the stream pipe between them.

A `Surface` bundles what the relay needs to answer a client in its own shape (parse, render, a
stream encoder, the error shape); a `Codec` what it needs to read a target's answers (parse a
body, a stream decoder). Adding a surface or a provider format is one module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..providers.sse import SSEEvent, SSEParser
from . import anthropic, anthropic_target, gemini, ir, openai_chat, openai_chat_target, openai_responses
from .anthropic_stream import AnthropicStreamDecoder, AnthropicStreamEncoder
from .openai_chat_stream import ChatStreamDecoder, ChatStreamEncoder
from .openai_responses_stream import ResponsesStreamEncoder
from .targets import Wire


class Decoder(Protocol):
    @property
    def finished(self) -> bool: ...

    def feed(self, event: SSEEvent) -> list[ir.Event]: ...


class Encoder(Protocol):
    def feed(self, event: ir.Event) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, message: str, kind: str = "api_error", code: Any = None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Surface:
    name: str  # the endpoint below /compat, also what log rows record as the surface
    native: str  # the wire that needs no translation: "openai" (chat), "anthropic", "responses"
    error_style: str  # "openai" | "anthropic"
    parse: Callable[[dict[str, Any], str], ir.Request]
    render: Callable[[ir.Response], dict[str, Any]]
    encoder: Callable[[ir.Request], Encoder]

    def error_json(self, status: int, message: str, *, kind: str | None = None, code: Any = None) -> dict[str, Any]:
        if self.error_style == "anthropic":
            return anthropic.error_json(status, message, kind=kind)
        return openai_chat.error_json(status, message, kind=kind, code=code)


CHAT = Surface(
    "chat/completions",
    "openai",
    "openai",
    openai_chat.parse_request,
    openai_chat.render_response,
    lambda req: ChatStreamEncoder(include_usage=req.include_usage),
)
RESPONSES = Surface(
    "responses",
    "responses",
    "openai",
    openai_responses.parse_request,
    openai_responses.render_response,
    lambda req: ResponsesStreamEncoder(),
)
MESSAGES = Surface(
    "v1/messages",
    "anthropic",
    "anthropic",
    anthropic.parse_request,
    anthropic.render_response,
    lambda req: AnthropicStreamEncoder(),
)


@dataclass(frozen=True, slots=True)
class Codec:
    parse: Callable[[dict[str, Any]], ir.Response]
    decoder: Callable[[], Decoder]


CODECS: dict[Wire, Codec] = {
    "openai": Codec(openai_chat_target.parse_response, ChatStreamDecoder),
    "anthropic": Codec(anthropic_target.parse_response, AnthropicStreamDecoder),
    "gemini": Codec(gemini.parse_response, gemini.GeminiStreamDecoder),
}


class StreamTranslator:
    """Upstream SSE bytes in, the surface's SSE bytes out, one chunk at a time.

    A chunk is parsed into whole events, each decoded into IR events and encoded at once; only a
    partial event at the end of a chunk waits for the next one. An event that cannot be read
    ends the stream with the surface's error event.
    """

    __slots__ = ("parser", "decoder", "encoder", "failed")

    def __init__(self, decoder: Decoder, encoder: Encoder) -> None:
        self.parser = SSEParser()
        self.decoder = decoder
        self.encoder = encoder
        self.failed = False

    def _translate(self, events: list[SSEEvent]) -> bytes:
        out = []
        for event in events:
            try:
                decoded = self.decoder.feed(event)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError):  # JSON or shape errors in one event
                self.failed = True
                out.append(self.encoder.error("upstream sent an event that could not be read"))
                break
            for item in decoded:
                out.append(self.encoder.feed(item))
                if isinstance(item, ir.StreamError):
                    self.failed = True
            if self.failed:
                break
        return b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        if self.failed:
            return b""
        return self._translate(self.parser.feed(chunk))

    def finish(self) -> bytes:
        """The upstream ended: flush a last unterminated event, then the surface's closing events."""
        if self.failed:
            return b""
        out = self._translate(self.parser.flush())
        if self.failed:
            return out
        self.failed = not self.decoder.finished  # ended without its terminal event: the encoder says so
        return out + self.encoder.finish()


def events_from_response(resp: ir.Response) -> list[ir.Event]:
    """A whole answer as stream events: for a client that asked for a stream and got JSON."""
    events: list[ir.Event] = [ir.Start(resp.id, resp.model)]
    calls = 0
    for part in resp.parts:
        if isinstance(part, ir.Text):
            events.append(ir.TextDelta(part.text))
        elif isinstance(part, ir.Reasoning):
            events.append(ir.ReasoningDelta(part.text, part.signature, part.redacted))
        elif isinstance(part, ir.ToolCall):
            events.append(ir.ToolCallStart(calls, part.id, part.name))
            events.append(ir.ToolCallDelta(calls, part.arguments))
            calls += 1
    if resp.usage is not None:
        events.append(ir.UsageUpdate(resp.usage))
    events.append(ir.Finish(resp.finish, resp.stop_sequence))
    return events
