"""Broker throughput: no-op jobs from one client through a real broker process to 4 fake workers.

The workers are scripted in this process and answer every job the moment it arrives (the real
worker is measured elsewhere), so the figure is the broker's own cost per job: decoding the
request, scheduling, encoding the enqueue, relaying the response, and the status update.

Baseline, measured in the same run: the same peers and the same message count through a bare
trio TCP relay process that only splits frames and forwards them (client frames round-robin to
the workers, worker frames back to the client), with no decoding and no scheduling.

Prints jobs/s for both and their ratio, each server's CPU time per job (steadier than wall time
on a shared machine), and each process's peak RSS (psutil samples, and the kernel's VmHWM);
writes a JSON summary to $MAELSTROM_BENCH_OUT when set.

    python bench/bench_broker.py [--jobs N]      (or MAELSTROM_BENCH_BROKER_JOBS=N)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cbor2
import psutil
import trio

from maelstrom_core._framing import FrameDecoder, encode_frame
from maelstrom_core._job import ExitCode, JobCompleted, JobSpec, Output
from maelstrom_core.net import set_socket_options
from maelstrom_core.proto import (
    EnqueueJob,
    Hello,
    HelloAccepted,
    JobRequest,
    JobResponse,
    Role,
    WorkerJobResponse,
    decode,
    encode,
)

WORKERS = 4
SLOTS = 4
OUTCOME = JobCompleted(ExitCode(0), Output(b"ok\n"), Output(), 0.001)
SPEC = JobSpec("/bin/true", (), arguments=("--exact", "some::test"))
_ADDR = re.compile(rb"addr: \S+:(\d+),")


# --- the baseline relay (runs as its own process) --------------------------------------------


async def _relay_main() -> None:
    workers: list[trio.SocketStream] = []
    client: list[trio.SocketStream] = []
    ready = trio.Event()
    client_lock = trio.Lock()

    async def forward(stream: trio.SocketStream, to_workers: bool) -> None:
        decoder = FrameDecoder()
        turn = 0
        await ready.wait()
        while data := await stream.receive_some(256 * 1024):
            decoder.feed(data)
            out: list[list[bytes]] = [[] for _ in workers] if to_workers else [[]]
            for payload in decoder:
                if to_workers:
                    out[turn % len(workers)].append(encode_frame(payload))
                    turn += 1
                else:
                    out[0].append(encode_frame(payload))
            if to_workers:  # only this task writes to the workers
                for target, frames in zip(workers, out, strict=True):
                    if frames:
                        await target.send_all(b"".join(frames))
            elif out[0]:
                async with client_lock:  # every worker's task writes to the client
                    await client[0].send_all(b"".join(out[0]))

    async def handle(stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        hello = None
        while hello is None:
            decoder.feed(await stream.receive_some(4096))
            hello = decoder.next_frame()
        role = decode(hello)
        assert isinstance(role, Hello)
        await stream.send_all(encode_frame(encode(HelloAccepted(0))))
        if role.role is Role.WORKER:
            workers.append(stream)
            await forward(stream, to_workers=False)
        else:
            client.append(stream)
            ready.set()
            await forward(stream, to_workers=True)

    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        (listener,) = await nursery.start(serve)
        port = listener.socket.getsockname()[1]
        print(f"relay started, addr: 127.0.0.1:{port}, pid: {os.getpid()}", file=sys.stderr)
        sys.stderr.flush()


# --- scripted peers ---------------------------------------------------------------------------
# The peers speak raw frames with pre-encoded messages, so the figure is the server's cost and
# not this process's: decoding and encoding every message here would cost as much as the
# server does, on the same two cores.

_REQUEST_TAG = JobRequest.TAG
_ENQUEUE_TAG = EnqueueJob.TAG
_RESPONSE_TAG = JobResponse.TAG
_OUTCOME = cbor2.loads(encode(JobResponse(0, OUTCOME)))[2]


async def _connect(port: int, hello: Hello) -> tuple[trio.SocketStream, FrameDecoder]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    set_socket_options(stream)
    await stream.send_all(encode_frame(encode(hello)))
    decoder = FrameDecoder()
    while (reply := decoder.next_frame()) is None:
        decoder.feed(await stream.receive_some(4096))
    assert isinstance(decode(reply), HelloAccepted)
    return stream, decoder


async def _worker(port: int) -> None:
    stream, decoder = await _connect(port, Hello(Role.WORKER, slots=SLOTS))
    async with stream:
        while True:
            answers = []
            for payload in decoder:
                message = cbor2.loads(payload)
                if message[0] == _ENQUEUE_TAG:  # [tag, [cid, cjid], spec]
                    answer = [WorkerJobResponse.TAG, message[1], _OUTCOME]
                else:  # the relay forwards the client's [tag, cjid, spec] as it is
                    answer = [_RESPONSE_TAG, message[1], _OUTCOME]
                answers.append(encode_frame(cbor2.dumps(answer)))
            if answers:
                await stream.send_all(b"".join(answers))
            data = await stream.receive_some(256 * 1024)
            if not data:
                return
            decoder.feed(data)


async def _client(port: int, jobs: int) -> float:
    """Submit ``jobs`` jobs at once; seconds until the last response."""
    requests = [encode_frame(encode(JobRequest(cjid, SPEC))) for cjid in range(jobs)]
    stream, decoder = await _connect(port, Hello(Role.CLIENT))
    done = 0
    async with stream:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def submit() -> None:
                for first in range(0, jobs, 256):
                    await stream.send_all(b"".join(requests[first : first + 256]))

            nursery.start_soon(submit)
            while done < jobs:
                data = await stream.receive_some(256 * 1024)
                if not data:
                    raise SystemExit("the server hung up on the client")
                decoder.feed(data)
                for payload in decoder:
                    # Responses are [tag, ...] arrays; tag < 24 is the byte after the header.
                    if payload[1] == _RESPONSE_TAG:
                        done += 1
        return time.perf_counter() - start


async def _drive(port: int, jobs: int, pid: int) -> tuple[float, int, float]:
    """Run the peers against the server on ``port``.

    Returns seconds, the peak RSS sampled, and the server's CPU seconds (user + system) for the
    run: the figure least disturbed by whatever else the machine is doing."""
    process = psutil.Process(pid)
    peak = 0
    async with trio.open_nursery() as nursery:

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, process.memory_info().rss)
                await trio.sleep(0.05)

        nursery.start_soon(sample)
        for _ in range(WORKERS):
            nursery.start_soon(_worker, port)
        await trio.sleep(0.3)  # let every worker finish its hello before jobs flow
        before = process.cpu_times()
        seconds = await _client(port, jobs)
        after = process.cpu_times()
        peak = max(peak, process.memory_info().rss)
        nursery.cancel_scope.cancel()
    cpu = (after.user - before.user) + (after.system - before.system)
    return seconds, peak, cpu


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _start(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    deadline = time.monotonic() + 30
    while (match := _ADDR.search(log.read_bytes())) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{argv[0]} did not start: {log.read_text()}")
        time.sleep(0.02)
    return proc, int(match.group(1))


def _measure(argv: list[str], log: Path, jobs: int) -> dict[str, float]:
    proc, port = _start(argv, log)
    try:
        seconds, peak, cpu = trio.run(_drive, port, jobs, proc.pid)
        hwm = _vm_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "seconds": seconds,
        "jobs_per_s": jobs / seconds,
        "cpu_us_per_job": cpu / jobs * 1e6,
        "peak_rss_mb": peak / 1e6,
        "vm_hwm_mb": hwm / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("MAELSTROM_BENCH_BROKER_JOBS", "20000")),
        help="no-op jobs to run through each server (default 20000)",
    )
    parser.add_argument("--relay-serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay_serve:
        trio.run(_relay_main)
        return
    jobs = args.jobs
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        root = Path(tmp)
        broker_argv = [
            sys.executable,
            "-m",
            "maelstrom_broker",
            "--port",
            "0",
            "--cache-root",
            str(root / "cache"),
        ]
        relay = _measure(
            [sys.executable, os.path.abspath(__file__), "--relay-serve"], root / "relay.log", jobs
        )
        broker = _measure(broker_argv, root / "broker.log", jobs)
    ratio = broker["jobs_per_s"] / relay["jobs_per_s"]
    cpu_ratio = broker["cpu_us_per_job"] / relay["cpu_us_per_job"]
    print(f"jobs: {jobs} no-op jobs, 1 client, {WORKERS} workers x {SLOTS} slots")
    print(
        f"broker:   {broker['jobs_per_s']:9.0f} jobs/s  ({broker['seconds']:.2f} s)  "
        f"{broker['cpu_us_per_job']:6.1f} CPU us/job  "
        f"peak RSS {broker['peak_rss_mb']:.1f} MB (VmHWM {broker['vm_hwm_mb']:.1f} MB)"
    )
    print(
        f"relay:    {relay['jobs_per_s']:9.0f} jobs/s  ({relay['seconds']:.2f} s)  "
        f"{relay['cpu_us_per_job']:6.1f} CPU us/job  "
        f"peak RSS {relay['peak_rss_mb']:.1f} MB (VmHWM {relay['vm_hwm_mb']:.1f} MB)"
    )
    print(f"ratio broker/relay: {ratio:.2f} in jobs/s, {cpu_ratio:.1f}x the CPU per job")
    summary = {
        "benchmark": "broker",
        "jobs": jobs,
        "workers": WORKERS,
        "slots": SLOTS,
        "broker": broker,
        "relay": relay,
        "ratio_broker_to_relay": ratio,
        "cpu_ratio_broker_to_relay": cpu_ratio,
    }
    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
