"""The broker's artifact store on disk: uploads in, verified blobs in place, fetches out.

The directory is core's content-addressed cache layout (``maelstrom_core.cache``): a
``CACHEDIR.TAG``, an exclusive ``lock``, ``tmp/``, ``removing/`` and ``sha256/blob/<hex>``.
Entries survive restarts. Which artifacts are referenced, and which to evict, is the
scheduler's bookkeeping; this module only moves bytes and files, as it is told.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import trio

from maelstrom_core.cache import BackgroundRemover, CacheDirectory, CacheKey, EntryKind
from maelstrom_core.digest import Sha256
from maelstrom_core.errors import ArtifactError, DigestMismatch
from maelstrom_core.manifest import decode_manifest, file_digests
from maelstrom_core.net import MessageStream

__all__ = ["ArtifactStore", "open_artifact_store", "read_manifest_blobs"]


class _HashingWriter:
    """A file that hashes what is written to it, so an upload is checked in the same pass."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.hasher = Sha256()

    def write(self, data: bytes | bytearray) -> int:
        self.hasher.update(data)
        return self._file.write(data)


class ArtifactStore:
    """Blobs named by their SHA-256. Open with ``open_artifact_store``."""

    def __init__(
        self,
        disk: CacheDirectory,
        remover: BackgroundRemover,
        stored: list[tuple[bytes, int]],
    ) -> None:
        self._disk = disk
        self._remover = remover
        self.stored = stored  # found at start, oldest first

    @property
    def root(self) -> Path:
        return self._disk.root

    def path(self, digest: bytes) -> Path:
        return self._disk.entry_path(CacheKey(EntryKind.BLOB, digest))

    async def receive_upload(self, messages: MessageStream, digest: bytes, size: int) -> Path:
        """Stream ``size`` raw bytes from ``messages`` into a temp file, checking the digest.

        Returns the temp file; ``commit`` or ``discard`` it.

        Raises:
            DigestMismatch: the bytes hash to something else (the temp file is gone).
            PeerBroken: the pusher went away part way.
        """
        tmp = self._disk.new_tmp_path()
        try:
            with open(tmp, "xb") as file:
                writer = _HashingWriter(file)
                await messages.receive_bytes_into_file(size, writer)  # type: ignore[arg-type]
                os.fchmod(file.fileno(), 0o444)
        except BaseException:
            self.discard(tmp)
            raise
        actual = writer.hasher.digest()
        if actual != digest:
            self.discard(tmp)
            raise DigestMismatch(f"artifact pushed as {digest.hex()} has SHA-256 {actual.hex()}")
        return tmp

    def commit(self, tmp: Path, digest: bytes) -> None:
        """Move a verified upload into place. One rename: cheap, so done on the event loop,
        which also makes "is it stored?" and "store it" one step for the scheduler."""
        self._disk.commit(tmp, CacheKey(EntryKind.BLOB, digest), 0)

    def discard(self, tmp: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

    def evict(self, digest: bytes) -> None:
        for path in self._disk.evict(CacheKey(EntryKind.BLOB, digest)):
            self._remover.remove(path)

    def open_for_fetch(self, digest: bytes) -> tuple[BinaryIO, int]:
        """The stored file and its size. The open file stays readable if it is evicted."""
        path = self.path(digest)
        try:
            file = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as err:
            raise ArtifactError(
                f"artifact {digest.hex()} cannot be read from {path}: {err.strerror}"
            ) from err
        return file, os.fstat(file.fileno()).st_size


def read_manifest_blobs(path: Path) -> tuple[bytes, ...]:
    """The blob digests a stored manifest names. Blocking: run it in a thread.

    Raises:
        ArtifactError: the file cannot be read or is not a valid manifest.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"cannot read {path}: {err.strerror}") from err
    return tuple(file_digests(decode_manifest(data)))


@contextlib.asynccontextmanager
async def open_artifact_store(root: Path) -> AsyncIterator[ArtifactStore]:
    """Open (creating, locking and recovering) the store at ``root``.

    Raises:
        ArtifactError: another process holds the directory, or it is unusable.
    """
    disk, found, leftovers = await trio.to_thread.run_sync(CacheDirectory.open, Path(root))
    remover = BackgroundRemover()
    try:
        stored: list[tuple[bytes, int]] = []
        for entry in found:
            if entry.key.kind is EntryKind.BLOB:
                stored.append((entry.key.digest, entry.size))
            else:  # a worker's layer directory: never the broker's
                for path in disk.evict(entry.key):
                    remover.remove(path)
        for path in leftovers:
            remover.remove(path)
        yield ArtifactStore(disk, remover, stored)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(remover.close)
        disk.close()
