"""The launcher itself: spawn, Container, LaunchError in words, validation, preflight."""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from maelstrom_core import errors, launcher, preflight
from maelstrom_core._job import BindMount, Network, ProcMount, SysMount, TmpMount
from maelstrom_core.launcher import LaunchSpec, spawn
from tests._helpers.rootfs import build_binaries_layer, build_stubs_layer


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # Odd characters in the paths: overlayfs splits its options on "," and ":".
    base = tmp_path_factory.mktemp("odd,name:root")
    return [build_stubs_layer(base / "stubs"), build_binaries_layer(base / "bin")]


@pytest.fixture
def stdio() -> Iterator[tuple[int, int]]:
    """(read end, write end) of a pipe, both at fd 3 or above."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def spec(
    layers: list[Path], out: int, program: str = "/bin/sh", *args: str, **kw: object
) -> LaunchSpec:
    return LaunchSpec(program, layers, out, out, out, arguments=args, **kw)  # type: ignore[arg-type]


def collect(container: launcher.Container, read_end: int, write_end: int) -> tuple[int, bytes]:
    os.close(write_end)
    chunks = []
    while data := os.read(read_end, 65536):
        chunks.append(data)
    with container:
        status = container.reap()
    return status, b"".join(chunks)


@pytest.mark.requires_userns
def test_spawn_runs_and_reports_exit(
    privilege: str, layers: list[Path], stdio: tuple[int, int]
) -> None:
    container = spawn(spec(layers, stdio[1], "/bin/sh", "-c", "echo $$ out; exit 7"))
    assert container.pid > 1
    assert container.pidfd >= 3
    status, out = collect(container, *stdio)
    assert os.waitstatus_to_exitcode(status) == 7
    assert out == b"1 out\n"
    assert container.pidfd == -1
    container.close()  # idempotent


@pytest.mark.requires_userns
def test_kill_ends_the_job(privilege: str, layers: list[Path], stdio: tuple[int, int]) -> None:
    container = spawn(spec(layers, stdio[1], "/bin/sleep", "1005"))
    container.kill()
    status, _ = collect(container, *stdio)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    container.kill()  # after reaping: nothing to do, no error


@pytest.mark.requires_userns
def test_close_kills_and_reaps_a_running_job(
    privilege: str, layers: list[Path], stdio: tuple[int, int]
) -> None:
    container = spawn(spec(layers, stdio[1], "/bin/sleep", "1006"))
    assert container.try_reap() is None
    pid = container.pid
    container.close()
    assert container.reaped
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.requires_userns
@pytest.mark.parametrize("writable", [False, True])
def test_single_layer_root(
    privilege: str, layers: list[Path], stdio: tuple[int, int], tmp_path: Path, writable: bool
) -> None:
    single = tmp_path / "single"
    shutil.copytree(layers[1], single, symlinks=True)
    build_stubs_layer(single)
    container = spawn(
        spec([single], stdio[1], "/bin/sh", "-c", "touch /f && echo w || echo r", writable=writable)
    )
    status, out = collect(container, *stdio)
    assert status == 0
    assert out.splitlines()[-1] == (b"w" if writable else b"r")
    assert not (single / "f").exists()


@pytest.mark.requires_userns
@pytest.mark.parametrize(
    ("kw", "step", "err", "job_fault", "words"),
    [
        ({"program": "/bin/absent"}, "exec", errno.ENOENT, True, "execute /bin/absent"),
        (
            {"program": "absent", "environment": ()},
            "exec",
            errno.ENOENT,
            True,
            "execute absent (the job has no PATH): No such file or directory",
        ),
        (
            {"working_directory": "/bin/sh"},
            "working-directory",
            errno.ENOTDIR,
            True,
            "change to working directory /bin/sh: Not a directory",
        ),
        (
            {"mounts": (TmpMount("/absent"),)},
            "mount-attach",
            errno.ENOENT,
            True,
            "mount tmp at /absent: No such file or directory (add a stub for /absent)",
        ),
        (
            {"mounts": (BindMount("/mnt", "/absent/source", read_only=True),)},
            "mount-create",
            errno.ENOENT,
            True,
            "open bind mount source /absent/source",
        ),
    ],
    ids=["exec", "exec-no-path", "cwd", "mount-point", "bind-source"],
)
def test_launch_errors_name_the_step(
    privilege: str,
    layers: list[Path],
    stdio: tuple[int, int],
    kw: dict[str, object],
    step: str,
    err: int,
    job_fault: bool,
    words: str,
) -> None:
    fields: dict[str, object] = {"program": "/bin/true", **kw}
    program = str(fields.pop("program"))
    with pytest.raises(errors.LaunchError) as info:
        spawn(spec(layers, stdio[1], program, **fields))
    assert info.value.step == step
    assert info.value.errno == err
    assert info.value.job_fault is job_fault
    assert words in str(info.value)


def test_a_missing_layer_is_a_system_error(stdio: tuple[int, int], tmp_path: Path) -> None:
    with pytest.raises(errors.LaunchError) as info:
        spawn(spec([tmp_path / "gone", tmp_path], stdio[1]))
    assert info.value.step == "open-layer"
    assert not info.value.job_fault
    assert str(info.value) == f"open layer directory {tmp_path / 'gone'}: No such file or directory"


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"arguments": ("a\0b",)}, "argument contains a NUL byte"),
        ({"environment": ("NOEQUALS",)}, "is not NAME=value"),
        ({"mounts": (ProcMount("/"),)}, "proc mount point must not be the root"),
        ({"mounts": (BindMount("/mnt", "relative/dir"),)}, "must be an absolute host path"),
        ({"network": Network.LOCAL, "mounts": (SysMount("/sys"),)}, "network 'local'"),
        ({"user": -1}, "user -1 is not a valid id"),
        ({"layer_dirs": ()}, "at least one layer"),
        ({"program": ""}, "program is empty"),
    ],
)
def test_bad_specs_are_rejected_before_launch(
    stdio: tuple[int, int], tmp_path: Path, kw: dict[str, object], words: str
) -> None:
    fields: dict[str, object] = {"program": "/bin/true", "layer_dirs": [tmp_path], **kw}
    with pytest.raises(errors.ExecutionError, match=words.replace("(", r"\(")):
        spawn(
            LaunchSpec(
                stdin=stdio[1],
                stdout=stdio[1],
                stderr=stdio[1],
                **fields,  # type: ignore[arg-type]
            )
        )


def test_low_stdio_fds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InternalError):
        spawn(LaunchSpec("/bin/true", [tmp_path], 0, 1, 2))


@pytest.mark.requires_userns
def test_check_host_passes_once_and_caches(privilege: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "_checked", False)
    assert preflight.host_problem() is None
    preflight.check_host()
    assert preflight._checked is None
    preflight.check_host()


def test_check_host_repeats_a_cached_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = errors.HostUnsupported("set the sysctl user.max_user_namespaces")
    monkeypatch.setattr(preflight, "_checked", verdict)
    with pytest.raises(errors.HostUnsupported, match="max_user_namespaces"):
        preflight.check_host()


def test_missing_extension_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import maelstrom_core

    monkeypatch.setitem(sys.modules, "maelstrom_core._launcher", None)
    monkeypatch.delattr(maelstrom_core, "_launcher")
    try:
        with pytest.raises(errors.ExtensionMissing, match="cythonize -i -3"):
            importlib.reload(launcher)
    finally:
        monkeypatch.undo()
        importlib.reload(launcher)
