"""The export tar writer produces exactly the bytes Python's tarfile writes, with fixed metadata."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from synsetforge.errors import InputError
from synsetforge.releases.exports.tarout import TarOut, member_size

MTIME = 1_700_000_000
MEMBERS: list[tuple[str, bytes | None]] = [
    ("dir", None),
    ("dir/a.jpg", b"\xff\xd8\xff" + b"x" * 509),
    ("dir/empty", b""),
    ("b.json", b'{"k": 1}'),
    ("c.bin", b"y" * 513),
    ("d" * 100, b"exactly 100 characters"),
    ("e" * 140 + ".long", b"needs a pax record"),
    ("caf\u00e9/\u00fc.txt", b"non-ASCII"),
]


def _reference(fileobj: io.BytesIO | gzip.GzipFile) -> None:
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, data in MEMBERS:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))


def _ours(path: Path, gz: bool) -> bytes:
    with TarOut(path, mtime=MTIME, gz=gz) as out:
        for name, data in MEMBERS:
            if data is None:
                out.add_dir(name)
            elif len(data) % 2:
                src = path.with_suffix(".src")
                src.write_bytes(data)
                assert out.add_file(name, src) == len(data)
            else:
                out.add_bytes(name, data)
    return path.read_bytes()


def test_same_bytes_as_tarfile(tmp_path: Path) -> None:
    ref = io.BytesIO()
    _reference(ref)
    assert _ours(tmp_path / "a.tar", gz=False) == ref.getvalue()
    ref_gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=ref_gz, mtime=0, compresslevel=6) as gz:
        _reference(gz)  # type: ignore[arg-type]
    assert _ours(tmp_path / "b.tar.gz", gz=True) == ref_gz.getvalue()
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert [m.name for m in tar.getmembers()] == [n for n, _ in MEMBERS]
        assert all(m.mtime == MTIME and m.uid == 0 and m.uname == "" for m in tar.getmembers())
        assert tar.extractfile("c.bin").read() == b"y" * 513  # type: ignore[union-attr]


def test_member_size_and_unsafe_names(tmp_path: Path) -> None:
    assert [member_size(n) for n in (0, 1, 512, 513)] == [512, 1024, 1024, 1536]
    with TarOut(tmp_path / "x.tar", mtime=0) as out:
        for bad in ("../up", "/etc/passwd", "a/../../b", "a/./b"):
            with pytest.raises(InputError):
                out.add_bytes(bad, b"")
        out.add_bytes("ok", b"")
    with tarfile.open(tmp_path / "x.tar") as tar:
        assert tar.getnames() == ["ok"]
