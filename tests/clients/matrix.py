"""Render docs/clients.md, the official-client matrix, from the cases and a test results file.

    AIGW_CLIENTS_RESULTS=/tmp/clients.json python -m pytest -q tests/clients
    python -m tests.clients.matrix /tmp/clients.json --write      # rewrites docs/clients.md

Every row is a `cases.Case`, so the page states exactly what the tests assert; the results file
(written by tests/clients/conftest.py) says which of them passed. ``test_matrix.py`` checks that
the committed page is this rendering with every case passing, so the page can never claim more
than the tests prove, nor go stale when a case is added.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tests.clients.cases import CASES, TOKENS, Case

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"

HEADER = """\
# Official clients

Each provider's own SDK works against the gateway by changing only its base URL to
`http://GATEWAY/{provider}` (plus the `cf-aig-*` headers you want). This page is generated from
the client matrix in `tests/clients/`: every row below is one SDK call made through a real
`aigw serve` against a fake provider that speaks that provider's wire format, and the test
asserts each column:

- **provider path**: the one request the provider received, at the path the SDK would have used
  without the gateway (the version segment never doubled, SDK layouts such as Azure's rewritten);
- **credential**: the single credential header that arrived (the client's own key, passed through);
- the SDK parsed the provider's answer (stream and non-stream);
- the **log row** (read back with `GET /admin/logs`): provider, model, tokens, and a cost computed
  from the price table;
- **cache**: the identical repeat is answered from the cache (`cf-aig-cache-status: HIT`, row
  cost 0) and never reaches the provider.

SDK versions are those the `test` extra in `pyproject.toml` installs. Regenerate after changing
a case or the SDKs:

```console
$ AIGW_CLIENTS_RESULTS=/tmp/clients.json python -m pytest -q tests/clients
$ python -m tests.clients.matrix /tmp/clients.json --write
```

`GW` below is the gateway's URL (`http://127.0.0.1:8787`), `V` an Azure `api_version`.
"""

FOOTER = """\
## Notes

- **Azure OpenAI**: every layout the `AzureOpenAI` client builds works: `azure_endpoint` (with
  or without `azure_deployment`), `base_url` naming the deployment (the SDK then appends
  `deployments/{model}`; the deployment in `base_url` wins, as it does against Azure), and the
  v1 API through the plain `OpenAI` client at `…/azure-openai/{resource}/openai/v1`. All of them
  reach the same upstream URL and share cache entries. See [providers.md](providers.md).
- **groq**: the groq SDK calls `{base_url}/openai/v1/…`; the gateway does not double Groq's
  `/openai/v1` base.
- **Hugging Face**: `InferenceClient(base_url=GW + "/huggingface")` is the Inference Providers
  router's OpenAI-compatible API (`/v1/chat/completions`); `InferenceClient(model=GW +
  "/huggingface/{model id}")` is HF Inference (text generation, feature extraction), which reports
  no token counts.
- **Replicate**: token counts come from a finished prediction's `metrics`. `replicate.stream()`
  reads the prediction's `urls.stream`, an absolute URL on Replicate's streaming host, so it does
  not pass through the gateway. With a gateway-wide cache TTL, polling `GET
  /replicate/v1/predictions/{id}` is cached like any GET: poll with `cf-aig-skip-cache: true`, or
  let `run()` wait (`Prefer: wait`).
- **Ollama**: the native API (`ollama.Client`) and the OpenAI-compatible `/v1` are both
  accounted; `/v1` is read in OpenAI's format and its streams get `include_usage`.
- **Uploads** (`audio.transcriptions.create`): the row's model is the form's `model` field, and
  the cache keys the form's parts, not its random boundary, so the same upload twice is a HIT.
"""

COLUMNS = "| call | stream | gateway path → provider path | credential | row model | tokens in / out | cost | cache | |"
PROVIDER_TITLES = {
    "openai": "OpenAI",
    "azure-openai": "Azure OpenAI",
    "anthropic": "Anthropic",
    "groq": "Groq",
    "mistral": "Mistral",
    "google-ai-studio": "Google AI Studio (Gemini)",
    "cohere": "Cohere",
    "huggingface": "Hugging Face",
    "replicate": "Replicate",
    "ollama": "Ollama",
}


def _tokens(case: Case) -> str:
    if case.tokens == (None, None):
        return "not reported"
    shown = ["—" if t is None else str(t) for t in case.tokens]
    return " / ".join(shown) if case.tokens != TOKENS else "10 / 5"


def _status(case: Case, results: dict[str, Any]) -> str:
    result = results.get(case.id)
    return "✅" if result and result.get("passed") else "❌ failed or not run"


def render(results: dict[str, Any]) -> str:
    """The whole page for ``results`` (case id -> {"passed": …}, as conftest.py writes them)."""
    out = [HEADER]
    by_provider: dict[str, list[Case]] = {}
    for case in CASES.values():
        by_provider.setdefault(case.provider, []).append(case)
    for provider, cases in by_provider.items():
        out.append(f"## {PROVIDER_TITLES.get(provider, provider)}\n")
        clients = list(dict.fromkeys(c.client for c in cases))
        numbered = len(clients) > 1
        for n, client in enumerate(clients, 1):
            out.append(f"- {f'({n}) ' if numbered else ''}`{client}`")
        out.append("")
        out.append(COLUMNS)
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for case in cases:
            via = f" via ({clients.index(case.client) + 1})" if numbered else ""
            paths = f"`{case.gateway_path}` → `{case.upstream_path}`"
            note = f"<br>{case.note}" if case.note else ""
            out.append(
                f"| `{case.call}`{via}{note} | {'yes' if case.stream else 'no'} | {paths} | "
                f"`{case.credential}` | `{case.model}` | {_tokens(case)} | {'yes' if case.cost else 'no'} | "
                f"{'HIT' if case.cache else 'not cached'} | {_status(case, results)} |"
            )
        out.append("")
    out.append(FOOTER)
    return "\n".join(out)


def all_passed() -> dict[str, Any]:
    return {case_id: {"passed": True} for case_id in CASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the JSON file AIGW_CLIENTS_RESULTS named")
    parser.add_argument("--write", action="store_true", help=f"write {DOC} instead of printing")
    args = parser.parse_args(argv)
    page = render(json.loads(Path(args.results).read_text()))
    if args.write:
        DOC.write_text(page)
    else:
        sys.stdout.write(page)
    missing = sorted(set(CASES) - set(json.loads(Path(args.results).read_text())))
    if missing:
        print(f"not passed: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
