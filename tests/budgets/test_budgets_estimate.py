"""Worst case before, real cost after (budgets/estimate.py)."""

from __future__ import annotations

import pytest

from aigw_asgi.budgets.estimate import max_output_tokens, real_cost, worst_case
from aigw_asgi.context import Attempt, RequestContext, Usage
from aigw_asgi.options import CustomCost
from aigw_asgi.telemetry.cost import Price, PriceTable

PRICE = Price(input=1e-6, output=2e-6)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 50, "max_tokens": 80}, 80),  # both: the larger bounds it
        ({"max_output_tokens": 64}, 64),  # Responses API
        ({"max_tokens": 100, "n": 3}, 300),
        ({"generationConfig": {"maxOutputTokens": 30, "candidateCount": 2}}, 60),  # Gemini
        ({"options": {"num_predict": 12}}, 12),  # Ollama
        ({"options": {"num_predict": -1}}, 4096),  # Ollama's "unlimited": the configured cap
        ({"parameters": {"max_new_tokens": 7}}, 7),  # Hugging Face
        ({"max_tokens": True}, 4096),
        ({"max_tokens": "100"}, 4096),
        ({}, 4096),
        ([1, 2], 4096),
        ({"n": 10_000, "max_tokens": 1}, 128),  # n is bounded
    ],
)
def test_max_output_tokens(body, expected: int) -> None:
    assert max_output_tokens(body, 4096) == expected


def test_worst_case_counts_every_byte_as_a_token() -> None:
    body = b'{"model":"m","max_tokens":10}'
    worst = worst_case(body, {"max_tokens": 10}, PRICE, None, 4096)
    assert worst.usd == pytest.approx(len(body) * 1e-6 + 10 * 2e-6) and worst.output_tokens == 10


def test_worst_case_with_custom_costs_and_without_a_price() -> None:
    body = b"x" * 100
    assert worst_case(body, {}, None, None, 10).usd is None
    assert worst_case(body, {}, None, CustomCost(total_cost=0.5), 10).usd == 0.5
    custom = CustomCost(per_token_in=1e-5, per_token_out=1e-4)
    assert worst_case(body, {}, None, custom, 10).usd == pytest.approx(100 * 1e-5 + 10 * 1e-4)
    assert worst_case(body, {}, None, CustomCost(per_token_in=1e-5), 10).usd is None  # output unpriced
    assert worst_case(body, {}, PRICE, CustomCost(per_token_out=1e-4), 10).usd == pytest.approx(100e-6 + 1e-3)


def ctx(**fields) -> RequestContext:
    made = RequestContext(gateway_id="gw", method="POST", path="/openai/chat/completions", headers=[])
    made.provider, made.model = "openai", "m"
    for name, value in fields.items():
        setattr(made, name, value)
    return made


PRICES = PriceTable({"m": Price(1e-6, 2e-6)}, builtin=False)  # type: ignore[dict-item]


def test_real_cost_is_the_logged_cost() -> None:
    done = ctx(status_code=200, usage=Usage(10, 5))
    assert real_cost(done, PRICES, reserved=1.0, events=0) == pytest.approx(10e-6 + 10e-6)
    stream = ctx(status_code=200, usage=Usage(10, 5), stream=True, stream_complete=True)
    assert real_cost(stream, PRICES, reserved=1.0, events=99) == pytest.approx(20e-6)  # events ignored: usage known


def test_a_cut_stream_is_charged_what_it_used() -> None:
    body = b"x" * 400
    # OpenAI-style: no usage at all before the cut: input from the body, output from the events seen.
    cut = ctx(status_code=200, stream=True, stream_complete=False, body=body)
    assert real_cost(cut, PRICES, reserved=1.0, events=7) == pytest.approx(100 * 1e-6 + 7 * 2e-6)
    # Anthropic-style: input reported at the start, output only at the end.
    anthropic = ctx(status_code=200, stream=True, usage=Usage(tokens_in=12, tokens_out=1), body=body)
    assert real_cost(anthropic, PRICES, reserved=1.0, events=9) == pytest.approx(12e-6 + 9 * 2e-6)


def test_answers_without_usage() -> None:
    assert real_cost(ctx(status_code=200), PRICES, reserved=0.25, events=0) == 0.25  # charged its reservation
    assert real_cost(ctx(status_code=502), PRICES, reserved=0.25, events=0) == 0.0
    assert real_cost(ctx(status_code=None), PRICES, reserved=0.25, events=0) == 0.0
    unpriced = ctx(status_code=200, usage=Usage(10, 5))
    unpriced.model = "unknown-model"
    assert real_cost(unpriced, PRICES, reserved=0.0, events=0) == 0.0


def test_retried_attempts_count_too() -> None:
    done = ctx(status_code=200, usage=Usage(10, 5))
    done.attempts.append(
        Attempt("l", 0, 1, "openai", "m", 500, 0.0, 1.0, None, "boom", "500", Usage(tokens_in=3, tokens_out=0))
    )
    assert real_cost(done, PRICES, reserved=1.0, events=0) == pytest.approx(20e-6 + 3e-6)
