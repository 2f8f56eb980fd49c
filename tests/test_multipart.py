"""multipart/form-data read for bookkeeping: the parts of an upload, its ``model`` field."""

from __future__ import annotations

import httpx
import pytest

from aigw_asgi import multipart


def form(boundary: str | None = None, **fields: str | tuple[str, bytes, str]) -> tuple[bytes, bytes]:
    """A body and content type as httpx (the openai SDK's transport) encodes them."""
    data = {k: v for k, v in fields.items() if isinstance(v, str)}
    files = {k: v for k, v in fields.items() if not isinstance(v, str)}
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"} if boundary else None
    request = httpx.Request("POST", "http://x/", data=data, files=files, headers=headers)
    return request.read(), request.headers["content-type"].encode()


def test_boundary() -> None:
    assert multipart.boundary(b"multipart/form-data; boundary=abc") == b"abc"
    assert multipart.boundary(b'Multipart/Form-Data;charset=utf-8; BOUNDARY="a b"') == b"a b"
    assert multipart.boundary(b"application/json") is None
    assert multipart.boundary(b"multipart/form-data") is None
    assert multipart.boundary(b"multipart/form-data; boundary=" + b"x" * 71) is None
    assert multipart.boundary(None) is None


def test_parts_and_model_field() -> None:
    body, ctype = form(model="gpt-4o-transcribe", file=("a.wav", b"RIFF\r\n--not-a-boundary", "audio/wav"))
    parts = multipart.parse(body, ctype)
    assert parts is not None and [(p.name, p.filename) for p in parts] == [("model", None), ("file", "a.wav")]
    assert parts[1].data == b"RIFF\r\n--not-a-boundary" and parts[1].content_type == "audio/wav"
    assert multipart.text_field(body, ctype, "model") == "gpt-4o-transcribe"
    assert multipart.text_field(body, ctype, "language") is None
    assert multipart.text_field(body, b"application/json", "model") is None


def test_same_form_with_another_boundary_has_the_same_digest() -> None:
    fields = {"model": "whisper-1", "file": ("a.wav", b"\x00\x01audio", "audio/wav")}
    one, ctype_one = form("a" * 32, **fields)  # type: ignore[arg-type]
    two, ctype_two = form("b" * 32, **fields)  # type: ignore[arg-type]
    assert one != two
    digest_one = multipart.digest(multipart.parse(one, ctype_one) or [])
    assert digest_one == multipart.digest(multipart.parse(two, ctype_two) or [])
    other, ctype_other = form("a" * 32, model="whisper-1", file=("a.wav", b"\x00\x01audiO", "audio/wav"))
    assert multipart.digest(multipart.parse(other, ctype_other) or []) != digest_one


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'--abc\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end',
        b"--abc\r\nno blank line",
        b"--abc\r\nContent-Type: text/plain\r\n\r\nnameless\r\n--abc--",
        b"garbage without a delimiter",
    ],
)
def test_malformed_forms_are_not_multipart(body: bytes) -> None:
    assert multipart.parse(body, b"multipart/form-data; boundary=abc") is None
    assert multipart.text_field(body, b"multipart/form-data; boundary=abc", "a") is None
