"""Bookkeeping of the content-addressed cache, with no I/O and no trio (internals §3.6).

Every entry is in one of three states:

* getting: one caller (the getter) is producing it; later callers wait and are counted, so
  when it arrives each of them already holds a reference;
* in use: ``refcount`` callers hold it; it is never evicted;
* evictable: nobody holds it; it sits in a min-heap keyed by a counter taken when its last
  reference went, so the entry released longest ago goes first.

After every arrival and every release the cache evicts evictable entries while the bytes used
exceed the target. Referenced entries are never evicted, so the target is soft. The trio edge
(``maelstrom_core.cache``) turns the returned keys into renames and directory removals.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass

from .errors import InternalError

__all__ = ["CacheKey", "CacheState", "CacheStatistics", "EntryKind", "GetResult"]


class EntryKind(enum.Enum):
    BLOB = "blob"  # an artifact's raw bytes, as one read-only file
    LAYER = "layer"  # an artifact materialised as a read-only directory tree


@dataclass(frozen=True, slots=True)
class CacheKey:
    kind: EntryKind
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise InternalError(f"cache key digest must be 32 bytes, got {len(self.digest)}")

    @property
    def hex(self) -> str:
        return self.digest.hex()


class GetResult(enum.Enum):
    SUCCESS = "success"  # present; the caller now holds a reference
    WAIT = "wait"  # someone else is getting it; the caller holds a reference once it arrives
    GET = "get"  # absent; the caller must produce it and then call got() or get_failed()


@dataclass(slots=True)
class _Getting:
    waiters: int = 0


@dataclass(slots=True)
class _InUse:
    size: int
    refcount: int


@dataclass(slots=True)
class _Evictable:
    size: int
    priority: int


_Entry = _Getting | _InUse | _Evictable


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    entries: int
    getting: int
    in_use: int
    evictable: int
    bytes_used: int
    target_bytes: int


class CacheState:
    """The cache's state machine. Every method is synchronous and does no I/O."""

    def __init__(self, target_bytes: int) -> None:
        if target_bytes < 0:
            raise InternalError(f"cache target must not be negative, got {target_bytes}")
        self._target = target_bytes
        self._entries: dict[CacheKey, _Entry] = {}
        # Lazy-deletion heap: an item is live only while the entry is evictable with that
        # priority, so re-referencing an entry never has to search the heap. Priorities are
        # unique, so keys are never compared.
        self._heap: list[tuple[int, CacheKey]] = []
        self._next_priority = 0
        self._bytes_used = 0

    # --- queries ---------------------------------------------------------------------------

    @property
    def bytes_used(self) -> int:
        """Bytes of every entry that has arrived, referenced or not."""
        return self._bytes_used

    @property
    def target_bytes(self) -> int:
        return self._target

    def refcount(self, key: CacheKey) -> int:
        """References held on ``key`` (0 if evictable, absent or still being got)."""
        entry = self._entries.get(key)
        return entry.refcount if isinstance(entry, _InUse) else 0

    def is_present(self, key: CacheKey) -> bool:
        """True if ``key`` has arrived (in use or evictable)."""
        return isinstance(self._entries.get(key), _InUse | _Evictable)

    def is_getting(self, key: CacheKey) -> bool:
        return isinstance(self._entries.get(key), _Getting)

    def statistics(self) -> CacheStatistics:
        counts = {_Getting: 0, _InUse: 0, _Evictable: 0}
        for entry in self._entries.values():
            counts[type(entry)] += 1
        return CacheStatistics(
            entries=len(self._entries),
            getting=counts[_Getting],
            in_use=counts[_InUse],
            evictable=counts[_Evictable],
            bytes_used=self._bytes_used,
            target_bytes=self._target,
        )

    # --- transitions -----------------------------------------------------------------------

    def load(self, key: CacheKey, size: int) -> list[CacheKey]:
        """Register an entry found on disk at start-up as evictable.

        Returns the keys to evict now (the caller deletes them), as after a release.
        """
        if key in self._entries:
            raise InternalError(f"cache entry {key} loaded twice")
        if size < 0:
            raise InternalError(f"cache entry {key} has negative size {size}")
        self._bytes_used += size
        self._make_evictable(key, size)
        return self._evict()

    def get(self, key: CacheKey) -> GetResult:
        """Ask for ``key``. See ``GetResult`` for what the caller then holds or must do."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Getting()
            return GetResult.GET
        if isinstance(entry, _Getting):
            entry.waiters += 1
            return GetResult.WAIT
        if isinstance(entry, _InUse):
            entry.refcount += 1
        else:
            self._entries[key] = _InUse(size=entry.size, refcount=1)
        return GetResult.SUCCESS

    def got(self, key: CacheKey, size: int) -> list[CacheKey]:
        """The getter produced ``key`` (``size`` bytes); it and every waiter hold a reference.

        Returns the keys to evict now.
        """
        entry = self._entries.get(key)
        if not isinstance(entry, _Getting):
            raise InternalError(f"cache entry {key} arrived but nobody was getting it")
        if size < 0:
            raise InternalError(f"cache entry {key} has negative size {size}")
        self._entries[key] = _InUse(size=size, refcount=1 + entry.waiters)
        self._bytes_used += size
        return self._evict()

    def get_failed(self, key: CacheKey) -> int:
        """The getter gave up on ``key``. Forgets it and returns how many waiters lose out.

        The waiters hold nothing; each may ask again (and one of them becomes the getter).
        """
        entry = self._entries.get(key)
        if not isinstance(entry, _Getting):
            raise InternalError(f"cache entry {key} failed but nobody was getting it")
        del self._entries[key]
        return entry.waiters

    def cancel_wait(self, key: CacheKey) -> None:
        """A waiter stopped waiting before ``key`` arrived or failed."""
        entry = self._entries.get(key)
        if not isinstance(entry, _Getting) or entry.waiters == 0:
            raise InternalError(f"cancelled a wait on cache entry {key} that had no waiter")
        entry.waiters -= 1

    def release(self, key: CacheKey) -> list[CacheKey]:
        """Drop one reference on ``key``. Returns the keys to evict now."""
        entry = self._entries.get(key)
        if not isinstance(entry, _InUse):
            raise InternalError(f"released cache entry {key} that holds no reference")
        entry.refcount -= 1
        if entry.refcount > 0:
            return []
        self._make_evictable(key, entry.size)
        return self._evict()

    def set_target(self, target_bytes: int) -> list[CacheKey]:
        """Change the byte target. Returns the keys to evict now."""
        if target_bytes < 0:
            raise InternalError(f"cache target must not be negative, got {target_bytes}")
        self._target = target_bytes
        return self._evict()

    # --- helpers ---------------------------------------------------------------------------

    def _make_evictable(self, key: CacheKey, size: int) -> None:
        priority = self._next_priority
        self._next_priority += 1
        self._entries[key] = _Evictable(size=size, priority=priority)
        heapq.heappush(self._heap, (priority, key))

    def _evict(self) -> list[CacheKey]:
        evicted: list[CacheKey] = []
        while self._bytes_used > self._target and self._heap:
            priority, key = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if not isinstance(entry, _Evictable) or entry.priority != priority:
                continue  # stale: re-referenced (and maybe released again) since it was pushed
            del self._entries[key]
            self._bytes_used -= entry.size
            evicted.append(key)
        return evicted
