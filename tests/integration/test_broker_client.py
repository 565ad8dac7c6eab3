"""The cluster JobRunner in-process, against the scripted broker: uploads, cancels, failures."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from maelstrom_core._broker_client import UploadStatistics, open_broker_runner
from maelstrom_core.errors import InternalError, PeerBroken
from maelstrom_core.job import (
    ArtifactType,
    JobError,
    JobErrorKind,
    JobOutcome,
    JobSpec,
    JobState,
    LayerRef,
    Network,
)
from maelstrom_core.proto import ArtifactTransferred, CancelJob, GeneralError, JobRequest
from tests.integration.scripted_broker import ScriptedBroker


@pytest.fixture
async def broker() -> AsyncIterator[ScriptedBroker]:
    scripted = ScriptedBroker()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(scripted.serve)
            yield scripted
            nursery.cancel_scope.cancel()


def artifact(tmp: Path, name: str, data: bytes) -> tuple[bytes, Path]:
    path = tmp / name
    path.write_bytes(data)
    return hashlib.sha256(data).digest(), path


def spec_of(*digests: bytes, **kwargs: object) -> JobSpec:
    layers = tuple(LayerRef(d, ArtifactType.TAR) for d in digests)
    return JobSpec(program="/bin/true", layers=layers, **kwargs)  # type: ignore[arg-type]


M = TypeVar("M")


def sent(broker: ScriptedBroker, kind: type[M]) -> list[M]:
    return [m for _, m in broker.received if isinstance(m, kind)]


async def test_uploads_are_pushed_verified_and_observable(
    broker: ScriptedBroker, tmp_path: Path
) -> None:
    digest, path = artifact(tmp_path, "layer.tar", b"x" * 300_000)
    seen: list[UploadStatistics] = []
    states: list[JobState] = []
    async with open_broker_runner("127.0.0.1", broker.port) as runner:
        unsubscribe = runner.uploads.subscribe(seen.append)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.run, spec_of(digest), {digest: path}, states.append)
            await broker.wait_for(lambda: bool(broker.queue))  # every artifact is in
            nursery.cancel_scope.cancel()  # withdraw the job: no worker will ever take it
        unsubscribe()
        await broker.wait_for(lambda: bool(sent(broker, CancelJob)))
    assert broker.artifacts[digest] == path.read_bytes()
    assert sent(broker, ArtifactTransferred) == [ArtifactTransferred(digest)]
    [start, end] = seen
    assert [(u.digest, u.path) for u in start.active] == [(digest, path)]
    assert end.active == ()
    assert (end.completed, end.failed, end.bytes_completed) == (1, 0, 300_000)
    assert runner.uploads.statistics() == end
    assert states == []  # withdrawn before the broker said anything about it


async def test_a_failed_upload_fails_exactly_the_jobs_needing_it(
    broker: ScriptedBroker, tmp_path: Path
) -> None:
    good, good_path = artifact(tmp_path, "good", b"good bytes")
    bad, _ = artifact(tmp_path, "bad", b"what the digest says")
    _, changed = artifact(tmp_path, "changed", b"what the file holds now")
    outcomes: dict[str, JobOutcome] = {}
    async with open_broker_runner("127.0.0.1", broker.port) as runner:
        paths = {good: good_path, bad: changed}

        async def run(name: str, spec: JobSpec) -> None:
            outcomes[name] = await runner.run(spec, paths, lambda state: None)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "needs-bad", spec_of(good, bad))
            nursery.start_soon(run, "good-only", spec_of(good))
            await broker.wait_for(lambda: "needs-bad" in outcomes and len(broker.queue) == 1)
            nursery.cancel_scope.cancel()
    outcome = outcomes["needs-bad"]
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert f"cannot upload artifact {bad.hex()} ({changed})" in outcome.message
    assert "digest mismatch" in outcome.message
    assert "good-only" not in outcomes  # still waiting for a worker, unharmed
    [request, _] = sorted(sent(broker, JobRequest), key=lambda r: len(r.spec.layers))[::-1]
    assert CancelJob(request.client_job_id) in sent(broker, CancelJob)


async def test_a_lost_connection_fails_outstanding_and_later_jobs(
    broker: ScriptedBroker, tmp_path: Path
) -> None:
    digest, path = artifact(tmp_path, "l", b"layer")
    outcomes: list[JobOutcome] = []
    async with open_broker_runner("127.0.0.1", broker.port) as runner:

        async def run() -> None:
            outcomes.append(await runner.run(spec_of(digest), {digest: path}, lambda s: None))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(run)
            await broker.wait_for(lambda: len(broker.queue) == 3)
            [client] = broker.clients.values()
            client.outbox.send_nowait(GeneralError("out of disk"))
        assert len(outcomes) == 3
        for outcome in outcomes:
            assert outcome == JobError(
                JobErrorKind.SYSTEM, f"broker at 127.0.0.1:{broker.port} failed: out of disk"
            )
        # Exactly one outcome each, and later jobs fail at once instead of hanging.
        later = await runner.run(spec_of(digest), {digest: path}, lambda s: None)
        assert later == outcomes[0]


async def test_broker_going_away_is_a_lost_connection(tmp_path: Path) -> None:
    scripted = ScriptedBroker()
    digest, path = artifact(tmp_path, "l", b"layer")
    broker_scope = trio.CancelScope()
    outcome: list[JobOutcome] = []

    async def serve(*, task_status: trio.TaskStatus[int]) -> None:
        with broker_scope:
            await scripted.serve(task_status=task_status)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve)
            async with open_broker_runner("127.0.0.1", port) as runner:

                async def run() -> None:
                    outcome.append(
                        await runner.run(spec_of(digest), {digest: path}, lambda s: None)
                    )

                async with trio.open_nursery() as jobs:
                    jobs.start_soon(run)
                    await scripted.wait_for(lambda: bool(scripted.queue))
                    broker_scope.cancel()  # the broker goes away; the job must still end
    [only] = outcome
    assert isinstance(only, JobError)
    assert only.message.startswith(f"lost connection to broker at 127.0.0.1:{port}")


async def test_local_only_jobs_are_refused(broker: ScriptedBroker) -> None:
    async with open_broker_runner("127.0.0.1", broker.port) as runner:
        with pytest.raises(InternalError):
            await runner.run(spec_of(network=Network.LOCAL), {}, lambda s: None)


async def test_no_broker_is_peer_broken() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(PeerBroken, match=f"cannot connect to broker at 127.0.0.1:{port}"):
        async with open_broker_runner("127.0.0.1", port):
            pass
