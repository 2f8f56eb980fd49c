"""Paths and URLs over provider data (pure): canonical paths, joining to the upstream base, the
realtime endpoint, the model a path or body names. See registry.py's docstring for the rules."""

from __future__ import annotations

import functools
import re
from dataclasses import replace

from .spec import Provider

_HOST_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")  # {resource} segments become host names


def canonical_path(provider: Provider, path: str) -> str:
    """``path`` as the gateway's canonical layout: SDK layouts rewritten, the SDK root dropped.

    A provider with layouts accepts only those shapes: a path none of them matches is returned
    unchanged and `join_url` refuses it.
    """
    for layout in provider.layouts:
        rewritten = layout.rewrite(path)
        if rewritten is not None:
            return rewritten
    root = provider.sdk_root
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return path


def join_url(provider: Provider, path: str) -> tuple[str, dict[str, str]]:
    """The upstream URL for ``path`` (already validated, no leading slash) and the path params.

    Raises ``ValueError`` with a user-facing message when required path params are missing or
    not valid host labels (they become part of the upstream host name for Azure), or when no
    endpoint path is left (``POST /openai`` would otherwise call the bare base URL).
    """
    params: dict[str, str] = {}
    base = provider.base_url
    canonical = canonical_path(provider, path)
    if provider.path_params:
        parts = canonical.split("/", len(provider.path_params))
        unknown_layout = provider.layouts and not any(layout.pattern.match(path) for layout in provider.layouts)
        if unknown_layout or len(parts) <= len(provider.path_params) or not parts[-1]:
            raise ValueError(f"expected /{provider.name}/{'/'.join('{' + p + '}' for p in provider.path_params)}/...")
        for pname, value in zip(provider.path_params, parts, strict=False):
            if not _HOST_LABEL.match(value):
                raise ValueError(f"invalid {pname} in path")
            params[pname] = value
            base = base.replace("{" + pname + "}", value)
        canonical = parts[-1]
        deployment = _DEPLOYMENT.match(canonical)
        if deployment:
            params["deployment"] = deployment.group(1)
    if "{" in base:
        raise ValueError(f"provider {provider.name} is not configured (base_url has placeholders)")
    path = canonical
    prefix = provider.version_prefix
    if prefix:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) + 1 :]
        else:
            for alt in provider.alt_prefixes:
                if path.startswith(alt + "/") and len(path) > len(alt) + 1:
                    return base[: -len(prefix)] + path, params
    if not path:
        raise ValueError(f"no endpoint path after /{provider.name}")
    return f"{base}/{path}", params


_DEPLOYMENT = re.compile(r"^deployments/([A-Za-z0-9._-]+)/")


def realtime_endpoint(provider: Provider, path: str) -> tuple[str, dict[str, str]]:
    """The ws(s) URL of ``provider``'s realtime socket for ``path`` (validated, no leading slash).

    Returns the URL (without query) and the path params (Azure's resource, and the deployment
    when the path names one: Azure's realtime socket takes it as a query parameter). Raises
    ``ValueError`` with a user-facing message, like `join_url`.
    """
    realtime = provider.realtime
    if realtime is None:
        raise ValueError(f"provider {provider.name} has no realtime WebSocket")
    params: dict[str, str] = {}
    count = len(provider.path_params)
    if count:
        parts = canonical_path(provider, path).split("/", count)
        unknown_layout = len(parts) > count and not any(layout.pattern.match(path) for layout in provider.layouts)
        if len(parts) < count or not all(parts[:count]) or (provider.layouts and unknown_layout):
            raise ValueError(f"expected /{provider.name}/{'/'.join('{' + p + '}' for p in provider.path_params)}/...")
        for pname, value in zip(provider.path_params, parts, strict=False):
            if not _HOST_LABEL.match(value):
                raise ValueError(f"invalid {pname} in path")
            params[pname] = value
        path = parts[count] if len(parts) > count else ""
        deployment = _DEPLOYMENT.match(path)
        if deployment and "deployment" in realtime.path_query:
            params["deployment"] = deployment.group(1)
            path = path[deployment.end() :]
    else:
        path = canonical_path(provider, path)
    if realtime.url is not None:
        url = realtime.url  # configured: the one endpoint, whatever path the client named
    else:
        base = provider.base_url
        scheme, sep, rest = base.partition("://")
        root = realtime.root.replace("{base}", base).replace("{origin}", scheme + sep + rest.split("/", 1)[0])
        for pname, value in params.items():
            root = root.replace("{" + pname + "}", value)
        if "{" in root:
            raise ValueError(f"provider {provider.name} is not configured (base_url has placeholders)")
        path = path or realtime.path
        prefix = provider.version_prefix if realtime.root == "{base}" else ""  # only the REST base is versioned
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) + 1 :]
        url = f"{root}/{path}" if path else root
    if url.startswith("https://"):
        return "wss://" + url[8:], params
    if url.startswith("http://"):
        return "ws://" + url[7:], params
    return url, params


def relative_path(provider: Provider, path: str) -> str:
    """``path`` relative to the provider base: the same upstream URL always gives the same string.

    ``v1/chat/completions`` and ``chat/completions`` both reach ``{base}/chat/completions`` on a
    base ending in ``/v1``, and the groq SDK's ``openai/v1/…`` or an Azure SDK layout reach the
    same URL as the documented form, so caches key them alike.
    """
    path = canonical_path(provider, path)
    prefix = provider.version_prefix
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix) + 1 :]
    return path


def dialect(provider: Provider, path: str) -> Provider:
    """The provider as it speaks at ``path``: the OpenAI-format twin on its ``openai_paths``.

    Ollama's ``/v1/…`` answers in OpenAI's shape (``usage.prompt_tokens``, SSE ending in
    ``[DONE]``), not the native NDJSON with ``eval_count``: reading it in the native format
    recorded no tokens and never saw a stream end.
    """
    if not provider.openai_paths:
        return provider
    rel = relative_path(provider, path)
    if rel.startswith(provider.openai_paths):
        return _openai_twin(provider)
    return provider


@functools.lru_cache(maxsize=64)
def _openai_twin(provider: Provider) -> Provider:
    return replace(provider, format="openai", stream_usage=provider.openai_stream_usage, openai_paths=())


def model_from(provider: Provider, path: str, params: dict[str, str], body: object) -> str | None:
    """The requested model, from the body or, for path-addressed providers, from the path."""
    rel = relative_path(provider, path)
    if provider.name == "huggingface" and rel and not rel.startswith("v1/"):
        # HF Inference names the model in the path; a body "model" there is a placeholder
        # (the huggingface_hub client sends "dummy" or "tgi" when the model is a URL).
        return _HF_TASK_SUFFIX.sub("", rel) or None
    if isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
    if "deployment" in params:
        return params["deployment"]
    if provider.format == "gemini":
        _, sep, rest = rel.partition("models/")
        if sep:
            return rest.split(":", 1)[0] or None
    if provider.name == "workers-ai" and rel.startswith(("@cf/", "@hf/")):
        return rel
    if provider.name == "replicate":
        match = _REPLICATE_MODEL.match(rel)
        if match:
            return match.group(1)
    return None


_HF_TASK_SUFFIX = re.compile(r"/(?:v1/.*|pipeline/[^/]+)$")
_REPLICATE_MODEL = re.compile(r"^models/([^/]+/[^/]+)(?:/versions/[^/]+)?/predictions$")
