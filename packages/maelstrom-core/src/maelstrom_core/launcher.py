"""Start one rootless container: the public face of the ``_launcher`` extension.

``spawn(LaunchSpec(...))`` validates the spec, hands it to the C launcher (which clones a child
into new user, mount, PID, IPC, UTS, cgroup and network namespaces and runs a prebuilt syscall
script there) and returns a ``Container`` holding the job's pid and pidfd. A step that fails
comes back as ``LaunchError`` naming the step, the errno and what to do, with ``job_fault`` set
when the job's spec is to blame (missing program, bad working directory, missing mount point,
bad bind source).

Call ``spawn`` from the thread that should own the job: the child gets ``PR_SET_PDEATHSIG``
(SIGKILL), which follows the spawning *thread*, so a short-lived worker thread would kill it.
"""

from __future__ import annotations

import errno as errno_
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import errors
from ._job import (
    BindMount,
    Device,
    DevicesMount,
    DevptsMount,
    JobMount,
    MqueueMount,
    Network,
    ProcMount,
    SysMount,
    TmpMount,
)

try:
    from . import _launcher
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    raise errors.ExtensionMissing(
        f"maelstrom_core._launcher is not built ({exc}); reinstall maelstrom-core, or build it in"
        " place with `cythonize -i -3 src/maelstrom_core/_launcher.pyx` in packages/maelstrom-core"
    ) from None

__all__ = ["Container", "LaunchSpec", "spawn"]


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything the launcher needs, with host paths already resolved.

    ``layer_dirs`` are extracted layer directories, top first. ``stdin``/``stdout``/``stderr``
    are host fds dup'd onto 0/1/2 in the job; with ``tty`` set they are ignored and the pty
    slave ``tty`` is the job's stdio and controlling terminal. Bind sources must be absolute.
    """

    program: str
    layer_dirs: Sequence[Path]
    stdin: int
    stdout: int
    stderr: int
    arguments: Sequence[str] = ()
    environment: Sequence[str] = ()
    working_directory: str = "/"
    user: int = 0
    group: int = 0
    network: Network = Network.DISABLED
    writable: bool = False
    mounts: Sequence[JobMount] = ()
    tty: int | None = None


class Container:
    """A running container: its init's pid and a pidfd. Close it once it has been reaped."""

    __slots__ = ("_reaped", "pid", "pidfd")

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self._reaped = False

    def kill(self) -> None:
        """SIGKILL the job's init; as PID 1 of its namespace, every process of the job dies."""
        if self.pidfd < 0 or self._reaped:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self) -> int:
        """Wait for the job's init to exit (blocking) and return its ``waitstatus``."""
        result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        self._reaped = True
        assert result is not None  # without WNOHANG waitid always reports a child
        if result.si_code == os.CLD_EXITED:
            return result.si_status << 8
        return result.si_status  # killed or dumped: the signal number

    def try_reap(self) -> int | None:
        """Like ``reap`` but returns ``None`` when the job has not exited yet."""
        result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
        if result is None or result.si_pid == 0:
            return None
        self._reaped = True
        if result.si_code == os.CLD_EXITED:
            return result.si_status << 8
        return result.si_status

    @property
    def reaped(self) -> bool:
        return self._reaped

    def close(self) -> None:
        """Kill and reap the job if still there, then close the pidfd. Idempotent."""
        if self.pidfd < 0:
            return
        if not self._reaped:
            self.kill()
            self.reap()
        os.close(self.pidfd)
        self.pidfd = -1

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NETWORK = {
    Network.DISABLED: _launcher.NETWORK_DISABLED,
    Network.LOOPBACK: _launcher.NETWORK_LOOPBACK,
    Network.LOCAL: _launcher.NETWORK_LOCAL,
}
_SIMPLE_MOUNTS: dict[type, tuple[int, str]] = {
    DevptsMount: (_launcher.MOUNT_DEVPTS, "devpts"),
    MqueueMount: (_launcher.MOUNT_MQUEUE, "mqueue"),
    ProcMount: (_launcher.MOUNT_PROC, "proc"),
    SysMount: (_launcher.MOUNT_SYS, "sys"),
    TmpMount: (_launcher.MOUNT_TMP, "tmp"),
}
# Device order is fixed so that a job's mounts always come out in the same order.
_DEVICES = sorted(Device, key=lambda device: device.value)

# (kind, mount point, host source, read-only, what it is in words)
_Flat = tuple[int, bytes, bytes, bool, str]


def _encode(value: str, what: str) -> bytes:
    data = os.fsencode(value)
    if b"\0" in data:
        raise errors.ExecutionError(f"{what} contains a NUL byte: {value!r}")
    return data


def _mount_point(value: str, what: str) -> bytes:
    # Mount points are container paths, always taken from the container root.
    path = "/" + value.lstrip("/")
    if path == "/" or all(part in ("", ".") for part in path.split("/")):
        raise errors.ExecutionError(f"{what} mount point must not be the root: {value!r}")
    return _encode(path, f"{what} mount point")


def _flatten(mounts: Sequence[JobMount], network: Network) -> list[_Flat]:
    flat: list[_Flat] = []
    for mount in mounts:
        if isinstance(mount, BindMount):
            if not os.path.isabs(mount.local_path):
                raise errors.ExecutionError(
                    f"bind mount source must be an absolute host path: {mount.local_path!r}"
                )
            flat.append(
                (
                    _launcher.MOUNT_BIND,
                    _mount_point(mount.mount_point, "bind"),
                    _encode(mount.local_path, "bind mount source"),
                    mount.read_only,
                    f"bind mount of {mount.local_path}",
                )
            )
        elif isinstance(mount, DevicesMount):
            for device in _DEVICES:
                if device in mount.devices:
                    path = f"/dev/{device.value}".encode()
                    flat.append(
                        (_launcher.MOUNT_DEVICE, path, path, False, f"device {device.value}")
                    )
        else:
            if isinstance(mount, SysMount) and network is Network.LOCAL:
                raise errors.ExecutionError(
                    f"a sys mount (at {mount.mount_point}) cannot be used with network 'local':"
                    " sysfs needs the job's own network namespace"
                )
            kind, name = _SIMPLE_MOUNTS[type(mount)]
            flat.append((kind, _mount_point(mount.mount_point, name), b"", False, name))
    return flat


def _job_path(environment: Sequence[bytes]) -> bytes | None:
    for entry in reversed(environment):
        if entry.startswith(b"PATH="):
            return entry[5:]
    return None


def spawn(spec: LaunchSpec) -> Container:
    """Start the container described by ``spec``; raise ``LaunchError`` if a step fails."""
    if not spec.layer_dirs:
        raise errors.ExecutionError("a job needs at least one layer")
    if not spec.program:
        raise errors.ExecutionError("the job's program is empty")
    for name, value in (("user", spec.user), ("group", spec.group)):
        if not 0 <= value < 0xFFFFFFFF:
            raise errors.ExecutionError(f"{name} {value} is not a valid id (0..4294967294)")
    program = _encode(spec.program, "program")
    argv = [program, *(_encode(arg, "argument") for arg in spec.arguments)]
    envp = [_encode(entry, "environment entry") for entry in spec.environment]
    for entry in envp:
        if b"=" not in entry:
            raise errors.ExecutionError(f"environment entry {entry!r} is not NAME=value")
    flat = _flatten(spec.mounts, spec.network)
    stdio = (spec.tty, spec.tty, spec.tty) if spec.tty is not None else None
    stdin, stdout, stderr = stdio or (spec.stdin, spec.stdout, spec.stderr)
    if min(stdin, stdout, stderr) < 3:
        raise errors.InternalError("launcher stdio fds must be 3 or more")
    try:
        pid, pidfd = _launcher.spawn(
            program,
            argv,
            envp,
            _encode(spec.working_directory or "/", "working directory"),
            spec.user,
            spec.group,
            _NETWORK[spec.network],
            [os.fsencode(directory) for directory in spec.layer_dirs],
            spec.writable,
            [entry[:4] for entry in flat],
            stdin,
            stdout,
            stderr,
            spec.tty is not None,
            _job_path(envp),
        )
    except _launcher.StepFailed as failure:
        raise _describe(failure, spec, flat) from None
    return Container(pid, pidfd)


_JOB_FAULT_STEPS = frozenset({"mount-attach", "working-directory", "exec"})

_SYSTEM_HINTS = {
    "clone": "are unprivileged user namespaces enabled? see `maelstrom doctor`",
    "uid-map": "the kernel refused the job's user mapping",
    "root-overlay": "is overlayfs available to unprivileged users on this kernel?",
}


def _describe(
    failure: _launcher.StepFailed, spec: LaunchSpec, flat: list[_Flat]
) -> errors.LaunchError:
    step, err, ref = failure.step, failure.errno, failure.ref
    reason = os.strerror(err)
    job_fault = step in _JOB_FAULT_STEPS
    hint = _SYSTEM_HINTS.get(step)
    if step == "exec":
        what = f"execute {spec.program}"
        if "/" not in spec.program:
            searched = _job_path([os.fsencode(e) for e in spec.environment])
            what += (
                f" (searched the job's PATH {os.fsdecode(searched)})"
                if searched is not None
                else " (the job has no PATH)"
            )
    elif step == "working-directory":
        what = f"change to working directory {spec.working_directory}"
    elif step == "mount-create":
        kind, mount_point, source, _, label = flat[ref]
        if kind == _launcher.MOUNT_BIND:
            job_fault = True
            what = f"open bind mount source {os.fsdecode(source)}"
            hint = "it must exist on the host"
        elif kind == _launcher.MOUNT_DEVICE:
            what = f"open host device {os.fsdecode(source)}"
        else:
            what = f"create {label} mount for {os.fsdecode(mount_point)}"
    elif step == "mount-attach":
        kind, mount_point, source, _, label = flat[ref]
        point = os.fsdecode(mount_point)
        what = f"mount {label} at {point}"
        if err in (errno_.ENOENT, errno_.ENOTDIR):
            hint = f"add a stub for {point}"
    elif step == "open-layer":
        what = f"open layer directory {spec.layer_dirs[ref]}"
    elif step == "stdio":
        what = f"set up stdio fd {ref}"
    else:
        what = step.replace("-", " ")
    message = f"{what}: {reason}" + (f" ({hint})" if hint else "")
    return errors.LaunchError(step, err, message, job_fault=job_fault)
