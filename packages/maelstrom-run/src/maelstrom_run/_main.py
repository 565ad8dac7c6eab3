"""maelstrom-run: run a stream of JSON job specs, or one job (``--one``), or a shell (``--tty``)."""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import io
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO, cast

import trio

from maelstrom_core.client import Client, ClientSettings, open_client
from maelstrom_core.config import RunConfig, RunOptions
from maelstrom_core.errors import MaelstromError, UsageError
from maelstrom_core.job import (
    ExitCode,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobOutcome,
    JobState,
    JobTimedOut,
    Output,
    Signaled,
)
from maelstrom_core.specs import ContainersItem, JobItem, JobStreamParser

from ._progress import JobStates, StatusLine

_CHUNK = 64 * 1024


@dataclasses.dataclass
class _ExitCodes:
    """The run's exit code: that of the first job to finish badly, in completion order."""

    first_failure: int | None = None

    def add(self, code: int) -> None:
        if code != 0 and self.first_failure is None:
            self.first_failure = code

    @property
    def code(self) -> int:
        return self.first_failure or 0


def main(config: RunConfig, options: RunOptions) -> int:
    config.require_tcp()
    if options.tty:
        from ._tty import run_tty

        return run_tty(config, options)
    if options.one:
        outcome: JobOutcome = trio.run(_run_one, config, options)
        return exit_like(outcome)
    code: int = trio.run(_run_stream, config, options)
    return code


def client_settings(config: RunConfig) -> ClientSettings:
    return ClientSettings(
        project_dir=Path.cwd(),
        cache_dir=config.cache_root,
        slots=config.slots,
        cache_size=config.cache_size,
        inline_limit=config.inline_limit,
    )


async def _run_stream(config: RunConfig, options: RunOptions) -> int:
    exit_codes = _ExitCodes()
    source = str(options.file) if options.file is not None else "<stdin>"
    states = JobStates()
    async with (
        open_client(client_settings(config), broker=config.broker) as client,
        trio.open_nursery() as nursery,
    ):
        status = StatusLine(sys.stderr, states, client.uploads) if sys.stderr.isatty() else None
        out = Reporter(status)
        if status is not None:
            nursery.start_soon(status.run)
        async with trio.open_nursery() as jobs:
            try:
                async for item in _stream_items(options.file, source):
                    if isinstance(item, ContainersItem):
                        client.add_containers(item.containers)
                        continue
                    states.set(item.index, JobState.WAITING_FOR_ARTIFACTS)
                    jobs.start_soon(_run_and_report, client, item, source, exit_codes, out, states)
            except MaelstromError as err:
                # Jobs already submitted still run and report; the bad input fails the run.
                out.error(f"maelstrom-run: error: {err}")
                exit_codes.add(1)
        nursery.cancel_scope.cancel()  # all jobs are done: stop the progress line
    return exit_codes.code


async def _run_and_report(
    client: Client,
    item: JobItem,
    source: str,
    exit_codes: _ExitCodes,
    out: Reporter,
    states: JobStates,
) -> None:
    label = f"job {item.index}"

    def on_state(state: JobState) -> None:
        states.set(item.index, state)

    try:
        outcome = await client.run_job(item.spec, label=f"{source}: {label}", on_state=on_state)
    except MaelstromError as err:
        out.error(f"maelstrom-run: error: {err}")
        code = 1
    else:
        code = out.outcome(label, outcome)
    states.set(item.index, JobState.COMPLETE)
    if code:
        states.fail()
    exit_codes.add(code)


class Reporter:
    """Writes job output and diagnostics, each job's at once, above the progress line if any."""

    def __init__(self, status: StatusLine | None = None) -> None:
        self._status = status

    def outcome(self, label: str, outcome: JobOutcome) -> int:
        """Print a job's output and diagnostics; return its exit code for the run."""
        with self._cleared():
            return _report_outcome(label, outcome)

    def error(self, line: str) -> None:
        with self._cleared():
            _print_err(line)

    def _cleared(self) -> AbstractContextManager[None]:
        return self._status.cleared() if self._status is not None else nullcontext()


def _report_outcome(label: str, outcome: JobOutcome) -> int:
    if isinstance(outcome, JobError):
        kind = "execution" if outcome.kind is JobErrorKind.EXECUTION else "system"
        _print_err(f"{label}: {kind} error: {outcome.message}")
        return 1
    _write_output(label, outcome.stdout, outcome.stderr)
    if isinstance(outcome, JobTimedOut):
        _print_err(f"{label}: timed out")
        return 1
    status = outcome.status
    if isinstance(status, Signaled):
        _print_err(f"{label}: killed by signal {status.signal}")
        return 1
    if status.code != 0:
        _print_err(f"{label}: exited with code {status.code}")
        # Exit codes are a byte; 256 would read as success.
        return status.code & 0xFF or 1
    return 0


def _write_output(label: str, stdout: Output, stderr: Output) -> None:
    _write_all(sys.stdout.buffer, stdout.data)
    if stdout.truncated:
        _print_err(f"{label}: stdout truncated, {stdout.truncated} bytes lost")
    _write_all(sys.stderr.buffer, stderr.data)
    if stderr.truncated:
        _print_err(f"{label}: stderr truncated, {stderr.truncated} bytes lost")


def _write_all(stream: BinaryIO, data: bytes) -> None:
    if data:
        stream.write(data)
        stream.flush()


def _print_err(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def _stream_items(file: Path | None, source: str) -> AsyncIterator[JobItem | ContainersItem]:
    parser = JobStreamParser(source_name=source)
    decoder = codecs.getincrementaldecoder("utf-8")()
    async for chunk in _read_chunks(file, source):
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as err:
            raise UsageError(f"{source}: input is not UTF-8: {err.reason}") from None
        for item in parser.feed(text):
            yield item
    for item in parser.close():
        yield item


async def _read_chunks(file: Path | None, source: str) -> AsyncIterator[bytes]:
    if file is None:
        stream = cast(io.BufferedReader, sys.stdin.buffer)
        read: Callable[[int], bytes] = stream.read1
    else:
        try:
            stream = open(file, "rb")  # noqa: SIM115 - closed below, after the last chunk
        except OSError as err:
            raise UsageError(f"cannot read job specs from {file}: {err.strerror}") from None
        read = stream.read
    try:
        while True:
            # A pipe may deliver jobs slowly; each read returns what is there, so jobs start
            # before the writer is done.
            chunk = await trio.to_thread.run_sync(read, _CHUNK, abandon_on_cancel=True)
            if not chunk:
                return
            yield chunk
    except OSError as err:
        raise UsageError(f"cannot read job specs from {source}: {err.strerror}") from None
    finally:
        if file is not None:
            stream.close()


async def first_job(options: RunOptions) -> tuple[JobItem, list[ContainersItem]]:
    """The first job of the input (containers before it still count), with the command line's
    PROGRAM and ARGS in place of its own."""
    source = str(options.file) if options.file is not None else "<stdin>"
    containers: list[ContainersItem] = []
    async for item in _stream_items(options.file, source):
        if isinstance(item, ContainersItem):
            containers.append(item)
            continue
        if options.command:
            program, *arguments = options.command
            spec = dataclasses.replace(item.spec, program=program, arguments=tuple(arguments))
            item = dataclasses.replace(item, spec=spec)
        return item, containers
    raise UsageError(f"{source}: no job spec in the input")


async def _run_one(config: RunConfig, options: RunOptions) -> JobOutcome:
    item, containers = await first_job(options)
    async with open_client(client_settings(config), broker=config.broker) as client:
        for containers_item in containers:
            client.add_containers(containers_item.containers)
        return await client.run_job(item.spec, label=f"job {item.index}")


def exit_like(outcome: JobOutcome) -> int:
    """``--one`` mirrors the job: its exit code, or death by the same signal."""
    if isinstance(outcome, JobCompleted) and isinstance(outcome.status, Signaled):
        _write_output("job 1", outcome.stdout, outcome.stderr)
        die_by_signal(outcome.status.signal)
    code = _report_outcome("job 1", outcome)
    if isinstance(outcome, JobCompleted) and isinstance(outcome.status, ExitCode):
        return outcome.status.code & 0xFF
    return code


def die_by_signal(signum: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP keep their disposition
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    # A signal that does not kill (SIGCHLD, a blocked one) still ends the run as a failure.
    sys.exit(128 + signum)
