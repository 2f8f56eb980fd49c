"""JSON on the hot path, through orjson (a core dependency).

The gateway parses every request body once (for the model) and every non-streamed answer once
(for usage); orjson does each in about a tenth of the time of ``json.loads``. One module so the
choice, and the exceptions a failed parse raises, are made in one place.
"""

from __future__ import annotations

from typing import Any

import orjson

# orjson.JSONDecodeError is a ValueError; a body that is not UTF-8 raises it too.
JSONDecodeError: tuple[type[Exception], ...] = (ValueError, UnicodeDecodeError)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (no spaces), as the gateway forwards rewritten bodies."""
    return orjson.dumps(value)
