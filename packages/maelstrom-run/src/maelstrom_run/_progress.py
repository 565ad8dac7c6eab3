"""maelstrom-run's progress line: how many jobs are in each state and, in cluster mode, what is
being uploaded; on stderr when it is a terminal.

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

from maelstrom_core.client import UploadProgress, UploadStatistics
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

    def line(self, uploads: UploadStatistics | None = None) -> str:
        counts = self._counts
        line = (
            f"waiting for artifacts: {counts[JobState.WAITING_FOR_ARTIFACTS]}, "
            f"pending: {counts[JobState.PENDING]}, running: {counts[JobState.RUNNING]}, "
            f"complete: {counts[JobState.COMPLETE]} ({self.failed} failed)"
        )
        if uploads is not None and uploads.active:
            sent = sum(upload.sent for upload in uploads.active)
            total = sum(upload.size for upload in uploads.active)
            line += f"; uploading {len(uploads.active)}: {_megabytes(sent)}/{_megabytes(total)}"
        return line


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class StatusLine:
    """Keeps ``JobStates.line()`` on the last line of a terminal stream."""

    def __init__(
        self, stream: TextIO, states: JobStates, uploads: UploadProgress | None = None
    ) -> None:
        self._stream = stream
        self._states = states
        self._uploads = uploads
        self._shown = False
        self._drawn_version = -1

    @contextmanager
    def cleared(self) -> Iterator[None]:
        """Write above the line: it is erased now and drawn again by ``run``."""
        self.erase()
        yield

    def erase(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
            self._drawn_version = -1

    def draw(self, uploads: UploadStatistics | None = None) -> None:
        width = shutil.get_terminal_size().columns
        self._stream.write("\r\x1b[K" + self._states.line(uploads)[: max(width - 1, 0)])
        self._stream.flush()
        self._shown = True
        self._drawn_version = self._states.version

    async def run(self) -> None:
        """Redraw on change until cancelled; the line is erased at the end."""
        try:
            while True:
                uploads = self._uploads.statistics() if self._uploads is not None else None
                # Byte counts move without a state change: redraw while anything uploads.
                if self._states.version != self._drawn_version or (uploads and uploads.active):
                    self.draw(uploads)
                await trio.sleep(_REDRAW_EVERY)
        finally:
            self.erase()
