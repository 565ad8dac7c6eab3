"""The worker's job table: which jobs it holds, and what to tell the broker about them. Sans-IO.

The trio shell (``_connection``) feeds it events (the broker enqueued or cancelled a job, a job
changed state or finished, the connection ended) and carries out the actions it returns: start
a job's task, cancel a job's task, send a message. Each started job gets a ``token`` of its
own, so a task finishing after its job was cancelled (or after the broker re-sent the same id)
can never be mistaken for the live one.

Semantics (internals §4.4): a cancelled job is killed if running and dropped if waiting, and
nothing is ever sent for it again, not even its outcome; a job's status updates go out only
while it is live and only when its state actually changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from maelstrom_core.job import JobOutcome, JobSpec, JobState
from maelstrom_core.proto import JobId, WorkerJobResponse, WorkerJobStatusUpdate

__all__ = [
    "Action",
    "CancelTask",
    "Dispatcher",
    "DispatcherStatistics",
    "Send",
    "StartTask",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartTask:
    """Start a task running ``spec``; it reports back with ``token``."""

    token: int
    job_id: JobId
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel the task of ``token`` (kill its container, or stop its wait)."""

    token: int


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to the broker."""

    message: WorkerJobStatusUpdate | WorkerJobResponse


Action = StartTask | CancelTask | Send


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    live: int  # jobs the broker still expects an outcome for
    dying: int  # cancelled jobs whose tasks have not finished yet
    completed: int  # outcomes sent
    cancelled: int  # jobs cancelled (by the broker or a lost connection)


@dataclass(slots=True)
class _Task:
    job_id: JobId
    state: JobState | None = None
    cancelled: bool = False


class Dispatcher:
    """The job table of one broker connection."""

    def __init__(self) -> None:
        self._next_token = 0
        self._tasks: dict[int, _Task] = {}
        self._live: dict[JobId, int] = {}
        self._completed = 0
        self._cancelled = 0

    def enqueue(self, job_id: JobId, spec: JobSpec) -> list[Action]:
        """The broker sent ``EnqueueJob``."""
        if job_id in self._live:
            # A broker never does this; running the job twice would send two outcomes.
            log.warning("broker enqueued job %s twice; ignoring the second", job_id)
            return []
        token = self._next_token
        self._next_token += 1
        self._tasks[token] = _Task(job_id)
        self._live[job_id] = token
        return [StartTask(token, job_id, spec)]

    def cancel(self, job_id: JobId) -> list[Action]:
        """The broker sent ``WorkerCancelJob``; unknown and finished jobs are ignored."""
        token = self._live.pop(job_id, None)
        if token is None:
            return []
        self._tasks[token].cancelled = True
        self._cancelled += 1
        return [CancelTask(token)]

    def cancel_all(self) -> list[Action]:
        """The connection ended or the worker is stopping: cancel every live job."""
        actions: list[Action] = []
        for job_id in list(self._live):
            actions.extend(self.cancel(job_id))
        return actions

    def job_state(self, token: int, state: JobState) -> list[Action]:
        """A job's task entered ``state``."""
        task = self._tasks.get(token)
        if task is None or task.cancelled or state is JobState.COMPLETE or state is task.state:
            return []
        task.state = state
        return [Send(WorkerJobStatusUpdate(task.job_id, state))]

    def job_done(self, token: int, outcome: JobOutcome | None) -> list[Action]:
        """A job's task ended, with its outcome, or ``None`` if it was cancelled part way."""
        task = self._tasks.pop(token, None)
        if task is None or task.cancelled:
            return []
        del self._live[task.job_id]
        if outcome is None:
            # Cancelled from outside (the worker is stopping) before cancel_all got to it.
            self._cancelled += 1
            return []
        self._completed += 1
        return [Send(WorkerJobResponse(task.job_id, outcome))]

    @property
    def idle(self) -> bool:
        """No task is running, live or dying."""
        return not self._tasks

    def statistics(self) -> DispatcherStatistics:
        return DispatcherStatistics(
            live=len(self._live),
            dying=len(self._tasks) - len(self._live),
            completed=self._completed,
            cancelled=self._cancelled,
        )
