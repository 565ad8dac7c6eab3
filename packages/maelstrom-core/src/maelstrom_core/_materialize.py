"""Writing a layer's tree into a fresh directory: from manifest entries here, from tars in _tar.

Both go through ``TreeWriter``, which keeps its own model of what it has created. It never
looks at (and so never follows) anything it did not create itself: a path whose parent is a
symlink or a file is refused instead of written through, ``..`` is refused, and a leading
``/`` only means "the layer's root". Every new file is opened with ``O_EXCL | O_NOFOLLOW``
as a second line of defence.

Overlayfs honours whiteouts and opaque directories in lower layers, and jobs mount the
layers in an unprivileged user namespace, where overlayfs must be mounted with ``userxattr``
and reads only ``user.overlay.*`` xattrs (Documentation/filesystems/overlayfs.rst):

* an opaque directory carries ``user.overlay.opaque = "y"``;
* a whiteout is a zero-size regular file carrying ``user.overlay.whiteout``, and its parent
  carries ``user.overlay.opaque = "x"`` ("not opaque, but holds xattr whiteouts"), without
  which readdir lists the whiteout (lookups hide it either way). Checked on 6.18 in
  ``unshare -Urm``: readdir ignores the older ``user.overlay.whiteouts`` marker there.

Whiteouts only hide lower layers (OCI image spec), so one is dropped when its own layer has
an entry at the same path or when its directory is opaque anyway; inside an opaque directory
it would otherwise be listed by readdir.

Owners are not kept: every file belongs to whoever runs the cache, as in the original, whose
layer FS reports every file as owned by the caller. Set-user-ID and set-group-ID bits are
stripped. Implicit parent directories get mode 0o777 and mtime 0 as in the original
(internals §3.4); the layer root gets 0o755 unless the layer says otherwise.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from ._manifest import (
    Directory,
    EmptyFile,
    FileByDigest,
    Hardlink,
    InlineFile,
    ManifestEntry,
    Symlink,
    Whiteout,
)
from .errors import ArtifactError

__all__ = [
    "IMPLICIT_DIR_MODE",
    "OPAQUE_XATTR",
    "ROOT_DIR_MODE",
    "WHITEOUT_XATTR",
    "TreeWriter",
    "materialize_manifest",
]

OPAQUE_XATTR = "user.overlay.opaque"
WHITEOUT_XATTR = "user.overlay.whiteout"
IMPLICIT_DIR_MODE = 0o777
ROOT_DIR_MODE = 0o755

_PERMISSION_BITS = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
_MAX_MTIME = 2**62 // 1_000_000_000  # keeps mtime * 10**9 inside utimensat's range


class _Kind(enum.Enum):
    DIR = "directory"
    FILE = "file"
    SYMLINK = "symlink"


Components = tuple[str, ...]


class TreeWriter:
    """Builds one layer tree under ``root`` (an existing, empty directory only we write to).

    Args:
        root: the directory to fill.
        source: what the tree comes from (an archive's path, a manifest's digest), named in
            every error.

    Call the entry methods in the layer's order, then ``finish()`` exactly once. Errors are
    ``ArtifactError`` naming ``source`` and the entry; the directory is then half-built and
    the caller throws it away.
    """

    def __init__(self, root: Path, source: str) -> None:
        self._root = root
        self._source = source
        self._nodes: dict[Components, _Kind] = {(): _Kind.DIR}
        # Final (mode, mtime) of each directory, applied in finish(): children are created
        # after their directory, which would bump its mtime and need it writable.
        self._dir_attrs: dict[Components, tuple[int, int]] = {(): (ROOT_DIR_MODE, 0)}
        self._opaque: set[Components] = set()
        self._whiteouts: dict[Components, str] = {}
        self._finished = False

    # --- entries ---------------------------------------------------------------------------

    def directory(self, path: str, mode: int, mtime: int, *, opaque: bool = False) -> None:
        comps = self._components(path)
        existing = self._nodes.get(comps)
        if existing is not _Kind.DIR:
            self._parent(comps, path)
            if existing is not None:
                os.unlink(self._host(comps))
            os.mkdir(self._host(comps), 0o700)
            self._nodes[comps] = _Kind.DIR
        self._dir_attrs[comps] = (mode & _PERMISSION_BITS, _clamp(mtime))
        if opaque:
            self._opaque.add(comps)

    def opaque(self, path: str) -> None:
        """Mark the directory at ``path`` opaque, making it implicitly if it is not there."""
        comps = self._components(path)
        self._make_dirs(comps, path)
        self._opaque.add(comps)

    def file_from_stream(
        self, path: str, mode: int, mtime: int, reader: IO[bytes], size: int
    ) -> None:
        """A regular file whose ``size`` bytes are read from ``reader``."""
        fd = self._create_file(path)
        try:
            remaining = size
            while remaining > 0:
                chunk = reader.read(min(remaining, _COPY_CHUNK))
                if not chunk:
                    raise ArtifactError(
                        f"{self._source}: entry {path!r} ends after {size - remaining} of "
                        f"{size} bytes"
                    )
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self._set_file_attrs(fd, mode, mtime)
        finally:
            os.close(fd)

    def file_from_bytes(self, path: str, mode: int, mtime: int, data: bytes) -> None:
        fd = self._create_file(path)
        try:
            _write_all(fd, data)
            self._set_file_attrs(fd, mode, mtime)
        finally:
            os.close(fd)

    def file_from_path(self, path: str, mode: int, mtime: int, src: Path, size: int) -> None:
        """A regular file copied from ``src``, which must hold exactly ``size`` bytes."""
        try:
            src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ArtifactError(
                f"{self._source}: cannot read the data of {path!r} from {src}: {e.strerror}"
            ) from e
        try:
            actual = os.fstat(src_fd).st_size
            if actual != size:
                raise ArtifactError(
                    f"{self._source}: entry {path!r} says {size} bytes but its data {src} "
                    f"has {actual}"
                )
            fd = self._create_file(path)
            try:
                copied = _copy_fd(src_fd, fd, size)
                if copied != size:
                    raise ArtifactError(
                        f"{self._source}: the data of {path!r} in {src} shrank to {copied} "
                        f"bytes while being copied"
                    )
                self._set_file_attrs(fd, mode, mtime)
            finally:
                os.close(fd)
        finally:
            os.close(src_fd)

    def symlink(self, path: str, target: bytes | str, mtime: int) -> None:
        comps = self._prepare_non_dir(path)
        target_bytes = os.fsencode(target)
        if not target_bytes or b"\0" in target_bytes:
            raise ArtifactError(f"{self._source}: symlink {path!r} has an empty or NUL target")
        host = self._host(comps)
        os.symlink(target_bytes, host)
        self._nodes[comps] = _Kind.SYMLINK
        m = _clamp(mtime) * 1_000_000_000
        os.utime(host, ns=(m, m), follow_symlinks=False)

    def hardlink(self, path: str, target: str) -> None:
        """A second name for the file or symlink this layer already has at ``target``."""
        target_comps = self._components(target)
        kind = self._nodes.get(target_comps)
        if kind not in (_Kind.FILE, _Kind.SYMLINK):
            what = "a directory" if kind is _Kind.DIR else "not in this layer"
            raise ArtifactError(
                f"{self._source}: hard link {path!r} points at {target!r}, which is {what}"
            )
        comps = self._prepare_non_dir(path)
        if comps == target_comps:
            raise ArtifactError(f"{self._source}: hard link {path!r} points at itself")
        os.link(self._host(target_comps), self._host(comps), follow_symlinks=False)
        self._nodes[comps] = kind

    def whiteout(self, path: str) -> None:
        """Hide whatever lower layers have at ``path``."""
        comps = self._components(path)
        if not comps:
            raise ArtifactError(f"{self._source}: whiteout {path!r} names the layer root")
        self._parent(comps, path)
        self._whiteouts[comps] = path

    # --- finishing -------------------------------------------------------------------------

    def finish(self) -> None:
        """Write whiteouts and opaque markers, then every directory's mode and mtime."""
        if self._finished:
            raise ArtifactError(f"{self._source}: layer tree finished twice")
        self._finished = True
        whiteout_dirs: set[Components] = set()
        for comps, path in self._whiteouts.items():
            parent = comps[:-1]
            if comps in self._nodes or parent in self._opaque:
                continue
            if self._nodes.get(parent) is not _Kind.DIR:
                # A later entry replaced the parent directory with something else.
                raise ArtifactError(
                    f"{self._source}: whiteout {path!r} is in {'/'.join(parent)!r}, which is "
                    "not a directory"
                )
            host = self._host(comps)
            fd = os.open(host, _CREATE_FLAGS, 0o644)
            os.close(fd)
            self._set_xattr(host, WHITEOUT_XATTR, b"y", path)
            whiteout_dirs.add(parent)
        for comps in self._opaque:
            if self._nodes.get(comps) is not _Kind.DIR:
                raise ArtifactError(
                    f"{self._source}: opaque marker for {'/' + '/'.join(comps)!r}, which is "
                    "not a directory"
                )
            self._set_xattr(self._host(comps), OPAQUE_XATTR, b"y", "/" + "/".join(comps))
        for comps in whiteout_dirs - self._opaque:
            self._set_xattr(self._host(comps), OPAQUE_XATTR, b"x", "/" + "/".join(comps))
        # Deepest first, so fixing a child's mtime never disturbs a finished parent and a
        # read-only parent never blocks a child.
        for comps in sorted(self._dir_attrs, key=len, reverse=True):
            if self._nodes.get(comps) is not _Kind.DIR:
                continue
            mode, mtime = self._dir_attrs[comps]
            host = self._host(comps)
            os.chmod(host, mode)
            m = mtime * 1_000_000_000
            os.utime(host, ns=(m, m), follow_symlinks=False)

    # --- helpers ---------------------------------------------------------------------------

    def _components(self, path: str) -> Components:
        if "\0" in path:
            raise ArtifactError(f"{self._source}: path {path!r} contains a NUL byte")
        comps = tuple(c for c in path.split("/") if c not in ("", "."))
        if ".." in comps:
            raise ArtifactError(f"{self._source}: path {path!r} contains '..'")
        return comps

    def _host(self, comps: Components) -> str:
        return os.path.join(self._root, *comps)

    def _parent(self, comps: Components, path: str) -> None:
        """Make sure every proper prefix of ``comps`` is a directory we made."""
        self._make_dirs(comps[:-1], path)

    def _make_dirs(self, comps: Components, path: str) -> None:
        """Make sure ``comps`` and each of its prefixes is a directory we made."""
        for depth in range(1, len(comps) + 1):
            prefix = comps[:depth]
            kind = self._nodes.get(prefix)
            if kind is _Kind.DIR:
                continue
            if kind is not None:
                raise ArtifactError(
                    f"{self._source}: entry {path!r} goes through {'/'.join(prefix)!r}, which "
                    f"is a {kind.value}, not a directory"
                )
            os.mkdir(self._host(prefix), 0o700)
            self._nodes[prefix] = _Kind.DIR
            self._dir_attrs[prefix] = (IMPLICIT_DIR_MODE, 0)

    def _prepare_non_dir(self, path: str) -> Components:
        comps = self._components(path)
        if not comps:
            raise ArtifactError(f"{self._source}: entry {path!r} replaces the layer root")
        self._parent(comps, path)
        existing = self._nodes.get(comps)
        if existing is _Kind.DIR:
            raise ArtifactError(f"{self._source}: entry {path!r} replaces a directory")
        if existing is not None:
            os.unlink(self._host(comps))  # a later entry for the same path wins, as in tar
            del self._nodes[comps]
        return comps

    def _create_file(self, path: str) -> int:
        comps = self._prepare_non_dir(path)
        fd = os.open(self._host(comps), _CREATE_FLAGS, 0o600)
        self._nodes[comps] = _Kind.FILE
        return fd

    def _set_file_attrs(self, fd: int, mode: int, mtime: int) -> None:
        os.fchmod(fd, mode & _PERMISSION_BITS)
        m = _clamp(mtime) * 1_000_000_000
        os.utime(fd, ns=(m, m))

    def _set_xattr(self, host: str, name: str, value: bytes, path: str) -> None:
        try:
            os.setxattr(host, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise ArtifactError(
                    f"{self._source}: the cache's file system does not support user xattrs, "
                    f"which the whiteout or opaque directory {path!r} needs"
                ) from e
            raise


def materialize_manifest(
    entries: Iterable[ManifestEntry],
    dest: Path,
    blob_path: Callable[[bytes], Path],
    *,
    source: str,
) -> None:
    """Write the tree a manifest describes into ``dest`` (an existing, empty directory).

    Args:
        entries: the manifest's entries, in order.
        dest: the directory to fill.
        blob_path: gives the local file holding a ``FileByDigest`` entry's bytes.
        source: names the manifest in errors.

    Raises:
        ArtifactError: an entry is invalid, or its data is missing or of the wrong size.
        OSError: the host refused a write (disk full, ...).
    """
    writer = TreeWriter(dest, source)
    for entry in entries:
        path, mode, mtime, data = entry.path, entry.mode, entry.mtime, entry.data
        match data:
            case Directory(opaque=opaque):
                writer.directory(path, mode, mtime, opaque=opaque)
            case InlineFile(data=inline):
                if len(inline) != entry.size:
                    raise ArtifactError(
                        f"{source}: entry {path!r} says {entry.size} bytes but holds "
                        f"{len(inline)} inline"
                    )
                writer.file_from_bytes(path, mode, mtime, inline)
            case EmptyFile():
                writer.file_from_bytes(path, mode, mtime, b"")
            case FileByDigest(digest=digest):
                writer.file_from_path(path, mode, mtime, blob_path(digest), entry.size)
            case Symlink(target=target):
                writer.symlink(path, target, mtime)
            case Hardlink(target=target):
                writer.hardlink(path, target)
            case Whiteout():
                writer.whiteout(path)
    writer.finish()


def _clamp(mtime: int) -> int:
    return min(max(int(mtime), 0), _MAX_MTIME)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_fd(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy ``size`` bytes in the kernel where it can (copy_file_range: reflinks on btrfs/xfs)."""
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src_fd, dst_fd, min(size - copied, 1 << 30))
            if n == 0:
                break
            copied += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        os.lseek(src_fd, copied, os.SEEK_SET)
        os.lseek(dst_fd, copied, os.SEEK_SET)
        while copied < size:
            chunk = os.read(src_fd, min(size - copied, _COPY_CHUNK))
            if not chunk:
                break
            _write_all(dst_fd, chunk)
            copied += len(chunk)
    return copied
