"""A whole cluster of real processes: broker, workers and maelstrom-run clients on 127.0.0.1.

Each test runs against the real ``maelstrom-broker`` and again against the scripted broker
(which lets the worker and client sides be checked on their own).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from tests._helpers.cli import clean_env, script_path
from tests.integration.helpers import (
    RealBroker,
    can_run_containers,
    processes_with_arg,
    real_broker_available,
    start_worker,
    wait_or_kill,
    wait_until,
)
from tests.integration.scripted_broker import ScriptedBroker

pytestmark = pytest.mark.skipif(not can_run_containers(), reason="needs user namespaces")

LAYERS = [
    {"paths": ["/bin/sh", "/usr/bin/sleep"], "follow_symlinks": True},
    {"shared_library_dependencies": ["/bin/sh", "/usr/bin/sleep"], "follow_symlinks": True},
]


def job(script: str) -> str:
    return json.dumps(
        {
            "program": "/bin/sh",
            "arguments": ["-c", script],
            "environment": {"PATH": "/usr/bin:/bin"},
            "layers": LAYERS,
        }
    )


class Broker:
    """The broker under test, real or scripted, restartable on its port."""

    def __init__(self, kind: str, tmp: Path, nursery: trio.Nursery) -> None:
        self.kind = kind
        self.tmp = tmp
        self.nursery = nursery
        self.port = 0
        self.real = RealBroker(tmp) if kind == "real" else None
        self.scope: trio.CancelScope | None = None

    async def start(self) -> None:
        if self.real is not None:
            self.port = await trio.to_thread.run_sync(self.real.start, self.port)
            return
        self.port = await self.nursery.start(self._serve_scripted, self.port)

    async def _serve_scripted(self, port: int, *, task_status: trio.TaskStatus[int]) -> None:
        with trio.CancelScope() as self.scope:
            await ScriptedBroker().serve(port, task_status=task_status)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.real is not None:
            await trio.to_thread.run_sync(self.real.stop, sig)
        elif self.scope is not None:
            self.scope.cancel()


@dataclass
class Client:
    process: trio.Process
    out: Path
    err: Path
    lines: list[str] = field(default_factory=list)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()


@dataclass
class Cluster:
    broker: Broker
    tmp: Path
    nursery: trio.Nursery
    workers: list[trio.Process] = field(default_factory=list)
    clients: int = 0

    async def add_worker(self, slots: int = 2) -> trio.Process:
        name = f"worker{len(self.workers)}"
        process = await start_worker(
            self.nursery, self.broker.port, self.tmp, slots=slots, name=name
        )
        self.workers.append(process)
        return process

    async def client(self, jobs: list[str]) -> Client:
        self.clients += 1
        base = self.tmp / f"client{self.clients}"
        base.mkdir()
        (base / "in.json").write_text("\n".join(jobs))
        client: Client = await self.nursery.start(self._run_client, base)
        return client

    async def _run_client(self, base: Path, *, task_status: trio.TaskStatus[Client]) -> None:
        with open(base / "out", "wb") as out, open(base / "err", "wb") as err:
            process = await trio.lowlevel.open_process(
                [
                    str(script_path("maelstrom-run")),
                    f"--broker=127.0.0.1:{self.broker.port}",
                    f"--cache-root={base / 'cache'}",
                    "--slots=2",
                    "-f",
                    str(base / "in.json"),
                ],
                stdout=out,
                stderr=err,
                env=clean_env(base),
                cwd=base,
            )
        task_status.started(Client(process, base / "out", base / "err"))
        await wait_or_kill(process)


def broker_kinds() -> Iterator[object]:
    yield pytest.param(
        "real",
        marks=pytest.mark.skipif(not real_broker_available(), reason="no maelstrom-broker"),
    )
    yield "scripted"


@pytest.fixture(params=list(broker_kinds()))
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        broker = Broker(str(request.param), tmp_path, nursery)
        await broker.start()
        try:
            yield Cluster(broker, tmp_path, nursery)
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await broker.stop()


async def wait_for_workers(cluster: Cluster, count: int) -> None:
    """Until ``count`` workers have logged their handshake with the current broker."""

    def connected() -> int:
        total = 0
        for index in range(len(cluster.workers)):
            text = (cluster.tmp / f"worker{index}.log").read_text(errors="replace")
            total += text.count("connected to broker at") > cluster_reconnects[index]
        return total

    cluster_reconnects = [0] * len(cluster.workers)
    await wait_until(lambda: connected() >= count, timeout=30)


async def test_two_clients_two_workers_2000_jobs(cluster: Cluster) -> None:
    with trio.fail_after(120):
        for _ in range(2):
            await cluster.add_worker(slots=2)
        await wait_for_workers(cluster, 2)
        jobs = {name: [job(f"echo {name} {n}") for n in range(1000)] for name in ("alpha", "beta")}
        clients = {name: await cluster.client(specs) for name, specs in jobs.items()}
        for name, client in clients.items():
            assert await client.process.wait() == 0, client.stderr()[-2000:]
            assert sorted(client.stdout().splitlines()) == sorted(
                f"{name} {n}" for n in range(1000)
            )
            assert client.stderr() == ""


async def test_a_killed_worker_loses_no_job(cluster: Cluster) -> None:
    with trio.fail_after(120):
        for _ in range(2):
            await cluster.add_worker(slots=2)
        await wait_for_workers(cluster, 2)
        client = await cluster.client([job(f"sleep 0.2; echo {n}") for n in range(60)])
        # Kill a worker while it surely holds jobs: once a few outcomes are in.
        await wait_until(lambda: len(client.stdout().splitlines()) >= 6)
        victim = cluster.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        assert await client.process.wait() == 0, client.stderr()[-2000:]
        lines = client.stdout().splitlines()
        assert sorted(lines, key=int) == [str(n) for n in range(60)]  # each exactly once


async def test_a_killed_client_has_its_jobs_cancelled_within_a_second(cluster: Cluster) -> None:
    with trio.fail_after(60):
        await cluster.add_worker(slots=4)
        await wait_for_workers(cluster, 1)
        client = await cluster.client([job("sleep 4949") for _ in range(4)])
        await wait_until(lambda: len(processes_with_arg("4949")) == 4, timeout=30)
        os.kill(client.process.pid, signal.SIGKILL)
        await client.process.wait()
        with trio.fail_after(1):
            await wait_until(lambda: not processes_with_arg("4949"), timeout=1)
        # The worker survives and takes new work.
        second = await cluster.client([job("echo still here")])
        assert await second.process.wait() == 0, second.stderr()
        assert second.stdout() == "still here\n"


async def test_workers_come_back_to_a_restarted_broker(cluster: Cluster) -> None:
    with trio.fail_after(90):
        await cluster.add_worker(slots=2)
        await wait_for_workers(cluster, 1)
        first = await cluster.client([job("echo before")])
        assert await first.process.wait() == 0, first.stderr()
        # A crash: the real broker's SIGTERM path tells workers to shut down, on purpose.
        await cluster.broker.stop(signal.SIGKILL)
        log = cluster.tmp / "worker0.log"
        await wait_until(lambda: "reconnecting" in log.read_text(), timeout=10)
        await cluster.broker.start()  # same port
        await wait_until(lambda: log.read_text().count("connected to broker at") >= 2, timeout=30)
        second = await cluster.client([job("echo after")])
        assert await second.process.wait() == 0, second.stderr()
        assert second.stdout() == "after\n"
        assert cluster.workers[0].returncode is None
