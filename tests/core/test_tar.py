"""Safe tar extraction, against well-formed layers and crafted malicious archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from maelstrom_core._materialize import OPAQUE_XATTR, WHITEOUT_XATTR
from maelstrom_core._tar import extract_tar
from maelstrom_core.errors import ArtifactError, DigestMismatch

MTIME = 1_700_000_000


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    mode: int = 0o644,
    linkname: str = "",
    mtime: int = MTIME,
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.linkname = linkname
    return info


def make_tar(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w"
) -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "layer"
    d.mkdir()
    return d


def names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_regular_layer_keeps_modes_mtimes_links(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar",
        [
            (member("./", tarfile.DIRTYPE, mode=0o755), None),
            (member("usr/", tarfile.DIRTYPE, mode=0o555, mtime=1234), None),
            (member("usr/bin/tool", mode=0o4755), b"#!/bin/sh\necho hi\n"),
            (member("usr/bin/alias", tarfile.SYMTYPE, linkname="tool"), None),
            (member("usr/bin/hard", tarfile.LNKTYPE, linkname="usr/bin/tool"), None),
            (member("etc/conf", mode=0o600, mtime=42), b"x=1\n"),
        ],
    )
    extract_tar(archive, dest, expected_digest=hashlib.sha256(archive.read_bytes()).digest())
    assert names(dest) == [
        "etc",
        "etc/conf",
        "usr",
        "usr/bin",
        "usr/bin/alias",
        "usr/bin/hard",
        "usr/bin/tool",
    ]
    tool = dest / "usr/bin/tool"
    assert tool.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755  # set-user-ID stripped
    assert tool.stat().st_mtime == MTIME
    assert os.readlink(dest / "usr/bin/alias") == "tool"
    assert (dest / "usr/bin/alias").lstat().st_mtime == MTIME
    assert os.path.samefile(dest / "usr/bin/hard", tool)
    assert stat.S_IMODE((dest / "usr").stat().st_mode) == 0o555
    assert (dest / "usr").stat().st_mtime == 1234  # set after its children were made
    assert stat.S_IMODE((dest / "etc/conf").stat().st_mode) == 0o600
    assert (dest / "etc/conf").stat().st_mtime == 42
    # An implicit parent gets the original's mode and mtime.
    assert stat.S_IMODE((dest / "etc").stat().st_mode) == 0o777
    assert (dest / "etc").stat().st_mtime == 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_later_member_replaces_earlier_one(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar",
        [
            (member("f"), b"old"),
            (member("f", tarfile.SYMTYPE, linkname="x"), None),
            (member("f"), b"new"),
        ],
    )
    extract_tar(archive, dest)
    assert (dest / "f").read_bytes() == b"new"


def test_compressed_tar_is_accepted(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "l.tar.gz", [(member("a/b"), b"data")], mode="w:gz")
    extract_tar(archive, dest, expected_digest=hashlib.sha256(archive.read_bytes()).digest())
    assert (dest / "a/b").read_bytes() == b"data"


def test_whiteouts_become_overlay_xattr_whiteouts(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar",
        [
            (member("etc/", tarfile.DIRTYPE), None),
            (member("etc/.wh.passwd"), b""),
            (member("etc/.wh.kept"), b""),
            (member("etc/kept"), b"same layer wins"),
            (member("var/.wh..wh..opq"), b""),
            (member("var/.wh.inside-opaque"), b""),
            (member("var/new"), b"n"),
            (member(".wh..wh.plnk/123"), b""),  # AUFS bookkeeping is skipped
        ],
    )
    extract_tar(archive, dest)
    assert names(dest) == ["etc", "etc/kept", "etc/passwd", "var", "var/new"]
    whiteout = dest / "etc/passwd"
    assert whiteout.stat().st_size == 0
    assert WHITEOUT_XATTR in os.listxattr(whiteout)
    assert os.getxattr(dest / "etc", OPAQUE_XATTR) == b"x"
    assert (dest / "etc/kept").read_bytes() == b"same layer wins"
    assert WHITEOUT_XATTR not in os.listxattr(dest / "etc/kept")
    assert os.getxattr(dest / "var", OPAQUE_XATTR) == b"y"


def test_whiteout_of_a_whole_directory_at_the_root(tmp_path: Path, dest: Path) -> None:
    extract_tar(make_tar(tmp_path / "l.tar", [(member(".wh.opt"), b"")]), dest)
    assert WHITEOUT_XATTR in os.listxattr(dest / "opt")
    assert os.getxattr(dest, OPAQUE_XATTR) == b"x"


# --- malicious archives ---------------------------------------------------------------------


def test_dotdot_is_refused_and_nothing_escapes(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "l.tar", [(member("a/../../escaped"), b"evil")])
    with pytest.raises(ArtifactError, match=r"l\.tar.*'a/\.\./\.\./escaped'.*'\.\.'"):
        extract_tar(archive, dest)
    assert not (tmp_path / "escaped").exists()


def test_absolute_names_stay_inside_the_layer(tmp_path: Path, dest: Path) -> None:
    outside = tmp_path / "abs-target"
    archive = make_tar(tmp_path / "l.tar", [(member(str(outside)), b"confined")])
    extract_tar(archive, dest)
    assert not outside.exists()
    assert (dest / str(outside).lstrip("/")).read_bytes() == b"confined"


def test_writing_through_an_earlier_symlink_is_refused(tmp_path: Path, dest: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = make_tar(
        tmp_path / "l.tar",
        [
            (member("link", tarfile.SYMTYPE, linkname=str(outside)), None),
            (member("link/planted"), b"evil"),
        ],
    )
    with pytest.raises(
        ArtifactError, match=r"'link/planted' goes through 'link', which is a symlink"
    ):
        extract_tar(archive, dest)
    assert list(outside.iterdir()) == []


def test_symlink_to_dotdot_then_file_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar",
        [(member("up", tarfile.SYMTYPE, linkname=".."), None), (member("up/escaped"), b"evil")],
    )
    with pytest.raises(ArtifactError, match="symlink"):
        extract_tar(archive, dest)
    assert not (tmp_path / "escaped").exists()


def test_file_replacing_a_planted_symlink_does_not_follow_it(tmp_path: Path, dest: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    archive = make_tar(
        tmp_path / "l.tar",
        [(member("f", tarfile.SYMTYPE, linkname=str(victim)), None), (member("f"), b"evil")],
    )
    extract_tar(archive, dest)
    assert victim.read_bytes() == b"precious"
    assert not (dest / "f").is_symlink()


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "missing"])
def test_hardlink_outside_the_layer_is_refused(tmp_path: Path, dest: Path, target: str) -> None:
    archive = make_tar(tmp_path / "l.tar", [(member("h", tarfile.LNKTYPE, linkname=target), None)])
    with pytest.raises(ArtifactError, match=r"l\.tar"):
        extract_tar(archive, dest)
    assert names(dest) == []


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.CHRTYPE, "device node"),
        (tarfile.BLKTYPE, "device node"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_devices_and_fifos_are_refused(tmp_path: Path, dest: Path, kind: bytes, what: str) -> None:
    info = member("dev/thing", kind)
    info.devmajor, info.devminor = 1, 3
    archive = make_tar(tmp_path / "l.tar", [(info, None)])
    with pytest.raises(ArtifactError, match=rf"l\.tar: member 'dev/thing' is a {what}"):
        extract_tar(archive, dest)


def test_truncated_archive_is_an_error_naming_the_file(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "l.tar", [(member("big"), os.urandom(10_000))])
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(ArtifactError, match=r"l\.tar is malformed or truncated"):
        extract_tar(archive, dest)


@pytest.mark.parametrize("garbage", [b"", b"not a tar at all" * 100, os.urandom(4096)])
def test_garbage_is_an_error_naming_the_file(tmp_path: Path, dest: Path, garbage: bytes) -> None:
    archive = tmp_path / "g.tar"
    archive.write_bytes(garbage)
    with pytest.raises(ArtifactError, match=r"g\.tar is malformed or truncated"):
        extract_tar(archive, dest)


def test_missing_archive_is_an_error(tmp_path: Path, dest: Path) -> None:
    with pytest.raises(ArtifactError, match=r"cannot open tar layer .*nope\.tar"):
        extract_tar(tmp_path / "nope.tar", dest)


def test_wrong_digest_is_a_digest_mismatch(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "l.tar", [(member("a"), b"a")])
    with pytest.raises(DigestMismatch, match=r"l\.tar has SHA-256 [0-9a-f]{64}, expected 00+"):
        extract_tar(archive, dest, expected_digest=bytes(32))


def test_file_replacing_a_directory_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "l.tar", [(member("d/", tarfile.DIRTYPE), None), (member("d"), b"x")]
    )
    with pytest.raises(ArtifactError, match="'d' replaces a directory"):
        extract_tar(archive, dest)
