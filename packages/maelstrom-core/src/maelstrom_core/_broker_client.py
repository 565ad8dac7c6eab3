"""The cluster ``JobRunner``: jobs go to a broker, artifacts are pushed when it asks for them.

One control connection carries every job (``JobRequest``, ``CancelJob``) and every answer
(status updates, outcomes, ``TransferArtifact``). Pushes use their own connections (at most
``MAX_UPLOADS`` at once, each reused afterwards) so a big upload never delays control messages.

Every submitted job ends in exactly one outcome. If the connection is lost (or the broker sends
``GeneralError``), every outstanding job, and every job submitted afterwards, ends with a
system error "lost connection to broker ...". Jobs are not resubmitted: one may already have
run, and resubmitting could run it twice. If an artifact cannot be uploaded, the jobs that need
it (directly, or through a manifest that lists it) end with a system error and are withdrawn
from the broker. Cancelling ``run`` withdraws the job (``CancelJob``); closing the runner closes
the connection, which makes the broker cancel everything this client had.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import trio

from ._job import ArtifactType, JobError, JobErrorKind, JobOutcome, JobSpec, JobState
from ._manifest import decode_manifest, file_digests
from .errors import (
    ArtifactError,
    ConnectionClosed,
    InternalError,
    MaelstromError,
    PeerBroken,
    ProtocolError,
    exception_leaves,
)
from .net import MessageStream, open_message_stream
from .proto import (
    ArtifactTransferred,
    CancelJob,
    GeneralError,
    Hello,
    JobRequest,
    JobResponse,
    JobStatusUpdate,
    PushRequest,
    PushResponse,
    Role,
    TransferArtifact,
)

__all__ = [
    "MAX_UPLOADS",
    "BrokerRunner",
    "Upload",
    "UploadProgress",
    "UploadStatistics",
    "open_broker_runner",
]

log = logging.getLogger(__name__)

MAX_UPLOADS: Final = 10  # concurrent pushes, as the original's MAX_CLIENT_UPLOADS
_U32_MAX: Final = 0xFFFF_FFFF
_PUSH_ATTEMPTS: Final = 2  # a pooled connection the broker dropped gets one fresh retry

StateCallback = Callable[[JobState], None]
_ControlMessage = JobRequest | CancelJob | ArtifactTransferred


# --- upload progress ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload in flight."""

    digest: bytes
    path: Path
    size: int
    sent: int


@dataclass(frozen=True, slots=True)
class UploadStatistics:
    active: tuple[Upload, ...] = ()
    completed: int = 0
    failed: int = 0
    bytes_completed: int = 0


@dataclass(slots=True)
class _Active:
    path: Path
    size: int
    sent: int = 0


class UploadProgress:
    """What the client is uploading, for progress displays.

    ``statistics()`` is a snapshot (poll it to draw byte counts); callbacks given to
    ``subscribe`` are called with a fresh snapshot whenever an upload starts or ends.
    """

    def __init__(self) -> None:
        self._active: dict[bytes, _Active] = {}
        self._completed = 0
        self._failed = 0
        self._bytes_completed = 0
        self._subscribers: list[Callable[[UploadStatistics], None]] = []

    def statistics(self) -> UploadStatistics:
        return UploadStatistics(
            tuple(
                Upload(digest, active.path, active.size, active.sent)
                for digest, active in self._active.items()
            ),
            self._completed,
            self._failed,
            self._bytes_completed,
        )

    def subscribe(self, callback: Callable[[UploadStatistics], None]) -> Callable[[], None]:
        """Call ``callback`` on every start and end of an upload; returns the unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _start(self, digest: bytes, path: Path, size: int) -> _Active:
        active = self._active[digest] = _Active(path, size)
        self._notify()
        return active

    def _end(self, digest: bytes, ok: bool) -> None:
        active = self._active.pop(digest, None)
        if ok:
            self._completed += 1
            self._bytes_completed += active.size if active else 0
        else:
            self._failed += 1
        self._notify()

    def _notify(self) -> None:
        if self._subscribers:
            snapshot = self.statistics()
            for callback in list(self._subscribers):
                callback(snapshot)


class _CountingReader:
    """A file whose reads (done in a worker thread by the network layer) count as sent."""

    def __init__(self, file: BinaryIO, active: _Active) -> None:
        self._file = file
        self._active = active
        self.name = getattr(file, "name", "artifact")

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._active.sent += len(data)
        return data


# --- the runner -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    spec: JobSpec
    artifacts: Mapping[bytes, Path]
    on_state: StateCallback
    done: trio.Event = field(default_factory=trio.Event)
    outcome: JobOutcome | None = None


class BrokerRunner:
    """Runs jobs on a cluster. Open with ``open_broker_runner``; ``run`` from any task."""

    def __init__(self, stream: MessageStream, host: str, port: int) -> None:
        self._stream = stream
        self._host = host
        self._port = port
        self._address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self._broken: str | None = None
        self._outbox_send, self._outbox_receive = trio.open_memory_channel[_ControlMessage](
            math.inf
        )
        self._push_limiter = trio.CapacityLimiter(MAX_UPLOADS)
        self._push_pool: list[MessageStream] = []
        self._manifest_blobs: dict[bytes, frozenset[bytes]] = {}
        self.uploads = UploadProgress()

    @property
    def broker(self) -> str:
        return self._address

    async def run(
        self,
        spec: JobSpec,
        artifacts: Mapping[bytes, Path],
        on_state: StateCallback,
        tty_fd: int | None = None,
    ) -> JobOutcome:
        """Submit ``spec`` to the broker and wait for its outcome.

        ``artifacts`` maps the digest of every artifact the job may need to a file holding it.

        Cancellation: the job is withdrawn from the broker (``CancelJob``); no outcome.
        """
        if tty_fd is not None or spec.must_run_locally:
            raise InternalError("a local-only job was sent to the broker runner")
        if self._broken is not None:
            return JobError(JobErrorKind.SYSTEM, self._broken)
        if self._next_id > _U32_MAX:
            raise InternalError("this client ran out of job ids")
        client_job_id = self._next_id
        self._next_id += 1
        job = self._jobs[client_job_id] = _Job(spec, artifacts, on_state)
        self._outbox_send.send_nowait(JobRequest(client_job_id, spec))
        try:
            await job.done.wait()
        finally:
            if job.outcome is None:
                del self._jobs[client_job_id]
                self._send_nowait(CancelJob(client_job_id))
        if job.outcome is None:
            raise InternalError(f"job {client_job_id} finished without an outcome")
        return job.outcome

    # --- the connection's tasks ---

    async def _serve(self) -> None:
        """Send the outbox and dispatch what arrives, until the connection ends."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_loop)
                await self._receive_loop(nursery)
                nursery.cancel_scope.cancel()
        except* (PeerBroken, ProtocolError, ConnectionClosed) as group:
            reason = exception_leaves(group)[0]
            self._fail_all(f"lost connection to broker at {self._address}: {reason}")

    async def _send_loop(self) -> None:
        async for message in self._outbox_receive:
            await self._stream.send(message)

    async def _receive_loop(self, pushes: trio.Nursery) -> None:
        async for message in self._stream:
            if isinstance(message, JobStatusUpdate):
                job = self._jobs.get(message.client_job_id)
                if job is not None:
                    job.on_state(message.state)
            elif isinstance(message, JobResponse):
                self._finish(message.client_job_id, message.outcome)
            elif isinstance(message, TransferArtifact):
                pushes.start_soon(self._push, message.digest)
            elif isinstance(message, GeneralError):
                self._fail_all(f"broker at {self._address} failed: {message.message}")
                return
        self._fail_all(f"lost connection to broker at {self._address}: it closed the connection")

    def _finish(self, client_job_id: int, outcome: JobOutcome) -> None:
        job = self._jobs.pop(client_job_id, None)
        if job is None:
            return  # withdrawn by us while the outcome was on its way
        job.outcome = outcome
        job.on_state(JobState.COMPLETE)
        job.done.set()

    def _fail_all(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
            if self._jobs:
                log.warning("%s; %d jobs fail", reason, len(self._jobs))
        for client_job_id in list(self._jobs):
            self._finish(client_job_id, JobError(JobErrorKind.SYSTEM, reason))

    def _send_nowait(self, message: _ControlMessage) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._outbox_send.send_nowait(message)

    # --- pushing artifacts ---

    def _path_of(self, digest: bytes) -> Path | None:
        for job in self._jobs.values():
            path = job.artifacts.get(digest)
            if path is not None:
                return path
        return None

    async def _push(self, digest: bytes) -> None:
        path = self._path_of(digest)
        if path is None:
            # Every job that needed it is gone (withdrawn or failed); nobody waits for it.
            log.debug("broker asked for artifact %s, which no outstanding job uses", digest.hex())
            return
        error: MaelstromError | None = None
        for _ in range(_PUSH_ATTEMPTS):
            try:
                await self._push_once(digest, path)
            except (PeerBroken, ConnectionClosed) as e:
                error = e  # maybe a pooled connection the broker closed meanwhile: retry
                continue
            except (ArtifactError, ProtocolError) as e:
                error = e
                break
            self._send_nowait(ArtifactTransferred(digest))
            return
        await self._upload_failed(digest, path, str(error))

    async def _push_once(self, digest: bytes, path: Path) -> None:
        async with self._push_limiter:
            try:
                file = await trio.to_thread.run_sync(_open_for_push, path, digest)
            except OSError as e:
                raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from e
            stream: MessageStream | None = None
            ok = False
            active = self.uploads._start(digest, path, 0)
            try:
                active.size = size = os.fstat(file.fileno()).st_size
                stream = self._push_pool.pop() if self._push_pool else None
                if stream is None:
                    stream = await open_message_stream(
                        self._host, self._port, Hello(Role.ARTIFACT_PUSH)
                    )
                await stream.send(PushRequest(digest, size))
                await stream.send_bytes_from_file(_CountingReader(file, active), size)  # type: ignore[arg-type]
                reply = await stream.receive()
                if not isinstance(reply, PushResponse):  # the direction allows nothing else
                    raise ProtocolError(f"{stream.peer} answered a push with {type(reply)}")
                if reply.error is not None:
                    raise ArtifactError(f"broker refused {path}: {reply.error}")
                ok = True
            except OSError as e:
                raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from e
            finally:
                self.uploads._end(digest, ok)
                await trio.to_thread.run_sync(file.close)
                if stream is not None:
                    if ok:
                        self._push_pool.append(stream)
                    else:
                        await trio.aclose_forcefully(stream)

    async def _upload_failed(self, digest: bytes, path: Path, reason: str) -> None:
        message = f"cannot upload artifact {digest.hex()} ({path}) to broker at {self._address}"
        log.warning("%s: %s", message, reason)
        outcome = JobError(JobErrorKind.SYSTEM, f"{message}: {reason}")
        for client_job_id in await self._jobs_needing(digest):
            if client_job_id in self._jobs:
                self._send_nowait(CancelJob(client_job_id))
                self._finish(client_job_id, outcome)

    async def _jobs_needing(self, digest: bytes) -> list[int]:
        needing = []
        for client_job_id, job in list(self._jobs.items()):
            for layer in job.spec.layers:
                if layer.digest == digest:
                    needing.append(client_job_id)
                    break
                if layer.type is ArtifactType.MANIFEST:
                    blobs = await self._blobs_of(layer.digest, job.artifacts)
                    if digest in blobs:
                        needing.append(client_job_id)
                        break
        return needing

    async def _blobs_of(self, manifest: bytes, artifacts: Mapping[bytes, Path]) -> frozenset[bytes]:
        blobs = self._manifest_blobs.get(manifest)
        if blobs is None:
            path = artifacts.get(manifest)
            blobs = frozenset()
            if path is not None:
                try:
                    blobs = await trio.to_thread.run_sync(_read_manifest_blobs, path)
                except (OSError, ArtifactError):
                    pass  # an unreadable manifest fails its own upload
            self._manifest_blobs[manifest] = blobs
        return blobs

    async def _close(self) -> None:
        self._fail_all(f"the client closed its connection to broker at {self._address}")
        pool, self._push_pool = self._push_pool, []
        for stream in pool:
            await trio.aclose_forcefully(stream)
        await trio.aclose_forcefully(self._stream)


def _open_for_push(path: Path, digest: bytes) -> BinaryIO:
    del digest
    return open(path, "rb")


def _read_manifest_blobs(path: Path) -> frozenset[bytes]:
    return frozenset(file_digests(decode_manifest(path.read_bytes())))


@contextlib.asynccontextmanager
async def open_broker_runner(host: str, port: int) -> AsyncIterator[BrokerRunner]:
    """Connect to the broker at ``host:port`` as a client.

    Raises:
        PeerBroken: the broker cannot be reached.
        VersionMismatch, ProtocolError: it is not a broker of our protocol version.

    Leaving the block closes the connection (the broker then cancels this client's jobs);
    jobs still waiting for an outcome end with a system error.
    """
    stream = await open_message_stream(host, port, Hello(Role.CLIENT))
    runner = BrokerRunner(stream, host, port)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner._serve)
            try:
                yield runner
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await runner._close()
