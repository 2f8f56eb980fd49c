"""StepRunner: runs a universal plan as internal requests through the inner stack (SPEC §5).

Each planned step runs as an internal HTTP request through cache → rate limit → router, exactly
as if the client had sent it to ``/{provider}/{endpoint}``: same provider data, BYOK keys, usage
extraction, caching and rate limits, each with its own child `RequestContext` (``parent`` set,
``step`` = its index) so telemetry writes one row per attempt of each step. Retries happen inside
each step (the router); a step that still fails — transport error, timeout, any non-2xx — hands
over to the next. Only the response *start* of a step is held back to decide: a 2xx (or the last
step's answer, whatever it is) is forwarded and its body streamed as it comes, so fallback can
never happen after the first byte reached the client.

It knows nothing about where plans come from: ``POST /`` (universal.py) and the WebSocket API's
``universal.create`` messages (websocket.py) both run through it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ._asgi import replay_receive
from .context import ErrorType, RequestContext
from .errors import GatewayError, UpstreamError, send_error
from .headers import set_headers
from .providers.registry import ProviderRegistry
from .routing.balance import Route, is_target_failure
from .steps import FRAMING, PlannedStep, expand, parse_steps
from .types import ASGIApp, Headers, Message, Receive, Scope, Send


@dataclass(slots=True)
class _Outcome:
    committed: bool = False  # the response start went to the client
    status: int | None = None


class StepRunner:
    """Runs planned steps as internal requests through ``app`` (the inner middleware stack)."""

    def __init__(self, app: ASGIApp, providers: ProviderRegistry, routes: Mapping[str, Route]) -> None:
        self.app = app
        self.providers = providers
        self.routes = routes

    def plan(self, payload: Any) -> list[PlannedStep]:
        """Validate a universal body (array or object) and expand it; raises `GatewayError`."""
        return expand(parse_steps(payload, self.providers, self.routes), self.routes)

    async def run_steps(
        self, parent: RequestContext, scope: Scope, plan: list[PlannedStep], receive: Receive, send: Send
    ) -> RequestContext:
        """Try ``plan`` in order and answer through ``send``; return the child that answered.

        ``scope`` is the parent's (its client, server and the client's headers are inherited);
        ``receive`` is only used to notice a client leaving. Exactly one response goes to
        ``send``: the first 2xx, else the last step's answer (an upstream error or a gateway
        error), with that step's ``cf-aig-*`` headers.
        """
        child = parent
        for i, step in enumerate(plan):
            last = i == len(plan) - 1
            child, child_scope = self._child(parent, scope, step, i)
            parent.children.append(child)
            outcome = await self._run_one(child, child_scope, step, last, receive, send)
            self._learn(step, child)
            if outcome.committed:
                break
        parent.adopt(child)
        return child

    def _child(
        self, parent: RequestContext, scope: Scope, step: PlannedStep, index: int
    ) -> tuple[RequestContext, Scope]:
        """The step's context and scope: the parent's, pointed at ``/{provider}/{endpoint}``."""
        headers = [h for h in parent.headers if h[0] not in FRAMING]
        framing: Headers = [(b"content-length", str(len(step.body)).encode())]
        if step.body:
            framing.append((b"content-type", b"application/json"))
        headers = set_headers(set_headers(headers, step.headers), framing)
        event_id = next((v.decode("latin-1") for k, v in step.headers if k == b"cf-aig-event-id"), parent.event_id)
        root = scope.get("root_path", "")
        child = RequestContext(
            gateway_id=parent.gateway_id,
            method=step.method,
            path=f"/{step.provider}/{unquote(step.path)}",
            headers=headers,
            client_ip=parent.client_ip,
            user_agent=parent.user_agent,
            request_id=parent.request_id,
            event_id=event_id,
            token_name=parent.token_name,
            gateway_token=parent.gateway_token,
            key=parent.key,
            model=step.model,
            step=index,
            parent=parent,
        )
        child.body = step.body  # already read: no layer below reads it from ``receive`` again
        child_scope = {
            **scope,
            "method": step.method,
            "path": f"{root}{child.path}",
            "raw_path": f"{quote(root)}/{step.provider}/{step.path}".encode(),
            "query_string": step.query_string,
            "headers": headers,
            "state": {**(scope.get("state") or {}), "aigw": child},
        }
        return child, child_scope

    async def _run_one(
        self, child: RequestContext, child_scope: Scope, step: PlannedStep, last: bool, receive: Receive, send: Send
    ) -> _Outcome:
        outcome = _Outcome()

        async def step_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
                if 200 <= message["status"] < 300 or last:
                    outcome.committed = True
                    await send(message)
            elif outcome.committed:
                await send(message)
            # else: the body of an answer we fall back from — dropped as it drains

        try:
            await self.app(child_scope, replay_receive(step.body, receive), step_send)
        except GatewayError as exc:
            if outcome.status is not None:
                raise  # the inner app had already answered: nothing sane left to say
            child.fail(exc)
            if last:
                await send_error(send, exc, child.response_headers())
                outcome.committed = True
        finally:
            if child.ended is None:
                child.ended = time.perf_counter()
        if outcome.status is None and child.error_type == ErrorType.CLIENT_DISCONNECT:
            outcome.committed = True  # the client left before an answer: no one to answer, nothing to try next
            return outcome
        if outcome.status is None and not outcome.committed and last:
            missing = UpstreamError("The step produced no answer")
            child.fail(missing)
            await send_error(send, missing, child.response_headers())
            outcome.committed = True
        return outcome

    @staticmethod
    def _learn(step: PlannedStep, child: RequestContext) -> None:
        """Feed a dynamic route's selector with how its target did (cache hits teach nothing)."""
        if step.route is None or step.target is None or child.cache_status == "HIT":
            return
        status = child.status_code
        if status is not None and 200 <= status < 300:
            end = child.first_byte or child.ended or time.perf_counter()
            step.route.selector.record_success(step.target, max(0.0, end - child.started))
        elif is_target_failure(status, child.error_code):
            step.route.selector.record_failure(step.target)
