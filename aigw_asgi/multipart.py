"""multipart/form-data bodies read just enough for the gateway's bookkeeping, sans-IO.

Two users: the cache keys a multipart body by its parts, not its bytes, because clients pick a
random boundary per request (the openai SDK does), so two identical uploads never had the same
bytes; and the router reads the ``model`` form field of an upload (``audio/transcriptions``),
which has no JSON body to take it from.

The body is never rewritten and nothing here raises: a body that does not parse as the
content type says is simply "not multipart" to the callers, and is keyed by its raw bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

_MAX_PARTS = 1000  # a form with more parts than this is keyed by its bytes (no quadratic surprises)
_MAX_FIELD = 1024  # a text field longer than this is not a model name


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def boundary(content_type: bytes | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, else None."""
    if not content_type:
        return None
    kind, _, params = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        key, sep, value = param.partition(b"=")
        if sep and key.strip().lower() == b"boundary":
            value = value.strip().strip(b'"')
            return value if 0 < len(value) <= 70 else None
    return None


def parse(body: bytes, content_type: bytes | None) -> list[Part] | None:
    """The parts of a multipart/form-data body, or None when it is not one (or is malformed)."""
    bound = boundary(content_type)
    if bound is None:
        return None
    delimiter = b"--" + bound
    if not body.startswith(delimiter):
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            return None
        body = body[start + 2 :]
    parts: list[Part] = []
    pos = len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body[pos : pos + 2] == b"--":
            return parts  # the closing delimiter
        if body[pos : pos + 2] != b"\r\n" or len(parts) >= _MAX_PARTS:
            return None
        head_end = body.find(b"\r\n\r\n", pos + 2)
        if head_end < 0:
            return None
        end = body.find(separator, head_end + 4)
        if end < 0:
            return None
        part = _part(body[pos + 2 : head_end], body[head_end + 4 : end])
        if part is None:
            return None
        parts.append(part)
        pos = end + len(separator)


def _part(head: bytes, data: bytes) -> Part | None:
    name: str | None = None
    filename: str | None = None
    content_type = ""
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-disposition":
            for param in value.split(b";")[1:]:
                pkey, _, pvalue = param.strip().partition(b"=")
                text = pvalue.strip().strip(b'"').decode("utf-8", "replace")
                if pkey.lower() == b"name":
                    name = text
                elif pkey.lower() == b"filename":
                    filename = text
        elif key == b"content-type":
            content_type = value.strip().decode("latin-1").lower()
    return None if name is None else Part(name, filename, content_type, data)


def text_field(body: bytes, content_type: bytes | None, name: str) -> str | None:
    """The first non-file field called ``name`` as text (``model`` of an upload), else None."""
    if boundary(content_type) is None:
        return None
    for part in parse(body, content_type) or ():
        if part.name == name and part.filename is None and len(part.data) <= _MAX_FIELD:
            try:
                return part.data.decode("utf-8") or None
            except UnicodeDecodeError:
                return None
    return None


def digest(parts: list[Part]) -> bytes:
    """The parts, in order, without the boundary: equal for the same form sent twice.

    Order is kept: repeated fields (``timestamp_granularities[]``) mean a list whose order counts.
    Each field is length-prefixed, so no two different forms can hash alike by concatenation.
    """
    h = hashlib.sha256()
    for part in parts:
        for field in (
            part.name.encode(),
            b"\x00" if part.filename is None else b"\x01" + part.filename.encode(),
            part.content_type.encode(),
            part.data,
        ):
            h.update(len(field).to_bytes(8, "big"))
            h.update(field)
    return h.digest()
