"""The replicate SDK through ``aigw serve`` (issue 11 defect 7: usage from ``metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import replicate

from tests.clients.cases import CASES
from tests.clients.harness import Harness
from tests.fakes.extra import VERSIONS

KEY = "r8_clientkey"
VERSION = next(iter(VERSIONS))  # a version id of meta/meta-llama-3-8b-instruct


@pytest.fixture
def client(gw: Harness) -> Iterator[replicate.Client]:
    client = replicate.Client(api_token=KEY, base_url=f"{gw.url}/replicate")
    yield client
    client._client.close()  # the SDK has no close() of its own


def test_replicate_run(gw: Harness, client: replicate.Client) -> None:
    def call() -> str:
        output = client.run("meta/meta-llama-3-8b-instruct", input={"prompt": "replicate.run"})
        return "".join(output)  # type: ignore[call-overload]

    gw.check(CASES["replicate.run"], call, KEY)


def test_replicate_prediction_create_and_wait(gw: Harness, client: replicate.Client) -> None:
    def call() -> str:
        prediction = client.predictions.create(version=VERSION, input={"prompt": "replicate.create"})
        prediction.wait()
        assert prediction.status == "succeeded"
        return "".join(prediction.output)

    gw.check(CASES["replicate.predictions.create"], call, KEY)
