"""Reading client bodies field by field, with errors that name the field (``messages[2].content``).

Every surface parser validates what it reads with these: a wrong type is the client's error,
answered as a 400 (code 2019) naming the JSON path, never a ``KeyError`` turned 500. ``None``
(JSON ``null``) counts as absent, as the OpenAI and Anthropic APIs treat it.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import BadCompatRequest


def bad(where: str, why: str) -> BadCompatRequest:
    return BadCompatRequest(f"Invalid request: {where}: {why}")


def refuse(param: str, target: str, why: str = "") -> BadCompatRequest:
    """A parameter the target cannot honour (SPEC §12: refused, never dropped)."""
    tail = f" ({why})" if why else ""
    return BadCompatRequest(f"Unsupported parameter for {target}: {param}{tail}")


def path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, "expected an object")
    return value


def opt_dict(obj: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    return as_dict(value, path(where, key))


def opt_str(obj: dict[str, Any], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(path(where, key), "expected a string")
    return value


def req_str(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = opt_str(obj, key, where)
    if value is None:
        raise bad(path(where, key), "required")
    return value


def opt_bool(obj: dict[str, Any], key: str, where: str = "") -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad(path(where, key), "expected true or false")
    return value


def opt_int(obj: dict[str, Any], key: str, where: str = "", *, minimum: int = 0) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad(path(where, key), f"expected an integer >= {minimum}")
    return value


def opt_num(obj: dict[str, Any], key: str, where: str = "") -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        raise bad(path(where, key), "expected a number")
    return float(value)


def opt_list(obj: dict[str, Any], key: str, where: str = "") -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad(path(where, key), "expected an array")
    return value


def str_list(obj: dict[str, Any], key: str, where: str = "") -> list[str]:
    """A string or an array of strings (OpenAI ``stop``), as a list."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad(path(where, key), "expected a string or an array of strings")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def new_id(prefix: str) -> str:
    """A random id in the shape each API uses (``chatcmpl-…``, ``msg_…``, ``call_…``)."""
    return prefix + os.urandom(12).hex()
