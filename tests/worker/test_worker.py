"""The real maelstrom-worker process against a scripted broker: jobs, cancels, faults, exits."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from maelstrom_core.job import (
    ExitCode,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobState,
)
from maelstrom_core.proto import (
    EnqueueJob,
    JobId,
    ShutDown,
    WorkerCancelJob,
    WorkerJobResponse,
    WorkerJobStatusUpdate,
)
from tests.integration.helpers import (
    can_run_containers,
    log_of,
    processes_with_arg,
    root_layers,
    shell_job,
    start_worker,
    wait_until,
)
from tests.integration.scripted_broker import ScriptedBroker, store

pytestmark = pytest.mark.skipif(not can_run_containers(), reason="needs user namespaces")


@dataclass
class Setup:
    broker: ScriptedBroker
    layers: list[bytes]
    tmp: Path
    nursery: trio.Nursery

    def responses(self) -> dict[JobId, WorkerJobResponse]:
        return {m.job_id: m for _, m in self.broker.received if isinstance(m, WorkerJobResponse)}

    def states(self, job_id: JobId) -> list[JobState]:
        return [
            m.state
            for _, m in self.broker.received
            if isinstance(m, WorkerJobStatusUpdate) and m.job_id == job_id
        ]

    async def worker(self, slots: int = 2) -> tuple[trio.Process, int]:
        process = await start_worker(self.nursery, self.broker.port, self.tmp, slots=slots)
        await self.broker.wait_for(lambda: bool(self.broker.workers))
        return process, next(iter(self.broker.workers))

    def enqueue(self, worker: int, job_id: JobId, script: str) -> None:
        self.broker.send_to_worker(worker, EnqueueJob(job_id, shell_job(self.layers, script)))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    broker = ScriptedBroker()
    layers = root_layers(tmp_path)
    for data in layers:
        store(broker, data)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.serve)
            yield Setup(broker, layers, tmp_path, nursery)
            nursery.cancel_scope.cancel()


async def test_runs_jobs_and_reports_each_state(setup: Setup) -> None:
    process, worker = await setup.worker(slots=3)
    assert setup.broker.workers[worker].slots == 3
    ids = [JobId(7, n) for n in range(12)]
    for job_id in ids:
        setup.enqueue(worker, job_id, f"echo job {job_id.client_job_id}; exit 3")
    await setup.broker.wait_for(lambda: len(setup.responses()) == len(ids))
    for job_id in ids:
        outcome = setup.responses()[job_id].outcome
        assert isinstance(outcome, JobCompleted), (outcome, log_of(setup.tmp))
        assert outcome.status == ExitCode(3)
        assert outcome.stdout.data == f"job {job_id.client_job_id}\n".encode()
        assert setup.states(job_id) == [
            JobState.WAITING_FOR_ARTIFACTS,
            JobState.PENDING,
            JobState.RUNNING,
        ]
    assert process.returncode is None


async def test_cancel_kills_a_running_job_and_drops_a_waiting_one(setup: Setup) -> None:
    _, worker = await setup.worker(slots=1)
    running, waiting, later = JobId(1, 0), JobId(1, 1), JobId(1, 2)
    setup.enqueue(worker, running, "sleep 4242")
    setup.enqueue(worker, waiting, "echo never")
    await setup.broker.wait_for(lambda: JobState.RUNNING in setup.states(running))
    await wait_until(lambda: processes_with_arg("4242"))
    # The waiting job has its layers too (its status update may still be on the way) and
    # waits for the one slot.
    await setup.broker.wait_for(lambda: setup.states(waiting)[-1:] == [JobState.PENDING])
    setup.broker.send_to_worker(worker, WorkerCancelJob(waiting))
    setup.broker.send_to_worker(worker, WorkerCancelJob(running))
    await wait_until(lambda: not processes_with_arg("4242"), timeout=5)
    setup.enqueue(worker, later, "echo after")
    await setup.broker.wait_for(lambda: later in setup.responses())
    outcome = setup.responses()[later].outcome
    assert isinstance(outcome, JobCompleted)
    assert outcome.stdout.data == b"after\n"
    # Nothing at all is sent for a cancelled job, and the waiting one never ran.
    assert running not in setup.responses()
    assert waiting not in setup.responses()
    assert JobState.RUNNING not in setup.states(waiting)


async def test_a_corrupt_artifact_from_the_broker_is_rejected(setup: Setup) -> None:
    _, worker = await setup.worker()
    victim = shell_job(setup.layers, "echo hi").layers[0].digest
    setup.broker.corrupt[victim] = setup.layers[0][:-1] + b"\x01"
    setup.enqueue(worker, JobId(2, 0), "echo hi")
    await setup.broker.wait_for(lambda: JobId(2, 0) in setup.responses())
    outcome = setup.responses()[JobId(2, 0)].outcome
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert victim.hex() in outcome.message
    assert "SHA-256" in outcome.message
    # The worker keeps going: once the broker serves the right bytes, the job runs.
    del setup.broker.corrupt[victim]
    setup.enqueue(worker, JobId(2, 1), "echo fine")
    await setup.broker.wait_for(lambda: JobId(2, 1) in setup.responses())
    assert isinstance(setup.responses()[JobId(2, 1)].outcome, JobCompleted)


async def test_shut_down_from_the_broker_cancels_jobs_and_exits_0(setup: Setup) -> None:
    process, worker = await setup.worker()
    setup.enqueue(worker, JobId(3, 0), "sleep 4343")
    await wait_until(lambda: processes_with_arg("4343"))
    setup.broker.send_to_worker(worker, ShutDown("maintenance"))
    with trio.fail_after(10):
        assert await process.wait() == 0
    assert not processes_with_arg("4343")
    assert "maintenance" in log_of(setup.tmp)
    assert JobId(3, 0) not in setup.responses()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_cancels_jobs_and_exits_0(setup: Setup, signum: int) -> None:
    process, worker = await setup.worker()
    setup.enqueue(worker, JobId(4, 0), "sleep 4444")
    await wait_until(lambda: processes_with_arg("4444"))
    process.send_signal(signum)
    with trio.fail_after(10):
        assert await process.wait() == 0
    assert not processes_with_arg("4444")


async def test_reconnects_when_the_broker_comes_back(tmp_path: Path) -> None:
    layers = root_layers(tmp_path)
    first = ScriptedBroker()
    for data in layers:
        store(first, data)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as broker_nursery:
                port = await broker_nursery.start(first.serve)
                process = await start_worker(nursery, port, tmp_path)
                await first.wait_for(lambda: bool(first.workers))
                worker = next(iter(first.workers))
                first.send_to_worker(
                    worker, EnqueueJob(JobId(5, 0), shell_job(layers, "sleep 4545"))
                )
                await wait_until(lambda: processes_with_arg("4545"))
                broker_nursery.cancel_scope.cancel()  # the broker goes away
            # Its jobs are cancelled: the container is killed, the worker stays up.
            await wait_until(lambda: not processes_with_arg("4545"), timeout=5)
            assert process.returncode is None
            second = ScriptedBroker()
            for data in layers:
                store(second, data)
            await nursery.start(second.serve, port)
            await second.wait_for(lambda: bool(second.workers))
            worker = next(iter(second.workers))
            second.send_to_worker(worker, EnqueueJob(JobId(0, 0), shell_job(layers, "echo back")))
            await second.wait_for(
                lambda: any(isinstance(m, WorkerJobResponse) for _, m in second.received)
            )
            response = next(m for _, m in second.received if isinstance(m, WorkerJobResponse))
            assert isinstance(response.outcome, JobCompleted)
            assert response.outcome.stdout.data == b"back\n"
            # The response for the job of the first broker never reached the second one.
            assert response.job_id == JobId(0, 0)
            assert "reconnecting" in log_of(tmp_path)
            nursery.cancel_scope.cancel()
