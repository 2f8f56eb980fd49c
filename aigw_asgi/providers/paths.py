"""Client paths made safe to join to a provider's base URL (SPEC §2), for HTTP and realtime alike.

The path after ``/{provider}/`` comes from the client and becomes part of an upstream URL: it may
never point anywhere but below the provider's base (``..``, encoded slashes, absolute URLs and
control characters are refused with a 400), and it is percent-quoted once, keeping the
characters provider paths legitimately use.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from ..errors import InvalidRequest
from ..types import Scope

__all__ = ["check_path", "quote_path"]

_ENCODED_SEPARATOR = re.compile(rb"%(?:2f|5c|00)", re.IGNORECASE)
# backslash, empty segment ("//", also a leading "/"), a scheme ("://"), control characters
_BAD_PATH = re.compile(r"[\\\x00-\x1f\x7f]|//|^/")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def check_path(scope: Scope, path: str) -> None:
    """Refuse anything that could make the upstream URL point elsewhere than the provider base."""
    raw = scope.get("raw_path")
    if raw and b"%" in raw and _ENCODED_SEPARATOR.search(raw):
        raise InvalidRequest("Invalid path: encoded slashes are not allowed")
    if _BAD_PATH.search(path):
        raise InvalidRequest("Invalid path")
    if "." in path and _DOT_SEGMENT.search(path):
        raise InvalidRequest("Invalid path: dot segments are not allowed")


@functools.lru_cache(maxsize=4096)
def quote_path(path: str) -> str:
    """``path`` percent-quoted, keeping what provider paths use (Gemini's ":", Workers AI's "@").

    Cached: a gateway sees the same few paths over and over.
    """
    return quote(path, safe="/:@!$&'()*+,;=-._~")
