"""A ``/compat`` request -> the internal requests to try, one per target (pure, no I/O).

Each `CompatStep` is an ordinary universal `PlannedStep` (provider, path, body, BYOK alias, route)
— the step runner sends it through cache → rate limit → router like any universal step — plus
what the relay needs to turn that target's answer into the surface's (`Answer`).

Per target the body is either the client's own with ``model`` rewritten (the target speaks the
surface's format: chat to an OpenAI-compatible provider, Messages to Anthropic, Responses to
OpenAI) or a translation through the IR. On a ``dynamic/`` route a target that cannot honour the
request is skipped (its refusal is the answer only when no target can).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import _json
from ..errors import BadCompatRequest
from ..providers.registry import ProviderRegistry
from ..routing.balance import Route
from ..steps import PlannedStep
from . import anthropic_target, gemini, ir, openai_chat_target
from ._fields import bad, refuse
from .surfaces import CODECS, MESSAGES, RESPONSES, Codec, StreamTranslator, Surface, events_from_response
from .targets import Target, resolve

_OPENAI_NATIVE = frozenset({"openai", "azure-openai"})  # max_completion_tokens, no top_k


@dataclass(slots=True)
class Answer:
    """How one target's answer becomes the surface's."""

    surface: Surface
    passthrough: bool
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # a 2xx JSON answer
    codec: Codec | None = None  # generate calls: read the target's answers
    request: ir.Request | None = None

    def stream(self) -> StreamTranslator | None:
        if self.codec is None or self.request is None:
            return None
        return StreamTranslator(self.codec.decoder(), self.surface.encoder(self.request))

    def stream_from_json(self, native: dict[str, Any]) -> bytes:
        """A client asked for a stream and the target answered JSON: the same answer as events."""
        assert self.codec is not None and self.request is not None
        encoder = self.surface.encoder(self.request)
        events = events_from_response(self.codec.parse(native))
        return b"".join(encoder.feed(e) for e in events) + encoder.finish()


@dataclass(slots=True)
class CompatStep(PlannedStep):
    surface: str = ""
    vary: dict[str, Any] | None = None  # the client's own body: part of the cache key (SPEC §12)
    credential: tuple[bytes, bytes] | None = None  # the client's provider key, in the target's header
    answer: Answer | None = None
    destination: Target | None = None  # (PlannedStep.target is the index in the route's targets)


def client_credential(headers: list[tuple[bytes, bytes]], gateway_token: str | None) -> str | None:
    """The provider key the client sent (OpenAI SDK: ``Authorization``, Anthropic SDK: ``x-api-key``).

    None when it sent none, or sent the gateway token there (Cloudflare allows that when the
    gateway holds the provider keys): then the configured key is injected.
    """
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            key = value[7:].decode("latin-1").strip()
        elif name in (b"x-api-key", b"x-goog-api-key", b"api-key"):
            key = value.decode("latin-1").strip()
        else:
            continue
        if key and key != gateway_token:
            return key
    return None


class Planner:
    """Builds the steps of one ``/compat`` request; holds only configuration."""

    def __init__(self, providers: ProviderRegistry, routes: Mapping[str, Route]) -> None:
        self.providers = providers
        self.routes = routes

    def plan(self, surface: Surface, kind: str, body: dict[str, Any], key: str | None) -> list[CompatStep]:
        targets = resolve(body.get("model"), self.providers, self.routes)
        parsed: list[ir.Request] = []

        def request(target: Target) -> ir.Request:
            if not parsed:  # parsed once, for the first target that needs a translation
                parsed.append(surface.parse(body, target.name))
            return parsed[0]

        build = {"generate": self._generate, "count_tokens": self._count_tokens, "embeddings": self._embeddings}[kind]
        steps: list[CompatStep] = []
        refusal: BadCompatRequest | None = None
        for target in targets:
            try:
                step = build(surface, target, body, request)
            except BadCompatRequest as exc:
                if target.route is None:
                    raise
                refusal = refusal or exc
                continue
            # The cache canonicalises ``vary`` only when caching applies to the request.
            step.surface, step.vary, step.destination = surface.name, body, target
            step.route, step.target, step.model = target.route, target.index, target.model
            if target.alias is not None:
                step.headers = [*step.headers, (b"cf-aig-byok-alias", target.alias.encode())]
            if key is not None:
                provider = target.provider
                step.credential = (provider.auth_header.encode(), provider.credential_value(key).encode("latin-1"))
            steps.append(step)
        if not steps:
            assert refusal is not None
            raise refusal
        return steps

    # -- per endpoint ---------------------------------------------------------------------------------

    @staticmethod
    def _step(target: Target, path: str, body: dict[str, Any], query: bytes = b"") -> CompatStep:
        # accept-encoding identity: the relay reads the answer, so it must not arrive compressed.
        headers = [(b"accept-encoding", b"identity")]
        return CompatStep(target.name, path, query or target.query, headers, _json.dumps(body))

    def _generate(
        self, surface: Surface, target: Target, body: dict[str, Any], request: Callable[[Target], ir.Request]
    ) -> CompatStep:
        wire = target.wire
        if surface.native == wire or (surface is RESPONSES and target.native_responses):
            endpoint = {"openai": "chat", "anthropic": "messages", "responses": "responses"}[surface.native]
            step = self._step(target, target.path(endpoint), {**body, "model": target.model})  # type: ignore[arg-type]
            step.answer = Answer(surface, passthrough=True)
            return step
        req = request(target)
        codec = CODECS[wire]
        if wire == "openai":
            native = openai_chat_target.build_request(
                req,
                target.model,
                target.name,
                completion_tokens=target.name in _OPENAI_NATIVE,
                stream_usage=target.provider.stream_usage,
                top_k=target.name not in _OPENAI_NATIVE,
            )
            step = self._step(target, target.path("chat"), native)
        elif wire == "anthropic":
            step = self._step(
                target, target.path("messages"), anthropic_target.build_request(req, target.model, target.name)
            )
        else:
            method = "streamGenerateContent" if req.stream else "generateContent"
            query = b"alt=sse" if req.stream else b""
            step = self._step(target, target.gemini_path(method), gemini.build_request(req, target.name), query)

        def convert(native: dict[str, Any]) -> dict[str, Any]:
            return surface.render(codec.parse(native))

        step.answer = Answer(surface, passthrough=False, convert=convert, codec=codec, request=req)
        return step

    def _count_tokens(
        self, surface: Surface, target: Target, body: dict[str, Any], request: Callable[[Target], ir.Request]
    ) -> CompatStep:
        if target.wire == "anthropic":
            step = self._step(target, target.path("count_tokens"), {**body, "model": target.model})
            step.answer = Answer(surface, passthrough=True)
            return step
        if target.wire != "gemini":
            raise refuse("count_tokens", target.name, "OpenAI-compatible APIs have no token counting endpoint")
        native = gemini.count_tokens_request(request(target), target.model, target.name)
        step = self._step(target, target.gemini_path("countTokens"), native)
        step.answer = Answer(MESSAGES, passthrough=False, convert=_count_tokens_answer)
        return step

    def _embeddings(
        self, surface: Surface, target: Target, body: dict[str, Any], request: Callable[[Target], ir.Request]
    ) -> CompatStep:
        if target.wire == "openai":
            step = self._step(target, target.path("embeddings"), {**body, "model": target.model})
            step.answer = Answer(surface, passthrough=True)
            return step
        if target.wire != "gemini":
            raise refuse("embeddings", target.name, "it has no embeddings API")
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
            raise bad(
                "input", f"expected a string or an array of strings (token arrays do not translate to {target.name})"
            )
        dimensions = body.get("dimensions")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
            raise bad("dimensions", "expected an integer")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise bad("encoding_format", "expected float or base64")
        extra = set(body) - {"model", "input", "dimensions", "encoding_format", "user"}
        if extra:
            raise refuse(sorted(extra)[0], target.name)
        native = gemini.embed_request(inputs, target.model, dimensions)
        step = self._step(target, target.gemini_path("batchEmbedContents"), native)
        model = target.model

        def convert(answer: dict[str, Any]) -> dict[str, Any]:
            return _embeddings_answer(answer, model, encoding == "base64")

        step.answer = Answer(surface, passthrough=False, convert=convert)
        return step


def _count_tokens_answer(native: dict[str, Any]) -> dict[str, Any]:
    total = native.get("totalTokens")
    return {"input_tokens": total if isinstance(total, int) else 0}


def _embeddings_answer(native: dict[str, Any], model: str, as_base64: bool) -> dict[str, Any]:
    data = []
    for i, item in enumerate(native.get("embeddings") or ()):
        values = item.get("values") if isinstance(item, dict) else None
        vector = [float(v) for v in values] if isinstance(values, list) else []
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    # Gemini reports no token counts for embeddings: zero, as OpenAI's schema requires numbers.
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
