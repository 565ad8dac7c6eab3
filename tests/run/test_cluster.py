"""maelstrom-run --broker: jobs go through a (scripted) broker to a real worker process.

The scripted broker (tests/integration/scripted_broker.py) lets these tests see what the client
sent and break the connection at a chosen moment; tests/integration runs the real broker.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from maelstrom_core.proto import CancelJob, JobRequest
from tests._helpers.cli import clean_env, script_path
from tests.integration.helpers import (
    can_run_containers,
    log_of,
    processes_with_arg,
    start_worker,
    wait_or_kill,
    wait_until,
)
from tests.integration.scripted_broker import ScriptedBroker

pytestmark = pytest.mark.skipif(not can_run_containers(), reason="needs user namespaces")


def job(script: str, **extra: object) -> str:
    spec = {
        "program": "/bin/sh",
        "arguments": ["-c", script],
        "environment": {"PATH": "/usr/bin:/bin"},
        "layers": [
            {"paths": ["/bin/sh", "/usr/bin/sleep"], "follow_symlinks": True},
            {"shared_library_dependencies": ["/bin/sh", "/usr/bin/sleep"], "follow_symlinks": True},
        ],
        **extra,
    }
    return json.dumps(spec)


@dataclass
class Cluster:
    broker: ScriptedBroker
    tmp: Path
    nursery: trio.Nursery

    async def run(self, stdin: str, *args: str) -> trio.Process:
        process: trio.Process = await self.nursery.start(self._run, stdin, args)
        return process

    async def _run(
        self, stdin: str, args: tuple[str, ...], *, task_status: trio.TaskStatus[trio.Process]
    ) -> None:
        (self.tmp / "in.json").write_text(stdin)
        with (
            open(self.tmp / "run.out", "wb") as out,
            open(self.tmp / "run.err", "wb") as err,
            open(self.tmp / "in.json", "rb") as inp,
        ):
            process = await trio.lowlevel.open_process(
                [
                    str(script_path("maelstrom-run")),
                    f"--broker=127.0.0.1:{self.broker.port}",
                    f"--cache-root={self.tmp / 'run-cache'}",
                    *args,
                ],
                stdin=inp,
                stdout=out,
                stderr=err,
                env=clean_env(self.tmp),
                cwd=self.tmp,
            )
        task_status.started(process)
        await wait_or_kill(process)

    def out(self) -> str:
        return (self.tmp / "run.out").read_text()

    def err(self) -> str:
        return (self.tmp / "run.err").read_text()

    def requests(self) -> list[JobRequest]:
        return [m for _, m in self.broker.received if isinstance(m, JobRequest)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    broker = ScriptedBroker()
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.serve)
            await start_worker(nursery, broker.port, tmp_path, slots=2)
            await broker.wait_for(lambda: bool(broker.workers))
            yield Cluster(broker, tmp_path, nursery)
            nursery.cancel_scope.cancel()


async def test_jobs_run_on_the_cluster(cluster: Cluster) -> None:
    jobs = "\n".join(job(f"echo out {n}; echo err {n} >&2") for n in range(20))
    process = await cluster.run(jobs)
    assert await process.wait() == 0, cluster.err()
    assert sorted(cluster.out().splitlines()) == sorted(f"out {n}" for n in range(20))
    assert sorted(cluster.err().splitlines()) == sorted(f"err {n}" for n in range(20))
    assert len(cluster.requests()) == 20
    assert cluster.broker.enqueued == 20
    # The broker asked for the layers and the client pushed them (verified on arrival).
    assert cluster.broker.artifacts


async def test_failures_and_exit_codes_come_back(cluster: Cluster) -> None:
    process = await cluster.run(job("echo partial; exit 7") + job("kill -9 $$"), "--one")
    assert await process.wait() == 7
    assert cluster.out() == "partial\n"
    assert len(cluster.requests()) == 1  # --one runs only the first job


async def test_local_only_jobs_stay_on_the_client(cluster: Cluster) -> None:
    stream = job("echo remote") + job("echo local", network="local")
    process = await cluster.run(stream)
    assert await process.wait() == 0, cluster.err()
    assert sorted(cluster.out().splitlines()) == ["local", "remote"]
    [request] = cluster.requests()
    assert request.spec.arguments == ("-c", "echo remote")


async def test_lost_broker_fails_outstanding_jobs(tmp_path: Path) -> None:
    broker = ScriptedBroker()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as broker_nursery:
                await broker_nursery.start(broker.serve)
                await start_worker(nursery, broker.port, tmp_path)
                await broker.wait_for(lambda: bool(broker.workers))
                cluster = Cluster(broker, tmp_path, nursery)
                process = await cluster.run(job("sleep 4747") + job("sleep 4747"))
                await wait_until(lambda: len(processes_with_arg("4747")) == 2)
                broker_nursery.cancel_scope.cancel()
            assert await process.wait() == 1
            lines = [line for line in cluster.err().splitlines() if line.startswith("job ")]
            assert len(lines) == 2, cluster.err()
            for line in lines:
                assert "system error: lost connection to broker at 127.0.0.1:" in line
            # The worker lost the broker too, and killed the jobs.
            await wait_until(lambda: not processes_with_arg("4747"), timeout=5)
            nursery.cancel_scope.cancel()


async def test_ctrl_c_closes_the_connection_and_jobs_are_cancelled(cluster: Cluster) -> None:
    process = await cluster.run(job("sleep 4848"))
    await wait_until(lambda: processes_with_arg("4848"))
    process.send_signal(signal.SIGINT)
    assert await process.wait() == 130
    await wait_until(lambda: not processes_with_arg("4848"), timeout=2)
    assert not cluster.broker.clients
    assert "4848" not in log_of(cluster.tmp)  # the worker logs no failure for it


async def test_stop_after_one_job_withdraws_the_rest(cluster: Cluster) -> None:
    # --one with a failing first job: nothing else is submitted, nothing to cancel.
    process = await cluster.run(job("exit 1"), "--one")
    assert await process.wait() == 1
    assert not [m for _, m in cluster.broker.received if isinstance(m, CancelJob)]


async def test_an_unreachable_broker_is_a_one_line_error(tmp_path: Path) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens on it now
    (tmp_path / "in.json").write_text(job("true"))
    result = await trio.run_process(
        [
            str(script_path("maelstrom-run")),
            f"--broker=127.0.0.1:{port}",
            f"--cache-root={tmp_path / 'c'}",
            "-f",
            str(tmp_path / "in.json"),
        ],
        env=clean_env(tmp_path),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith(f"maelstrom-run: error: cannot connect to broker at 127.0.0.1:{port}")
    assert len(err.splitlines()) == 1
