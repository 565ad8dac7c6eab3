"""Safe extraction of a tar layer into a fresh directory.

``tarfile`` only parses here: its ``extract``/``extractall`` are never used, since they follow
symlinks planted earlier in the same archive and create device nodes. Every member goes
through ``TreeWriter`` (see ``_materialize``), which refuses ``..``, confines absolute names
to the layer, never writes through a symlink, and keeps hard links inside the layer.

OCI whiteouts are honoured: ``.wh.<name>`` hides ``<name>`` of lower layers and
``.wh..wh..opq`` makes its directory opaque. Other ``.wh..wh.`` names (AUFS bookkeeping) are
skipped. Devices and FIFOs are refused, as the original refuses them (internals §9 item 9).

The archive is read once, front to back (``tarfile`` stream mode), through a SHA-256 hasher,
so the digest is checked in the same pass as the extraction; compressed tars are accepted.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

from ._materialize import TreeWriter
from .digest import Sha256
from .errors import ArtifactError, DigestMismatch

__all__ = ["extract_tar"]

_WHITEOUT_PREFIX = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
_READ_CHUNK = 1 << 20


class _HashingReader:
    """A read-only file object that hashes everything read through it."""

    def __init__(self, raw: BinaryIO, archive: Path) -> None:
        self._raw = raw
        self._archive = archive
        self.hasher = Sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except OSError as e:
            # Named here so that a failed read is never mistaken for a failed write of ours.
            raise ArtifactError(f"cannot read tar layer {self._archive}: {e.strerror}") from e
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(_READ_CHUNK):
            pass


def extract_tar(archive: Path, dest: Path, *, expected_digest: bytes | None = None) -> None:
    """Extract ``archive`` into ``dest``, an existing empty directory only the caller uses.

    Args:
        archive: the tar file (plain, gzip, bzip2 or xz).
        dest: the directory to fill; on error it is half-built and the caller discards it.
        expected_digest: if given, the SHA-256 the archive's bytes must have.

    Raises:
        ArtifactError: the archive cannot be read, is malformed or truncated, or has a member
            that is unsafe or unsupported; the message names the archive and the member.
        DigestMismatch: the bytes do not hash to ``expected_digest``.
        OSError: the host refused a write (disk full, ...).
    """
    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as e:
        raise ArtifactError(f"cannot open tar layer {archive}: {e.strerror}") from e
    try:
        reader = _HashingReader(raw, archive)
        writer = TreeWriter(dest, f"tar layer {archive}")
        try:
            with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _extract_member(tar, member, writer, archive)
            reader.drain()
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise ArtifactError(f"tar layer {archive} is malformed or truncated: {e}") from e
        if expected_digest is not None and reader.hasher.digest() != expected_digest:
            raise DigestMismatch(
                f"tar layer {archive} has SHA-256 {reader.hasher.hexdigest()}, expected "
                f"{expected_digest.hex()}"
            )
        writer.finish()
    finally:
        raw.close()


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, writer: TreeWriter, archive: Path
) -> None:
    name = member.name
    head, _, base = name.rstrip("/").rpartition("/")
    if base == _OPAQUE_MARKER:
        writer.opaque(head)
        return
    if any(c.startswith(_WHITEOUT_PREFIX + _WHITEOUT_PREFIX) for c in name.split("/")):
        return  # AUFS bookkeeping such as .wh..wh.plnk/, meaningless to overlayfs
    if base.startswith(_WHITEOUT_PREFIX):
        hidden = base[len(_WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise ArtifactError(f"tar layer {archive}: member {name!r} is not a valid whiteout")
        writer.whiteout(f"{head}/{hidden}")
        return
    if member.isdir():
        writer.directory(name, member.mode, int(member.mtime))
    elif member.isreg():
        data = tar.extractfile(member)
        if data is None:  # isreg() members always have data; keep mypy and us honest
            raise ArtifactError(f"tar layer {archive}: member {name!r} has no data")
        writer.file_from_stream(name, member.mode, int(member.mtime), data, member.size)
    elif member.issym():
        writer.symlink(name, member.linkname, int(member.mtime))
    elif member.islnk():
        writer.hardlink(name, member.linkname)
    elif member.ischr() or member.isblk():
        raise ArtifactError(
            f"tar layer {archive}: member {name!r} is a device node, which layers cannot hold"
        )
    elif member.isfifo():
        raise ArtifactError(
            f"tar layer {archive}: member {name!r} is a FIFO, which layers cannot hold"
        )
    else:
        raise ArtifactError(
            f"tar layer {archive}: member {name!r} has unsupported type {member.type!r}"
        )
