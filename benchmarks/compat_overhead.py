"""Added CPU of the unified API's translation (targets: <= 50 µs per request, <= 5 µs per stream chunk).

Measured in-process, like ``auth_overhead.py``: microseconds are below what wrk over HTTP resolves
on a shared machine. The client body is what the OpenAI SDK sends for a small tool conversation
(system prompt, a user turn, an assistant tool call, its result, one tool); the answer is a
canned provider answer. Cases, in the same run:

    request  pass-through   the compat layer's work for an OpenAI target: plan (model rewritten)
             translated     the same for an Anthropic target: parse -> IR -> Messages body, and
                            the Anthropic answer -> IR -> Chat Completions answer
    layer    native         an ASGI app answering a native request (the floor)
             compat/openai  CompatMiddleware -> StepRunner -> that app, body passed through
             compat/claude  CompatMiddleware -> StepRunner -> that app, translated both ways
    chunk    tracker        the router's StreamTracker on one Anthropic text-delta event (paid anyway)
             translate      StreamTranslator: Anthropic event -> IR -> chat.completion.chunk

    python benchmarks/compat_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from aigw_asgi import _json
from aigw_asgi.compat.anthropic_stream import AnthropicStreamDecoder
from aigw_asgi.compat.middleware import CompatMiddleware
from aigw_asgi.compat.openai_chat_stream import ChatStreamEncoder
from aigw_asgi.compat.plan import Planner
from aigw_asgi.compat.surfaces import CHAT, StreamTranslator
from aigw_asgi.config import Config
from aigw_asgi.providers.registry import ProviderRegistry
from aigw_asgi.providers.stream import StreamTracker

BODY = {
    "model": "anthropic/claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "What's the weather like in Paris today?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "14°C, light rain"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"],
                },
            },
        }
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}
ANTHROPIC_ANSWER = json.dumps(
    {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "It is 14°C with light rain in Paris today. Take an umbrella."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 18, "cache_read_input_tokens": 0},
    }
).encode()
OPENAI_ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is 14°C."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138},
    }
).encode()
CHUNK = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":" umbrella"}}\n\n'
)
RAW = json.dumps(BODY).encode()
RAW_OPENAI = json.dumps({**BODY, "model": "openai/gpt-4o-mini"}).encode()
PLANNER = Planner(ProviderRegistry.from_config(Config()), {})


def best_median(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """µs per call: the lowest of ``rounds`` medians over batches of 100 (noise only adds time)."""
    results = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        samples = []
        for _ in range(max(1, n // 100)):
            start = clock()
            for _ in range(100):
                fn()
            samples.append((clock() - start) / 100)
        results.append(statistics.median(samples))
    return min(results) / 1000


def plan_passthrough() -> Any:
    """What /compat does for an OpenAI target: parse the client's body once, plan (model rewritten)."""
    body = _json.loads(RAW_OPENAI)
    return PLANNER.plan(CHAT, "generate", body, "sk")


def plan_and_answer_translated() -> Any:
    """The same for an Anthropic target, plus the answer read, translated and written back."""
    body = _json.loads(RAW)
    [step] = PLANNER.plan(CHAT, "generate", body, "sk")
    assert step.answer is not None and step.answer.convert is not None
    return _json.dumps(step.answer.convert(_json.loads(ANTHROPIC_ANSWER)))


class Canned:
    """The inner stack stand-in: answers every request with a fixed JSON body."""

    def __init__(self, body: bytes) -> None:
        self.start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
        self.body = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(dict(self.start))
        await send(dict(self.body))


async def layer_case(app: Any, path: str, body: bytes, n: int) -> float:
    headers = [
        (b"host", b"127.0.0.1:8787"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer sk-client"),
        (b"user-agent", b"OpenAI/Python 1.99.0"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def once() -> None:
        scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": headers, "state": {}}
        await app(scope, receive, send)

    for _ in range(200):
        await once()
    rounds = []
    clock = time.perf_counter_ns
    for _ in range(5):
        start = clock()
        for _ in range(n):
            await once()
        rounds.append((clock() - start) / n / 1000)
    return min(rounds)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    passthrough = best_median(plan_passthrough, n)
    translated = best_median(plan_and_answer_translated, n)
    print("request (pure functions), µs per request")
    print(f"  pass-through (OpenAI target)        {passthrough:7.1f}")
    print(f"  translated   (Anthropic target)     {translated:7.1f}   added {translated - passthrough:+.1f}")

    async def layers() -> tuple[float, float, float]:
        native = await layer_case(Canned(ANTHROPIC_ANSWER), "/anthropic/messages", RAW, n)
        openai_app = CompatMiddleware(Canned(OPENAI_ANSWER), Config())
        to_openai = await layer_case(openai_app, "/compat/chat/completions", RAW_OPENAI, n)
        claude_app = CompatMiddleware(Canned(ANTHROPIC_ANSWER), Config())
        to_claude = await layer_case(claude_app, "/compat/chat/completions", RAW, n)
        return native, to_openai, to_claude

    native, to_openai, to_claude = asyncio.run(layers())
    print("layer (ASGI, in-process), µs per request")
    print(f"  native request (the floor)          {native:7.1f}")
    print(f"  /compat -> OpenAI, passed through   {to_openai:7.1f}   added {to_openai - native:+.1f}")
    print(f"  /compat -> Anthropic, translated    {to_claude:7.1f}   added {to_claude - native:+.1f}")

    tracker = StreamTracker("anthropic")
    translator = StreamTranslator(AnthropicStreamDecoder(), ChatStreamEncoder(include_usage=True))
    translator.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c"}}\n\n')
    tracked = best_median(lambda: tracker.feed(CHUNK), n * 10)
    translating = best_median(lambda: translator.feed(CHUNK), n * 10)
    print("stream chunk (one text delta), µs per chunk")
    print(f"  router's usage tracker (native)     {tracked:7.2f}")
    print(f"  translation Anthropic -> chat       {translating:7.2f}   added on top of the tracker")


if __name__ == "__main__":
    main()
