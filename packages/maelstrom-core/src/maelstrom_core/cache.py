"""The content-addressed layer cache of a worker (and of a client's local worker).

Layout under the cache root (internals §3.6)::

    CACHEDIR.TAG            the standard cache-directory tag (plus our layout version)
    lock                    held with an exclusive flock while the cache is open
    tmp/                    entries being built; emptied at start
    removing/               entries being deleted by a background thread; emptied at start
    sha256/blob/<hex>       an artifact's bytes (a manifest's file data), read-only
    sha256/layer/<hex>      an artifact materialised as a directory tree (an overlay lower dir)
    sha256/layer/<hex>.size its size in bytes, u64 big-endian

Every entry is built in ``tmp/`` and renamed into place, a layer's ``.size`` first and its
directory last, so a crash never leaves half an entry visible: at start, anything under
``sha256/`` that is not a complete entry, and anything unknown, is removed. Entries survive a
restart only if ``CACHEDIR.TAG`` holds exactly our content; otherwise the directory is wiped.
Entries found at start are loaded as evictable. Deletion is a rename into ``removing/``
followed by a removal in a worker thread, so the event loop never walks a big tree.

Bookkeeping (refcounts, waiting, eviction down to a soft byte target) is ``CacheState``'s;
this module only does the I/O it decides on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import queue
import stat
import struct
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from ._cache_state import CacheKey, CacheState, CacheStatistics, EntryKind, GetResult
from ._job import ArtifactType, LayerRef
from ._manifest import ManifestEntry, decode_manifest, file_digests
from ._materialize import materialize_manifest
from ._tar import extract_tar
from .digest import Sha256, sha256_bytes
from .errors import ArtifactError, DigestMismatch

__all__ = [
    "CACHEDIR_TAG",
    "ArtifactSource",
    "BackgroundRemover",
    "CacheDirectory",
    "CacheKey",
    "CacheState",
    "CacheStatistics",
    "EntryKind",
    "GetResult",
    "LayerCache",
    "open_layer_cache",
]

CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by maelstrom (cache layout 1).\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)

_KNOWN_ROOT_NAMES = frozenset({"CACHEDIR.TAG", "lock", "tmp", "removing", "sha256"})
_SIZE = struct.Struct(">Q")
_SIZE_SUFFIX = ".size"
_COPY_CHUNK = 1 << 20
# How many blobs of one manifest are fetched and copied at once.
_MAX_BLOB_GETS = 8


class ArtifactSource(Protocol):
    """Where the cache gets an artifact's bytes when it does not have them."""

    async def fetch(self, digest: bytes) -> Path:
        """A local file holding exactly the bytes whose SHA-256 is ``digest``.

        The file stays the source's: the cache only reads it, and checks the digest.

        Raises:
            ArtifactError: the artifact cannot be had (unknown, upload failed, ...).
        """
        ...


# --- the directory -------------------------------------------------------------------------


def _is_hex_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def force_remove(path: Path | str) -> None:
    """Remove a file or a whole tree, read-only directories included; never follows symlinks."""
    stack: list[tuple[str, bool]] = [(os.fspath(path), False)]
    while stack:
        name, emptied = stack.pop()
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name)
        elif emptied:
            os.rmdir(name)
        else:
            if st.st_mode & 0o700 != 0o700:
                os.chmod(name, 0o700)  # layers keep their entries' modes, 0o555 dirs included
            stack.append((name, True))
            with os.scandir(name) as entries:
                stack.extend((entry.path, False) for entry in entries)


def disk_usage(path: Path) -> int:
    """Bytes of disk a tree takes (allocated blocks), each hard-linked inode counted once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(path)]
    while stack:
        name = stack.pop()
        st = os.lstat(name)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(name) as entries:
                stack.extend(entry.path for entry in entries)
    return total


@dataclass(slots=True)
class _Found:
    key: CacheKey
    size: int
    age: int  # ctime in ns: when the entry was renamed into place


class _CacheDir:
    """The on-disk side: locking, start-up recovery, commits and detaching. Blocking calls."""

    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd = lock_fd
        self.tmp = root / "tmp"
        self.removing = root / "removing"
        self.entries = root / "sha256"

    @classmethod
    def open(cls, root: Path) -> tuple[_CacheDir, list[_Found], list[Path]]:
        """Lock ``root`` and recover it. Returns the directory, the entries found (oldest
        first) and what is waiting in ``removing/``."""
        root = root.absolute()
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ArtifactError(f"cannot open cache directory {root}: {e.strerror}") from e
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(lock_fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ArtifactError(
                    f"cache directory {root} is in use by another process (it holds "
                    f"{root / 'lock'}); give each worker and client its own cache directory"
                ) from e
            raise ArtifactError(f"cannot lock cache directory {root}: {e.strerror}") from e
        cache_dir = cls(root, lock_fd)
        try:
            found = cache_dir._recover()
            leftovers = sorted(cache_dir.removing.iterdir())
        except OSError as e:
            cache_dir.close()
            raise ArtifactError(f"cannot recover cache directory {root}: {e}") from e
        except BaseException:
            cache_dir.close()
            raise
        return cache_dir, found, leftovers

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _recover(self) -> list[_Found]:
        tag = self.root / "CACHEDIR.TAG"
        try:
            tag_content: bytes | None = tag.read_bytes()
        except FileNotFoundError:
            tag_content = None
        names = {p.name for p in self.root.iterdir()} - {"lock"}
        if tag_content is None and names - _KNOWN_ROOT_NAMES:
            # A cache root that was never tagged by us but holds files is most likely a
            # mistyped path; wiping it would destroy someone's data.
            foreign = sorted(names - _KNOWN_ROOT_NAMES)[0]
            raise ArtifactError(
                f"cache directory {self.root} has no CACHEDIR.TAG but holds other files "
                f"(such as {foreign!r}); refusing to wipe it, choose an empty directory"
            )
        self.removing.mkdir(exist_ok=True)
        if tag_content != CACHEDIR_TAG:
            for name in names - {"removing"}:
                self.detach(self.root / name)
        else:
            self.detach(self.tmp)  # with any half-built entries of a previous run
        self.tmp.mkdir()
        if tag_content != CACHEDIR_TAG:
            staged = self.tmp / "CACHEDIR.TAG"
            staged.write_bytes(CACHEDIR_TAG)
            staged.rename(tag)
        for name in names - _KNOWN_ROOT_NAMES:
            self.detach(self.root / name)
        self.entries.mkdir(exist_ok=True)
        kinds = {kind.value for kind in EntryKind}
        for kind_dir in self.entries.iterdir():
            if kind_dir.name not in kinds or not kind_dir.is_dir() or kind_dir.is_symlink():
                self.detach(kind_dir)
        found: list[_Found] = []
        for kind in EntryKind:
            kind_dir = self.entries / kind.value
            kind_dir.mkdir(exist_ok=True)
            found.extend(self._scan(kind, kind_dir))
        found.sort(key=lambda f: f.age)
        return found

    def _scan(self, kind: EntryKind, kind_dir: Path) -> list[_Found]:
        found: list[_Found] = []
        sizes: dict[str, int] = {}
        dirs: dict[str, os.stat_result] = {}
        for path in kind_dir.iterdir():
            name = path.name
            st = path.lstat()
            if kind is EntryKind.BLOB and _is_hex_digest(name) and stat.S_ISREG(st.st_mode):
                found.append(
                    _Found(CacheKey(kind, bytes.fromhex(name)), st.st_size, st.st_ctime_ns)
                )
            elif kind is EntryKind.LAYER and _is_hex_digest(name) and stat.S_ISDIR(st.st_mode):
                dirs[name] = st
            elif (
                kind is EntryKind.LAYER
                and name.endswith(_SIZE_SUFFIX)
                and _is_hex_digest(name[: -len(_SIZE_SUFFIX)])
                and stat.S_ISREG(st.st_mode)
                and st.st_size == _SIZE.size
            ):
                (sizes[name[: -len(_SIZE_SUFFIX)]],) = _SIZE.unpack(path.read_bytes())
            else:
                self.detach(path)
        for name, st in dirs.items():
            if name in sizes:
                found.append(
                    _Found(CacheKey(kind, bytes.fromhex(name)), sizes.pop(name), st.st_ctime_ns)
                )
            else:
                self.detach(kind_dir / name)  # crashed between the .size and the directory
        for name in sizes:
            self.detach(kind_dir / (name + _SIZE_SUFFIX))
        return found

    def entry_path(self, key: CacheKey) -> Path:
        return self.entries / key.kind.value / key.digest.hex()

    def new_tmp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def detach(self, path: Path) -> Path | None:
        """Rename ``path`` into ``removing/``; returns where it went (None if it was gone)."""
        target = self.removing / uuid.uuid4().hex
        try:
            path.rename(target)
        except FileNotFoundError:
            return None
        return target

    def commit(self, built: Path, key: CacheKey, size: int) -> None:
        """Rename a finished entry from ``tmp/`` into place."""
        final = self.entry_path(key)
        self.detach(final)  # nothing should be there; a stray must not block the rename
        if key.kind is EntryKind.LAYER:
            staged = self.new_tmp_path()
            staged.write_bytes(_SIZE.pack(size))
            staged.rename(final.with_name(final.name + _SIZE_SUFFIX))
        built.rename(final)

    def evict(self, key: CacheKey) -> list[Path]:
        """Detach an evicted entry; returns the paths for the remover."""
        final = self.entry_path(key)
        detached = [self.detach(final)]
        if key.kind is EntryKind.LAYER:
            # The directory goes first: a crash in between leaves a lone .size, cleaned at start.
            detached.append(self.detach(final.with_name(final.name + _SIZE_SUFFIX)))
        return [p for p in detached if p is not None]


def _copy_verified(src: Path, dest: Path, digest: bytes) -> int:
    """Copy ``src`` to ``dest`` (read-only), checking its SHA-256 in the same pass."""
    hasher = Sha256()
    size = 0
    try:
        src_file = open(src, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise ArtifactError(f"cannot read artifact {digest.hex()} at {src}: {e.strerror}") from e
    with src_file, open(dest, "xb") as out:
        while chunk := src_file.read(_COPY_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
        os.fchmod(out.fileno(), 0o444)
    if hasher.digest() != digest:
        raise DigestMismatch(
            f"artifact {digest.hex()} at {src} has SHA-256 {hasher.hexdigest()} instead"
        )
    return size


def _read_manifest(src: Path, digest: bytes) -> list[ManifestEntry]:
    try:
        data = src.read_bytes()
    except OSError as e:
        raise ArtifactError(f"cannot read manifest {digest.hex()} at {src}: {e.strerror}") from e
    actual = sha256_bytes(data)
    if actual != digest:
        raise DigestMismatch(f"manifest {digest.hex()} at {src} has SHA-256 {actual.hex()}")
    try:
        return decode_manifest(data)
    except ArtifactError as e:
        raise ArtifactError(f"manifest {digest.hex()} at {src}: {e}") from e


# --- the trio edge -------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """The getter's news for the tasks waiting on the same key."""

    event: trio.Event = field(default_factory=trio.Event)
    ok: bool = False


class LayerCache:
    """Materialised layers, shared by every job of one worker. Open with ``open_layer_cache``.

    ``acquire`` gives a layer's directory and holds a reference on it until the matching
    ``release``; held layers are never evicted. Each artifact is fetched and materialised once
    even when many jobs ask for it at the same time: the first asker builds, the others wait.
    """

    def __init__(
        self,
        disk: _CacheDir,
        state: CacheState,
        remover: _Remover,
    ) -> None:
        self._disk = disk
        self._state = state
        self._remover = remover
        self._pending: dict[CacheKey, _Pending] = {}

    @property
    def root(self) -> Path:
        return self._disk.root

    def statistics(self) -> CacheStatistics:
        return self._state.statistics()

    async def acquire(self, layer: LayerRef, source: ArtifactSource) -> Path:
        """The read-only directory holding ``layer``'s tree; hold it until ``release(layer)``.

        Raises:
            ArtifactError: the artifact cannot be fetched, is corrupt (``DigestMismatch``),
                or is not a valid tar or manifest; the message names it.
            OSError: the cache's disk failed (full, read-only, ...).

        Cancellation: safe at any point; a half-built layer is thrown away, and a waiter that
        is cancelled holds nothing.
        """
        key = CacheKey(EntryKind.LAYER, layer.digest)
        return await self._acquire(key, functools.partial(self._build_layer, layer, source))

    def release(self, layer: LayerRef) -> None:
        """Drop one reference taken by ``acquire``."""
        self._release_key(CacheKey(EntryKind.LAYER, layer.digest))

    # --- acquiring -------------------------------------------------------------------------

    async def _acquire(self, key: CacheKey, build: Callable[[Path], Awaitable[int]]) -> Path:
        while True:
            result = self._state.get(key)
            if result is GetResult.SUCCESS:
                return self._disk.entry_path(key)
            if result is GetResult.WAIT:
                pending = self._pending[key]
                try:
                    await pending.event.wait()
                finally:
                    if not pending.event.is_set():
                        self._state.cancel_wait(key)
                if pending.ok:
                    return self._disk.entry_path(key)
                continue  # the getter failed; ask again, maybe becoming the getter
            pending = _Pending()
            self._pending[key] = pending
            built = self._disk.new_tmp_path()
            try:
                size = await build(built)
                await trio.to_thread.run_sync(self._disk.commit, built, key, size)
            except BaseException:
                self._discard(built)
                del self._pending[key]
                self._state.get_failed(key)
                pending.event.set()
                raise
            del self._pending[key]
            pending.ok = True
            self._evict(self._state.got(key, size))
            pending.event.set()
            return self._disk.entry_path(key)

    async def _build_layer(self, layer: LayerRef, source: ArtifactSource, built: Path) -> int:
        artifact = await source.fetch(layer.digest)
        built.mkdir(mode=0o700)
        if layer.type is ArtifactType.TAR:
            extract = functools.partial(extract_tar, expected_digest=layer.digest)
            await trio.to_thread.run_sync(extract, artifact, built)
        else:
            entries = await trio.to_thread.run_sync(_read_manifest, artifact, layer.digest)
            await self._materialize(entries, layer.digest, source, built)
        return await trio.to_thread.run_sync(disk_usage, built)

    async def _materialize(
        self, entries: list[ManifestEntry], digest: bytes, source: ArtifactSource, built: Path
    ) -> None:
        held: list[CacheKey] = []
        try:
            await self._hold_blobs(file_digests(entries), source, held)
            materialize = functools.partial(
                materialize_manifest,
                blob_path=lambda d: self._disk.entry_path(CacheKey(EntryKind.BLOB, d)),
                source=f"manifest {digest.hex()}",
            )
            await trio.to_thread.run_sync(materialize, entries, built)
        finally:
            for key in held:
                self._release_key(key)

    async def _hold_blobs(
        self, digests: list[bytes], source: ArtifactSource, held: list[CacheKey]
    ) -> None:
        """Acquire every blob, a few at a time; the first failure stops the rest."""
        failures: list[Exception] = []
        limiter = trio.CapacityLimiter(_MAX_BLOB_GETS)

        async def hold(key: CacheKey) -> None:
            try:
                async with limiter:
                    await self._acquire(key, functools.partial(self._build_blob, key, source))
                    held.append(key)
            except Exception as e:  # reported below; Cancelled is not an Exception
                failures.append(e)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for digest in digests:
                nursery.start_soon(hold, CacheKey(EntryKind.BLOB, digest))
        if failures:
            raise failures[0]

    async def _build_blob(self, key: CacheKey, source: ArtifactSource, built: Path) -> int:
        artifact = await source.fetch(key.digest)
        return await trio.to_thread.run_sync(_copy_verified, artifact, built, key.digest)

    # --- releasing and evicting ------------------------------------------------------------

    def _release_key(self, key: CacheKey) -> None:
        self._evict(self._state.release(key))

    def _evict(self, keys: list[CacheKey]) -> None:
        for key in keys:
            for path in self._disk.evict(key):
                self._remover.remove(path)

    def _discard(self, built: Path) -> None:
        detached = self._disk.detach(built)
        if detached is not None:
            self._remover.remove(detached)


class _Remover:
    """A thread that removes detached entries, so the event loop never walks a big tree."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="maelstrom-cache-remover")
        self._thread.start()

    def remove(self, path: Path) -> None:
        self._queue.put(path)

    def close(self) -> None:
        """Finish what was queued, then stop. Blocks."""
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (path := self._queue.get()) is not None:
            with contextlib.suppress(OSError):
                # Whatever resists stays in removing/ and is retried at the next start.
                force_remove(path)


# The broker's artifact store keeps blobs in this same layout with bookkeeping of its own
# (which clients were asked for a digest, references per job), so it shares these two.
CacheDirectory = _CacheDir
BackgroundRemover = _Remover


@contextlib.asynccontextmanager
async def open_layer_cache(root: Path, target_bytes: int) -> AsyncIterator[LayerCache]:
    """Open (creating, locking and recovering) the cache at ``root``.

    Args:
        root: the cache directory; created if missing.
        target_bytes: evict unreferenced entries, least recently released first, while the
            cache holds more than this (a soft target: held entries are never evicted).

    Raises:
        ArtifactError: another process has the cache open, or the directory is unusable.

    Entries detached while the cache is open are removed by a background thread; leaving
    the block waits for it to finish them and then unlocks the directory.
    """
    if target_bytes < 0:
        raise ArtifactError(f"cache size target must not be negative, got {target_bytes}")
    disk, found, leftovers = await trio.to_thread.run_sync(_CacheDir.open, Path(root))
    remover = _Remover()
    try:
        for path in leftovers:
            remover.remove(path)
        state = CacheState(target_bytes)
        cache = LayerCache(disk, state, remover)
        for entry in found:
            cache._evict(state.load(entry.key, entry.size))
        yield cache
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(remover.close)
        disk.close()
