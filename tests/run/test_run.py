"""maelstrom-run end to end: JSON job streams, exit codes, --one, bad input. Real containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires_userns

MAELSTROM_RUN = str(Path(sys.executable).parent / "maelstrom-run")
TOOLS = ["/bin/sh", "/bin/echo", "/bin/ls", "/bin/cat", "/bin/sleep"]

# The layers every job here shares: a few host programs, their libraries, and mount points.
BASE_LAYERS = [
    {"paths": TOOLS, "follow_symlinks": True},
    {"shared_library_dependencies": TOOLS, "follow_symlinks": True},
    {"stubs": ["/proc/", "/tmp/", "/dev/{null,zero}"]},
]
BASE = {
    "layers": BASE_LAYERS,
    "mounts": [
        {"type": "tmp", "mount_point": "/tmp"},
        {"type": "proc", "mount_point": "/proc"},
        {"type": "devices", "devices": ["null", "zero"]},
    ],
    "environment": {"PATH": "/bin:/usr/bin"},
}


CPU_HOG = "ulimit -t 1; while :; do :; done"


def run(
    tmp_path: Path, stdin: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    return subprocess.run(
        [MAELSTROM_RUN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=timeout,
        check=False,
    )


def job(program: str, *arguments: str, **fields: object) -> str:
    return json.dumps({**BASE, "program": program, "arguments": list(arguments), **fields})


def test_book_example_with_containers(tmp_path: Path, privilege: str) -> None:
    # maelstrom-features.md §2.8, with the image replaced by layers (images arrive later).
    stream = "\n".join(
        [
            json.dumps({"containers": {"base": BASE}}),
            '{"parent":"base","program":"ls","arguments":["/"],"timeout":5}',
            '{"parent":"base","program":"echo","arguments":["Hello","world!"]}',
        ]
    )
    result = run(tmp_path, stream)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Hello world!" in lines
    assert {"bin", "proc", "tmp", "dev"} <= set(lines)


def test_exit_code_is_the_first_failure_and_output_is_per_job(
    tmp_path: Path, privilege: str
) -> None:
    stream = "".join(  # concatenated objects, no separators
        [
            job("sh", "-c", "echo one; echo uno >&2"),
            job("sh", "-c", "sleep 1; exit 4"),
            job("sh", "-c", "echo two; exit 3"),
        ]
    )
    result = run(tmp_path, stream)
    assert result.returncode == 3
    assert sorted(result.stdout.splitlines()) == ["one", "two"]
    assert "uno" in result.stderr.splitlines()
    assert "job 3: exited with code 3" in result.stderr
    assert "job 2: exited with code 4" in result.stderr


def test_signal_timeout_and_execution_errors_exit_1(tmp_path: Path, privilege: str) -> None:
    cases = {
        # The job is PID 1 of its namespace, so signals from inside it are ignored; the kernel's
        # SIGKILL at the CPU-time hard limit is not.
        job("sh", "-c", CPU_HOG): "job 1: killed by signal 9",
        job("sleep", "100", timeout=1): "job 1: timed out",
        job("/bin/nonexistent"): "job 1: execution error:",
    }
    for stream, message in cases.items():
        result = run(tmp_path, stream)
        assert result.returncode == 1, result.stderr
        assert message in result.stderr


def test_truncated_output_is_reported(tmp_path: Path, privilege: str) -> None:
    result = run(
        tmp_path,
        job("sh", "-c", "i=0; while [ $i -lt 100 ]; do echo 0123456789; i=$((i+1)); done"),
        "--inline-limit",
        "100",
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 100
    assert "job 1: stdout truncated, 1000 bytes lost" in result.stderr


def test_one_mode_mirrors_exit_code_and_replaces_program(tmp_path: Path, privilege: str) -> None:
    stream = json.dumps({"containers": {"base": BASE}}) + job("echo", "ignored") + job("false")
    result = run(tmp_path, stream, "--one", "sh", "-c", "echo replaced; exit 42")
    assert result.returncode == 42
    assert result.stdout == "replaced\n"


def test_one_mode_dies_by_the_jobs_signal(tmp_path: Path, privilege: str) -> None:
    result = run(tmp_path, job("sh", "-c", CPU_HOG), "--one")
    assert result.returncode == -signal.SIGKILL


def test_invalid_json_names_job_line_and_column_and_earlier_jobs_still_report(
    tmp_path: Path, privilege: str
) -> None:
    stream = job("echo", "first") + "\n" + '{"program": "echo", "layers": [}\n'
    result = run(tmp_path, stream)
    assert result.returncode == 1
    assert result.stdout == "first\n"
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1
    assert error[0].startswith("maelstrom-run: error: <stdin>: job 2 (line 2, ")
    assert "Traceback" not in result.stderr


def test_invalid_field_names_the_field(tmp_path: Path) -> None:
    result = run(tmp_path, '{"program": "echo", "layers": [], "user": -1}')
    assert result.returncode == 1
    assert "job 1" in result.stderr
    assert "user" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_layer_file_is_an_error_for_that_job(tmp_path: Path) -> None:
    stream = json.dumps({"layers": [{"paths": ["no/such/file"]}], "program": "x"})
    result = run(tmp_path, stream)
    assert result.returncode == 1
    assert "job 1" in result.stderr
    assert "no/such/file" in result.stderr
    assert "Traceback" not in result.stderr


def test_jobs_from_file(tmp_path: Path, privilege: str) -> None:
    (tmp_path / "jobs.json").write_text(job("echo", "from", "file"))
    result = run(tmp_path, "", "--file", "jobs.json")
    assert (result.returncode, result.stdout) == (0, "from file\n"), result.stderr


@pytest.mark.slow
def test_a_thousand_jobs(tmp_path: Path, privilege: str) -> None:
    stream = "\n".join(job("echo", f"job-{i}") for i in range(1000))
    stream += "\n" + job("sh", "-c", "exit 9")
    result = run(tmp_path, stream, timeout=600)
    assert result.returncode == 9, result.stderr[-2000:]
    assert sorted(result.stdout.splitlines()) == sorted(f"job-{i}" for i in range(1000))
    assert result.stderr.strip() == "job 1001: exited with code 9"
