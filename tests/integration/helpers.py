"""Shared pieces of the cluster tests: layers as artifacts, and worker/broker processes."""

from __future__ import annotations

import io
import re
import shutil
import signal
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import IO

import psutil
import trio

from maelstrom_core.job import ArtifactType, JobSpec, LayerRef, ProcMount, TmpMount
from tests._helpers.cli import clean_env, script_path
from tests._helpers.rootfs import build_binaries_layer, build_stubs_layer

T = 1_705_000_271


def can_run_containers() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urmpf", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def tar_of(root: Path) -> bytes:
    """A deterministic tar of the tree under ``root``, paths relative to it."""
    out = io.BytesIO()

    def fixed(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = T, 0, 0, "", ""
        return info

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name, filter=fixed)
    return out.getvalue()


def root_layers(tmp: Path) -> list[bytes]:
    """Bottom-first tar artifacts: host binaries (sh, sleep, ...) then mount-point stubs."""
    binaries = build_binaries_layer(tmp / "bin-layer")
    stubs = build_stubs_layer(tmp / "stub-layer")
    return [tar_of(binaries), tar_of(stubs)]


def shell_job(layers: list[bytes], script: str, **kwargs: object) -> JobSpec:
    import hashlib

    refs = tuple(LayerRef(hashlib.sha256(data).digest(), ArtifactType.TAR) for data in layers)
    return JobSpec(
        program="/bin/sh",
        layers=refs,
        arguments=("-c", script),
        environment=("PATH=/bin",),
        mounts=(ProcMount("/proc"), TmpMount("/tmp")),
        **kwargs,  # type: ignore[arg-type]
    )


async def start_worker(
    nursery: trio.Nursery, port: int, tmp: Path, *, slots: int = 2, name: str = "worker"
) -> trio.Process:
    """``maelstrom-worker`` as a user starts it; its log goes to ``tmp/<name>.log``."""
    env = clean_env(tmp, MAELSTROM_WORKER_LOG_LEVEL="debug")
    args = [
        str(script_path("maelstrom-worker")),
        f"--broker=127.0.0.1:{port}",
        f"--slots={slots}",
        f"--cache-root={tmp / (name + '-cache')}",
    ]
    process: trio.Process = await nursery.start(_run_process, args, env, tmp / f"{name}.log")
    return process


async def _run_process(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    task_status: trio.TaskStatus[trio.Process],
) -> None:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = await trio.lowlevel.open_process(args, env=env, stdout=log, stderr=log)
    task_status.started(process)
    await wait_or_kill(process)


async def wait_or_kill(process: trio.Process) -> None:
    """Wait for ``process``; if cancelled first, kill it and reap it before going on."""
    try:
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()


def processes_with_arg(arg: str) -> list[psutil.Process]:
    """Every process on the host with ``arg`` among its arguments (jobs mark themselves)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if arg in cmdline[1:]:
            found.append(process)
    return found


async def wait_until(predicate: object, timeout: float = 20.0, interval: float = 0.02) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(interval)


def log_of(tmp: Path, name: str = "worker") -> str:
    path = tmp / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


_ADDR = re.compile(rb"addr: ([^\s,]+):(\d+),")


class RealBroker:
    """``maelstrom-broker`` as a subprocess; its port comes from its ``addr: host:port,`` log."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int = 0) -> int:
        env = clean_env(self.tmp)
        self.process = subprocess.Popen(
            [
                str(script_path("maelstrom-broker")),
                f"--port={port}",
                f"--cache-root={self.tmp / 'broker-cache'}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            match = _ADDR.search(line)
            if match:
                self.port = int(match.group(2))
                break
        else:
            raise RuntimeError("maelstrom-broker exited without logging its address")
        # Keep draining its log (into a file) so it never blocks on a full pipe.
        self._drain = threading.Thread(target=self._copy_log, args=(self.process.stderr,))
        self._drain.start()
        return self.port

    def _copy_log(self, stderr: IO[bytes]) -> None:
        with stderr, open(self.tmp / "broker.log", "ab") as log:
            for line in stderr:
                log.write(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=20)
        self._drain.join()


def real_broker_available() -> bool:
    try:
        import maelstrom_broker._main  # noqa: F401
    except ImportError:
        return False
    return True
