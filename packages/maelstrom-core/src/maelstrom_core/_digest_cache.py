"""The client's file digest cache: unchanged files are never read twice.

An entry is keyed by the file's canonical path and trusted only while the file's size, mtime (in
nanoseconds) and inode are what they were when it was hashed, so an edit, a truncation, a
``touch`` or a replace-by-rename all force a re-hash. The cache lives in
``<cache_dir>/cached-digests.cbor``; ``save`` merges with whatever other processes wrote since
we loaded it, under an exclusive ``flock``, and replaces the file atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cbor2

from .digest import sha256_files
from .errors import ArtifactError

__all__ = ["DigestCache", "FileStat"]

log = logging.getLogger("maelstrom_core.layers")

_FILE_NAME = "cached-digests.cbor"
_LOCK_NAME = "cached-digests.lock"
_FORMAT = 1
# A file whose mtime is this close to "now" may still be written within the same timestamp tick
# (the kernel's clock for file times is coarse), so its digest is used but never remembered.
_RACY_WINDOW_NS = 100_000_000
_PARALLEL_BYTES = 8 << 20  # below this, a second thread costs more than it saves


@dataclass(frozen=True, slots=True)
class FileStat:
    """What must be unchanged for a cached digest to be trusted."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class DigestCache:
    """SHA-256 digests of files, remembered across runs by (path, size, mtime_ns, inode).

    Not thread-safe: one builder owns it. Several processes may share one cache dir.
    """

    def __init__(self, cache_dir: Path) -> None:
        self._dir = cache_dir
        self._path = cache_dir / _FILE_NAME
        self._entries: dict[str, tuple[FileStat, bytes]] = _load(self._path)
        self._new: dict[str, tuple[FileStat, bytes]] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, path: str, st: FileStat) -> bytes | None:
        """The cached digest of canonical ``path`` if the file is unchanged, else None."""
        found = self._entries.get(path)
        if found is not None and found[0] == st:
            return found[1]
        return None

    def digests(self, files: Sequence[tuple[str, FileStat]]) -> list[bytes]:
        """Digests of ``(canonical path, stat)`` pairs; only misses are read, in one batch.

        Raises:
            ArtifactError: a file cannot be read, or changed while it was being hashed.
        """
        out: list[bytes | None] = [self.lookup(path, st) for path, st in files]
        missing = [i for i, digest in enumerate(out) if digest is None]
        self.hits += len(files) - len(missing)
        self.misses += len(missing)
        if missing:
            paths = [files[i][0] for i in missing]
            hashed = _hash_batch(paths, [files[i][1].size for i in missing])
            now = time.time_ns()
            for i, digest in zip(missing, hashed, strict=True):
                path, before = files[i]
                after = _stat(path)
                if after != before:
                    raise ArtifactError(f"{path}: file changed while it was being hashed")
                out[i] = digest
                if before.mtime_ns < now - _RACY_WINDOW_NS:
                    self._entries[path] = self._new[path] = (before, digest)
        return [digest for digest in out if digest is not None]

    def save(self) -> None:
        """Merge our new entries into the cache file, atomically and under an exclusive lock.

        Raises:
            ArtifactError: the cache dir cannot be written.
        """
        if not self._new:
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            with open(self._dir / _LOCK_NAME, "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                merged = _load(self._path)
                merged.update(self._new)
                _write_atomically(self._path, merged)
        except OSError as err:
            raise ArtifactError(f"{self._path}: cannot save the digest cache: {err}") from None
        self._entries = merged
        self._new.clear()


def _stat(path: str) -> FileStat:
    try:
        return FileStat.of(os.stat(path))
    except OSError as err:
        raise ArtifactError(f"{path}: {err.strerror}") from None


def _hash_batch(paths: list[str], sizes: list[int]) -> list[bytes]:
    """Hash in two halves of about equal bytes on two threads; the digest code drops the GIL."""
    if len(paths) < 2 or sum(sizes) < _PARALLEL_BYTES:
        return sha256_files(paths)
    halves: tuple[list[int], list[int]] = ([], [])
    loads = [0, 0]
    for i in sorted(range(len(paths)), key=sizes.__getitem__, reverse=True):
        side = 0 if loads[0] <= loads[1] else 1
        halves[side].append(i)
        loads[side] += sizes[i]
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(sha256_files, [paths[i] for i in halves[1]])
        first = sha256_files([paths[i] for i in halves[0]])
        second = other.result()
    out: list[bytes] = [b""] * len(paths)
    for i, digest in zip(halves[0], first, strict=True):
        out[i] = digest
    for i, digest in zip(halves[1], second, strict=True):
        out[i] = digest
    return out


def _load(path: Path) -> dict[str, tuple[FileStat, bytes]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        log.warning("%s: cannot read the digest cache (%s); starting empty", path, err)
        return {}
    try:
        return _parse(data)
    except Exception as err:  # any garbage at all means "start over", never a crash
        log.warning("%s: discarding corrupt digest cache (%s)", path, err)
        return {}


def _parse(data: bytes) -> dict[str, tuple[FileStat, bytes]]:
    doc = cbor2.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise ValueError("not a version-1 digest cache")
    entries = doc.get("entries")
    if not isinstance(entries, dict):
        raise TypeError("no entries map")
    out: dict[str, tuple[FileStat, bytes]] = {}
    for key, value in entries.items():
        if not (isinstance(key, str) and isinstance(value, list) and len(value) == 4):
            raise ValueError(f"bad entry for {key!r}")
        size, mtime_ns, inode, digest = value
        if not all(type(v) is int for v in (size, mtime_ns, inode)) or type(digest) is not bytes:
            raise ValueError(f"bad entry for {key!r}")
        if len(digest) != 32:
            raise ValueError(f"bad digest for {key!r}")
        out[key] = (FileStat(size, mtime_ns, inode), digest)
    return out


def _write_atomically(path: Path, entries: dict[str, tuple[FileStat, bytes]]) -> None:
    doc = {
        "format": _FORMAT,
        "entries": {
            key: [st.size, st.mtime_ns, st.inode, digest] for key, (st, digest) in entries.items()
        },
    }
    fd, tmp = tempfile.mkstemp(prefix=".cached-digests.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(cbor2.dumps(doc))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
