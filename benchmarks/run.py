#!/usr/bin/env python3
"""One-command benchmark: the gateway's variants against direct nginx and the bare proxies.

    python benchmarks/run.py                       # the default set, c=1 and c=64
    python benchmarks/run.py router bare-aiohttp   # a subset
    DURATION=5 ROUNDS=1 python benchmarks/run.py   # quicker
    STREAM=1 python benchmarks/run.py              # streamed chat completions (20 SSE chunks)
    python benchmarks/run.py --write-readme        # also rewrite the table in benchmarks/README.md
    python benchmarks/run.py full@b85f83a full     # before/after: a variant at another git revision
    python benchmarks/run.py bare-aiohttp full litellm   # LiteLLM from the harness's /tmp/venv-litellm
    python benchmarks/run.py full full-w2          # a variant under 2 uvicorn workers

Uses the shared harness in ``../shared/bench`` (nginx fake upstream, ``bare_proxy.py``, the wrk
driver ``bench.py`` with ``post.lua``); that folder is read-only, so nginx runs from a copy in
``benchmarks/run/``. Every server is started here (1 uvicorn worker, httptools, uvloop, no
access log — the same settings as the bare proxies), measured interleaved, and stopped.
Loopback only. Run by hand, never in CI: numbers on a shared 2-core machine drift between runs,
so compare targets within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The harness sits next to the checkout (../shared/bench); from a worktree under /work/wt/NAME it
# is two levels up.
_NEXT_TO = next((p for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "bench").is_dir()), ROOT.parent)
SHARED = Path(os.environ.get("SHARED_BENCH", _NEXT_TO / "shared" / "bench")).resolve()
RUN = ROOT / "benchmarks" / "run"
UPSTREAM_PORT = 9100
REDIS_PORT = 6399
PORTS = {"bare-httpx": 9150, "bare-aiohttp": 9151}
LITELLM_PORT = 9200
LITELLM_VENV = Path(os.environ.get("LITELLM_VENV", "/tmp/venv-litellm"))
# The harness's bench key (litellm/start.sh): loopback only, LiteLLM refuses to start without one.
LITELLM_KEY = "sk-bench-loopback-only-7f3a9c2e5b1d4e6f8a0b2c4d"
VARIANT_PORT0 = 9300
DEFAULT = [
    "direct",
    "bare-httpx",
    "bare-aiohttp",
    "router",
    "router-httpx",
    "router-httpx-aiohttp",
    "gateway-off",
    "auth",
    "ratelimit-memory",
    "ratelimit-redis",
    "telemetry",
    "cache-hit",
    "cache-hit-redis",
    "full",
]
AUTH_TOKEN = "bench-gateway-token-0123456789"


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Procs:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        log = open(RUN / f"{name}.log", "wb")  # the child keeps it open; closed at exit
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=log)
        self.procs.append((name, proc))
        wait_port(port)
        print(f"started {name} (pid {proc.pid}) on :{port}")

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            proc.send_signal(signal.SIGQUIT if name == "upstream" else signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def uvicorn_cmd(
    app: str, port: int, *, factory: bool = False, app_dir: Path | None = None, workers: int = 1
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--no-server-header",
        "--no-date-header",
        "--backlog",
        "4096",
        "--timeout-keep-alive",
        "300",
    ]
    if factory:
        cmd.append("--factory")
    if app_dir is not None:
        cmd += ["--app-dir", str(app_dir)]
    return cmd


def checkout(rev: str) -> Path:
    """The package as it was at ``rev`` (a git revision), exported under ``benchmarks/run/``.

    For before/after numbers in one run: ``full@<rev>`` runs that revision's gateway and
    ``benchmarks/apps.py`` from there (the cwd comes first on ``sys.path``), with this venv.
    """
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True)
    where = RUN / f"rev-{sha.stdout.strip()}"
    if not where.exists():
        where.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", rev, "aigw_asgi", "benchmarks"], cwd=ROOT, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    # The variants write their SQLite logs under benchmarks/run/ (git-ignored, so not archived):
    # without it the store fails and the revision measures no log writes at all.
    (where / "benchmarks" / "run").mkdir(parents=True, exist_ok=True)
    return where


def start_litellm(procs: Procs) -> str:
    """The LiteLLM proxy of the shared harness (its own virtualenv, never a dependency of ours).

    Started as ``litellm/start.sh`` does (1 worker, no DB, no callbacks, remote fetches kept
    local), but from here: the harness folder is read-only and start.sh writes next to it.
    Returns its version, for the README's comparison.
    """
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        raise SystemExit(f"no {exe}: run ../shared/bench/setup.sh (builds /tmp/venv-litellm)")
    version = subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if port_open(LITELLM_PORT):
        print(f"litellm: already running on :{LITELLM_PORT}, reusing it")
        return version
    nourl = f"http://127.0.0.1:{UPSTREAM_PORT}/__no_remote_fetch__"
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and not k.startswith(("REDIS_", "DATABASE"))}
    env.update(
        LITELLM_LOG="ERROR",
        LITELLM_MODE="PRODUCTION",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="True",
        LITELLM_LOCAL_BLOG_POSTS="True",
        LITELLM_LOCAL_POLICY_TEMPLATES="True",
        LITELLM_LOCAL_AUTOROUTER_PRESETS="True",
        LITELLM_MODEL_COST_MAP_URL=nourl,
        LITELLM_BLOG_POSTS_URL=nourl,
        LITELLM_ANTHROPIC_BETA_HEADERS_URL=nourl,
        LITELLM_AUTOROUTER_PRESETS_URL=nourl,
        LITELLM_DONT_SHOW_FEEDBACK_BOX="true",
        LITELLM_TELEMETRY="False",
        DISABLE_ADMIN_UI="True",
        NO_DOCS="True",
        NO_REDOC="True",
        LITELLM_MASTER_KEY=LITELLM_KEY,
    )
    cmd = [str(exe), "--config", str(SHARED / "litellm" / "config.yaml"), "--host", "127.0.0.1"]
    cmd += ["--port", str(LITELLM_PORT), "--num_workers", "1"]
    log = open(RUN / "litellm.log", "wb")
    proc = subprocess.Popen(cmd, cwd=SHARED / "litellm", env=env, stdout=log, stderr=log)
    procs.procs.append(("litellm", proc))
    wait_port(LITELLM_PORT, timeout=120)  # its import takes a while
    print(f"started litellm {version} (pid {proc.pid}) on :{LITELLM_PORT}")
    return version


def start_upstream(procs: Procs) -> None:
    if port_open(UPSTREAM_PORT):
        print("upstream: already running on :9100, reusing it")
        return
    dest = RUN / "upstream"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SHARED / "upstream", dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (dest / "run" / "tmp").mkdir(parents=True, exist_ok=True)
    procs.start(
        "upstream",
        ["nginx", "-p", f"{dest}/", "-e", f"{dest}/run/error.log", "-c", "nginx.conf", "-g", "daemon off;"],
        UPSTREAM_PORT,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", default=DEFAULT)
    ap.add_argument("--write-readme", action="store_true", help="replace the results table in benchmarks/README.md")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing {tool}: apt-get install -y nginx-light wrk redis-server")
    sys.path.insert(0, str(ROOT))
    from benchmarks.apps import VARIANTS

    RUN.mkdir(parents=True, exist_ok=True)
    stream = os.environ.get("STREAM") == "1"
    procs = Procs()
    specs: list[str] = []
    try:
        start_upstream(procs)
        if any("redis" in t for t in args.targets):
            procs.start(
                "redis",
                ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                REDIS_PORT,
            )
        port = VARIANT_PORT0
        # nginx serves its SSE file on /v1/stream/... (it cannot read "stream": true from the body)
        path = "/v1/stream/chat/completions" if stream else "/v1/chat/completions"
        for target in args.targets:
            if target == "litellm":
                version = start_litellm(procs)
                # the harness's model names: gpt-4o-mini(-stream), mapped to the nginx upstream
                specs.append(f"litellm-{version}=http://127.0.0.1:{LITELLM_PORT}/v1/chat/completions")
            elif target == "direct":
                specs.append(f"direct=http://127.0.0.1:{UPSTREAM_PORT}{path}")
            elif target in PORTS:
                client = target.split("-", 1)[1]
                procs.start(
                    target,
                    uvicorn_cmd("bare_proxy:app", PORTS[target], app_dir=SHARED),
                    PORTS[target],
                    {"BARE_CLIENT": client, "UPSTREAM": f"http://127.0.0.1:{UPSTREAM_PORT}"},
                )
                specs.append(f"{target}=http://127.0.0.1:{PORTS[target]}{path}")
            elif target.partition("@")[0].removesuffix("-w2") in VARIANTS:
                # VARIANT-w2: the same app under 2 uvicorn worker processes (item 4: scaling)
                variant, _, rev = target.partition("@")
                workers = 2 if variant.endswith("-w2") else 1
                variant = variant.removesuffix("-w2")
                env = {
                    "BENCH_VARIANT": variant,
                    "BENCH_UPSTREAM": f"http://127.0.0.1:{UPSTREAM_PORT}",
                    "BENCH_REDIS": f"redis://127.0.0.1:{REDIS_PORT}/0",
                }
                cwd = checkout(rev) if rev else ROOT
                # every target its own log file (two servers on one SQLite file wait on each
                # other's locks), empty at the start whatever ran before
                tag = target.replace("@", "-at-")
                env["BENCH_TAG"] = tag
                for db in (cwd / "benchmarks" / "run").glob(f"bench-{tag}.db*"):
                    db.unlink()
                if rev:
                    env["PYTHONPATH"] = str(cwd)
                cmd = uvicorn_cmd("benchmarks.apps:make", port, factory=True, workers=workers)
                procs.start(target, cmd, port, env, cwd)
                specs.append(f"{target}=http://127.0.0.1:{port}/openai{path}")
                port += 1
            else:
                raise SystemExit(
                    f"unknown target {target!r}: direct, bare-httpx, bare-aiohttp, litellm, {', '.join(VARIANTS)}"
                )
        out = RUN / ("results-stream" if stream else "results")
        # Every target gets the gateway token in cf-aig-authorization: the variants with auth on
        # need it, the rest forward it (nginx ignores it), so every target does the same work.
        cmd = [
            sys.executable,
            str(SHARED / "bench.py"),
            *specs,
            "--out",
            str(out),
            # LiteLLM wants its key in Authorization; then every target gets it (the gateway and
            # the bare proxies forward it, nginx ignores it), so every target does the same work.
            "--auth",
            LITELLM_KEY if "litellm" in args.targets else "",
            "--header",
            f"cf-aig-authorization: Bearer {AUTH_TOKEN}",
        ]
        if stream:
            cmd += ["--body", str(SHARED / "chat_body_stream.json")]
        subprocess.run(cmd, check=True, cwd=SHARED)
    finally:
        procs.stop_all()
    if args.write_readme:
        write_readme(out / "results.md", stream)
    return 0


def write_readme(results: Path, stream: bool) -> None:
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text()
    marker = "STREAM" if stream else "CHAT"
    start, end = f"<!-- {marker} RESULTS START -->", f"<!-- {marker} RESULTS END -->"
    table = results.read_text().strip()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    stamp = time.strftime("%Y-%m-%d")
    readme.write_text(f"{head}{start}\n_Measured {stamp}:_\n\n{table}\n{end}{tail}")
    print(json.dumps({"readme": str(readme), "section": marker}))


if __name__ == "__main__":
    raise SystemExit(main())
