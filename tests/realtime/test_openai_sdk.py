"""The official openai SDK's realtime client, pointed at the gateway (the issue's "done when").

``client.realtime.connect()`` builds ``ws://gateway/openai/v1/realtime?model=…`` from the
client's ``base_url`` and sends its key as ``Authorization``; the gateway token rides along in
``default_headers``, or *is* the SDK's key when the gateway holds the provider key (BYOK).
"""

from __future__ import annotations

import math

import openai

from tests.realtime.conftest import session_rows
from tests.realtime.test_accounting import PRICES, expected_cost

TOKEN = "gw-sdk-token-0123456"
AUTH = {"authentication": True, "tokens": [{"name": "sdk", "token": TOKEN}]}


async def test_async_sdk_holds_a_session_through_the_gateway(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(gateway=AUTH, prices=PRICES)
    client = openai.AsyncOpenAI(
        base_url=f"{server.url}/openai/v1",
        api_key="sk-sdk-client",
        default_headers={"cf-aig-authorization": f"Bearer {TOKEN}"},
        max_retries=0,
    )
    seen: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(session={"type": "realtime", "instructions": "be brief"})
        await connection.response.create()
        async for event in connection:
            seen.append(event.type)
            if event.type == "response.done":
                assert event.response.usage is not None and event.response.usage.output_tokens == 34
                break
    await client.close()
    assert seen[0] == "session.created" and "session.updated" in seen
    assert seen.count("response.output_audio.delta") == 3
    session = fake.last
    assert session.path == "/v1/realtime" and session.query == {"model": ["gpt-realtime"]}
    assert session.headers["authorization"] == "Bearer sk-sdk-client"
    assert [e["type"] for e in session.events()] == ["session.update", "response.create"]
    (row,) = session_rows(server)
    assert row["token_name"] == "sdk" and row["model"] == "gpt-realtime" and row["success"] is True
    assert (row["tokens_in"], row["tokens_out"]) == (12, 34)
    assert math.isclose(row["cost"], expected_cost(1))


def test_sync_sdk_with_the_gateway_token_as_its_key(realtime_gateway, fake) -> None:
    """Cloudflare's BYOK pattern: the SDK's key is the gateway token, the gateway has the key."""
    _, server = realtime_gateway(gateway=AUTH, providers={"openai": {"api_key": "sk-stored-for-sdk"}})
    with openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=TOKEN, max_retries=0) as client:
        with client.realtime.connect(model="gpt-realtime") as connection:
            connection.response.create()
            for event in connection:
                if event.type == "response.done":
                    break
    assert fake.last.headers["authorization"] == "Bearer sk-stored-for-sdk"
    (row,) = session_rows(server)
    assert row["token_name"] == "sdk" and row["tokens_out"] == 34
