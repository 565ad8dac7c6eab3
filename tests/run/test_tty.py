"""maelstrom-run --tty under a real pseudo-terminal: type into a shell inside the container."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from maelstrom_run._tty import Action, EscapeFilter

MAELSTROM_RUN = str(Path(sys.executable).parent / "maelstrom-run")
TOOLS = ["/bin/sh", "/bin/stty", "/bin/cat"]
SHELL_JOB = {
    "layers": [
        {"paths": TOOLS, "follow_symlinks": True},
        {"shared_library_dependencies": TOOLS, "follow_symlinks": True},
        {"stubs": ["/proc/", "/dev/{null,zero}"]},
    ],
    "mounts": [
        {"type": "proc", "mount_point": "/proc"},
        {"type": "devices", "devices": ["null", "zero"]},
    ],
    "environment": {"PATH": "/bin"},
    "program": "/bin/sh",
}
ESC = b"\x1d"  # ^], the default escape character


class Terminal:
    """maelstrom-run on the slave side of a pty we hold the master of, like a terminal emulator."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        (tmp_path / "job.json").write_text(json.dumps(SHELL_JOB))
        self.master, slave = os.openpty()
        termios.tcsetwinsize(slave, (24, 80))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        self.process = subprocess.Popen(
            [MAELSTROM_RUN, "--tty", "--file", "job.json", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=tmp_path,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.screen = b""

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen; screen so far: {self.screen!r}"
            readable, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if readable:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:  # the slave side is gone
                    assert text in self.screen, self.screen
                    return

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@pytest.mark.requires_userns
def test_shell_in_a_container(tmp_path: Path, privilege: str) -> None:
    terminal = Terminal(tmp_path)
    try:
        terminal.expect(b"Job started. ^]^C to interrupt")
        terminal.type(b"echo $((6 * 7)); echo $$\n")
        terminal.expect(b"42\r\n1\r\n")  # the shell is PID 1 of its container
        terminal.type(b"stty size\n")
        terminal.expect(b"24 80")
        # Resizing the terminal signals maelstrom-run, which resizes the job's terminal.
        termios.tcsetwinsize(terminal.master, (30, 100))
        time.sleep(0.5)
        terminal.type(b"stty size\n")
        terminal.expect(b"30 100")
        # ^]^] sends one ^] to the job: cat shows it in caret form.
        terminal.type(b"cat -v\n" + ESC + ESC + b"\n\x04")
        terminal.expect(b"^]")
        terminal.type(b"exit 7\n")
        assert terminal.process.wait(timeout=30) == 7
    finally:
        terminal.close()


@pytest.mark.requires_userns
def test_escape_interrupts(tmp_path: Path, privilege: str) -> None:
    terminal = Terminal(tmp_path)
    try:
        terminal.expect(b"Job started.")
        terminal.type(b"sleep 1000\n")
        time.sleep(0.5)
        terminal.type(ESC + b"\x03")
        assert terminal.process.wait(timeout=30) == 130
        attrs = termios.tcgetattr(terminal.master)
        assert attrs[3] & termios.ICANON, "the terminal was left in raw mode"
    finally:
        terminal.close()


def test_not_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text(json.dumps(SHELL_JOB))
    result = subprocess.run(
        [MAELSTROM_RUN, "--tty", "--file", "job.json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "maelstrom-run: error: standard input is not a terminal"


def test_escape_filter() -> None:
    keys = EscapeFilter(0x1D)
    assert keys.feed(b"ab") == [b"ab"]
    assert keys.feed(b"a\x1d") == [b"a"]
    assert keys.pending
    assert keys.feed(b"\x1d") == [b"\x1d"]
    assert keys.feed(b"x\x1d\x03y") == [b"x", Action.INTERRUPT, b"y"]
    assert keys.feed(b"\x1d\x1a") == [Action.SUSPEND]
    assert keys.feed(b"\x1dq") == [b"\x1dq"]  # any other byte: both pass through
    assert keys.feed(b"\x1d") == []
    assert keys.expire() == b"\x1d"  # a lone escape, after the timeout
    assert keys.expire() == b""
