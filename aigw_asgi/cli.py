"""``aigw serve | check-config | keys | --version``.

``serve`` runs the gateway under uvicorn (httptools + uvloop when present). The config is read
and validated in the parent first, so a bad key fails before any worker starts; workers then
build their own `Gateway` from the same file through `app_factory` (uvicorn's ``--factory``),
which is also why the path travels in ``AIGW_CONFIG``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from ._version import __version__
from .config import Config, ConfigError, load_config

logger = logging.getLogger("aigw_asgi")


def app_factory() -> object:
    from .gateway import Gateway
    from .telemetry.otlp import configure_from_env

    config = load_config()
    _redact_log_output(config)  # in each worker: handlers are per process
    _configure_protocol(config)  # in each worker, before it accepts a connection
    # In each worker process (export threads do not survive a fork): OTLP if OTEL_* asks for it.
    configure_from_env(config.telemetry)
    tune_gc(config.server.gc_threshold)
    if config.logs.writer == "auto":
        # A server of its own: SQLite log rows are redacted and written in a child process, off
        # this worker's interpreter lock (docs/telemetry.md). A host that mounts the gateway decides
        # for itself whether to run processes, so "auto" means a thread there.
        config.logs.writer = "process"
    return Gateway(config)


def tune_gc(threshold: int) -> None:
    """Collect the young generation every ``threshold`` allocations instead of every 700.

    With dozens of requests in flight, each young collection finds their contexts, bodies and
    parsed JSON alive and promotes them; the old generations then fill with short-lived objects
    and full collections follow. Collecting less often lets most of them die young (freed by
    reference counting, never traversed): measured +10-20 % requests/s and half the p99 at c=64
    (benchmarks/README.md). Cycles still get collected, 50,000 allocations later at most.
    """
    import gc

    if threshold:
        gc.set_threshold(threshold, 20, 20)


def _redact_log_output(config: Config) -> None:
    """Every log line this process prints passes the redactor, whoever logged it.

    On the handlers, not on a logger: a logger's filter does not apply to its children's records
    (uvicorn's and aiohttp's among them).
    """
    from .redact import RedactingFilter, Redactor, config_secrets

    if not logging.getLogger().handlers:
        logging.basicConfig(level=config.server.log_level.upper(), format="%(levelname)s:     %(message)s")
    redacting = RedactingFilter(Redactor(config_secrets(config)))
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)


def _configure_protocol(config: Config) -> None:
    from .server_protocol import ReadLimits, configure

    configure(
        ReadLimits(
            header_timeout_s=config.server.header_timeout_ms / 1000,
            body_timeout_s=config.gateway.body_timeout_ms / 1000,
            max_header_bytes=config.server.max_header_bytes,
        )
    )


def split_state(config: Config, workers: int) -> tuple[list[str], list[str]]:
    """What N worker processes would each keep on their own: ``(errors, warnings)``.

    SPEC §16: a limit on memory storage would be counted by every worker alone (``limit = 5``
    with two workers let 9 requests through, silently), so that is an error naming the keys (so
    are budgets, and keys, in memory: `split_per_worker`); a
    memory cache only costs hit rate (each worker fills its own), so that is a warning; so are
    memory logs (the admin API would show whichever worker answers).
    """
    if workers <= 1:
        return [], []
    errors: list[str] = []
    warnings: list[str] = []
    shared = 'a shared storage (rate_limit.storage = "redis://HOST:6379/0" or "redis+cluster://…")'
    r = config.rate_limit
    if r.storage.startswith("memory://"):
        keys = (["rate_limit.limit"] if r.limit else []) + [
            f"rate_limit.rules[{i}]" + (f" ({rule.name})" if rule.name else "") for i, rule in enumerate(r.rules)
        ]
        if keys:
            errors.append(
                f"{workers} workers with rate_limit.storage = memory:// would count {', '.join(keys)} once per "
                f"worker (up to {workers}x the limit); use {shared}, or one worker"
            )
    from .budgets.storage import split_per_worker

    errors += split_per_worker(config, workers)  # budgets and keys in memory://
    if config.cache.storage.startswith("memory://"):
        warnings.append(
            f"{workers} workers with cache.storage = memory://: each worker keeps its own cache (a response "
            'cached by one is a MISS on another); cache.storage = "redis://HOST:6379/0" shares it'
        )
    if config.logs.enabled and config.logs.store.startswith("memory://"):
        warnings.append(
            f"{workers} workers with logs.store = memory://: each worker keeps its own logs and the admin API "
            'shows one worker\'s; logs.store = "sqlite:///aigw.db" or "postgresql://…" shares them'
        )
    return errors, warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["AIGW_CONFIG"] = os.path.abspath(args.config)
    try:
        config: Config = load_config()
        preflight(config)
    except ConfigError as exc:
        print(f"aigw: invalid config: {exc}", file=sys.stderr)
        return 2
    host = args.host or config.server.host
    port = args.port or config.server.port
    workers = args.workers or config.server.workers
    errors, warnings = split_state(config, workers)
    if errors:
        for message in errors:
            print(f"aigw: invalid config: {message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.server.log_level.upper(), format="%(levelname)s:     %(message)s")
    _redact_log_output(config)
    for message in warnings:
        logger.warning("aigw: %s", message)
    if not _is_loopback(host) and not config.gateway.admin_token:
        logger.warning(
            "aigw: listening on %s without gateway.admin_token: the admin API answers loopback clients only",
            host,
        )
    if not _is_loopback(host) and not config.gateway.authentication:
        logger.warning("aigw: listening on %s with authentication = false: anyone who can reach it can use it", host)

    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - Windows
        loop = "asyncio"
    print(f"aigw {__version__}: gateway on http://{host}:{port}{config.gateway.mount_path}", file=sys.stderr)
    uvicorn.run(
        "aigw_asgi.cli:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop=loop,
        # uvicorn's httptools protocol plus deadlines for a request's head and body (slow clients).
        http="aigw_asgi.server_protocol:ReadDeadlineProtocol",
        log_level=config.server.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=config.server.proxy_headers,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=config.server.keep_alive_s,
        limit_concurrency=config.server.limit_concurrency or None,
        # Above the gateway's own caps, so an oversized WebSocket message reaches the gateway and
        # gets its error frame (2007) instead of the server closing the socket (1009).
        ws_max_size=ws_max_size(config),
    )
    return 0


def ws_max_size(config: Config) -> int:
    """The largest WebSocket message the server reads: above every cap the gateway applies itself.

    The WebSocket API refuses frames over its own cap (1 MiB) with an error frame (2007) and keeps
    the socket; realtime sessions close over ``realtime.max_frame_bytes`` with their own 1009 and
    log why. Only a message larger than this (at least 16 MiB, uvicorn's default, and the request
    body cap) is closed by the server itself, unread.
    """
    caps = (config.gateway.max_request_bytes, config.realtime.max_frame_bytes, 16 * 1024 * 1024)
    return max(caps) + 1024


def preflight(config: Config) -> None:
    """What a config can only get wrong against this machine or the registry; raises `ConfigError`.

    Run by ``check-config`` and before ``serve`` starts workers, so both fail the same way and
    before the first request (an unwritable log database would otherwise lose every row).
    """
    from .providers.registry import ProviderRegistry

    ProviderRegistry.from_config(config)
    logs = config.logs
    if logs.enabled and logs.store.startswith("sqlite:"):
        from .telemetry.stores.sqlite import sqlite_path

        problem = _unwritable(sqlite_path(logs.store))
        if problem:
            raise ConfigError(f"logs.store: {problem}")


def _unwritable(path: str) -> str | None:
    """Why SQLite could not write ``path`` (its directory too: the journal lives next to it), or None."""
    if path == ":memory:":
        return None
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    if os.path.isdir(full):
        return f"{full} is a directory"
    if not os.path.isdir(directory):
        return f"directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    if os.path.exists(full) and not os.access(full, os.R_OK | os.W_OK):
        return f"{full} is not writable"
    return None


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        preflight(config)
    except ConfigError as exc:
        print(f"aigw: invalid config: {exc}", file=sys.stderr)
        return 2
    errors, warnings = split_state(config, config.server.workers)
    if errors:
        for message in errors:
            print(f"aigw: invalid config: {message}", file=sys.stderr)
        return 2
    for message in warnings:
        print(f"aigw: warning: {message}", file=sys.stderr)
    print(f"{args.file}: ok (gateway {config.gateway.id!r}, {len(config.providers)} provider overrides)")
    return 0


def _keys(args: argparse.Namespace) -> int:
    """``aigw keys create|list|revoke|rotate``: straight to the key store the config names."""
    from .keys.cli import run

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"aigw: invalid config: {exc}", file=sys.stderr)
        return 2
    return run(config, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aigw", description="A self-hosted AI gateway.")
    parser.add_argument("--version", action="version", version=f"aigw-asgi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway under uvicorn")
    serve.add_argument("--config", help="TOML config (default: $AIGW_CONFIG, else embedded defaults)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8787)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1; use one per core)")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.set_defaults(func=_check)
    from .keys.cli import add_parser

    add_parser(sub, _keys)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
