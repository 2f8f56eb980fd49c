"""What a request may cost before it runs, and what it did cost after (pure).

**Worst case** (what is reserved): every byte of the request body counted as one input token,
plus the most output the request allows, at the model's price (or the client's
``cf-aig-custom-cost`` rates, or its ``total_cost``). One token per byte is a true upper bound for
text under the byte-level BPE tokenizers providers use (a token is at least one byte; chat framing
costs fewer tokens than the JSON around it). The output bound is ``max_completion_tokens`` /
``max_output_tokens`` / ``max_tokens`` / Gemini's ``maxOutputTokens`` / Ollama's ``num_predict``
(times ``n`` or ``candidateCount``), else ``spend.max_output_tokens``.

**Real cost** (what is settled): the logged cost — usage × the price table, the custom cost —
summed over the request's attempts. Where the provider could not say (a stream cut before its
usage report, by the client leaving or the upstream breaking) it is estimated from what did
happen: input = the reported count, else body bytes / 4; output = the larger of the reported
count and the number of stream events the client received (providers stream about one token
per event). A 2xx answer that reports no usage at all is charged what it reserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..context import RequestContext, Usage
from ..errors import GatewayError
from ..options import CustomCost
from ..telemetry.cost import Price, PriceTable, compute_cost

MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class Worst:
    """The reservation: ``usd`` (``None`` when the model has no price) and the output bound used."""

    usd: float | None
    output_tokens: int


def _positive(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return int(math.ceil(value))


def max_output_tokens(body: Any, default: int) -> int:
    """The most output tokens ``body`` allows (every provider's field), else ``default``."""
    if not isinstance(body, dict):
        return default
    choices = _positive(body.get("n")) or 1
    found = [_positive(body.get(name)) for name in ("max_completion_tokens", "max_output_tokens", "max_tokens")]
    generation = body.get("generationConfig")
    if isinstance(generation, dict):
        found.append(_positive(generation.get("maxOutputTokens")))
        choices = max(choices, _positive(generation.get("candidateCount")) or 1)
    for nested, name in (("options", "num_predict"), ("parameters", "max_new_tokens")):
        inner = body.get(nested)
        if isinstance(inner, dict):
            found.append(_positive(inner.get(name)))
    bounds = [n for n in found if n is not None]
    return (max(bounds) if bounds else default) * min(choices, MAX_CHOICES)


def worst_case(body: bytes, parsed: Any, price: Price | None, custom: CustomCost | None, default_out: int) -> Worst:
    out_tokens = max_output_tokens(parsed, default_out)
    if custom is not None and custom.total_cost is not None:
        return Worst(custom.total_cost, out_tokens)
    rate_in = custom.per_token_in if custom is not None and custom.per_token_in is not None else None
    rate_out = custom.per_token_out if custom is not None and custom.per_token_out is not None else None
    if price is not None:
        rate_in = price.input if rate_in is None else rate_in
        rate_out = price.output if rate_out is None else rate_out
    if rate_in is None or rate_out is None:
        return Worst(None, out_tokens)
    return Worst(len(body) * rate_in + out_tokens * rate_out, out_tokens)


def custom_cost(ctx: RequestContext) -> CustomCost | None:
    try:
        return ctx.options.custom_cost
    except GatewayError:
        return None


def price_of(ctx: RequestContext, prices: PriceTable) -> Price | None:
    return prices.price_for(ctx.response_model, ctx.provider) or prices.price_for(ctx.model, ctx.provider)


def real_cost(ctx: RequestContext, prices: PriceTable, *, reserved: float, events: int) -> float:
    """What the request cost, in USD (see the module docstring); never ``None``."""
    custom = custom_cost(ctx)
    total = 0.0
    for attempt in ctx.attempts:  # retried attempts: normally errors, which report no usage
        cost, _ = compute_cost(attempt.usage, prices.price_for(attempt.model, attempt.provider), custom=custom)
        total += cost or 0.0
    usage = ctx.usage
    if ctx.stream and not ctx.stream_complete:
        usage = Usage(
            tokens_in=usage.tokens_in if usage.tokens_in is not None else math.ceil(len(ctx.body or b"") / 4),
            tokens_out=max(usage.tokens_out or 0, events),
            cached_tokens_in=usage.cached_tokens_in,
        )
    cost, _ = compute_cost(usage, price_of(ctx, prices), custom=custom)
    if cost is None:
        answered = ctx.status_code is not None and 200 <= ctx.status_code < 300
        cost = reserved if answered and not usage.known() else 0.0
    return total + cost
