"""The test runners' UIs (§4.13): ``simple``, ``quiet`` and ``fancy``, drawn with rich.

The app tells a UI what happens (a job changed state, a case finished, a build line arrived)
through plain synchronous calls from trio tasks; the UI keeps counts and draws. Nothing here
starts a thread: rich's auto-refresh thread would read the counts while trio tasks change
them, so the app calls :meth:`Ui.tick` every ~100 ms instead.

``simple`` prints ``<case>......OK 1.234s`` per case, with failure details and output after
it; on a TTY it also shows a spinner for the enqueue status and one bar per job state.
``quiet`` shows one ``pos/len tests`` bar on a TTY and then the summary. ``fancy`` is a live
display of running and failed tests, the build output and a state gauge, with finished cases
scrolling above it. All of them end with the same summary block.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal, TypeAlias

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from .._broker_client import UploadProgress
from .._job import JobState
from ..errors import UsageError
from ._report import CaseResult, RunSummary, format_case_line, format_summary

__all__ = [
    "UI_NAMES",
    "FancyUi",
    "JobCounts",
    "QuietUi",
    "SimpleUi",
    "Ui",
    "UiLogHandler",
    "UiName",
    "choose_ui",
    "make_ui",
]

UiName: TypeAlias = Literal["auto", "simple", "fancy", "quiet"]
UI_NAMES: Final[tuple[UiName, ...]] = ("auto", "simple", "fancy", "quiet")

_STATE_ORDER: Final = (
    JobState.WAITING_FOR_ARTIFACTS,
    JobState.PENDING,
    JobState.RUNNING,
    JobState.COMPLETE,
)


def choose_ui(name: str, *, stdout_is_tty: bool, listing: bool) -> UiName:
    """The UI to use: ``auto`` is ``fancy`` on a TTY when not listing, else ``simple``.

    Raises:
        UsageError: an unknown name, or ``fancy``/``quiet`` asked to list.
    """
    if name == "auto":
        return "fancy" if stdout_is_tty and not listing else "simple"
    if name == "simple":
        return "simple"
    if name in ("fancy", "quiet"):
        if listing:
            raise UsageError(f"the {name} UI does not support listing; use --ui simple")
        return "fancy" if name == "fancy" else "quiet"
    raise UsageError(f"unknown UI {name!r}: expected one of auto, simple, fancy, quiet")


@dataclass(slots=True)
class JobCounts:
    """How many jobs are in each state, plus what the run expects in total.

    A job is counted in its current state only; ``reached(state)`` counts those at that
    state or beyond, which is what the stacked progress bars show.
    """

    expected: int = 0
    enqueued: int = 0
    by_state: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(_STATE_ORDER, 0))
    failed: int = 0

    def reached(self, state: JobState) -> int:
        index = _STATE_ORDER.index(state)
        return sum(self.by_state[s] for s in _STATE_ORDER[index:])

    @property
    def total(self) -> int:
        return max(self.expected, self.enqueued)

    def gauge(self) -> str:
        """``Xw Yp Zr Wc (Nf) / Ee``: waiting, pending, running, complete, failed, expected."""
        s = self.by_state
        return (
            f"{s[JobState.WAITING_FOR_ARTIFACTS]}w {s[JobState.PENDING]}p "
            f"{s[JobState.RUNNING]}r {s[JobState.COMPLETE]}c ({self.failed}f) / {self.total}e"
        )


class Ui:
    """The simple UI without a TTY, and the base of the others.

    ``out`` is stdout's console (case lines, stdout output, summary), ``err`` stderr's (the
    stderr output of failed cases). Use as a context manager around a run.
    """

    def __init__(self, out: Console, err: Console) -> None:
        self.out = out
        self.err = err
        self.counts = JobCounts()
        self._job_state: dict[int, JobState] = {}
        self._status = ""
        self._uploads: UploadProgress | None = None

    # -- lifetime --------------------------------------------------------------------------

    def __enter__(self) -> Ui:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Take down any live display (restoring the terminal); printing still works."""

    def tick(self) -> None:
        """Redraw live parts; called every ~100 ms by the app."""

    # -- what the app reports --------------------------------------------------------------

    def set_status(self, text: str) -> None:
        """The enqueue status: ``building artifacts...``, or ``""`` when all are enqueued."""
        self._status = text

    def set_expected(self, count: int) -> None:
        self.counts.expected = count

    def watch_uploads(self, uploads: UploadProgress | None) -> None:
        self._uploads = uploads

    def job_enqueued(self, job: int, name: str) -> None:
        self.counts.enqueued += 1
        self._set_state(job, JobState.WAITING_FOR_ARTIFACTS)

    def job_state(self, job: int, state: JobState) -> None:
        self._set_state(job, state)

    def job_finished(self, job: int, result: CaseResult) -> None:
        """A job is done: count it and print its case."""
        self._set_state(job, JobState.COMPLETE)
        if result.status.failed:
            self.counts.failed += 1
        self.case_result(result)

    def job_dropped(self, job: int) -> None:
        """A job was cancelled before it finished (stop-after): it leaves the counts."""
        state = self._job_state.pop(job, None)
        if state is not None:
            self.counts.by_state[state] -= 1
        self.counts.enqueued -= 1

    def case_result(self, result: CaseResult) -> None:
        """Print a finished (or ignored) case, with details and output for failures."""
        self._print_case(result)

    def build_output(self, line: str) -> None:
        """A line of the build tool's output (shown live by fancy only)."""

    def list_line(self, line: str) -> None:
        _emit(self.out, line)

    def log(self, line: str) -> None:
        _emit(self.out, line)

    def message(self, line: str) -> None:
        """A status message, such as ``waiting for changes...``."""
        _emit(self.out, line)

    def error(self, line: str) -> None:
        _emit(self.err, line)

    def summary(self, summary: RunSummary, trailer: Sequence[str] = ()) -> None:
        """The summary block, then ``trailer`` (build warnings), after any live display."""
        self.stop()
        for line in format_summary(summary, self.out.width, color=True):
            _emit(self.out, line)
        for line in trailer:
            _emit(self.out, line)

    # -- helpers ---------------------------------------------------------------------------

    def _set_state(self, job: int, state: JobState) -> None:
        old = self._job_state.get(job)
        if old is not None:
            if _STATE_ORDER.index(state) <= _STATE_ORDER.index(old):
                return  # states only move forward; a late report changes nothing
            self.counts.by_state[old] -= 1
        self._job_state[job] = state
        self.counts.by_state[state] += 1

    def _print_case(self, result: CaseResult) -> None:
        line = format_case_line(result, self.out.width, color=True)
        _emit(self.out, line)
        if result.detail:
            _emit(self.out, result.detail)
        for text in result.stdout:
            _emit(self.out, text)
        for text in result.stderr:
            _emit(self.err, text)


_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def _emit(console: Console, line: str) -> None:
    """Print one line that may hold ANSI colour codes.

    On a terminal rich renders it (above any live display). Otherwise the line goes straight
    to the file without its escape codes: rich's rendering costs about a millisecond a line,
    which a suite of many thousand cases would feel.
    """
    if console.is_terminal:
        console.print(Text.from_ansi(line), soft_wrap=True, highlight=False)
    else:
        console.file.write(_ANSI_ESCAPE.sub("", line) + "\n")


class SimpleUi(Ui):
    """Case lines; on a TTY also a spinner and a bar per job state (and uploads)."""

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out, err)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._upload_tasks: dict[bytes, TaskID] = {}
        if out.is_terminal:
            self._progress = Progress(
                _StatusSpinner(finished_text=" "),
                TextColumn("{task.description:<25}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                console=out,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> SimpleUi:
        if self._progress is not None:
            progress = self._progress
            self._tasks["status"] = progress.add_task("", total=None, spin=True, count="")
            for state, label in _STATE_LABELS.items():
                self._tasks[state.value] = progress.add_task(label, total=0, count="")
            progress.start()
        return self

    def stop(self) -> None:
        if self._progress is not None:
            self.tick()
            self._progress.stop()
            self._progress = None

    def tick(self) -> None:
        progress = self._progress
        if progress is None:
            return
        status = self._tasks["status"]
        progress.update(status, description=self._status, visible=bool(self._status))
        total = self.counts.total
        for state, label in _STATE_LABELS.items():
            if state is JobState.COMPLETE:
                label = f"complete ({self.counts.failed} failed)"
            reached = self.counts.reached(state)
            progress.update(
                self._tasks[state.value],
                description=label,
                completed=reached,
                total=total,
                count=f"{reached}/{total}",
            )
        self._tick_uploads(progress)
        progress.refresh()

    def _tick_uploads(self, progress: Progress) -> None:
        if self._uploads is None:
            return
        active = {u.digest: u for u in self._uploads.statistics().active}
        for digest in list(self._upload_tasks):
            if digest not in active:
                progress.remove_task(self._upload_tasks.pop(digest))
        for digest, upload in active.items():
            task = self._upload_tasks.get(digest)
            if task is None:
                task = self._upload_tasks[digest] = progress.add_task(
                    f"uploading {upload.path.name}", total=upload.size, count=""
                )
            progress.update(
                task,
                completed=upload.sent,
                total=upload.size,
                count=f"{_megabytes(upload.sent)}/{_megabytes(upload.size)} MB",
            )

    def _print_case(self, result: CaseResult) -> None:
        super()._print_case(result)
        self.tick()


class _StatusSpinner(SpinnerColumn):
    """A spinner only on the enqueue status line; the state bars have none."""

    def render(self, task: Task) -> RenderableType:
        return super().render(task) if task.fields.get("spin") else Text(" ")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f}"


_STATE_LABELS: Final = {
    JobState.WAITING_FOR_ARTIFACTS: "waiting for artifacts",
    JobState.PENDING: "pending",
    JobState.RUNNING: "running",
    JobState.COMPLETE: "complete (0 failed)",
}


class QuietUi(Ui):
    """Only a ``pos/len tests`` bar (on a TTY), then the summary."""

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out, err)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if out.is_terminal:
            self._progress = Progress(
                BarColumn(),
                TextColumn("{task.completed}/{task.total} tests"),
                console=out,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> QuietUi:
        if self._progress is not None:
            self._task = self._progress.add_task("tests", total=0)
            self._progress.start()
        return self

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def tick(self) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            completed=self.counts.reached(JobState.COMPLETE),
            total=self.counts.total,
        )
        self._progress.refresh()

    def case_result(self, result: CaseResult) -> None:
        return None

    def log(self, line: str) -> None:
        _emit(self.err, line)


class FancyUi(Ui):
    """A live display: running tests, failed tests, build output, and the state gauge."""

    _BUILD_LINES: Final = 6
    _MAX_RUNNING: Final = 12

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out, err)
        self._running: dict[int, tuple[str, float]] = {}
        self._names: dict[int, str] = {}
        self._failed: list[str] = []
        self._build: deque[str] = deque(maxlen=self._BUILD_LINES)
        self._live: Live | None = Live(
            console=out,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=self._render,
        )

    def __enter__(self) -> FancyUi:
        if self._live is not None:
            self._live.start()
        return self

    def stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def tick(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def job_enqueued(self, job: int, name: str) -> None:
        self._names[job] = name
        super().job_enqueued(job, name)

    def job_state(self, job: int, state: JobState) -> None:
        super().job_state(job, state)
        if self._job_state.get(job) is JobState.RUNNING and job not in self._running:
            self._running[job] = (self._names.get(job, f"job {job}"), time.monotonic())

    def job_finished(self, job: int, result: CaseResult) -> None:
        self._running.pop(job, None)
        self._names.pop(job, None)
        if result.status.failed:
            self._failed.append(result.name)
        super().job_finished(job, result)

    def job_dropped(self, job: int) -> None:
        self._running.pop(job, None)
        super().job_dropped(job)

    def build_output(self, line: str) -> None:
        self._build.append(line)

    def _print_case(self, result: CaseResult) -> None:
        super()._print_case(result)
        self.tick()

    def _render(self) -> RenderableType:
        now = time.monotonic()
        parts: list[RenderableType] = []
        if self._running:
            table = Table.grid(padding=(0, 1), expand=True)
            table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
            table.add_column(justify="right", no_wrap=True)
            running = sorted(self._running.values(), key=lambda item: item[1])
            for name, started in running[: self._MAX_RUNNING]:
                table.add_row(name, f"{now - started:.0f}s")
            if len(running) > self._MAX_RUNNING:
                table.add_row(f"... and {len(running) - self._MAX_RUNNING} more", "")
            parts.append(Panel(table, title="Running Tests", title_align="left"))
        if self._failed:
            failed = Text("\n".join(self._failed[-self._MAX_RUNNING :]), style="red")
            parts.append(Panel(failed, title="Failed Tests", title_align="left"))
        if self._build:
            build = Text.from_ansi("\n".join(self._build), no_wrap=True, overflow="ellipsis")
            parts.append(Panel(build, title="Build Output", title_align="left"))
        if self._uploads is not None:
            active = self._uploads.statistics().active
            if active:
                uploads = Table.grid(padding=(0, 1), expand=True)
                uploads.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
                uploads.add_column(justify="right", no_wrap=True)
                for upload in active[: self._MAX_RUNNING]:
                    uploads.add_row(
                        upload.path.name,
                        f"{_megabytes(upload.sent)}/{_megabytes(upload.size)} MB",
                    )
                parts.append(Panel(uploads, title="Uploads", title_align="left"))
        gauge = Progress(
            TextColumn(self._status or "running tests"),
            BarColumn(bar_width=None),
            TextColumn(self.counts.gauge()),
            console=self.out,
            auto_refresh=False,
            expand=True,
        )
        gauge.add_task(
            "", completed=self.counts.reached(JobState.COMPLETE), total=self.counts.total or None
        )
        parts.append(gauge)
        return Group(*parts)


def make_ui(name: UiName, out: Console, err: Console) -> Ui:
    """A UI of a chosen (not ``auto``) name."""
    if name == "fancy":
        return FancyUi(out, err)
    if name == "quiet":
        return QuietUi(out, err)
    return SimpleUi(out, err)


class UiLogHandler(logging.Handler):
    """Routes log records into the UI (test runners log to stdout, above any live display)."""

    def __init__(self, ui: Ui, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.ui = ui

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record).replace("\r", "\\r").replace("\n", "\\n")
            self.ui.log(text)
        except Exception:  # logging must never break the run
            self.handleError(record)
