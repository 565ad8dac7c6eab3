"""The cache's state machine, driven synchronously: no trio, no disk."""

from __future__ import annotations

import random

import pytest

from maelstrom_core._cache_state import CacheKey, CacheState, EntryKind, GetResult
from maelstrom_core.errors import InternalError


def key(n: int, kind: EntryKind = EntryKind.LAYER) -> CacheKey:
    return CacheKey(kind, n.to_bytes(32, "big"))


def test_first_get_must_get_then_success_for_later_ones() -> None:
    state = CacheState(1000)
    assert state.get(key(1)) is GetResult.GET
    assert state.is_getting(key(1))
    assert state.got(key(1), 10) == []
    assert state.refcount(key(1)) == 1
    assert state.get(key(1)) is GetResult.SUCCESS
    assert state.refcount(key(1)) == 2
    assert state.bytes_used == 10


def test_concurrent_getters_wait_and_each_gets_a_reference() -> None:
    state = CacheState(1000)
    assert state.get(key(1)) is GetResult.GET
    assert state.get(key(1)) is GetResult.WAIT
    assert state.get(key(1)) is GetResult.WAIT
    assert state.refcount(key(1)) == 0  # nothing held until it arrives
    state.got(key(1), 5)
    assert state.refcount(key(1)) == 3
    for _ in range(3):
        state.release(key(1))
    assert state.refcount(key(1)) == 0
    assert state.is_present(key(1))


def test_cancelled_waiter_does_not_get_a_reference() -> None:
    state = CacheState(1000)
    state.get(key(1))
    state.get(key(1))
    state.get(key(1))
    state.cancel_wait(key(1))
    state.got(key(1), 5)
    assert state.refcount(key(1)) == 2


def test_failed_get_forgets_the_entry_and_counts_waiters() -> None:
    state = CacheState(1000)
    state.get(key(1))
    state.get(key(1))
    state.get(key(1))
    assert state.get_failed(key(1)) == 2
    assert not state.is_getting(key(1))
    assert not state.is_present(key(1))
    assert state.get(key(1)) is GetResult.GET  # a waiter that asks again becomes the getter
    assert state.bytes_used == 0


def test_kinds_are_distinct_entries() -> None:
    state = CacheState(1000)
    assert state.get(key(1, EntryKind.BLOB)) is GetResult.GET
    assert state.get(key(1, EntryKind.LAYER)) is GetResult.GET


def test_referenced_entries_are_never_evicted_so_the_target_is_soft() -> None:
    state = CacheState(10)
    for n in range(5):
        state.get(key(n))
        assert state.got(key(n), 100) == []
    assert state.bytes_used == 500
    assert state.statistics().in_use == 5


def test_eviction_follows_release_order_not_arrival_order() -> None:
    state = CacheState(250)
    for n in range(4):
        state.get(key(n))
        state.got(key(n), 100)
    assert state.release(key(2)) == [key(2)]  # 400 -> 300 > 250: the only evictable goes
    # Release 3 then 0: 3 is the older release, so it goes first once over the target.
    assert state.release(key(3)) == [key(3)]  # 300 -> 200
    assert state.release(key(0)) == []  # 200 <= 250
    state.get(key(9))
    assert state.got(key(9), 100) == [key(0)]
    assert state.bytes_used == 200


def test_least_recently_released_goes_first() -> None:
    state = CacheState(1000)
    for n in range(3):
        state.get(key(n))
        state.got(key(n), 100)
    for n in (1, 0, 2):
        state.release(key(n))
    assert state.set_target(150) == [key(1), key(0)]
    assert state.is_present(key(2))


def test_re_referenced_entry_leaves_the_heap_and_rejoins_at_the_back() -> None:
    state = CacheState(1000)
    for n in range(3):
        state.get(key(n))
        state.got(key(n), 100)
        state.release(key(n))
    assert state.get(key(0)) is GetResult.SUCCESS  # evictable -> in use
    assert state.set_target(0) == [key(1), key(2)]  # 0 is held
    assert state.release(key(0)) == [key(0)]
    assert state.bytes_used == 0
    assert state.statistics().entries == 0


def test_eviction_on_arrival_never_evicts_the_arrival() -> None:
    state = CacheState(100)
    state.get(key(1))
    state.got(key(1), 80)
    state.release(key(1))
    state.get(key(2))
    assert state.got(key(2), 80) == [key(1)]
    assert state.refcount(key(2)) == 1


def test_restart_loading_makes_entries_evictable_in_load_order() -> None:
    state = CacheState(1000)
    for n in range(3):
        assert state.load(key(n), 100) == []
    stats = state.statistics()
    assert (stats.evictable, stats.in_use, stats.bytes_used) == (3, 0, 300)
    assert state.get(key(1)) is GetResult.SUCCESS
    assert state.set_target(0) == [key(0), key(2)]


def test_loading_past_the_target_evicts_the_oldest_loaded() -> None:
    state = CacheState(150)
    assert state.load(key(0), 100) == []
    assert state.load(key(1), 100) == [key(0)]


def test_misuse_is_an_internal_error() -> None:
    state = CacheState(10)
    with pytest.raises(InternalError):
        state.release(key(1))
    with pytest.raises(InternalError):
        state.got(key(1), 1)
    with pytest.raises(InternalError):
        state.get_failed(key(1))
    with pytest.raises(InternalError):
        state.cancel_wait(key(1))
    state.get(key(1))
    with pytest.raises(InternalError):
        state.cancel_wait(key(1))  # the getter is not a waiter
    state.got(key(1), 1)
    with pytest.raises(InternalError):
        state.load(key(1), 1)
    with pytest.raises(InternalError):
        CacheKey(EntryKind.BLOB, b"short")
    with pytest.raises(InternalError):
        CacheState(-1)


def test_random_operations_keep_the_invariants() -> None:
    """A model check: random gets/arrivals/failures/releases against a simple reference."""
    rng = random.Random(1234)
    target = 300
    state = CacheState(target)
    sizes = {n: rng.randrange(1, 120) for n in range(12)}
    refs: dict[int, int] = {}  # held references per present entry
    getting: dict[int, int] = {}  # waiters per entry being got
    present: set[int] = set()
    release_clock: dict[int, int] = {}
    clock = 0
    total_evicted = 0
    for _ in range(5000):
        n = rng.randrange(12)
        op = rng.random()
        evicted: list[CacheKey] = []
        if op < 0.4:
            result = state.get(key(n))
            if n in getting:
                assert result is GetResult.WAIT
                getting[n] += 1
            elif n in present:
                assert result is GetResult.SUCCESS
                refs[n] = refs.get(n, 0) + 1
            else:
                assert result is GetResult.GET
                getting[n] = 0
        elif op < 0.6 and getting:
            n = rng.choice(sorted(getting))
            if rng.random() < 0.8:
                evicted = state.got(key(n), sizes[n])
                present.add(n)
                refs[n] = 1 + getting.pop(n)
            else:
                assert state.get_failed(key(n)) == getting.pop(n)
        elif op < 0.65 and any(getting.values()):
            n = rng.choice([m for m, w in getting.items() if w])
            state.cancel_wait(key(n))
            getting[n] -= 1
        elif refs:
            n = rng.choice(sorted(refs))
            evicted = state.release(key(n))
            refs[n] -= 1
            if refs[n] == 0:
                del refs[n]
                clock += 1
                release_clock[n] = clock
        total_evicted += len(evicted)
        evicted_clocks = []
        for k in evicted:
            m = int.from_bytes(k.digest, "big")
            assert m not in refs, "a referenced entry was evicted"
            present.discard(m)
            evicted_clocks.append(release_clock.pop(m))
        assert evicted_clocks == sorted(evicted_clocks), "eviction out of release order"
        if evicted_clocks:
            kept = [release_clock[m] for m in present - set(refs)]
            assert all(c > max(evicted_clocks) for c in kept), "a newer release went first"
        used = sum(sizes[m] for m in present)
        assert state.bytes_used == used
        evictable = present - set(refs)
        if used > target:
            assert not evictable, "over target with something evictable"
        for m in refs:
            assert state.refcount(key(m)) == refs[m]
        stats = state.statistics()
        assert stats.getting == len(getting)
        assert stats.in_use == len(refs)
        assert stats.evictable == len(evictable)
    assert total_evicted > 100  # the walk really exercised eviction
