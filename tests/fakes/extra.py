"""More providers' wire formats for the fake upstream (`tests.fakes.upstream`), one handler each.

Why a second module: the official client matrix (``tests/clients/``) needs every built-in's own
wire format, and upstream.py is already long. The handlers take the same `_Ctx` and return the
same replies; `upstream.FakeUpstream._route` asks `route` first. Paths are the upstream paths the
gateway produces for the bases ``tests.conftest.fake_providers`` configures::

    POST /cohere/v2/chat                              Cohere v2 chat (JSON, or SSE with "stream": true)
    POST /cohere/v2/embed                             Cohere v2 embed
    POST /mistral/v1/chat/completions                 Mistral: OpenAI's shape, usage on the stream's
                                                      last chunk without being asked
    POST /mistral/v1/embeddings                       Mistral embeddings
    POST /hf-inference/models/{model}                 HF Inference text generation ({"inputs": …};
                                                      TGI SSE with "stream": true)
    POST /replicate/v1/predictions                    Replicate: a prediction that has already
    POST /replicate/v1/models/{owner}/{name}/predictions   succeeded (metrics carry token counts)
    GET  /replicate/v1/predictions/{id}               the same prediction again
    POST .../audio/transcriptions                     OpenAI / Azure transcription (multipart form)
    POST .../models/{model}:batchEmbedContents        Gemini batch embeddings (google-genai embed_content)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.upstream import (
    _Ctx,
    _fake_vector,
    _JsonReply,
    _new_id,
    _openai_chat,
    _Reply,
    _sse,
    _StreamReply as _Stream,
)

Handler = Callable[[_Ctx], _Reply]

# Version ids the fake knows the model of (a real prediction names its model whatever was asked).
VERSIONS = {"5a6809ca6288247d06daf6365557e5e429063f32a21146b2a807c682652136b8": "meta/meta-llama-3-8b-instruct"}
_PREDICTIONS: dict[str, dict[str, Any]] = {}  # Replicate predictions by id, for GET (bounded below)
_REPLICATE_CREATE = re.compile(r"^/replicate/v1/(?:models/(?P<model>[^/]+/[^/]+)/)?predictions$")
_REPLICATE_GET = re.compile(r"^/replicate/v1/predictions/(?P<id>[A-Za-z0-9_-]+)$")
_HF_MODEL = re.compile(r"^/hf-inference/models/(?P<model>[^:]+?)(?:/pipeline/(?P<task>[a-z-]+))?$")
_GEMINI_BATCH = re.compile(r"/models/(?P<model>[^/:]+):batchEmbedContents$")


def route(method: str, path: str) -> tuple[Handler, bool] | None:
    """The handler for a request, and whether it needs a JSON object body; None = not ours."""
    if method == "GET":
        match = _REPLICATE_GET.match(path)
        return ((lambda c: _replicate_get(c, match.group("id"))), False) if match else None
    if method != "POST":
        return None
    if path == "/cohere/v2/chat":
        return _cohere_chat, True
    if path == "/cohere/v2/embed":
        return _cohere_embed, True
    if path == "/mistral/v1/chat/completions":
        return _mistral_chat, True
    if path == "/mistral/v1/embeddings":
        return _mistral_embeddings, True
    if path.endswith("/audio/transcriptions"):
        return _transcription, False
    if _GEMINI_BATCH.search(path):
        return _gemini_batch_embed, True
    match = _REPLICATE_CREATE.match(path)
    if match:
        return (lambda c: _replicate_create(c, match.group("model"))), True
    match = _HF_MODEL.match(path)
    if match and not path.endswith("/chat/completions"):
        return (lambda c: _hf_inference(c, match.group("model"), match.group("task"))), True
    return None


# -- Cohere v2 ----------------------------------------------------------------------------------------


def _cohere_usage(ctx: _Ctx) -> dict[str, Any]:
    counts = {"input_tokens": ctx.prompt_tokens, "output_tokens": ctx.completion_tokens}
    return {"billed_units": dict(counts), "tokens": dict(counts)}


def _cohere_chat(ctx: _Ctx) -> _Reply:
    cid = _new_id("")
    if not ctx.stream:
        message = {"role": "assistant", "content": [{"type": "text", "text": ctx.text}]}
        return _JsonReply({"id": cid, "finish_reason": "COMPLETE", "message": message, "usage": _cohere_usage(ctx)})
    start = {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}
    events: list[dict[str, Any]] = [
        {"type": "message-start", "id": cid, "delta": start},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    ]
    events += [
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": word}}}} for word in ctx.words
    ]
    events += [
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": _cohere_usage(ctx)}},
    ]
    return _Stream([_sse(ev, event=ev["type"]) for ev in events], "text/event-stream")


def _cohere_embed(ctx: _Ctx) -> _Reply:
    texts = [str(t) for t in ctx.body.get("texts") or []]
    return _JsonReply(
        {
            "id": _new_id(""),
            "embeddings": {"float": [_fake_vector(t, 8) for t in texts]},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": ctx.prompt_tokens}},
            "response_type": "embeddings_by_type",
        }
    )


# -- Mistral ------------------------------------------------------------------------------------------


def _mistral_chat(ctx: _Ctx) -> _Reply:
    # Mistral streams its usage on the last chunk without stream_options (the gateway adds none).
    body = {**ctx.body, "stream_options": {"include_usage": True}} if ctx.stream else ctx.body
    return _openai_chat(_Ctx(rec=ctx.rec, steering=ctx.steering, provider="openai", body=body, match=ctx.match))


def _mistral_embeddings(ctx: _Ctx) -> _Reply:
    raw = ctx.body.get("inputs") or ctx.body.get("input") or []
    inputs = raw if isinstance(raw, list) else [raw]
    data = [{"object": "embedding", "index": i, "embedding": _fake_vector(str(x), 8)} for i, x in enumerate(inputs)]
    usage = {"prompt_tokens": ctx.prompt_tokens, "total_tokens": ctx.prompt_tokens, "completion_tokens": 0}
    return _JsonReply(
        {"id": _new_id("emb-"), "object": "list", "data": data, "model": ctx.body.get("model"), "usage": usage}
    )


# -- Hugging Face Inference (TGI text generation) ---------------------------------------------------


def _hf_inference(ctx: _Ctx, model: str, task: str | None) -> _Reply:
    inputs = ctx.body.get("inputs")
    if task == "feature-extraction" or isinstance(inputs, list):
        items = inputs if isinstance(inputs, list) else [inputs]
        return _JsonReply([_fake_vector(str(x), 8) for x in items])
    if not ctx.stream:
        return _JsonReply([{"generated_text": ctx.text}])
    frames = []
    for i, word in enumerate(ctx.words):
        last = i == len(ctx.words) - 1
        token = {"id": i, "text": word, "logprob": -0.1, "special": False}
        details = {"finish_reason": "length", "generated_tokens": ctx.completion_tokens, "seed": None}
        frames.append(
            _sse(
                {
                    "index": i + 1,
                    "token": token,
                    "top_tokens": None,
                    "generated_text": ctx.text if last else None,
                    "details": details if last else None,
                }
            )
        )
    return _Stream(frames, "text/event-stream")


# -- Replicate ----------------------------------------------------------------------------------------


def _replicate_create(ctx: _Ctx, model: str | None) -> _Reply:
    pid = _new_id("fk")
    version = ctx.body.get("version")
    if model is None and isinstance(version, str):
        if ":" in version:
            model, _, version = version.partition(":")
        else:
            model = VERSIONS.get(version)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    prediction = {
        "id": pid,
        "model": model or "replicate/fake-model",
        "version": version or "hidden",
        "input": ctx.body.get("input") or {},
        "logs": "",
        "output": list(ctx.words),  # language models stream tokens: the output is a list of them
        "data_removed": False,
        "error": None,
        "status": "succeeded",
        "created_at": now,
        "started_at": now,
        "completed_at": now,
        "urls": {"get": f"https://api.replicate.com/v1/predictions/{pid}", "cancel": "", "web": ""},
        "metrics": {
            "predict_time": 0.01,
            "input_token_count": ctx.prompt_tokens,
            "output_token_count": ctx.completion_tokens,
            "tokens_per_second": 500.0,
        },
    }
    if len(_PREDICTIONS) > 1000:
        _PREDICTIONS.clear()
    _PREDICTIONS[pid] = prediction
    return _JsonReply(prediction, status=201)


def _replicate_get(ctx: _Ctx, pid: str) -> _Reply:
    prediction = _PREDICTIONS.get(pid)
    if prediction is None:
        return _JsonReply({"detail": "Not found.", "status": 404, "title": "Not found"}, status=404)
    return _JsonReply(prediction)


# -- OpenAI / Azure transcriptions (multipart) --------------------------------------------------------


def _transcription(ctx: _Ctx) -> _Reply:
    if b'name="file"' not in ctx.rec.body or not ctx.rec.headers.get("content-type", "").startswith("multipart/"):
        message = {"message": "fake upstream: expected a multipart form with a file", "type": "invalid_request_error"}
        return _JsonReply({"error": message}, status=400)
    usage = {
        "type": "tokens",
        "input_tokens": ctx.prompt_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": ctx.prompt_tokens},
        "output_tokens": ctx.completion_tokens,
        "total_tokens": ctx.prompt_tokens + ctx.completion_tokens,
    }
    return _JsonReply({"text": ctx.text, "usage": usage})


# -- Gemini batch embeddings --------------------------------------------------------------------------


def _gemini_batch_embed(ctx: _Ctx) -> _Reply:
    requests = ctx.body.get("requests") or []
    embeddings = [
        {"values": _fake_vector(json.dumps(r.get("content")), int(r.get("outputDimensionality") or 8))}
        for r in requests
    ]
    return _JsonReply({"embeddings": embeddings})
