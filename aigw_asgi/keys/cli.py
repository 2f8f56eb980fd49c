"""``aigw keys create|list|revoke|rotate``: the operator's keys, without a running gateway.

Writes go straight to the key store the config names (``[keys] store``, else ``logs.store``),
exactly as the admin API writes them; running gateways pick changes up at their next refresh
(within ``keys.refresh_ms``). The secret of a new or rotated key is printed once, on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import GatewayError
from .model import GatewayKey
from .service import KeyService
from .store import make_key_store, store_url


def add_parser(sub: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config (default: $AIGW_CONFIG, else embedded defaults)")
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    keys = sub.add_parser("keys", help="create, list, revoke or rotate gateway keys")
    verbs = keys.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", parents=[common], help="issue a key (its secret is printed once)")
    create.add_argument("name")
    create.add_argument("--expires-at", help="ISO 8601 time (UTC when no zone is given)")
    create.add_argument("--providers", help="comma-separated providers the key may use (default: all)")
    create.add_argument("--models", help="comma-separated model globs the key may use, e.g. 'gpt-4o*,claude-*'")
    create.add_argument("--rate-limit", help="LIMIT/SECONDS, e.g. 100/60")
    create.add_argument("--rate-unit", choices=("requests", "tokens"), default="requests")
    create.add_argument("--budget-usd", type=float, help="spend budget in USD")
    create.add_argument("--budget-period", choices=("day", "week", "month", "total"), default="month")
    create.add_argument("--metadata", help="a flat JSON object kept with the key")
    listing = verbs.add_parser("list", parents=[common], help="list keys (prefixes only, never secrets)")
    listing.add_argument("--status", choices=("active", "expired", "revoked"))
    revoke = verbs.add_parser("revoke", parents=[common], help="revoke a key by id or name")
    revoke.add_argument("key")
    rotate = verbs.add_parser(
        "rotate", parents=[common], help="give a key a new secret (printed once); the old one stops working"
    )
    rotate.add_argument("key")
    for parser in (create, listing, revoke, rotate):
        parser.set_defaults(func=handler)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"name": args.name}
    if args.expires_at:
        body["expires_at"] = args.expires_at
    if args.providers:
        body["allowed_providers"] = [p.strip() for p in args.providers.split(",") if p.strip()]
    if args.models:
        body["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.rate_limit:
        limit, _, period = args.rate_limit.partition("/")
        try:
            body["rate_limit"] = {"limit": int(limit), "period": int(period), "unit": args.rate_unit}
        except ValueError:
            raise GatewayError("rate_limit: expected LIMIT/SECONDS, e.g. 100/60") from None
    if args.budget_usd is not None:
        body["budget"] = {"usd": args.budget_usd, "period": args.budget_period}
    if args.metadata:
        try:
            body["metadata"] = json.loads(args.metadata)
        except ValueError:
            raise GatewayError("metadata: expected a JSON object") from None
    return body


def _line(key: GatewayKey, now: float) -> str:
    data = key.to_dict(now)
    budget = f"${key.budget.usd:g}/{key.budget.period}" if key.budget else "-"
    models = ",".join(key.allowed_models) if key.allowed_models is not None else "*"
    return f"{key.id}  {key.name:<20}  {key.prefix}…  {data['status']:<8}  models={models}  budget={budget}"


async def _run(config: Config, args: argparse.Namespace) -> int:
    url = store_url(config.keys.store, config.logs.store)
    if url.startswith("memory://"):
        print("aigw: keys would live in memory and vanish: set logs.store or [keys] store", file=sys.stderr)
        return 2
    store = make_key_store(url, config.gateway.id)
    service = KeyService(store, config.gateway.id, reserved_names=frozenset(t.name for t in config.gateway.tokens))
    now = service.clock()
    try:
        if args.verb == "create":
            key, secret = await service.create(_body(args))
            _show(args, key, now, secret)
        elif args.verb == "rotate":
            key, secret = await service.rotate((await service.find(args.key)).id)
            _show(args, key, now, secret)
        elif args.verb == "revoke":
            _show(args, await service.revoke((await service.find(args.key)).id), now)
        else:
            keys = await service.list(args.status)
            if args.json:
                print(json.dumps([k.to_dict(now) for k in keys], indent=2))
            else:
                for key in keys:
                    print(_line(key, now))
    except GatewayError as exc:
        print(f"aigw: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.aclose()
    return 0


def _show(args: argparse.Namespace, key: GatewayKey, now: float, secret: str | None = None) -> None:
    data = key.to_dict(now)
    if secret is not None:
        data["key"] = secret
    if args.json:
        print(json.dumps(data, indent=2))
        return
    print(_line(key, now))
    if secret is not None:
        print(secret)
        print("(the key is shown only now: store it safely)", file=sys.stderr)


def run(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_run(config, args))
