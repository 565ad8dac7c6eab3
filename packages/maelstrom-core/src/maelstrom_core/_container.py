"""Run one job in one container, to its outcome: the trio edge around ``launcher.spawn``.

The job's stdin is the read end of a pipe whose write end is already closed (EOF, with no
``/dev/null`` needed in the root); stdout and stderr are pipes drained concurrently, the first
``inline_limit`` bytes of each kept and the rest counted, never closed early (that would
SIGPIPE the job). The job is PID 1 of its own PID namespace, so one SIGKILL through its pidfd
ends every process it made and closes every copy of the pipes; that is what makes timeouts,
cancellation and daemon-forking jobs finish.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from . import errors
from ._job import (
    ExitCode,
    ExitStatus,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobOutcome,
    JobSpec,
    JobTimedOut,
    Output,
    Signaled,
)
from .launcher import Container, LaunchSpec, spawn

__all__ = ["run_container"]

_READ_SIZE = 65536
# Once the job's init has exited every other process of the job is dead, so its pipes reach
# EOF at once; this bound only matters if a pipe end escaped the job (say, passed over a bind-
# mounted socket), and keeps such a job from hanging its slot forever.
_DRAIN_AFTER_EXIT = 5.0


class _Capture:
    """Drains one pipe: keeps up to ``limit`` bytes and counts the rest."""

    __slots__ = ("chunks", "kept", "limit", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = 0
        self.truncated = 0
        self.chunks: list[bytes] = []

    async def drain(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            if not data:
                return
            room = self.limit - self.kept
            if room > 0:
                self.chunks.append(data[:room])
                self.kept += min(room, len(data))
            self.truncated += max(0, len(data) - max(room, 0))

    def output(self) -> Output:
        return Output(b"".join(self.chunks), self.truncated)


def _high_fd(fd: int) -> int:
    """Move ``fd`` to 3 or above (the launcher dup2s onto 0-2), keeping it close-on-exec."""
    if fd >= 3:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def _pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    return _high_fd(read_end), _high_fd(write_end)


def _status(waitstatus: int) -> ExitStatus:
    if os.WIFSIGNALED(waitstatus):
        return Signaled(os.WTERMSIG(waitstatus))
    return ExitCode(os.WEXITSTATUS(waitstatus))


def _launch_spec(
    spec: JobSpec, layer_dirs: Sequence[Path], stdio: tuple[int, int, int], tty_fd: int | None
) -> LaunchSpec:
    return LaunchSpec(
        program=spec.program,
        layer_dirs=layer_dirs,
        stdin=stdio[0],
        stdout=stdio[1],
        stderr=stdio[2],
        arguments=spec.arguments,
        environment=spec.environment,
        working_directory=spec.working_directory,
        user=spec.user,
        group=spec.group,
        network=spec.network,
        writable=spec.enable_writable_file_system,
        mounts=spec.mounts,
        tty=tty_fd,
    )


async def _wait_exit(container: Container) -> int:
    await trio.lowlevel.wait_readable(container.pidfd)
    return container.reap()


async def _kill_and_reap(container: Container) -> int:
    """SIGKILL the job and wait for it, even while being cancelled: a job is never left behind."""
    container.kill()
    with trio.CancelScope(shield=True):
        waitstatus = await _wait_exit(container)
    return waitstatus


async def run_container(
    spec: JobSpec,
    layer_dirs: Sequence[Path],
    *,
    inline_limit: int,
    tty_fd: int | None = None,
) -> JobOutcome:
    """Run ``spec`` in a container whose root is ``layer_dirs`` (top first) and report how it ended.

    With ``tty_fd`` (a pty slave) the job's stdio is that terminal and no output is captured.
    Must be called from the thread that owns the job (the trio thread): see ``launcher``.
    """
    fds: list[int] = []
    try:
        if tty_fd is None:
            stdin_read, stdin_write = _pipe()
            fds += (stdin_read, stdin_write)
            os.close(stdin_write)
            fds.remove(stdin_write)
            stdout_read, stdout_write = _pipe()
            fds += (stdout_read, stdout_write)
            stderr_read, stderr_write = _pipe()
            fds += (stderr_read, stderr_write)
            stdio = (stdin_read, stdout_write, stderr_write)
        else:
            stdio = (tty_fd, tty_fd, tty_fd)
        launch = _launch_spec(spec, layer_dirs, stdio, tty_fd)
        try:
            started = time.monotonic()
            container = spawn(launch)
        except errors.LaunchError as error:
            kind = JobErrorKind.EXECUTION if error.job_fault else JobErrorKind.SYSTEM
            return JobError(kind, str(error))
        except errors.ExecutionError as error:
            return JobError(JobErrorKind.EXECUTION, str(error))
        except errors.SystemError_ as error:
            return JobError(JobErrorKind.SYSTEM, str(error))
        # The job holds its own copies now; ours must go so that EOF can come.
        for fd in stdio if tty_fd is None else ():
            os.close(fd)
            fds.remove(fd)
        return await _supervise(container, spec, started, fds, inline_limit, tty_fd is None)
    finally:
        for fd in fds:
            os.close(fd)


async def _supervise(
    container: Container,
    spec: JobSpec,
    started: float,
    read_fds: list[int],
    inline_limit: int,
    capture: bool,
) -> JobOutcome:
    stdout, stderr = _Capture(inline_limit), _Capture(inline_limit)
    timeout = spec.timeout if spec.timeout else math.inf
    timed_out = False
    try:
        for fd in read_fds:
            os.set_blocking(fd, False)
        async with trio.open_nursery() as nursery:
            if capture:
                nursery.start_soon(stdout.drain, read_fds[0])
                nursery.start_soon(stderr.drain, read_fds[1])
            with trio.move_on_after(timeout) as deadline:
                waitstatus = await _wait_exit(container)
            if deadline.cancelled_caught:
                timed_out = True
                waitstatus = await _kill_and_reap(container)
            ended = time.monotonic()
            nursery.cancel_scope.deadline = trio.current_time() + _DRAIN_AFTER_EXIT
    finally:
        if not container.reaped:
            await _kill_and_reap(container)
        container.close()
    duration = ended - started
    if timed_out:
        return JobTimedOut(stdout.output(), stderr.output(), duration)
    return JobCompleted(_status(waitstatus), stdout.output(), stderr.output(), duration)
