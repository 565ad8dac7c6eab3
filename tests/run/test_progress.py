"""maelstrom-run's progress line on a terminal stderr; none when stderr is not a terminal."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from maelstrom_core.client import Upload, UploadStatistics
from maelstrom_core.job import JobState
from maelstrom_run._progress import JobStates
from tests.run.test_run import MAELSTROM_RUN, job, run


def test_job_states_count_each_job_once() -> None:
    states = JobStates()
    states.set(1, JobState.WAITING_FOR_ARTIFACTS)
    states.set(2, JobState.WAITING_FOR_ARTIFACTS)
    states.set(1, JobState.RUNNING)
    states.set(1, JobState.RUNNING)
    assert states.line() == (
        "waiting for artifacts: 1, pending: 0, running: 1, complete: 0 (0 failed)"
    )
    version = states.version
    states.set(1, JobState.COMPLETE)
    states.fail()
    assert states.version > version
    assert states.line().endswith("running: 0, complete: 1 (1 failed)")


@pytest.mark.requires_userns
def test_progress_line_on_a_terminal_stderr(tmp_path: Path) -> None:
    # The second job fails at once; the first runs on long enough for the line to show that.
    stream = "\n".join([job("sh", "-c", "sleep 1; echo done"), job("sh", "-c", "exit 2")])
    master, slave = os.openpty()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        [MAELSTROM_RUN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=tmp_path,
        env=env,
    )
    os.close(slave)
    stdout, _ = process.communicate(stream.encode(), timeout=120)
    screen = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        readable, _, _ = select.select([master], [], [], 0.2)
        if not readable:
            break
        try:
            screen += os.read(master, 65536)
        except OSError:
            break
    os.close(master)
    assert process.returncode == 2
    assert stdout == b"done\n"
    text = screen.decode()
    assert "running: 1, complete: 1 (1 failed)" in text
    assert "job 2: exited with code 2" in text
    assert text.endswith("\r\x1b[K")  # the line is gone at the end


def test_no_progress_line_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    result = run(tmp_path, job("sh", "-c", "exit 0"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_line_shows_uploads_in_flight() -> None:
    states = JobStates()
    states.set(1, JobState.WAITING_FOR_ARTIFACTS)
    uploads = UploadStatistics(
        active=(
            Upload(b"\x01" * 32, Path("a.tar"), 3_000_000, 1_000_000),
            Upload(b"\x02" * 32, Path("b"), 2_000_000, 500_000),
        ),
        completed=4,
    )
    assert states.line(uploads).endswith("; uploading 2: 1.5 MB/5.0 MB")
    assert "uploading" not in states.line(UploadStatistics(completed=4))
