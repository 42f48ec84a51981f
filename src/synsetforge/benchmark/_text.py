"""Reading untrusted text files: size limit, encoding, line endings, and error locations.

Every parser in this package goes through `read_lines`, so a submission that is too big, not UTF-8 or
binary fails the same way everywhere, with the line the user has to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from synsetforge.errors import InputError, NotFoundError

Source = bytes | bytearray | memoryview | os.PathLike[str] | BinaryIO
"""Raw bytes, a path, or a binary file object. A plain `str` is refused: path or content would be a guess."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Largest file accepted by default: a 100,000-image localization submission is about 14 MB, and parsing
holds every token as a Python string (peak about 13x the file size), so this bounds a parse near 1 GB."""

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def show(token: str, limit: int = 40) -> str:
    """Quote a token for an error message, shortened and with invisible characters escaped."""
    if len(token) > limit:
        token = token[: limit - 1] + "…"
    return f"'{token}'" if token.isprintable() else repr(token)


def where(what: str, line: int, field: int | None = None) -> str:
    """The location prefix of every parse error: 'submission: line 17, field 3'."""
    return f"{what}: line {line}" if field is None else f"{what}: line {line}, field {field}"


def read_bytes(source: Source, max_bytes: int, what: str) -> bytes:
    """Read at most `max_bytes` (+1 to detect overflow) so a huge upload never sits in memory whole."""
    if isinstance(source, str):
        raise TypeError("pass bytes, a pathlib.Path or a binary file object, not str")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"{what}: no such file: {path}") from None
        if size > max_bytes:
            raise InputError(f"{what}: {path} is {size:,} bytes; the limit is {max_bytes:,}")
        data = path.read_bytes()
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{what}: larger than the limit of {max_bytes:,} bytes")
    return data


def decode(data: bytes, what: str) -> str:
    """Strict UTF-8 (an optional BOM is dropped); other encodings are named so the fix is obvious."""
    for bom, name in _OTHER_BOMS.items():
        if data.startswith(bom):
            raise InputError(f"{what}: the file is {name}-encoded; save it as UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(
            f"{where(what, line)}, column {column}: byte 0x{data[e.start]:02x} is not valid UTF-8; "
            "save the file as UTF-8"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise InputError(
            f"{where(what, text.count(chr(10), 0, nul) + 1)}: contains a NUL byte (a binary file?)"
        )
    return text


def split_lines(text: str) -> list[str]:
    """Split on LF, CRLF or CR; the newline after the last line does not start another line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def read_lines(source: Source, max_bytes: int, what: str) -> list[str]:
    """Bytes -> checked text -> lines, in one call."""
    return split_lines(decode(read_bytes(source, max_bytes, what), what))
