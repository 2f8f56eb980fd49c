"""The internal representation (IR) every translation goes through, and nothing else.

A surface (the API shape a client speaks: OpenAI Chat Completions, OpenAI Responses, Anthropic
Messages) is parsed into a `Request`; a provider wire format (OpenAI-compatible chat, Anthropic
Messages, Gemini ``generateContent``) is built from it. Answers come back the other way: a
provider's answer becomes a `Response` (or, streamed, a sequence of `Event` objects) and the
surface renders it. So N surfaces and M wire formats need N + M translators, not N × M, and a
new provider or surface is one module.

The IR holds what at least two of those APIs can express. A surface parameter with no place
here lands in `Request.extras` under its own name, and every target that cannot honour it refuses
the request (400, code 2019) naming it: a parameter is never dropped silently. The few that are
dropped on purpose are dropped by the surface parser and listed in ``docs/compat.md``.

Plain slotted dataclasses: a translation allocates a few dozen of these per request and a handful
per stream chunk, on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "stop_sequence", "length", "tool_calls", "content_filter", "pause"]

# -- conversation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL or inline (base64 ``data`` with its ``media_type``)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None  # OpenAI's "low" | "high" | "auto"; only OpenAI honours it


@dataclass(slots=True)
class Audio:
    data: str  # base64
    format: str  # "wav" | "mp3" ...


@dataclass(slots=True)
class File:
    """A document (PDF...), inline as base64 or as a provider-side file id (OpenAI only)."""

    data: str | None = None
    media_type: str | None = None
    filename: str | None = None
    file_id: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it (Anthropic and Gemini carry objects)


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


@dataclass(slots=True)
class Reasoning:
    """Thinking content. ``signature`` (Anthropic, Gemini) must go back with it on the next turn;
    ``redacted`` is Anthropic's encrypted ``redacted_thinking`` data."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Text | Image | Audio | File | ToolCall | ToolResult | Reasoning


@dataclass(slots=True)
class Message:
    """One turn. ``tool`` messages hold only `ToolResult` parts; ``system`` only `Text`."""

    role: Role
    parts: list[Part]


# -- options -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema of the arguments object
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None  # with mode "tool"


@dataclass(slots=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class Request:
    """A conversation and its options, whichever surface it came from."""

    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None  # "none" | "minimal" | "low" | "medium" | "high" | "xhigh"
    reasoning_budget: int | None = None  # thinking tokens (Anthropic budget_tokens, Gemini thinkingBudget)
    stream: bool = False
    include_usage: bool = False  # the client wants usage in the stream (OpenAI stream_options)
    user: str | None = None
    # Surface parameters with no IR field, by their surface name: only a target that knows them
    # may accept them, every other target refuses the request naming them.
    extras: dict[str, Any] = field(default_factory=dict)


# -- answers -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Token counts. ``input_tokens`` includes cached and cache-written ones; ``output_tokens``
    includes reasoning ones (the GenAI semantic conventions, as the rest of the gateway counts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(slots=True)
class Response:
    """A whole (non-streamed) answer: the assistant's parts (`Text`, `Reasoning`, `ToolCall`)."""

    id: str
    model: str
    parts: list[Part]
    finish: FinishReason = "stop"
    usage: Usage | None = None
    stop_sequence: str | None = None
    created: int = 0


# -- stream events -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Start:
    id: str
    model: str
    usage: Usage | None = None  # what the provider knows up front (Anthropic: the input tokens)


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str = ""
    signature: str | None = None
    redacted: str | None = None


@dataclass(slots=True)
class ToolCallStart:
    index: int  # 0, 1, 2... over this answer's tool calls (not the provider's block index)
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a piece of the JSON arguments text


@dataclass(slots=True)
class UsageUpdate:
    usage: Usage  # cumulative: the latest one wins


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None


@dataclass(slots=True)
class StreamError:
    message: str
    kind: str = "api_error"  # a surface-neutral error type ("api_error", "overloaded_error"...)


Event = Start | TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | UsageUpdate | Finish | StreamError


def response_from_events(events: list[Event]) -> Response:
    """Fold stream events into a whole `Response` (tests compare both paths with it)."""
    resp = Response(id="", model="", parts=[])
    calls: dict[int, ToolCall] = {}
    for ev in events:
        if isinstance(ev, Start):
            resp.id, resp.model = ev.id, ev.model
            if ev.usage is not None:
                resp.usage = ev.usage
        elif isinstance(ev, TextDelta):
            last = resp.parts[-1] if resp.parts else None
            if isinstance(last, Text):
                last.text += ev.text
            else:
                resp.parts.append(Text(ev.text))
        elif isinstance(ev, ReasoningDelta):
            last = resp.parts[-1] if resp.parts else None
            if not isinstance(last, Reasoning) or last.redacted is not None or ev.redacted is not None:
                last = Reasoning()
                resp.parts.append(last)
            last.text += ev.text
            last.signature = ev.signature or last.signature
            last.redacted = ev.redacted or last.redacted
        elif isinstance(ev, ToolCallStart):
            calls[ev.index] = ToolCall(ev.id, ev.name, "")
            resp.parts.append(calls[ev.index])
        elif isinstance(ev, ToolCallDelta):
            calls[ev.index].arguments += ev.arguments
        elif isinstance(ev, UsageUpdate):
            resp.usage = ev.usage
        elif isinstance(ev, Finish):
            resp.finish, resp.stop_sequence = ev.reason, ev.stop_sequence
    return resp
