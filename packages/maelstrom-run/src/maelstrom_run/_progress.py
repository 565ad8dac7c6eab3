"""maelstrom-run's progress line: how many jobs are in each state, on stderr when it is a terminal.

Job output and diagnostics are written above the line: the writer clears it first, and the
ticker draws it again.
"""

from __future__ import annotations

import collections
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import trio

from maelstrom_core.job import JobState

__all__ = ["JobStates", "StatusLine"]

_REDRAW_EVERY = 0.1  # seconds


class JobStates:
    """Counts of jobs per state (sans-IO)."""

    def __init__(self) -> None:
        self._states: dict[int, JobState] = {}
        self._counts: collections.Counter[JobState] = collections.Counter()
        self.failed = 0
        self.version = 0  # bumped on every change, so a drawer knows when to redraw

    def set(self, job: int, state: JobState) -> None:
        previous = self._states.get(job)
        if previous is state:
            return
        if previous is not None:
            self._counts[previous] -= 1
        self._states[job] = state
        self._counts[state] += 1
        self.version += 1

    def fail(self) -> None:
        self.failed += 1
        self.version += 1

    def line(self) -> str:
        counts = self._counts
        return (
            f"waiting for artifacts: {counts[JobState.WAITING_FOR_ARTIFACTS]}, "
            f"pending: {counts[JobState.PENDING]}, running: {counts[JobState.RUNNING]}, "
            f"complete: {counts[JobState.COMPLETE]} ({self.failed} failed)"
        )


class StatusLine:
    """Keeps ``JobStates.line()`` on the last line of a terminal stream."""

    def __init__(self, stream: TextIO, states: JobStates) -> None:
        self._stream = stream
        self._states = states
        self._shown = False
        self._drawn_version = -1

    @contextmanager
    def cleared(self) -> Iterator[None]:
        """Write above the line: it is erased now and drawn again by ``run``."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
            self._drawn_version = -1
        yield

    def draw(self) -> None:
        width = shutil.get_terminal_size().columns
        self._stream.write("\r\x1b[K" + self._states.line()[: max(width - 1, 0)])
        self._stream.flush()
        self._shown = True
        self._drawn_version = self._states.version

    async def run(self) -> None:
        """Redraw on change until cancelled; the line is erased at the end."""
        try:
            while True:
                if self._states.version != self._drawn_version:
                    self.draw()
                await trio.sleep(_REDRAW_EVERY)
        finally:
            with self.cleared():
                pass
