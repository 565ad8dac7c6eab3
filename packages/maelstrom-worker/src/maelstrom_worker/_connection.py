"""The worker's broker connection: sessions, reconnects with backoff, and running jobs.

One session is one control connection: the broker enqueues and cancels jobs, the worker
answers with status updates and outcomes. When the connection ends, every job of the session
is cancelled (its container killed and reaped) before the worker dials again, with capped
exponential backoff and jitter. The original worker exits instead; reconnecting lets a
restarted broker get its workers back without a supervisor.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from maelstrom_core.errors import (
    ConnectionClosed,
    PeerBroken,
    ProtocolError,
    VersionMismatch,
)
from maelstrom_core.executor import Executor
from maelstrom_core.job import JobOutcome, JobSpec, JobState
from maelstrom_core.net import MessageStream, open_message_stream
from maelstrom_core.proto import (
    EnqueueJob,
    Hello,
    JobId,
    Role,
    ShutDown,
    WorkerCancelJob,
    WorkerJobResponse,
    WorkerJobStatusUpdate,
)

from ._dispatcher import Action, CancelTask, Dispatcher, Send, StartTask
from ._fetcher import DEFAULT_MAX_FETCHES, Fetcher, JobArtifacts

__all__ = ["Backoff", "BrokerShutDown", "serve_broker"]

log = logging.getLogger(__name__)

INITIAL_DELAY: Final = 0.2
MAX_DELAY: Final = 10.0


class Backoff:
    """Capped exponential backoff with jitter. Sans-IO: it only computes delays.

    Each delay is drawn uniformly from the upper half of the current step, so a fleet of
    workers that lost the same broker does not reconnect in lock step.
    """

    def __init__(
        self,
        initial: float = INITIAL_DELAY,
        maximum: float = MAX_DELAY,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng
        self._step = initial

    def next_delay(self) -> float:
        step = self._step
        self._step = min(self._maximum, step * 2)
        return step / 2 + self._rng() * step / 2

    def reset(self) -> None:
        """The connection worked: start from the initial delay next time."""
        self._step = self._initial


class BrokerShutDown(Exception):
    """The broker told this worker to shut down (``ShutDown``). Not an error: exit 0."""


@dataclass
class _Session:
    """The trio side of one connection: the tasks of its jobs and its outgoing queue."""

    stream: MessageStream
    executor: Executor
    fetcher: Fetcher
    fetch_dir: Path
    dispatcher: Dispatcher = field(default_factory=Dispatcher)
    scopes: dict[int, trio.CancelScope] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outbox_send, self.outbox_receive = trio.open_memory_channel[
            WorkerJobStatusUpdate | WorkerJobResponse
        ](math.inf)

    def apply(self, actions: list[Action], nursery: trio.Nursery) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.outbox_send.send_nowait(action.message)
            elif isinstance(action, StartTask):
                scope = self.scopes[action.token] = trio.CancelScope()
                nursery.start_soon(self._run_job, action.token, action.job_id, action.spec, scope)
            elif isinstance(action, CancelTask):
                scope_or_none = self.scopes.get(action.token)
                if scope_or_none is not None:
                    scope_or_none.cancel()

    async def _run_job(
        self, token: int, job_id: JobId, spec: JobSpec, scope: trio.CancelScope
    ) -> None:
        outcome: JobOutcome | None = None
        artifacts = JobArtifacts(self.fetcher, self.fetch_dir)

        def on_state(state: JobState) -> None:
            for action in self.dispatcher.job_state(token, state):
                if isinstance(action, Send):
                    self.outbox_send.send_nowait(action.message)

        try:
            with scope:
                outcome = await self.executor.run(spec, artifacts, on_state=on_state)
        finally:
            artifacts.cleanup()
            del self.scopes[token]
            # Runs after a cancel too: the dispatcher drops what a cancelled job produced.
            for action in self.dispatcher.job_done(token, outcome):
                if isinstance(action, Send):
                    self.outbox_send.send_nowait(action.message)
        if outcome is not None:
            log.debug("job %s done: %s", job_id, type(outcome).__name__)

    async def send_loop(self) -> None:
        async for message in self.outbox_receive:
            await self.stream.send(message)

    async def receive_loop(self, jobs: trio.Nursery) -> None:
        async for message in self.stream:
            if isinstance(message, EnqueueJob):
                self.apply(self.dispatcher.enqueue(message.job_id, message.spec), jobs)
            elif isinstance(message, WorkerCancelJob):
                self.apply(self.dispatcher.cancel(message.job_id), jobs)
            elif isinstance(message, ShutDown):
                raise BrokerShutDown(message.reason)
        raise PeerBroken(f"{self.stream.peer} closed the connection")


async def _run_session(
    stream: MessageStream, executor: Executor, host: str, port: int, max_fetches: int
) -> Exception:
    """Serve one connection until it ends; returns why, once every job of it is gone."""
    fetch_dir = executor.cache.root / "tmp"  # emptied by the cache at every start
    ending: list[Exception] = []
    async with Fetcher(host, port, fetch_dir, max_fetches=max_fetches) as fetcher:
        session = _Session(stream, executor, fetcher, fetch_dir)
        async with trio.open_nursery() as jobs:
            try:
                async with trio.open_nursery() as io:

                    async def until_it_ends(loop: Callable[[], Awaitable[None]]) -> None:
                        try:
                            await loop()
                        except (PeerBroken, ProtocolError, ConnectionClosed, BrokerShutDown) as e:
                            ending.append(e)
                        io.cancel_scope.cancel()

                    io.start_soon(until_it_ends, session.send_loop)
                    io.start_soon(until_it_ends, functools.partial(session.receive_loop, jobs))
            finally:
                # Also on cancellation: jobs must not outlive their connection.
                session.apply(session.dispatcher.cancel_all(), jobs)
        stats = session.dispatcher.statistics()
        log.info("session ended: %d jobs completed, %d cancelled", stats.completed, stats.cancelled)
    return ending[0]


async def serve_broker(
    host: str,
    port: int,
    slots: int,
    executor: Executor,
    *,
    backoff: Backoff | None = None,
    max_fetches: int = DEFAULT_MAX_FETCHES,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the broker at ``host:port`` until it says to shut down, reconnecting as needed.

    ``task_status.started()`` is called after the first successful handshake.

    Raises:
        BrokerShutDown: the broker sent ``ShutDown``; every job has been cancelled.
        VersionMismatch: the broker speaks another protocol version (retrying cannot help).

    Cancellation: every job is cancelled, and its container killed and reaped, before
    ``Cancelled`` propagates.
    """
    backoff = backoff or Backoff()
    started = False
    while True:
        try:
            stream = await open_message_stream(host, port, Hello(Role.WORKER, slots=slots))
        except VersionMismatch:
            raise
        except (PeerBroken, ProtocolError, ConnectionClosed) as error:
            delay = backoff.next_delay()
            log.warning("%s; retrying in %.1f s", error, delay)
            await trio.sleep(delay)
            continue
        backoff.reset()
        log.info("connected to %s as worker %s with %d slots", stream.peer, stream.peer_id, slots)
        if not started:
            started = True
            task_status.started()
        try:
            reason = await _run_session(stream, executor, host, port, max_fetches)
        finally:
            await trio.aclose_forcefully(stream)
        if isinstance(reason, BrokerShutDown):
            log.info("the broker told this worker to shut down: %s", reason)
            raise reason
        delay = backoff.next_delay()
        log.warning(
            "lost connection to broker: %s; its jobs were cancelled; reconnecting in %.1f s",
            reason,
            delay,
        )
        await trio.sleep(delay)
