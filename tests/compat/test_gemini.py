"""IR -> Gemini ``generateContent`` and back, from the examples in Google's function-calling docs."""

from __future__ import annotations

import json

import pytest

from aigw_asgi.compat import gemini, ir
from aigw_asgi.errors import BadCompatRequest

from .helpers import decode

FIND_THEATERS = ir.Tool(
    "find_theaters",
    "find theaters based on location and optionally movie title which is currently playing in theaters",
    {
        "type": "object",
        "properties": {"location": {"type": "string"}, "movie": {"type": "string"}},
        "required": ["location"],
    },
)
# The function-calling guide's answer (plus the usage block every answer carries).
FUNCTION_CALL_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "I should look this up.", "thought": True},
                    {
                        "functionCall": {
                            "name": "find_theaters",
                            "args": {"location": "Mountain View, CA", "movie": "Barbie"},
                        },
                        "thoughtSignature": "CiIBVKhc7oDPqp3S",
                    },
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 80,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 15,
        "cachedContentTokenCount": 40,
        "totalTokenCount": 115,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "abc",
}


def test_a_tool_conversation_builds_with_names_signatures_and_config() -> None:
    call_id = gemini.call_id("CiIBVKhc7oDPqp3S")
    req = ir.Request(
        messages=[
            ir.Message("system", [ir.Text("You find movies.")]),
            ir.Message("user", [ir.Text("Which theaters in Mountain View show Barbie movie?")]),
            ir.Message(
                "assistant", [ir.Reasoning("thought"), ir.ToolCall(call_id, "find_theaters", '{"movie": "Barbie"}')]
            ),
            ir.Message("tool", [ir.ToolResult(call_id, [ir.Text("AMC Mountain View 16")])]),
            ir.Message("user", [ir.Text("thanks"), ir.Image(data="iVBO", media_type="image/png")]),
        ],
        max_tokens=100,
        temperature=0.5,
        top_k=40,
        stop=["END"],
        seed=7,
        tools=[FIND_THEATERS],
        tool_choice=ir.ToolChoice("tool", "find_theaters"),
        response_format=ir.ResponseFormat("json_schema", schema={"type": "object"}),
        reasoning_effort="low",
    )
    body = gemini.build_request(req, "google-ai-studio")
    assert body["systemInstruction"] == {"parts": [{"text": "You find movies."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Which theaters in Mountain View show Barbie movie?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "find_theaters", "args": {"movie": "Barbie"}},
                    "thoughtSignature": "CiIBVKhc7oDPqp3S",
                }
            ],
        },
        {
            "role": "user",  # the function response and the next user turn are one user turn
            "parts": [
                {"functionResponse": {"name": "find_theaters", "response": {"result": "AMC Mountain View 16"}}},
                {"text": "thanks"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
            ],
        },
    ]
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.5,
        "topK": 40,
        "seed": 7,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "find_theaters",
                    "description": FIND_THEATERS.description,
                    "parametersJsonSchema": FIND_THEATERS.parameters,
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["find_theaters"]}}


def test_tool_call_ids_carry_the_thought_signature_within_anthropics_id_alphabet() -> None:
    signature = "CiIBVKhc7oDPqp3S+/8xyz=="
    made = gemini.call_id(signature)
    assert made.startswith("call_") and all(c.isalnum() or c in "_-" for c in made)
    assert gemini.signature_of(made) == signature
    assert gemini.signature_of(gemini.call_id(None)) is None
    assert gemini.signature_of("toolu_01A09q90qw90lq917835lq9") is None


def test_image_urls_need_a_known_extension() -> None:
    ok = ir.Request(messages=[ir.Message("user", [ir.Image(url="https://example.com/cat.JPG?size=2")])])
    assert gemini.build_request(ok, "g")["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}}
    ]
    unknown = ir.Request(messages=[ir.Message("user", [ir.Image(url="https://example.com/render")])])
    with pytest.raises(BadCompatRequest, match="base64"):
        gemini.build_request(unknown, "g")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"n": 3}, "n > 1"),
        ({"logprobs": True}, "logprobs"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"extras": {"prediction": {}}}, "prediction"),
        ({"messages": [ir.Message("tool", [ir.ToolResult("nobody", [ir.Text("x")])])]}, "answers no earlier tool call"),
        ({"reasoning_effort": "turbo"}, "reasoning_effort"),
    ],
)
def test_build_refuses_what_gemini_cannot_honour(change: dict, named: str) -> None:
    req = ir.Request(messages=[ir.Message("user", [ir.Text("hi")])])
    for key, value in change.items():
        setattr(req, key, value)
    with pytest.raises(BadCompatRequest) as info:
        gemini.build_request(req, "google-ai-studio")
    assert named in info.value.message


def test_the_documented_function_call_answer_parses() -> None:
    resp = gemini.parse_response(FUNCTION_CALL_ANSWER)
    thought, call = resp.parts
    assert thought == ir.Reasoning("I should look this up.")
    assert isinstance(call, ir.ToolCall) and call.name == "find_theaters"
    assert json.loads(call.arguments) == {"location": "Mountain View, CA", "movie": "Barbie"}
    assert gemini.signature_of(call.id) == "CiIBVKhc7oDPqp3S"
    assert resp.finish == "tool_calls"  # Gemini says STOP; OpenAI clients expect tool_calls
    assert resp.usage == ir.Usage(80, 35, cached_tokens=40, reasoning_tokens=15)
    assert resp.id == "abc" and resp.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("answer", "finish"),
    [
        ({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]}, "length"),
        ({"candidates": [{"finishReason": "SAFETY"}]}, "content_filter"),
        ({"promptFeedback": {"blockReason": "SAFETY"}}, "content_filter"),
        ({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}, "stop"),
    ],
)
def test_finish_reasons(answer: dict, finish: str) -> None:
    assert gemini.parse_response(answer).finish == finish


def test_the_sse_stream_decodes_with_crlf_framing() -> None:
    def chunk(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"

    base = {"modelVersion": "gemini-2.5-flash", "responseId": "r1"}
    stream = b"".join(
        [
            chunk({**base, "candidates": [{"content": {"role": "model", "parts": [{"text": "hm", "thought": True}]}}]}),
            chunk({**base, "candidates": [{"content": {"role": "model", "parts": [{"text": "The "}]}}]}),
            chunk(
                {
                    **base,
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}}
                    ],
                }
            ),
            chunk(
                {
                    **base,
                    "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
                }
            ),
        ]
    )
    decoder = gemini.GeminiStreamDecoder()
    events = decode(decoder, stream)
    assert events[0] == ir.Start("r1", "gemini-2.5-flash")
    assert events[1:3] == [ir.ReasoningDelta("hm"), ir.TextDelta("The ")]
    start, args = events[3:5]
    assert isinstance(start, ir.ToolCallStart) and start.index == 0 and start.name == "f"
    assert args == ir.ToolCallDelta(0, "{}")
    assert events[5:] == [ir.TextDelta(""), ir.UsageUpdate(ir.Usage(5, 3)), ir.Finish("tool_calls")]
    assert decoder.finished


def test_a_mid_stream_error_decodes() -> None:
    data = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    assert decode(gemini.GeminiStreamDecoder(), data) == [ir.StreamError("The model is overloaded.")]


def test_count_tokens_and_embeddings_requests() -> None:
    req = ir.Request(messages=[ir.Message("system", [ir.Text("s")]), ir.Message("user", [ir.Text("hi")])], max_tokens=5)
    assert gemini.count_tokens_request(req, "gemini-2.5-flash", "g") == {
        "generateContentRequest": {
            "model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": {"parts": [{"text": "s"}]},
        }
    }
    assert gemini.embed_request(["a", "b"], "text-embedding-004", 8)["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "b"}]},
        "outputDimensionality": 8,
    }
