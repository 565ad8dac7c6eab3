"""Manifest entries -> a directory tree, and what overlayfs makes of its whiteouts."""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from maelstrom_core._manifest import (
    Directory,
    EmptyFile,
    FileByDigest,
    Hardlink,
    InlineFile,
    ManifestEntry,
    Symlink,
    Whiteout,
)
from maelstrom_core._materialize import OPAQUE_XATTR, WHITEOUT_XATTR, materialize_manifest
from maelstrom_core.errors import ArtifactError
from maelstrom_core.manifest import file_digests

T = 1_705_000_271


def d(path: str, mode: int = 0o755, *, opaque: bool = False) -> ManifestEntry:
    return ManifestEntry(path, stat.S_IFDIR | mode, T, 0, Directory(opaque=opaque))


def f(path: str, data: bytes, mode: int = 0o644) -> ManifestEntry:
    return ManifestEntry(path, stat.S_IFREG | mode, T, len(data), InlineFile(data))


def wh(path: str) -> ManifestEntry:
    return ManifestEntry(path, 0, 0, 0, Whiteout())


def materialize(
    entries: list[ManifestEntry], dest: Path, blobs: dict[bytes, Path] | None = None
) -> None:
    materialize_manifest(entries, dest, (blobs or {}).__getitem__, source="manifest m")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    out = tmp_path / "layer"
    out.mkdir()
    return out


def test_every_entry_kind(tmp_path: Path, dest: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"B" * 5000)
    digest = bytes(range(32))
    entries = [
        d("/usr", 0o555),
        d("/usr/bin"),
        f("/usr/bin/inline", b"echo inline\n", 0o6755),
        ManifestEntry("/usr/bin/big", stat.S_IFREG | 0o700, T, 5000, FileByDigest(digest)),
        ManifestEntry("/proc", stat.S_IFDIR | 0o555, T, 0, Directory()),
        ManifestEntry("/etc/empty", stat.S_IFREG | 0o444, T, 0, EmptyFile()),
        ManifestEntry("/usr/bin/sh", stat.S_IFLNK | 0o444, T, 0, Symlink(b"/bin/dash")),
        ManifestEntry("/usr/bin/again", stat.S_IFREG | 0o644, T, 0, Hardlink("/usr/bin/inline")),
        d("/var", opaque=True),
        wh("/opt"),
    ]
    assert file_digests(entries) == [digest]
    materialize(entries, dest, {digest: blob})
    assert (dest / "usr/bin/inline").read_bytes() == b"echo inline\n"
    assert stat.S_IMODE((dest / "usr/bin/inline").stat().st_mode) == 0o755
    assert (dest / "usr/bin/big").read_bytes() == b"B" * 5000
    assert not os.path.samefile(dest / "usr/bin/big", blob)  # a copy: the blob keeps its mode
    assert stat.S_IMODE((dest / "usr/bin/big").stat().st_mode) == 0o700
    assert (dest / "usr/bin/big").stat().st_mtime == T
    assert (dest / "etc/empty").read_bytes() == b""
    assert stat.S_IMODE((dest / "etc").stat().st_mode) == 0o777  # implicit parent
    assert os.readlink(dest / "usr/bin/sh") == "/bin/dash"
    assert os.path.samefile(dest / "usr/bin/again", dest / "usr/bin/inline")
    assert stat.S_IMODE((dest / "usr").stat().st_mode) == 0o555
    assert (dest / "usr").stat().st_mtime == T
    assert stat.S_IMODE((dest / "proc").stat().st_mode) == 0o555
    assert os.getxattr(dest / "var", OPAQUE_XATTR) == b"y"
    assert WHITEOUT_XATTR in os.listxattr(dest / "opt")
    assert os.getxattr(dest, OPAQUE_XATTR) == b"x"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_blob_of_the_wrong_size_is_refused(tmp_path: Path, dest: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"short")
    entry = ManifestEntry("/x", stat.S_IFREG | 0o644, T, 99, FileByDigest(bytes(32)))
    with pytest.raises(ArtifactError, match=r"manifest m: entry '/x' says 99 bytes but its data"):
        materialize([entry], dest, {bytes(32): blob})


def test_missing_blob_file_is_refused(tmp_path: Path, dest: Path) -> None:
    entry = ManifestEntry("/x", stat.S_IFREG | 0o644, T, 1, FileByDigest(bytes(32)))
    with pytest.raises(ArtifactError, match=r"manifest m: cannot read the data of '/x'"):
        materialize([entry], dest, {bytes(32): tmp_path / "absent"})


def test_inline_size_mismatch_is_refused(dest: Path) -> None:
    entry = ManifestEntry("/x", stat.S_IFREG | 0o644, T, 3, InlineFile(b"toolong"))
    with pytest.raises(ArtifactError, match="says 3 bytes but holds 7 inline"):
        materialize([entry], dest)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([f("/a/../../x", b"")], r"contains '\.\.'"),
        (
            [ManifestEntry("/l", stat.S_IFLNK, T, 0, Symlink(b"/")), f("/l/x", b"")],
            "which is a symlink",
        ),
        ([f("/a", b""), f("/a/b", b"")], "which is a file"),
        (
            [ManifestEntry("/l", stat.S_IFLNK, T, 0, Symlink(b"real")), d("/real"), f("/l/x", b"")],
            "which is a symlink",
        ),
        ([ManifestEntry("/h", stat.S_IFREG, T, 0, Hardlink("/nope"))], "not in this layer"),
        ([d("/dir"), ManifestEntry("/h", stat.S_IFREG, T, 0, Hardlink("/dir"))], "a directory"),
    ],
)
def test_bad_entries_are_refused(dest: Path, entries: list[ManifestEntry], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        materialize(entries, dest)
    assert not (dest.parent / "x").exists()


def test_whiteout_next_to_a_same_layer_entry_or_in_an_opaque_dir_is_dropped(dest: Path) -> None:
    materialize([f("/a/kept", b"k"), wh("/a/kept"), d("/o", opaque=True), wh("/o/gone")], dest)
    assert WHITEOUT_XATTR not in os.listxattr(dest / "a/kept")
    assert OPAQUE_XATTR not in os.listxattr(dest / "a")
    assert list((dest / "o").iterdir()) == []


def _can_mount_overlay_in_userns() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


requires_userns = pytest.mark.skipif(
    not _can_mount_overlay_in_userns(), reason="needs unprivileged user namespaces (unshare -Urm)"
)


@requires_userns
@pytest.mark.requires_userns
def test_overlay_in_a_user_namespace_honours_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    upper = tmp_path / "upper"
    mnt = tmp_path / "mnt"
    for path in (lower, upper, mnt):
        path.mkdir()
    materialize(
        [
            f("/etc/passwd", b"root"),
            f("/etc/hosts", b"hosts"),
            f("/opt/tool/bin", b"tool"),
            f("/var/old", b"old"),
            f("/keep", b"keep"),
        ],
        lower,
    )
    materialize(
        [
            d("/etc"),
            wh("/etc/passwd"),
            wh("/opt"),  # a whole directory of the lower layer
            d("/var", opaque=True),
            f("/var/new", b"new"),
        ],
        upper,
    )
    script = (
        f"mount -t overlay overlay -o lowerdir={upper}:{lower},userxattr {mnt} && "
        f"cd {mnt} && ls -a etc && echo -- && ls -a var && echo -- && ls -a . && "
        "echo -- && cat keep etc/hosts var/new && echo && "
        "if [ -e etc/passwd ] || [ -e opt ] || [ -e var/old ]; then echo LEAK; fi"
    )
    run = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    etc, var, root, contents = run.stdout.split("--\n")
    assert etc.split() == [".", "..", "hosts"]
    assert var.split() == [".", "..", "new"]
    assert root.split() == [".", "..", "etc", "keep", "var"]
    assert contents.strip() == "keephostsnew"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_read_only_directories_materialize_as_an_unprivileged_user(
    request: pytest.FixtureRequest,
) -> None:
    """Root ignores permissions; an unprivileged owner must still fill a 0o555 directory."""
    # pytest's tmp_path sits under a 0o700 directory of root's, out of the user's reach.
    work = Path(tempfile.mkdtemp(prefix="maelstrom-unpriv-"))
    request.addfinalizer(functools.partial(shutil.rmtree, work, ignore_errors=True))
    os.chown(work, 65534, 65534)
    code = (
        "import stat, sys\n"
        "from pathlib import Path\n"
        "from maelstrom_core._manifest import ManifestEntry, Directory, InlineFile\n"
        "from maelstrom_core._materialize import materialize_manifest\n"
        "from maelstrom_core.cache import force_remove\n"
        "dest = Path(sys.argv[1]) / 'layer'\n"
        "dest.mkdir()\n"
        "entries = [ManifestEntry('/ro', stat.S_IFDIR | 0o555, 0, 0, Directory()),\n"
        "           ManifestEntry('/ro/sub', stat.S_IFDIR | 0o500, 0, 0, Directory()),\n"
        "           ManifestEntry('/ro/sub/f', stat.S_IFREG | 0o400, 0, 1, InlineFile(b'x'))]\n"
        "materialize_manifest(entries, dest, {}.__getitem__, source='m')\n"
        "assert (dest / 'ro/sub/f').read_bytes() == b'x'\n"
        "force_remove(dest)\n"
        "assert not dest.exists()\n"
        "print('ok')\n"
    )
    run = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
            str(work),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": str(work)},
    )
    assert run.stdout.strip() == "ok", run.stderr
