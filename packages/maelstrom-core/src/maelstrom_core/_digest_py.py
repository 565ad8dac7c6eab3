"""SHA-256 digests in pure Python (hashlib): the reference twin of ``_digest_c``.

Import the API from ``maelstrom_core.digest``, which picks the compiled twin when it can. This
module defines the behaviour both twins share, including the exact error messages, and the
compiled twin imports its error helpers from here so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from maelstrom_core.errors import ArtifactError

__all__ = ["Sha256", "sha256_bytes", "sha256_file", "sha256_files"]


class Sha256:
    """A streaming SHA-256 hasher: ``update`` any number of times, then ``digest``.

    ``digest`` does not end the stream: more ``update`` calls may follow.
    """

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def sha256_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def sha256_file(path: str | os.PathLike[str]) -> bytes:
    """The SHA-256 digest of the file at ``path``, read in chunks (never whole)."""
    return _hash_file(checked_path(path))


def sha256_files(paths: Sequence[str | os.PathLike[str]]) -> list[bytes]:
    """The SHA-256 digest of each file in ``paths``, in order.

    Stops at the first file that cannot be read and raises ``ArtifactError`` naming it.
    """
    names = [checked_path(path) for path in paths]
    return [_hash_file(name) for name in names]


def _hash_file(name: str | bytes) -> bytes:
    try:
        with open(name, "rb", buffering=0) as file:
            return hashlib.file_digest(file, "sha256").digest()
    except OSError as error:
        raise read_error(name, error.strerror or str(error)) from error


def checked_path(path: str | os.PathLike[str]) -> str | bytes:
    """``path`` as a ``str`` or ``bytes`` the OS can open, or ``ArtifactError`` if it cannot be.

    ``os.fspath`` first, so a stray int is a TypeError rather than a file descriptor to open.
    """
    name: str | bytes = os.fspath(path)
    if (name.find("\0") if isinstance(name, str) else name.find(b"\0")) >= 0:
        raise read_error(name, "embedded null byte")
    return name


def read_error(path: str | bytes, reason: str) -> ArtifactError:
    """The one error both twins raise for a file they cannot read."""
    text = os.fsdecode(path)
    # Keep the message on one line even for a path with control characters in it.
    shown = text if text.isprintable() else repr(text)
    return ArtifactError(f"cannot read {shown}: {reason}")
