"""Running one resolved job end to end: layers into the cache, a slot, the container, an outcome.

A worker (and a client's local worker) opens one ``Executor`` and calls ``run`` once per job,
each call in a task of its own nursery; ``run`` never raises for anything that is the job's
or an artifact's problem, it returns a ``JobError`` outcome instead, so every job ends in
exactly one outcome. Only cancellation (the job was withdrawn) and bugs propagate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

import trio

from ._container import run_container
from ._job import JobError, JobErrorKind, JobOutcome, JobSpec, JobState, LayerRef
from .cache import ArtifactSource, LayerCache, open_layer_cache
from .errors import ExecutionError, InternalError, MaelstromError

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_INLINE_LIMIT", "Executor"]

DEFAULT_CACHE_SIZE = 1_000_000_000  # bytes; the original's default cache-size
DEFAULT_INLINE_LIMIT = 1_000_000  # bytes of stdout and of stderr kept; the original's default


class Executor:
    """Runs jobs in containers whose root file systems come from one layer cache.

    Args:
        cache_root: the cache directory (locked while the executor is open).
        cache_size: soft byte target of the cache.
        inline_limit: bytes of each of stdout and stderr kept in an outcome.
        slots: how many jobs run at once; the rest wait in ``PENDING``.

    Use as ``async with Executor(...) as executor:``.
    """

    def __init__(
        self,
        cache_root: Path,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        slots: int | None = None,
    ) -> None:
        if slots is None:
            slots = os.cpu_count() or 1
        if slots < 1:
            raise InternalError(f"executor needs at least one slot, got {slots}")
        if inline_limit < 0:
            raise InternalError(f"inline limit must not be negative, got {inline_limit}")
        self._cache_root = Path(cache_root)
        self._cache_size = cache_size
        self._inline_limit = inline_limit
        self._slots = trio.CapacityLimiter(slots)
        self._stack: AsyncExitStack | None = None
        self._cache: LayerCache | None = None

    async def __aenter__(self) -> Executor:
        if self._stack is not None:
            raise InternalError("executor entered twice")
        async with AsyncExitStack() as stack:
            self._cache = await stack.enter_async_context(
                open_layer_cache(self._cache_root, self._cache_size)
            )
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._cache = self._stack, None, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    @property
    def cache(self) -> LayerCache:
        if self._cache is None:
            raise InternalError("executor used outside its 'async with' block")
        return self._cache

    @property
    def slots(self) -> int:
        return int(self._slots.total_tokens)

    async def run(
        self,
        spec: JobSpec,
        source: ArtifactSource,
        *,
        on_state: Callable[[JobState], None] | None = None,
        tty_fd: int | None = None,
    ) -> JobOutcome:
        """Run ``spec`` and return its outcome.

        Args:
            spec: the job.
            source: where missing artifacts come from.
            on_state: told of each state the job enters, ``COMPLETE`` last.
            tty_fd: a pty slave to be the job's stdio (local ``--tty`` jobs); output is then
                not captured.

        Returns:
            ``JobCompleted`` or ``JobTimedOut`` from the container, or a ``JobError``:
            ``SYSTEM`` when a layer is missing or corrupt or the host failed, ``EXECUTION``
            when the job itself cannot start (bad program, bad working directory).

        Cancellation: the container is killed and reaped by ``run_container``, then the
        layers are released, then ``Cancelled`` propagates; no outcome is reported.
        """
        cache = self.cache
        report = on_state if on_state is not None else _ignore
        report(JobState.WAITING_FOR_ARTIFACTS)
        held: list[LayerRef] = []
        try:
            outcome = await self._run_held(spec, source, cache, held, report, tty_fd)
        finally:
            # Only now is the process gone (run_container returns or raises after reaping).
            for layer in held:
                cache.release(layer)
        report(JobState.COMPLETE)
        return outcome

    async def _run_held(
        self,
        spec: JobSpec,
        source: ArtifactSource,
        cache: LayerCache,
        held: list[LayerRef],
        report: Callable[[JobState], None],
        tty_fd: int | None,
    ) -> JobOutcome:
        if not spec.layers:
            return JobError(JobErrorKind.EXECUTION, "the job has no layers, so no root file system")
        try:
            dirs = await _acquire_all(cache, spec.layers, source, held)
        except (MaelstromError, OSError) as e:
            return JobError(JobErrorKind.SYSTEM, f"cannot get the job's layers: {_describe(e)}")
        report(JobState.PENDING)
        async with self._slots:
            report(JobState.RUNNING)
            try:
                # The spec lists layers bottom first; overlayfs wants its lower dirs top first,
                # and refuses the same dir twice (ELOOP). Two specs can build the same layer
                # (a directive's shared libraries and the front end's): the topmost one counts.
                lower = list(dict.fromkeys(dirs[::-1]))
                return await run_container(
                    spec, lower, inline_limit=self._inline_limit, tty_fd=tty_fd
                )
            except ExecutionError as e:
                return JobError(JobErrorKind.EXECUTION, str(e))
            except (MaelstromError, OSError) as e:
                return JobError(JobErrorKind.SYSTEM, _describe(e))


async def _acquire_all(
    cache: LayerCache, layers: tuple[LayerRef, ...], source: ArtifactSource, held: list[LayerRef]
) -> list[Path]:
    """Acquire every layer at once; each one acquired is appended to ``held`` for release."""
    dirs: list[Path | None] = [None] * len(layers)
    failures: list[Exception] = []

    async def acquire(index: int, layer: LayerRef) -> None:
        try:
            dirs[index] = await cache.acquire(layer, source)
            held.append(layer)
        except Exception as e:  # reported below; Cancelled is not an Exception
            failures.append(e)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index, layer in enumerate(layers):
            nursery.start_soon(acquire, index, layer)
    if failures:
        raise failures[0]
    return [d for d in dirs if d is not None]


def _describe(error: BaseException) -> str:
    if isinstance(error, MaelstromError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {error}"


def _ignore(state: JobState) -> None:
    del state
