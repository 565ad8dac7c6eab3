"""A real ``maelstrom-broker`` process, found through its startup line, driven by scripted peers
and by a real ``maelstrom-admin``."""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from maelstrom_core.errors import PeerBroken
from maelstrom_core.net import accept_hello, open_message_stream
from maelstrom_core.proto import (
    BrokerStatistics,
    GeneralError,
    Hello,
    Role,
    ShutDown,
    StatisticsResponse,
)
from tests._helpers.cli import clean_env, script_path

DEADLINE = 30.0
_ADDR = re.compile(r"addr: (\S+):(\d+),")


@dataclass
class BrokerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.log.read_text()


@contextmanager
def broker_process(tmp_path: Path, *args: str) -> Iterator[BrokerProcess]:
    """Start ``maelstrom-broker --port 0`` and wait for its ``addr:`` line."""
    log = tmp_path / "broker.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                str(script_path("maelstrom-broker")),
                "--port",
                "0",
                "--cache-root",
                str(tmp_path / "cache"),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=clean_env(tmp_path),
        )
    try:
        deadline = time.monotonic() + DEADLINE
        while (match := _ADDR.search(log.read_text())) is None:
            if proc.poll() is not None:
                raise AssertionError(f"broker exited with {proc.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no addr line from the broker: {log.read_text()}")
            time.sleep(0.02)
        yield BrokerProcess(proc, int(match.group(2)), log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def admin(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [str(script_path("maelstrom-admin")), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=clean_env(home),
    )


async def wait_exit(proc: subprocess.Popen[bytes]) -> int:
    with trio.fail_after(DEADLINE):
        while proc.poll() is None:
            await trio.sleep(0.02)
    return proc.returncode


def test_startup_line_names_the_address_and_pid(tmp_path: Path) -> None:
    with broker_process(tmp_path) as broker:
        line = next(line for line in broker.stderr().splitlines() if "addr:" in line)
        assert re.search(
            rf" INFO maelstrom_broker: started, addr: (\[::\]|0\.0\.0\.0):{broker.port}, "
            rf"pid: {broker.proc.pid}$",
            line,
        ), line
        assert (tmp_path / "cache/CACHEDIR.TAG").is_file()


async def test_admin_status_and_stop_against_a_real_broker(tmp_path: Path) -> None:
    with broker_process(tmp_path) as broker:
        with trio.fail_after(DEADLINE):
            result = await admin("-b", broker.address, "status", home=tmp_path)
            assert (result.returncode, result.stdout, result.stderr) == (
                0,
                b"Number of workers: 0\nNumber of clients: 0\n",
                b"",
            )
            worker = await open_message_stream(
                "127.0.0.1", broker.port, Hello(Role.WORKER, slots=3)
            )
            client = await open_message_stream("127.0.0.1", broker.port, Hello(Role.CLIENT))
            for alias in ("stats", "stat"):
                result = await admin(alias, "--broker", broker.address, home=tmp_path)
                assert result.stdout == b"Number of workers: 1\nNumber of clients: 1\n"
            result = await admin("-b", broker.address, "shut-down", home=tmp_path)
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
            assert isinstance(await worker.receive(), ShutDown)
            assert isinstance(await client.receive(), GeneralError)
            assert await wait_exit(broker.proc) == 0
            await worker.aclose()
            await client.aclose()
    assert "asked the broker to stop" in broker.stderr()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_is_a_clean_exit_that_lets_workers_reconnect(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # A signalled broker is usually being restarted: workers are disconnected, not stopped.
    with broker_process(tmp_path) as broker:
        with trio.fail_after(DEADLINE):
            worker = await open_message_stream(
                "127.0.0.1", broker.port, Hello(Role.WORKER, slots=1)
            )
            broker.proc.send_signal(signum)
            with pytest.raises(PeerBroken):
                await worker.receive()
            assert await wait_exit(broker.proc) == 0
            await worker.aclose()
    assert f"received {signum.name}" in broker.stderr()


async def test_broken_peers_cost_one_log_line_each_and_the_broker_serves_on(
    tmp_path: Path,
) -> None:
    with broker_process(tmp_path) as broker:
        with trio.fail_after(DEADLINE):
            for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\xff\xff\xff\xff", b"\x00\x00\x00\x09ab"):
                raw = await trio.open_tcp_stream("127.0.0.1", broker.port)
                await raw.send_all(junk)
                await raw.send_eof()
                while await raw.receive_some(4096):
                    pass
                await raw.aclose()
            result = await admin("-b", broker.address, "status", home=tmp_path)
            assert result.returncode == 0
            assert broker.proc.poll() is None
    errors = [line for line in broker.stderr().splitlines() if " ERROR " in line]
    assert len(errors) == 3, errors
    assert "Traceback" not in broker.stderr()


def test_second_broker_on_the_same_cache_is_a_one_line_error(tmp_path: Path) -> None:
    with broker_process(tmp_path):
        result = subprocess.run(
            [str(script_path("maelstrom-broker")), "--cache-root", str(tmp_path / "cache")],
            capture_output=True,
            text=True,
            env=clean_env(tmp_path),
            timeout=DEADLINE,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("maelstrom-broker: error: cache directory ")
    assert "in use by another process" in result.stderr
    assert result.stderr.count("\n") == 1


async def test_admin_without_a_broker_is_a_one_line_error(tmp_path: Path) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    result = await admin("-b", f"127.0.0.1:{port}", "status", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(b"maelstrom-admin: error: cannot connect to broker at ")
    assert result.stderr.count(b"\n") == 1


async def test_admin_stop_fails_when_the_broker_replies_instead_of_leaving(
    tmp_path: Path,
) -> None:
    """A fake broker (a real listener) that answers a stop request with statistics."""

    async def answer(stream: trio.SocketStream) -> None:
        messages, _ = await accept_hello(stream, [Role.MONITOR], peer_id=1)
        async with messages:
            await messages.receive()
            await messages.send(StatisticsResponse(BrokerStatistics()))
            with pytest.raises(PeerBroken):  # the admin hangs up on us
                await messages.receive()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, answer, 0, host="127.0.0.1")
            (listener,) = await nursery.start(serve)
            port = listener.socket.getsockname()[1]
            result = await admin("-b", f"127.0.0.1:{port}", "stop", home=tmp_path)
            nursery.cancel_scope.cancel()
    assert result.returncode == 1
    assert b"instead of disconnecting" in result.stderr
    assert result.stderr.count(b"\n") == 1
