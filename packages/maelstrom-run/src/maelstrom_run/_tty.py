"""``maelstrom-run --tty``: one job on a pseudo-terminal, driven from this terminal SSH-style.

The local terminal goes raw; keystrokes go to the job except after the escape character
(``^]`` by default): ``<esc>^C`` interrupts maelstrom-run, ``<esc>^Z`` suspends it,
``<esc><esc>`` sends one ``<esc>``, ``<esc>`` and any other byte pass through together, and a
lone ``<esc>`` with no input for 1.5 s passes through. Window size changes follow the terminal.
"""

from __future__ import annotations

import enum
import errno
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from maelstrom_core.client import open_client
from maelstrom_core.config import RunConfig, RunOptions
from maelstrom_core.errors import MaelstromError
from maelstrom_core.job import JobOutcome, JobState, WindowSize

from ._main import client_settings, exit_like, first_job

ESCAPE_TIMEOUT = 1.5  # seconds a lone escape character waits for the next byte
_CTRL_C = 0x03
_CTRL_Z = 0x1A


class Action(enum.Enum):
    INTERRUPT = "interrupt"
    SUSPEND = "suspend"


class EscapeFilter:
    """Splits keyboard input into bytes for the job and local actions (sans-IO)."""

    def __init__(self, escape: int) -> None:
        self._escape = escape
        self.pending = False  # the last byte seen was an unanswered escape

    def feed(self, data: bytes) -> list[bytes | Action]:
        events: list[bytes | Action] = []
        out = bytearray()
        for byte in data:
            if not self.pending:
                if byte == self._escape:
                    self.pending = True
                else:
                    out.append(byte)
                continue
            self.pending = False
            if byte in (_CTRL_C, _CTRL_Z):
                if out:
                    events.append(bytes(out))
                    out.clear()
                events.append(Action.INTERRUPT if byte == _CTRL_C else Action.SUSPEND)
            elif byte == self._escape:
                out.append(byte)
            else:
                out += bytes((self._escape, byte))
        if out:
            events.append(bytes(out))
        return events

    def expire(self) -> bytes:
        """The escape waited too long for a partner: it was meant for the job."""
        if not self.pending:
            return b""
        self.pending = False
        return bytes((self._escape,))


class NotATerminal(MaelstromError):
    """``--tty`` needs standard input and output to be a terminal."""


def run_tty(config: RunConfig, options: RunOptions) -> int:
    for fd, name in ((0, "standard input"), (1, "standard output")):
        if not os.isatty(fd):
            raise NotATerminal(f"{name} is not a terminal")
    outcome: JobOutcome = trio.run(_run_tty, config, options)
    return exit_like(outcome)


def window_size(fd: int) -> WindowSize:
    rows, columns = termios.tcgetwinsize(fd)
    return WindowSize(rows=rows, columns=columns)


async def _run_tty(config: RunConfig, options: RunOptions) -> JobOutcome:
    item, containers = await first_job(options)
    master, slave = os.openpty()
    try:
        termios.tcsetwinsize(slave, termios.tcgetwinsize(1))
        os.set_blocking(master, False)
        escape = config.escape_char
        started = trio.Event()

        def on_state(state: JobState) -> None:
            if state is JobState.RUNNING:
                started.set()

        _say("Waiting for job to start...")
        async with open_client(client_settings(config)) as client:
            for containers_item in containers:
                client.add_containers(containers_item.containers)
            outcome: JobOutcome | None = None
            async with trio.open_nursery() as nursery:

                async def run_job() -> None:
                    nonlocal outcome
                    outcome = await client.run_job(
                        item.spec,
                        label=f"job {item.index}",
                        on_state=on_state,
                        tty=(slave, window_size(1)),
                    )
                    nursery.cancel_scope.cancel()

                async def proxy() -> None:
                    await started.wait()
                    # Raw before the banner: keys typed as soon as it shows must reach the job.
                    with raw_terminal(0):
                        _say(
                            f"Job started. {escape}^C to interrupt, {escape}^Z to suspend, "
                            f"{escape}{escape} to transmit {escape}."
                        )
                        async with trio.open_nursery() as inner:
                            inner.start_soon(_keyboard_to_job, master, escape.byte)
                            inner.start_soon(_job_to_screen, master)
                            inner.start_soon(_follow_window_size, master)

                nursery.start_soon(run_job)
                nursery.start_soon(proxy)
            _drain(master)
        assert outcome is not None  # the nursery ends only when run_job does, or raises
        return outcome
    finally:
        os.close(master)
        os.close(slave)


def _say(line: str) -> None:
    sys.stdout.write(line + "\r\n")
    sys.stdout.flush()


@contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: that would drop what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


async def _keyboard_to_job(master: int, escape: int) -> None:
    keys = EscapeFilter(escape)
    while True:
        # stdin stays blocking (it is the shell's terminal too): wait, then read what is there.
        if keys.pending:
            with trio.move_on_after(ESCAPE_TIMEOUT):
                await trio.lowlevel.wait_readable(0)
            if not _readable_now(0):
                _write_all(master, keys.expire())
                continue
        else:
            await trio.lowlevel.wait_readable(0)
        data = os.read(0, 4096)
        if not data:
            return
        for event in keys.feed(data):
            if event is Action.INTERRUPT:
                os.kill(os.getpid(), signal.SIGINT)
                await trio.lowlevel.checkpoint()
            elif event is Action.SUSPEND:
                _suspend()
            else:
                assert isinstance(event, bytes)
                await _send(master, event)


def _readable_now(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _suspend() -> None:
    saved = termios.tcgetattr(0)
    # Give the shell back a sane terminal while we are stopped, and take it raw again after.
    termios.tcsetattr(0, termios.TCSAFLUSH, _cooked(saved))
    os.kill(os.getpid(), signal.SIGTSTP)
    termios.tcsetattr(0, termios.TCSAFLUSH, saved)


def _cooked(raw: list[Any]) -> list[Any]:
    attrs = list(raw)
    attrs[0] |= termios.ICRNL
    attrs[1] |= termios.OPOST
    attrs[3] |= termios.ECHO | termios.ICANON | termios.ISIG
    return attrs


async def _send(master: int, data: bytes) -> None:
    while data:
        await trio.lowlevel.wait_writable(master)
        try:
            written = os.write(master, data)
        except BlockingIOError:
            continue
        data = data[written:]


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


async def _job_to_screen(master: int) -> None:
    while True:
        await trio.lowlevel.wait_readable(master)
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            continue
        except OSError as err:
            if err.errno == errno.EIO:  # every slave end is closed
                return
            raise
        if not data:
            return
        _write_all(1, data)


def _drain(master: int) -> None:
    """What the job wrote just before it exited is still in the pty: show it."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)


async def _follow_window_size(master: int) -> None:
    with trio.open_signal_receiver(signal.SIGWINCH) as changes:
        async for _ in changes:
            termios.tcsetwinsize(master, termios.tcgetwinsize(1))
