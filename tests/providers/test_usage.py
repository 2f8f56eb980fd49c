"""Usage, model, completion and errors out of each provider's answers, as the real APIs shape them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aigw_asgi.context import Usage
from aigw_asgi.providers import usage as usage_module
from aigw_asgi.providers.sse import SSEParser
from aigw_asgi.providers.stream import StreamTracker
from aigw_asgi.providers.stream_errors import error_event
from aigw_asgi.providers.usage import usage_from_json

# -- captured-shape answers --------------------------------------------------------------------------

OPENAI_CHAT = (
    b'{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,'
    b'"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":'
    b'"The image shows a wooden boardwalk.","refusal":null,"annotations":[]},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,'
    b'"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":'
    b'{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
    b'"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}'
)

OPENAI_REASONING = (
    b'{"id":"chatcmpl-AbC","object":"chat.completion","created":1741570000,"model":"o3-mini-2025-01-31",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"42"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":25,"completion_tokens":1331,"total_tokens":1356,"prompt_tokens_details":'
    b'{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1280,'
    b'"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}'
)

OPENAI_RESPONSES = (
    b'{"id":"resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41","object":"response",'
    b'"created_at":1741476777,"status":"completed","error":null,"incomplete_details":null,'
    b'"instructions":null,"max_output_tokens":null,"model":"gpt-4o-2024-08-06","output":[{"type":"message",'
    b'"id":"msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41","status":"completed","role":"assistant",'
    b'"content":[{"type":"output_text","text":"In a peaceful grove...","annotations":[]}]}],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":328,"input_tokens_details":'
    b'{"cached_tokens":128},"output_tokens":52,"output_tokens_details":{"reasoning_tokens":16},'
    b'"total_tokens":380},"user":null,"metadata":{}}'
)

OPENAI_EMBEDDINGS = (
    b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.006929283,-0.005336422]}],'
    b'"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}'
)

DEEPSEEK_CHAT = (
    b'{"id":"930c60df-bf64-41c9-a88e-3ec75f81e00e","object":"chat.completion","created":1736500000,'
    b'"model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},'
    b'"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":16,"completion_tokens":10,'
    b'"total_tokens":26,"prompt_cache_hit_tokens":12,"prompt_cache_miss_tokens":4},'
    b'"system_fingerprint":"fp_3a5770e1b4_prod0225"}'
)

ANTHROPIC_MESSAGE = (
    b'{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":'
    b'"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn",'
    b'"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":188,'
    b'"cache_read_input_tokens":2048,"cache_creation":{"ephemeral_5m_input_tokens":188,'
    b'"ephemeral_1h_input_tokens":0},"output_tokens":393,"service_tier":"standard"}}'
)

GEMINI_RESPONSE = (
    b'{\n  "candidates": [\n    {\n      "content": {\n        "parts": [\n          {\n            "text": '
    b'"AI learns patterns from data."\n          }\n        ],\n        "role": "model"\n      },\n'
    b'      "finishReason": "STOP",\n      "index": 0\n    }\n  ],\n  "usageMetadata": {\n'
    b'    "promptTokenCount": 2066,\n    "candidatesTokenCount": 35,\n    "totalTokenCount": 2201,\n'
    b'    "cachedContentTokenCount": 2048,\n    "promptTokensDetails": [\n      {\n'
    b'        "modality": "TEXT",\n        "tokenCount": 2066\n      }\n    ],\n'
    b'    "thoughtsTokenCount": 100\n  },\n'
    b'  "modelVersion": "gemini-2.5-flash",\n  "responseId": "mFq0aPqBLp2NmecPq5vIsAk"\n}\n'
)

WORKERS_AI_NATIVE = (
    b'{"result":{"response":"Hello! How can I help you today?","tool_calls":[],"usage":{"prompt_tokens":27,'
    b'"completion_tokens":10,"total_tokens":37}},"success":true,"errors":[],"messages":[]}'
)

WORKERS_AI_COMPAT = (
    b'{"id":"id-1755000000000","object":"chat.completion","created":1755000000,'
    b'"model":"@cf/meta/llama-3.1-8b-instruct","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hi!"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":39,'
    b'"completion_tokens":22,"total_tokens":61}}'
)

COHERE_V2 = (
    b'{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant",'
    b'"content":[{"type":"text","text":"LLMs are neural networks."}]},"usage":{"billed_units":'
    b'{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}'
)

COHERE_V1 = (
    b'{"response_id":"a29d7080","text":"Hi!","generation_id":"8c5e4d9a","chat_history":[],'
    b'"finish_reason":"COMPLETE","meta":{"api_version":{"version":"1"},"billed_units":{"input_tokens":3,'
    b'"output_tokens":2},"tokens":{"input_tokens":69,"output_tokens":2}}}'
)

COHERE_EMBED = (
    b'{"id":"da6e531f","embeddings":{"float":[[0.016296387,-0.008354187]]},"texts":["hello"],'
    b'"meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":1}}}'
)

OLLAMA_CHAT = (
    b'{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant",'
    b'"content":"Hello! How are you today?"},"done_reason":"stop","done":true,"total_duration":5191566416,'
    b'"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,'
    b'"eval_duration":4799921000}'
)

OLLAMA_EMBED = (
    b'{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862]],"total_duration":14143917,'
    b'"load_duration":1019500,"prompt_eval_count":8}'
)


@pytest.mark.parametrize(
    ("fmt", "body", "model", "expected"),
    [
        ("openai", OPENAI_CHAT, "gpt-4o-2024-08-06", Usage(1117, 46, 1024, 0)),
        ("openai", OPENAI_REASONING, "o3-mini-2025-01-31", Usage(25, 1331, 0, 1280)),
        ("openai", OPENAI_RESPONSES, "gpt-4o-2024-08-06", Usage(328, 52, 128, 16)),
        ("openai", OPENAI_EMBEDDINGS, "text-embedding-3-small", Usage(5, None, None, None)),
        ("openai", DEEPSEEK_CHAT, "deepseek-chat", Usage(16, 10, 12, None)),
        ("groq", OPENAI_CHAT, "gpt-4o-2024-08-06", Usage(1117, 46, 1024, 0)),  # unknown → openai
        ("anthropic", ANTHROPIC_MESSAGE, "claude-sonnet-4-5-20250929", Usage(21 + 188 + 2048, 393, 2048)),
        ("gemini", GEMINI_RESPONSE, "gemini-2.5-flash", Usage(2066, 135, 2048, 100)),
        ("workers-ai", WORKERS_AI_NATIVE, None, Usage(27, 10)),
        ("workers-ai", WORKERS_AI_COMPAT, "@cf/meta/llama-3.1-8b-instruct", Usage(39, 22)),
        ("cohere", COHERE_V2, None, Usage(71, 418)),
        ("cohere", COHERE_V1, None, Usage(69, 2)),
        ("cohere", COHERE_EMBED, None, Usage(1, None)),
        ("ollama", OLLAMA_CHAT, "llama3.2", Usage(26, 298)),
        ("ollama", OLLAMA_EMBED, "all-minilm", Usage(8, None)),
    ],
)
def test_usage_from_json(fmt: str, body: bytes, model: str | None, expected: Usage) -> None:
    assert usage_from_json(fmt, body) == (model, expected)
    assert usage_from_json(fmt, json.loads(body)) == (model, expected)


def test_gemini_json_array_stream_and_zero_output() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}, "modelVersion": "gemini-2.0-flash"},
        {"candidates": [{"content": {"parts": [{"text": "!"}], "role": "model"}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
         "modelVersion": "gemini-2.0-flash"},
    ]  # fmt: skip
    assert usage_from_json("gemini", json.dumps(chunks).encode()) == ("gemini-2.0-flash", Usage(4, 2))
    blocked = (
        b'{"promptFeedback":{"blockReason":"SAFETY"},' + b'"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}'
    )
    assert usage_from_json("gemini", blocked) == (None, Usage(8, 0))  # proto3 JSON omits zero counts


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"usage":', b"\xff\xfe\x00", b"[1,2]", b"null", b'"text"', b"[" * 100_000, b"{}"],
)
def test_usage_from_json_never_raises(body: bytes) -> None:
    for fmt in ("openai", "anthropic", "gemini", "workers-ai", "cohere", "ollama", "nope"):
        assert usage_from_json(fmt, body) == (None, Usage())


def _mutations(obj: Any) -> Any:
    """Every copy of ``obj`` with one value swapped for a value of the wrong type."""
    odd: list[Any] = [None, "7", 1.5, -3, True, [], {}, [{}], {"x": []}]
    if isinstance(obj, dict):
        for key, value in obj.items():
            for bad in odd:
                yield {**obj, key: bad}
            for inner in _mutations(value):
                yield {**obj, key: inner}
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            for inner in _mutations(value):
                yield [*obj[:i], inner, *obj[i + 1 :]]


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("openai", OPENAI_CHAT),
        ("openai", OPENAI_RESPONSES),
        ("anthropic", ANTHROPIC_MESSAGE),
        ("gemini", GEMINI_RESPONSE),
        ("workers-ai", WORKERS_AI_NATIVE),
        ("cohere", COHERE_V2),
        ("cohere", COHERE_V1),
        ("ollama", OLLAMA_CHAT),
    ],
)
def test_usage_from_json_survives_wrong_types(fmt: str, body: bytes) -> None:
    count = 0
    for mutated in _mutations(json.loads(body)):
        model, usage = usage_from_json(fmt, mutated)
        assert model is None or isinstance(model, str)
        for value in (usage.tokens_in, usage.tokens_out, usage.cached_tokens_in, usage.reasoning_tokens_out):
            assert value is None or (type(value) is int and value >= 0)
        count += 1
    assert count > 50


# -- streams -----------------------------------------------------------------------------------------

OPENAI_HEAD = b'{"id":"chatcmpl-AoP2x","object":"chat.completion.chunk","created":1736500000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_72ed7ab54c",'  # noqa: E501
OPENAI_USAGE_CHUNK = (
    b"data: " + OPENAI_HEAD + b'"choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,'
    b'"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
    b'"rejected_prediction_tokens":0}}}\n\n'
)
OPENAI_STREAM = (
    b"data: " + OPENAI_HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b"data: " + OPENAI_HEAD + b'"choices":[{"index":0,"delta":{"content":"Say \\"usage\\":{ or \\"error\\""},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b"data: " + OPENAI_HEAD + b'"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}\n\n'
    b"data: " + OPENAI_HEAD + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":null}\n\n' + OPENAI_USAGE_CHUNK + b"data: [DONE]\n\n"
)

RESPONSES_OBJECT = (
    b'"id":"resp_68a1","object":"response","created_at":1755400000,"status":"%s","background":false,'
    b'"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,'
    b'"model":"gpt-4.1-mini-2025-04-14","output":[],"parallel_tool_calls":true,"previous_response_id":null,'
    b'"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":'
    b'{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_p":1.0,'
    b'"truncation":"disabled","usage":%s,"user":null,"metadata":{}'
)
RESPONSES_STREAM = (
    b"event: response.created\n"
    b'data: {"type":"response.created","sequence_number":0,"response":{'
    + RESPONSES_OBJECT
    % (b"in_progress", b"null")
    + b"}}\n\n"
    b"event: response.in_progress\n"
    b'data: {"type":"response.in_progress","sequence_number":1,"response":{'
    + RESPONSES_OBJECT
    % (b"in_progress", b"null")
    + b"}}\n\n"
    b"event: response.output_item.added\n"
    b'data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":'
    b'"msg_68a1","type":"message","status":"in_progress","content":[],"role":"assistant"}}\n\n'
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_68a1","output_index":0,'
    b'"content_index":0,"delta":"Hi there","logprobs":[],"obfuscation":"Yx2k"}\n\n'
    b"event: response.output_text.done\n"
    b'data: {"type":"response.output_text.done","sequence_number":4,"item_id":"msg_68a1","output_index":0,'
    b'"content_index":0,"text":"Hi there","logprobs":[]}\n\n'
    b"event: response.completed\n"
    b'data: {"type":"response.completed","sequence_number":5,"response":{'
    + RESPONSES_OBJECT
    % (
        b"completed",
        b'{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,'
        b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}',
    )
    + b"}}\n\n"
)

GROQ_STREAM = (
    b'data: {"id":"chatcmpl-5f1a","object":"chat.completion.chunk","created":1736500000,"model":'
    b'"llama-3.3-70b-versatile","system_fingerprint":"fp_c0cfa69934","choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"x_groq":{"id":'
    b'"req_01jh"}}\n\n'
    b'data: {"id":"chatcmpl-5f1a","object":"chat.completion.chunk","created":1736500000,"model":'
    b'"llama-3.3-70b-versatile","system_fingerprint":"fp_c0cfa69934","choices":[{"index":0,"delta":{},'
    b'"logprobs":null,"finish_reason":"stop"}],"x_groq":{"id":"req_01jh","usage":{"queue_time":0.0171,'
    b'"prompt_tokens":40,"prompt_time":0.0026,"completion_tokens":8,"completion_time":0.029,'
    b'"total_tokens":48,"total_time":0.0316}}}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",'
    b'"content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,'
    b'"cache_creation_input_tokens":0,"cache_read_input_tokens":1500,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":15}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)

GEMINI_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},"index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": '
    b'"TEXT","tokenCount": 9}]},"modelVersion": "gemini-2.5-flash","responseId": "mFq0aPqBLp2NmecP"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": " sky is blue"}],"role": "model"},"index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 12,"totalTokenCount": 105,'
    b'"thoughtsTokenCount": 84},"modelVersion": "gemini-2.5-flash","responseId": "mFq0aPqBLp2NmecP"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "."}],"role": "model"},"finishReason": "STOP",'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 27,"totalTokenCount": '
    b'120,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}],"thoughtsTokenCount": 84},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "mFq0aPqBLp2NmecP"}\r\n\r\n'
)

WORKERS_AI_STREAM = (
    b'data: {"response":"Hello","tool_calls":[],"p":"abdefgh"}\n\n'
    b'data: {"response":"!","tool_calls":[],"p":"abdefghijklmnopqrstu"}\n\n'
    b'data: {"response":"","usage":{"prompt_tokens":27,"completion_tokens":9,"total_tokens":36}}\n\n'
    b"data: [DONE]\n\n"
)

COHERE_STREAM = (
    b"event: message-start\n"
    b'data: {"id":"29f14a5a-11de-4cae-9800-25e4747408ea","type":"message-start","delta":{"message":'
    b'{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}\n\n'
    b"event: content-start\n"
    b'data: {"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}\n\n'
    b"event: content-delta\n"
    b'data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hello"}}}}\n\n'
    b"event: content-end\n"
    b'data: {"type":"content-end","index":0}\n\n'
    b"event: message-end\n"
    b'data: {"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":'
    b'{"input_tokens":3,"output_tokens":9},"tokens":{"input_tokens":69,"output_tokens":9}}}}\n\n'
)

COHERE_V1_NDJSON = (
    b'{"is_finished":false,"event_type":"stream-start","generation_id":"77bfb0c8"}\n'
    b'{"is_finished":false,"event_type":"text-generation","text":"Hi"}\n'
    b'{"is_finished":true,"event_type":"stream-end","response":{"response_id":"a29d","text":"Hi",'
    b'"generation_id":"77bfb0c8","chat_history":[],"finish_reason":"COMPLETE","meta":{"api_version":'
    b'{"version":"1"},"billed_units":{"input_tokens":3,"output_tokens":1},"tokens":{"input_tokens":69,'
    b'"output_tokens":1}}},"finish_reason":"COMPLETE"}\n'
)

OLLAMA_STREAM = (
    b'{"model":"llama3.2","created_at":"2025-01-10T14:13:43.416799Z","message":{"role":"assistant",'
    b'"content":"The"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"2025-01-10T14:13:43.4Z","message":{"role":"assistant",'
    b'"content":" sky"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"2025-01-10T14:13:43.5Z","message":{"role":"assistant",'
    b'"content":""},"done_reason":"stop","done":true,"total_duration":4883583458,"load_duration":1334875,'
    b'"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}\n'
)

STREAMS = {
    "openai": ("openai", OPENAI_STREAM, "gpt-4o-mini-2024-07-18", Usage(19, 10, 0, 0), 6),
    "responses": ("openai", RESPONSES_STREAM, "gpt-4.1-mini-2025-04-14", Usage(12, 3, 0, 0), 6),
    "groq": ("openai", GROQ_STREAM, "llama-3.3-70b-versatile", Usage(40, 8), 3),
    "anthropic": ("anthropic", ANTHROPIC_STREAM, "claude-sonnet-4-5-20250929", Usage(1525, 15, 1500), 7),
    "gemini": ("gemini", GEMINI_STREAM, "gemini-2.5-flash", Usage(9, 111, None, 84), 3),
    "workers-ai": ("workers-ai", WORKERS_AI_STREAM, None, Usage(27, 9), 4),
    "cohere": ("cohere", COHERE_STREAM, None, Usage(69, 9), 5),
    "ollama": ("ollama", OLLAMA_STREAM, "llama3.2", Usage(26, 282), 3),
}


def track(fmt: str, chunks: list[bytes], **kwargs: Any) -> tuple[StreamTracker, bytes]:
    tracker = StreamTracker(fmt, **kwargs)
    out = [tracker.feed(chunk) for chunk in chunks]
    out.append(tracker.finish())
    return tracker, b"".join(out)


def state(tracker: StreamTracker) -> tuple[Any, ...]:
    return tracker.model, tracker.usage, tracker.completed, tracker.error, tracker.events


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream(name: str) -> None:
    fmt, stream, model, usage, events = STREAMS[name]
    tracker, out = track(fmt, [stream])
    assert state(tracker) == (model, usage, True, None, events)
    assert out == stream


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_split_at_every_byte(name: str) -> None:
    fmt, stream, *_ = STREAMS[name]
    expected = state(track(fmt, [stream])[0])
    for i in range(len(stream) + 1):
        tracker, out = track(fmt, [stream[:i], stream[i:]])
        assert state(tracker) == expected, i
        assert out == stream
    tracker, out = track(fmt, [stream[i : i + 1] for i in range(len(stream))])
    assert state(tracker) == expected


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_with_crlf(name: str) -> None:
    fmt, stream, model, usage, events = STREAMS[name]
    crlf = stream.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    tracker, out = track(fmt, [crlf[i : i + 7] for i in range(0, len(crlf), 7)])
    assert state(tracker) == (model, usage, True, None, events)
    assert out == crlf


def test_feed_forwards_the_same_object() -> None:
    for fmt, stream, *_ in STREAMS.values():
        tracker = StreamTracker(fmt)
        for i in range(0, len(stream), 50):
            chunk = stream[i : i + 50]
            assert tracker.feed(chunk) is chunk
        assert tracker.finish() == b""


def test_cohere_v1_ndjson_stream() -> None:
    tracker, out = track("cohere", [COHERE_V1_NDJSON[:90], COHERE_V1_NDJSON[90:]], ndjson=True)
    assert state(tracker) == (None, Usage(69, 1), True, None, 3)
    assert out == COHERE_V1_NDJSON


@pytest.mark.parametrize("name", list(STREAMS))
def test_truncated_stream_is_not_completed(name: str) -> None:
    fmt, stream, *_ = STREAMS[name]
    terminal = {
        "openai": b"data: [DONE]",
        "responses": b"event: response.completed",
        "groq": b"data: [DONE]",
        "anthropic": b"event: message_stop",
        "gemini": b'"finishReason"',
        "workers-ai": b"data: [DONE]",
        "cohere": b"event: message-end",
        "ollama": b'"done":true',
    }[name]
    cut = stream[: stream.index(terminal) + len(terminal) - 1]
    tracker, out = track(fmt, [cut])
    assert tracker.completed is False
    assert tracker.error is None
    assert out == cut


def test_truncated_stream_keeps_the_usage_seen_so_far() -> None:
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_delta")]
    tracker, _ = track("anthropic", [cut])
    assert state(tracker) == ("claude-sonnet-4-5-20250929", Usage(1525, 1, 1500), False, None, 5)
    cut = OPENAI_STREAM[: OPENAI_STREAM.index(OPENAI_USAGE_CHUNK)]
    tracker, _ = track("openai", [cut])
    assert state(tracker) == ("gpt-4o-mini-2024-07-18", Usage(), False, None, 4)


def test_stream_without_final_blank_line_still_counts() -> None:
    tracker, out = track("openai", [OPENAI_STREAM[:-2]])
    assert tracker.completed and tracker.usage == Usage(19, 10, 0, 0)
    assert out == OPENAI_STREAM[:-2]


# -- strip_usage_chunk -------------------------------------------------------------------------------


def test_strip_removes_exactly_the_usage_chunk() -> None:
    expected = OPENAI_STREAM.replace(OPENAI_USAGE_CHUNK, b"")
    assert len(expected) == len(OPENAI_STREAM) - len(OPENAI_USAGE_CHUNK)
    for i in range(len(OPENAI_STREAM) + 1):
        tracker, out = track("openai", [OPENAI_STREAM[:i], OPENAI_STREAM[i:]], strip_usage_chunk=True)
        assert out == expected, i
        assert state(tracker) == ("gpt-4o-mini-2024-07-18", Usage(19, 10, 0, 0), True, None, 6)


def test_strip_with_crlf_and_comments() -> None:
    stream = b": OPENROUTER PROCESSING\n\n" + OPENAI_STREAM
    stream = stream.replace(b"\n", b"\r\n")
    usage_chunk = OPENAI_USAGE_CHUNK.replace(b"\n", b"\r\n")
    chunks = [stream[i : i + 13] for i in range(0, len(stream), 13)]
    tracker, out = track("openai", chunks, strip_usage_chunk=True)
    assert out == stream.replace(usage_chunk, b"")
    assert tracker.usage == Usage(19, 10, 0, 0)


def test_strip_keeps_chunks_that_carry_choices_or_no_usage() -> None:
    # Mistral reports usage on the last content chunk; Azure's first chunk has empty choices.
    stream = (
        b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
        b'[{"prompt_index":0,"content_filter_results":{}}]}\n\n'
        b'data: {"id":"cmpl-e5cc","object":"chat.completion.chunk","created":1702256327,'
        b'"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":""},"finish_reason":'
        b'"stop","logprobs":null}],"usage":{"prompt_tokens":10,"total_tokens":20,"completion_tokens":10}}\n\n'
        b"data: [DONE]\n\n"
    )
    tracker = StreamTracker("openai", strip_usage_chunk=True)
    assert tracker.feed(stream) is stream
    assert tracker.finish() == b""
    assert state(tracker) == ("mistral-small-latest", Usage(10, 10), True, None, 3)


def test_strip_holds_partial_events_until_complete() -> None:
    tracker = StreamTracker("openai", strip_usage_chunk=True)
    first = OPENAI_STREAM[: OPENAI_STREAM.index(b"\n\n") + 2]
    assert tracker.feed(first[:20]) == b""
    assert tracker.feed(first[20:]) == first
    assert tracker.feed(OPENAI_USAGE_CHUNK) == b""
    assert tracker.feed(b"data: [DO") == b""
    assert tracker.finish() == b"data: [DO"


def test_strip_is_ignored_for_formats_that_always_report_usage() -> None:
    tracker = StreamTracker("anthropic", strip_usage_chunk=True)
    assert tracker.feed(ANTHROPIC_STREAM) is ANTHROPIC_STREAM


# -- speed: JSON is parsed only where it can matter ------------------------------------------------


def test_most_chunks_are_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = usage_module._loads

    def counting(data: bytes) -> Any:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(usage_module, "_loads", counting)
    delta = STREAMS["openai"][1].split(b"\n\n")[2] + b"\n\n"
    stream = OPENAI_STREAM.replace(delta, delta * 500)
    tracker, _ = track("openai", [stream])
    assert tracker.events == 505
    assert len(calls) == 2  # the first chunk (model) and the usage chunk
    assert tracker.usage == Usage(19, 10, 0, 0)

    calls.clear()
    lines = OLLAMA_STREAM.split(b"\n")
    tracker, _ = track("ollama", [lines[0] + b"\n" + (lines[1] + b"\n") * 500 + lines[2] + b"\n"])
    assert (tracker.events, len(calls), tracker.usage) == (502, 2, Usage(26, 282))

    calls.clear()
    parts = GEMINI_STREAM.split(b"\r\n\r\n")
    tracker = StreamTracker("gemini")
    tracker.feed(parts[0] + b"\r\n\r\n" + (parts[1] + b"\r\n\r\n") * 500 + parts[2] + b"\r\n\r\n")
    assert (tracker.events, tracker.completed) == (502, True)
    assert len(calls) == 1  # the first chunk; the last report waits until usage is read
    assert tracker.usage == Usage(9, 111, None, 84)
    assert len(calls) == 2


def test_cumulative_usage_reports_take_the_last() -> None:
    # Perplexity (and vLLM's continuous usage stats) repeat a growing usage in every chunk.
    stream = b"".join(
        b'data: {"id":"a1b2","model":"sonar","created":1736500000,"usage":{"prompt_tokens":7,'
        b'"completion_tokens":%d,"total_tokens":%d,"search_context_size":"low"},"object":'
        b'"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' % (n, n + 7)
        for n in range(1, 40)
    )
    tracker, _ = track("openai", [stream])
    assert tracker.usage == Usage(7, 39)
    assert tracker.model == "sonar"


def test_anthropic_delta_with_input_tokens_replaces_the_start_counts() -> None:
    stream = (
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"model":"claude-opus-4-1-20250805","usage":'
        b'{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":0,"output_tokens":1}}}\n\n'
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":12,'
        b'"cache_read_input_tokens":100,"output_tokens":80,"server_tool_use":{"web_search_requests":1}}}\n\n'
        b"event: message_stop\n"
        b'data: {"type":"message_stop"}\n\n'
    )
    tracker, _ = track("anthropic", [stream])
    assert state(tracker) == ("claude-opus-4-1-20250805", Usage(117, 80, 100), True, None, 3)


def test_anthropic_without_event_lines() -> None:
    stream = re.sub(rb"event: [a-z_]+\n", b"", ANTHROPIC_STREAM)
    assert stream.count(b"data: ") == 7 and b"event" not in stream
    tracker, _ = track("anthropic", [stream])
    assert state(tracker) == ("claude-sonnet-4-5-20250929", Usage(1525, 15, 1500), True, None, 7)


# -- errors inside streams -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "stream", "message"),
    [
        (
            "openai",
            OPENAI_STREAM.split(b"\n\n")[0] + b"\n\n"
            b'data: {"error":{"message":"The server had an error while processing your request. '
            b'Sorry about that!","type":"server_error","param":null,"code":null}}\n\n',
            "The server had an error while processing your request. Sorry about that!",
        ),
        (
            "openai",
            b"event: error\n"
            b'data: {"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,'
            b'"sequence_number":1}\n\n',
            "Something went wrong",
        ),
        ("openai", b'event: error\ndata: {"detail":"Internal"}\n\n', '{"detail": "Internal"}'),
        ("openai", b"event: error\ndata: upstream went away\n\n", "upstream went away"),
        (
            "openai",  # OpenRouter: the error rides on a normal chunk
            b'data: {"id":"gen-1","object":"chat.completion.chunk","created":1736500000,'
            b'"model":"openai/gpt-4o","provider":"OpenAI","error":{"code":"server_error",'
            b'"message":"Provider disconnected unexpectedly"},'
            b'"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n',
            "Provider disconnected unexpectedly",
        ),
        (
            "anthropic",
            ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: content_block_stop")] + b"event: error\n"
            b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
            "Overloaded",
        ),
        (
            "gemini",
            GEMINI_STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            b'data: {"error": {"code": 503,"message": "The model is overloaded. Please try again later.",'
            b'"status": "UNAVAILABLE"}}\r\n\r\n',
            "The model is overloaded. Please try again later.",
        ),
        (
            "ollama",
            OLLAMA_STREAM.split(b"\n")[0] + b'\n{"error":"an error was encountered while running the model"}\n',
            "an error was encountered while running the model",
        ),
    ],  # fmt: skip
)
def test_error_inside_stream(fmt: str, stream: bytes, message: str) -> None:
    tracker, out = track(fmt, [stream[:33], stream[33:]])
    assert tracker.error == message
    assert tracker.completed is False
    assert out == stream


def test_responses_failed_is_terminal_with_an_error() -> None:
    failed = (
        b"event: response.failed\n"
        b'data: {"type":"response.failed","sequence_number":3,"response":{"id":"resp_1","object":"response",'
        b'"status":"failed","error":{"code":"server_error",'
        b'"message":"The model failed to generate a response."},'
        b'"model":"gpt-4.1-mini-2025-04-14","usage":null}}\n\n'
    )
    tracker, _ = track("openai", [failed])
    assert state(tracker) == (
        "gpt-4.1-mini-2025-04-14",
        Usage(),
        True,
        "The model failed to generate a response.",
        1,
    )


def _events_of(stream: bytes) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    return [(e.event, e.data) for e in parser.feed(stream) + parser.flush() if e.data]


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "gemini", "workers-ai", "cohere", "ollama", "other"])
def test_error_event_round_trips(fmt: str) -> None:
    event = error_event(fmt, "upstream connection lost mid-stream", code=2006)
    tracker, _ = track(fmt, [event])
    assert tracker.error == "upstream connection lost mid-stream"
    assert tracker.completed is False


def test_error_event_shapes() -> None:
    assert error_event("openai", "lost") == (
        b'data: {"error":{"message":"lost","type":"gateway_error","param":null,"code":2005}}\n\n'
    )
    assert error_event("anthropic", "lost") == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"lost"}}\n\n'
    )
    assert error_event("gemini", "lost") == (
        b'data: {"error":{"code":2005,"message":"lost","status":"UNAVAILABLE"}}\r\n\r\n'
    )
    assert error_event("ollama", 'a "quoted"\nline') == b'{"error":"a \\"quoted\\"\\nline"}\n'


def test_tracker_error_event_ends_a_partial_event_first() -> None:
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: content_block_delta") + 40]
    tracker = StreamTracker("anthropic")
    tracker.feed(cut)
    tail = error_event("anthropic", "lost")
    assert tracker.error_event("lost") == b"\n\n" + tail
    assert tracker.finish() == b""
    assert tracker.error_event("lost") == b"\n\n" + tail
    events = _events_of(cut + tracker.error_event("lost"))
    assert events[-1] == ("error", b'{"type":"error","error":{"type":"api_error","message":"lost"}}')

    # Between events nothing is needed.
    tracker = StreamTracker("anthropic")
    tracker.feed(ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: content_block_delta")])
    assert tracker.error_event("lost") == tail

    # Stripping holds partial events back: the client is between events until finish forwards them.
    tracker = StreamTracker("openai", strip_usage_chunk=True)
    assert tracker.feed(OPENAI_STREAM[:30]) == b""
    assert tracker.error_event("lost") == error_event("openai", "lost")
    assert tracker.finish() == OPENAI_STREAM[:30]
    assert tracker.error_event("lost") == b"\n\n" + error_event("openai", "lost")

    tracker = StreamTracker("ollama")
    tracker.feed(OLLAMA_STREAM[:30])
    assert tracker.error_event("lost") == b'\n{"error":"lost"}\n'


def test_replicate_prediction_metrics_are_usage() -> None:
    """Issue 11 defect 7: Replicate reports token counts in ``metrics``."""
    prediction = {
        "id": "p1",
        "model": "meta/meta-llama-3-8b-instruct",
        "status": "succeeded",
        "output": ["Hi", "!"],
        "metrics": {"predict_time": 0.4, "input_token_count": 12, "output_token_count": 2},
    }
    model, usage = usage_from_json("replicate", json.dumps(prediction).encode())
    assert model == "meta/meta-llama-3-8b-instruct"
    assert (usage.tokens_in, usage.tokens_out) == (12, 2)
    _, pending = usage_from_json("replicate", json.dumps({"status": "starting", "metrics": {}}).encode())
    assert not pending.known()


def test_chat_chunks_closed_by_usage_null_still_report_errors_model_and_usage() -> None:
    """The fast path for OpenAI chunks that end in ``"usage":null`` (include_usage) misses nothing."""
    head = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-x",'
    delta = head + b'"choices":[{"index":0,"delta":{"content":"the \\"response.completed\\" word"}}],"usage":null}\n\n'
    error = head + b'"choices":[],"error":{"message":"overloaded","type":"server_error"},"usage":null}\n\n'
    usage = head + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
    tracker = StreamTracker("openai", strip_usage_chunk=True)
    forwarded = tracker.feed(delta * 3 + usage + b"data: [DONE]\n\n") + tracker.finish()
    assert (tracker.model, tracker.usage.tokens_in, tracker.usage.tokens_out) == ("gpt-x", 3, 4)
    assert tracker.completed and tracker.error is None and tracker.events == 5
    assert forwarded == delta * 3 + b"data: [DONE]\n\n"  # the injected usage chunk stripped

    broken = StreamTracker("openai")
    broken.feed(delta + error)
    assert broken.error == "overloaded" and not broken.completed


@pytest.mark.parametrize("strip", [False, True])
def test_whole_events_in_one_chunk_read_as_the_parser_reads_them(strip: bool) -> None:
    """`StreamTracker` cuts OpenAI-style events itself when nothing is held: every other shape an
    SSE stream may take between them (a comment, an ``id:`` line, a data field over two lines, an
    ``event: error``, an error inside a ``"usage":null`` chunk) reads as it does a byte at a time."""
    head = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-x",'
    delta = b"data: " + head + b'"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    stream = (
        delta
        + b": keep-alive\n\n"
        + delta
        + b"id: 7\ndata: " + head + b'"choices":[{"index":0,"delta":{"content":"x"}}],\n'
        + b'data: "usage":null}\n\n'
        + b"data:" + head + b'"choices":[{"index":0,"delta":{"content":"no space"}}],"usage":null}\n\n'
        + b"data: " + head + b'"choices":[],"error":{"message":"slow down"},"usage":null}\n\n'
        + b'event: error\ndata: {"error":{"message":"late"}}\n\n'
        + b"data: " + head + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
        + b"data: [DONE]\n\n"
    )  # fmt: skip
    whole, out = track("openai", [stream], strip_usage_chunk=strip)
    bytewise, out_bytewise = track("openai", [stream[i : i + 1] for i in range(len(stream))], strip_usage_chunk=strip)
    assert state(whole) == state(bytewise)
    assert out == out_bytewise
    assert whole.error == "late" and whole.usage.tokens_out == 4 and whole.completed  # the last error read wins
    assert (b'"usage":{' in out) is not strip
    # split after each event: every chunk starts between events, the case the tracker cuts itself
    events = [part + b"\n\n" for part in stream.split(b"\n\n")[:-1]]
    per_event, out_events = track("openai", events, strip_usage_chunk=strip)
    assert state(per_event) == state(bytewise) and out_events == out_bytewise
