"""run_container: real rootless containers from host binaries, as root and unprivileged."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil
import pytest
import trio

from maelstrom_core._container import run_container
from maelstrom_core._job import (
    BindMount,
    Device,
    DevicesMount,
    DevptsMount,
    ExitCode,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobOutcome,
    JobSpec,
    JobTimedOut,
    MqueueMount,
    Network,
    Output,
    ProcMount,
    Signaled,
    SysMount,
    TmpMount,
)
from tests._helpers.rootfs import build_binaries_layer, build_stubs_layer

pytestmark = [pytest.mark.requires_userns]

LIMIT = 1 << 20
PROC = ProcMount("/proc")


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("root")
    return [build_stubs_layer(base / "stubs"), build_binaries_layer(base / "bin")]


def job(script: str, **fields: object) -> JobSpec:
    fields.setdefault("environment", ("PATH=/bin",))
    return JobSpec(program="sh", layers=(), arguments=("-c", script), **fields)  # type: ignore[arg-type]


async def run(layers: list[Path], spec: JobSpec, limit: int = LIMIT) -> JobOutcome:
    return await run_container(spec, layers, inline_limit=limit)


async def ok(layers: list[Path], script: str, **fields: object) -> str:
    outcome = await run(layers, job(script, **fields))
    assert isinstance(outcome, JobCompleted), outcome
    assert outcome.status == ExitCode(0), outcome
    return outcome.stdout.data.decode()


def job_processes(marker: str) -> list[psutil.Process]:
    """Host processes whose command line carries ``marker`` (a unique sleep duration)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process)
    return found


async def test_job_is_pid_1_and_session_leader(privilege: str, layers: list[Path]) -> None:
    # Field 6 of /proc/1/stat is the session id: the job's init leads its own session.
    out = await ok(
        layers, "echo $$; read -r a b c d e f rest < /proc/1/stat; echo $f", mounts=(PROC,)
    )
    assert out.splitlines() == ["1", "1"]


async def test_host_files_are_invisible(privilege: str, layers: list[Path], tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host")
    out = await ok(
        layers,
        f"ls /; cat {secret} 2>/dev/null || echo missing",
        mounts=(DevicesMount(frozenset({Device.NULL})),),
    )
    entries = out.splitlines()
    assert entries[-1] == "missing"
    assert set(entries[:-1]) <= {
        "bin",
        "dev",
        "lib",
        "lib64",
        "mnt",
        "proc",
        "root",
        "sys",
        "tmp",
        "usr",
    }
    assert "work" not in entries
    assert "etc" not in entries


@pytest.mark.parametrize("network", list(Network))
async def test_network_modes(privilege: str, layers: list[Path], network: Network) -> None:
    out = await ok(layers, "cat /proc/net/dev", network=network, mounts=(PROC,))
    inside = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    host = set(os.listdir("/sys/class/net"))
    if network is Network.LOCAL:
        assert inside == host
        return
    # A new network namespace always has lo; "disabled" leaves it down, "loopback" brings it up.
    assert inside == {"lo"}
    flags = await ok(
        layers, "cat /sys/class/net/lo/flags", network=network, mounts=(PROC, SysMount("/sys"))
    )
    up = int(flags, 16) & 1
    assert up == (network is Network.LOOPBACK)


async def test_root_is_read_only_unless_writable(privilege: str, layers: list[Path]) -> None:
    out = await ok(layers, "touch /new 2>&1 || echo refused")
    assert out.strip().endswith("refused")
    assert "Read-only file system" in out
    out = await ok(
        layers,
        "echo data > /new && cat /new && rm /bin/true && ls /bin/true 2>&1 || true",
        enable_writable_file_system=True,
    )
    assert out.splitlines()[0] == "data"
    assert "No such file" in out
    # Writes went to a throwaway tmpfs: the layers and the next job see nothing.
    assert not any((layer / "new").exists() for layer in layers)
    assert (layers[1] / "bin" / "true").exists()
    out = await ok(layers, "ls /new 2>&1 || echo gone", enable_writable_file_system=True)
    assert out.strip().endswith("gone")


async def test_tmp_mount_is_writable_on_a_read_only_root(
    privilege: str, layers: list[Path]
) -> None:
    out = await ok(layers, "echo hi > /tmp/f && cat /tmp/f", mounts=(TmpMount("/tmp"),))
    assert out == "hi\n"


async def test_every_mount_type(privilege: str, layers: list[Path], tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "file").write_text("read me")
    mounts = (
        PROC,
        SysMount("/sys"),
        TmpMount("/tmp"),
        DevptsMount("/dev/pts"),
        MqueueMount("/dev/mqueue"),
        DevicesMount(frozenset({Device.NULL, Device.ZERO, Device.FULL})),
        BindMount("/mnt", str(rw)),
        BindMount("/root", str(ro), read_only=True),
    )
    script = (
        "grep -E ' /(proc|sys|tmp|dev/pts|dev/mqueue|dev/null|dev/zero|dev/full|mnt|root) '"
        " /proc/self/mountinfo;"
        "echo x > /dev/null && echo null-ok;"
        "head -c 4 /dev/zero | wc -c;"
        "echo from-job > /mnt/out && echo rw-ok;"
        "cat /root/file; echo; touch /root/nope 2>&1 || echo ro-refused;"
        "ls /sys/kernel >/dev/null && echo sys-ok"
    )
    out = await ok(layers, script, mounts=mounts)
    lines = out.splitlines()
    fstypes = {line.split()[4]: line.split(" - ")[1].split()[0] for line in lines if " - " in line}
    assert fstypes["/proc"] == "proc"
    assert fstypes["/sys"] == "sysfs"
    assert fstypes["/tmp"] == "tmpfs"
    assert fstypes["/dev/pts"] == "devpts"
    assert fstypes["/dev/mqueue"] == "mqueue"
    assert {"/dev/null", "/dev/zero", "/dev/full", "/mnt", "/root"} <= fstypes.keys()
    devpts = next(line for line in lines if " /dev/pts " in line)
    assert "ptmxmode=666" in devpts
    root_line = next(line for line in lines if " /root " in line)
    assert root_line.split()[5].startswith("ro")
    for expected in ("null-ok", "4", "rw-ok", "read me", "ro-refused", "sys-ok"):
        assert expected in lines, (expected, out)
    assert (rw / "out").read_text() == "from-job\n"
    assert not (ro / "nope").exists()


async def test_user_and_group_are_the_specs(privilege: str, layers: list[Path]) -> None:
    out = await ok(layers, "id -u; id -g; id -G", user=1234, group=4321)
    assert out.split() == ["1234", "4321", "4321"]
    out = await ok(layers, "id -u; id -g")
    assert out.split() == ["0", "0"]


async def test_environment_is_exactly_the_specs(privilege: str, layers: list[Path]) -> None:
    environment = ("PATH=/bin", "FOO=bar baz", "EMPTY=")
    outcome = await run(layers, JobSpec(program="/bin/env", layers=(), environment=environment))
    assert isinstance(outcome, JobCompleted)
    assert sorted(outcome.stdout.data.decode().splitlines()) == sorted(environment)


async def test_working_directory(privilege: str, layers: list[Path]) -> None:
    assert await ok(layers, "pwd", working_directory="/dev") == "/dev\n"
    assert await ok(layers, "pwd") == "/\n"


async def test_path_search_uses_the_jobs_path(
    privilege: str, layers: list[Path], tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    (tools / "opt" / "tools").mkdir(parents=True)
    hello = tools / "opt" / "tools" / "hello"
    hello.write_text("#!/bin/sh\necho hello from $0\n")
    hello.chmod(0o755)
    (tools / "opt" / "notexec").mkdir()
    (tools / "opt" / "notexec" / "hello").write_text("not a program\n")
    stack = [tools, *layers]
    spec = JobSpec(
        program="hello",
        layers=(),
        environment=("PATH=/nonexistent::/opt/notexec:/opt/tools",),
    )
    outcome = await run(stack, spec)
    assert isinstance(outcome, JobCompleted), outcome
    assert outcome.stdout.data == b"hello from /opt/tools/hello\n"
    # The host's PATH is never used: without /bin in the job's PATH, "sh" is not found.
    outcome = await run(stack, JobSpec(program="sh", layers=(), environment=("PATH=/opt",)))
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.EXECUTION
    assert "execute sh (searched the job's PATH /opt): No such file or directory" in outcome.message


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (JobSpec(program="/bin/nope", layers=()), "execute /bin/nope: No such file or directory"),
        (JobSpec(program="/dev/null", layers=()), "execute /dev/null: Permission denied"),
        (
            JobSpec(program="/bin/true", layers=(), working_directory="/missing"),
            "change to working directory /missing: No such file or directory",
        ),
        (
            JobSpec(program="/bin/true", layers=(), mounts=(ProcMount("/nowhere"),)),
            "mount proc at /nowhere: No such file or directory (add a stub for /nowhere)",
        ),
        (
            JobSpec(program="/bin/true", layers=(), mounts=(BindMount("/mnt", "/no/such/source"),)),
            "open bind mount source /no/such/source: No such file or directory",
        ),
        (
            JobSpec(
                program="/bin/true",
                layers=(),
                network=Network.LOCAL,
                mounts=(SysMount("/sys"),),
            ),
            "cannot be used with network 'local'",
        ),
    ],
    ids=[
        "missing-program",
        "not-executable",
        "bad-cwd",
        "missing-mount-point",
        "bad-bind-source",
        "sys-with-local",
    ],
)
async def test_execution_errors_in_words(
    privilege: str, layers: list[Path], spec: JobSpec, words: str
) -> None:
    outcome = await run(layers, spec)
    assert isinstance(outcome, JobError), outcome
    assert outcome.kind is JobErrorKind.EXECUTION
    assert words in outcome.message
    assert "\n" not in outcome.message


async def test_stdin_is_at_eof(privilege: str, layers: list[Path]) -> None:
    assert await ok(layers, "cat; echo after") == "after\n"


async def test_exit_codes_and_signals(privilege: str, layers: list[Path]) -> None:
    outcome = await run(layers, job("exit 3"))
    assert isinstance(outcome, JobCompleted)
    assert outcome.status == ExitCode(3)
    # PID 1 ignores signals it has no handler for, except ones the kernel forces: overflow
    # the shell's stack for a SIGSEGV.
    outcome = await run(layers, job("ulimit -s 256; f() { f; }; f"))
    assert isinstance(outcome, JobCompleted)
    assert outcome.status == Signaled(11)
    # Python ignores SIGPIPE and SIGXFSZ; the job must not inherit that, nor a blocked mask.
    out = await ok(layers, "grep -E '^Sig(Ign|Blk)' /proc/self/status", mounts=(PROC,))
    assert out.split() == ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16]


async def test_output_capture_and_truncation(privilege: str, layers: list[Path]) -> None:
    outcome = await run(
        layers,
        job("yes | head -c 3000; yes err | head -c 500 >&2; echo -n"),
        limit=1000,
    )
    assert isinstance(outcome, JobCompleted)
    assert outcome.stdout == Output(b"y\n" * 500, 2000)
    assert outcome.stderr == Output(b"err\n" * 125, 0)
    big = await run(
        layers, job("head -c 3000000 /dev/zero", mounts=(DevicesMount(frozenset({Device.ZERO})),))
    )
    assert isinstance(big, JobCompleted)
    assert len(big.stdout.data) == LIMIT
    assert big.stdout.truncated == 3000000 - LIMIT
    empty = await run(layers, job("true"))
    assert isinstance(empty, JobCompleted)
    assert empty.stdout == Output(b"", 0)
    assert empty.duration > 0


async def test_daemon_holding_the_pipes_does_not_hang_the_job(
    privilege: str, layers: list[Path]
) -> None:
    marker = "1001"
    with trio.fail_after(20):
        outcome = await run(layers, job(f"(sleep {marker} &); echo done"))
    assert isinstance(outcome, JobCompleted)
    assert outcome.status == ExitCode(0)
    assert outcome.stdout.data == b"done\n"
    assert job_processes(marker) == []


async def test_timeout_returns_partial_output_and_kills_daemons(
    privilege: str, layers: list[Path]
) -> None:
    marker = "1002"
    with trio.fail_after(20):
        outcome = await run(
            layers, job(f"echo start; echo warn >&2; (sleep {marker} &); sleep {marker}", timeout=1)
        )
    assert isinstance(outcome, JobTimedOut), outcome
    assert outcome.stdout.data == b"start\n"
    assert outcome.stderr.data == b"warn\n"
    assert 1.0 <= outcome.duration < 10
    assert job_processes(marker) == []


async def test_timeout_ends_a_bounded_fork_bomb(privilege: str, layers: list[Path]) -> None:
    marker = "1003"
    # Every level forks two copies of itself, five levels deep: 63 shells, each left sleeping.
    script = f"f() {{ if [ $1 -gt 0 ]; then f $(($1-1)) & f $(($1-1)) & fi; sleep {marker}; }}; f 5"
    with trio.fail_after(30):
        outcome = await run(layers, job(script, timeout=2))
    assert isinstance(outcome, JobTimedOut), outcome
    assert job_processes(marker) == []


async def test_cancellation_kills_and_reaps(privilege: str, layers: list[Path]) -> None:
    marker = "1004"
    before = psutil.Process().children(recursive=True)
    with trio.move_on_after(1) as scope:
        await run(layers, job(f"(sleep {marker} &); sleep {marker}"))
    assert scope.cancelled_caught
    assert job_processes(marker) == []
    assert psutil.Process().children(recursive=True) == before


def _snapshot() -> tuple[list[str], list[str], list[psutil.Process], list[str]]:
    with open("/proc/self/mountinfo") as mountinfo:
        mounts = mountinfo.read().splitlines()
    return (
        mounts,
        sorted(os.listdir("/proc/self/fd")),
        psutil.Process().children(recursive=True),
        sorted(name for name in os.listdir(tempfile.gettempdir()) if "maelstrom" in name),
    )


@pytest.mark.slow
async def test_a_thousand_jobs_leave_nothing_behind(privilege: str, layers: list[Path]) -> None:
    spec = JobSpec(
        program="/bin/true",
        layers=(),
        mounts=(PROC, TmpMount("/tmp"), DevicesMount(frozenset({Device.NULL}))),
        enable_writable_file_system=True,
    )
    await run(layers, spec)  # warm up whatever trio opens lazily (its wakeup fds)
    mounts, fds, children, temps = _snapshot()
    for _ in range(1000):
        outcome = await run(layers, spec)
        assert isinstance(outcome, JobCompleted)
        assert outcome.status == ExitCode(0)
    after = _snapshot()
    assert after[0] == mounts
    assert after[1] == fds
    assert after[2] == children
    assert after[3] == temps
