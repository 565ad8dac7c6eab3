"""A small scripted broker built from ``maelstrom_core.net``, for testing workers and clients.

It stands in for ``maelstrom-broker`` where a test needs to see or steer the broker's side of
the protocol (send ``ShutDown`` or ``WorkerCancelJob`` at a chosen moment, serve corrupt
artifact bytes, count messages). It does what the broker does for these tests: asks clients
for missing artifacts (manifest blobs included), verifies pushes, hands jobs to the least
loaded worker, relays status and outcomes, requeues a lost worker's jobs and cancels a lost
client's. It does not prioritise or cap per-worker load: the real broker is tested for that.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from maelstrom_core.errors import ConnectionClosed, MaelstromError, PeerBroken, ProtocolError
from maelstrom_core.job import ArtifactType, JobSpec
from maelstrom_core.manifest import decode_manifest, file_digests
from maelstrom_core.net import MessageStream, accept_hello
from maelstrom_core.proto import (
    ArtifactTransferred,
    CancelJob,
    EnqueueJob,
    FetchRequest,
    FetchResponse,
    JobId,
    JobRequest,
    JobResponse,
    JobStatusUpdate,
    Message,
    PushRequest,
    PushResponse,
    Role,
    TransferArtifact,
    WorkerCancelJob,
    WorkerJobResponse,
    WorkerJobStatusUpdate,
)

_NET_ERRORS = (PeerBroken, ProtocolError, ConnectionClosed)


@dataclass
class _Peer:
    peer_id: int
    stream: MessageStream
    outbox: trio.MemorySendChannel[Message]
    slots: int = 0
    jobs: set[JobId] = field(default_factory=set)  # workers: jobs handed to it


@dataclass
class _Job:
    job_id: JobId
    spec: JobSpec
    missing: set[bytes]
    worker: int | None = None


class ScriptedBroker:
    def __init__(self) -> None:
        self.port = 0
        self.artifacts: dict[bytes, bytes] = {}
        self.corrupt: dict[bytes, bytes] = {}  # digest -> bytes served instead (tests)
        self.clients: dict[int, _Peer] = {}
        self.workers: dict[int, _Peer] = {}
        self.jobs: dict[JobId, _Job] = {}
        self.queue: deque[JobId] = deque()
        self.received: list[tuple[int, Message]] = []
        self.enqueued = 0
        self.on_message: Callable[[int, Message], None] | None = None
        self._asked: set[tuple[int, bytes]] = set()
        self._next_id = 0
        self.changed = trio.Event()

    # --- steering from tests ---

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await self.changed.wait()

    def send_to_worker(self, worker: int, message: Message) -> None:
        self.workers[worker].outbox.send_nowait(message)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # --- serving ---

    async def serve(self, port: int = 0, *, task_status: trio.TaskStatus[int]) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            try:
                task_status.started(self.port)
                await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)
            finally:
                for listener in listeners:
                    await trio.aclose_forcefully(listener)

    async def _handle(self, raw: trio.SocketStream) -> None:
        peer_id = self._next_id
        self._next_id += 1
        try:
            stream, hello = await accept_hello(raw, list(Role), peer_id=peer_id)
        except MaelstromError:
            return
        try:
            if hello.role is Role.ARTIFACT_PUSH:
                await self._serve_pusher(stream)
            elif hello.role is Role.ARTIFACT_FETCH:
                await self._serve_fetcher(stream)
            else:
                await self._serve_control(stream, hello.role, peer_id, hello.slots or 0)
        except _NET_ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_control(
        self, stream: MessageStream, role: Role, peer_id: int, slots: int
    ) -> None:
        send, receive = trio.open_memory_channel[Message](math.inf)
        peer = _Peer(peer_id, stream, send, slots)
        table = self.clients if role is Role.CLIENT else self.workers
        table[peer_id] = peer
        self._dispatch()
        self._changed()
        try:
            async with trio.open_nursery() as nursery:

                async def sender() -> None:
                    async for message in receive:
                        await stream.send(message)

                nursery.start_soon(sender)
                async for message in stream:
                    self.received.append((peer_id, message))
                    if self.on_message is not None:
                        self.on_message(peer_id, message)
                    if role is Role.CLIENT:
                        self._from_client(peer, message)
                    else:
                        self._from_worker(peer, message)
                    self._changed()
                nursery.cancel_scope.cancel()
        finally:
            del table[peer_id]
            if role is Role.CLIENT:
                self._client_lost(peer_id)
            else:
                self._worker_lost(peer)
            self._changed()

    def _from_client(self, peer: _Peer, message: Message) -> None:
        if isinstance(message, JobRequest):
            job_id = JobId(peer.peer_id, message.client_job_id)
            digests = {layer.digest for layer in message.spec.layers}
            job = self.jobs[job_id] = _Job(job_id, message.spec, set())
            for layer in message.spec.layers:
                if layer.type is ArtifactType.MANIFEST and layer.digest in self.artifacts:
                    digests |= self._blobs(layer.digest)
            self._need(peer, job, digests)
        elif isinstance(message, ArtifactTransferred):
            self._artifact_arrived(message.digest)
        elif isinstance(message, CancelJob):
            self._cancel(JobId(peer.peer_id, message.client_job_id))

    def _blobs(self, manifest: bytes) -> set[bytes]:
        return set(file_digests(decode_manifest(self.artifacts[manifest])))

    def _need(self, client: _Peer, job: _Job, digests: set[bytes]) -> None:
        missing = {d for d in digests if d not in self.artifacts}
        job.missing |= missing
        for digest in missing:
            if (client.peer_id, digest) not in self._asked:
                self._asked.add((client.peer_id, digest))
                client.outbox.send_nowait(TransferArtifact(digest))
        if not job.missing:
            self.queue.append(job.job_id)
            self._dispatch()

    def _artifact_arrived(self, digest: bytes) -> None:
        for job in list(self.jobs.values()):
            if digest not in job.missing:
                continue
            job.missing.discard(digest)
            client = self.clients.get(job.job_id.client_id)
            if client is None:
                continue
            extra: set[bytes] = set()
            layer_types = {layer.digest: layer.type for layer in job.spec.layers}
            if layer_types.get(digest) is ArtifactType.MANIFEST:
                extra = self._blobs(digest)
            self._need(client, job, extra)

    def _dispatch(self) -> None:
        while self.queue and self.workers:
            job_id = self.queue.popleft()
            job = self.jobs.get(job_id)
            if job is None:
                continue
            worker = min(self.workers.values(), key=lambda w: len(w.jobs) / w.slots)
            job.worker = worker.peer_id
            worker.jobs.add(job_id)
            self.enqueued += 1
            worker.outbox.send_nowait(EnqueueJob(job_id, job.spec))

    def _from_worker(self, peer: _Peer, message: Message) -> None:
        if isinstance(message, WorkerJobStatusUpdate):
            client = self.clients.get(message.job_id.client_id)
            if client is not None and message.job_id in self.jobs:
                client.outbox.send_nowait(
                    JobStatusUpdate(message.job_id.client_job_id, message.state, peer.peer_id)
                )
        elif isinstance(message, WorkerJobResponse):
            peer.jobs.discard(message.job_id)
            if self.jobs.pop(message.job_id, None) is None:
                return
            client = self.clients.get(message.job_id.client_id)
            if client is not None:
                client.outbox.send_nowait(
                    JobResponse(message.job_id.client_job_id, message.outcome)
                )
            self._dispatch()

    def _cancel(self, job_id: JobId) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.worker is not None and job.worker in self.workers:
            worker = self.workers[job.worker]
            worker.jobs.discard(job_id)
            worker.outbox.send_nowait(WorkerCancelJob(job_id))

    def _client_lost(self, client_id: int) -> None:
        for job_id in [j for j in self.jobs if j.client_id == client_id]:
            self._cancel(job_id)

    def _worker_lost(self, worker: _Peer) -> None:
        for job_id in sorted(worker.jobs):
            if job_id in self.jobs:
                self.jobs[job_id].worker = None
                self.queue.appendleft(job_id)
        self._dispatch()

    # --- artifact side channels ---

    async def _serve_pusher(self, stream: MessageStream) -> None:
        async for message in stream:
            assert isinstance(message, PushRequest)
            body = io.BytesIO()
            await stream.receive_bytes_into_file(message.size, body)
            data = body.getvalue()
            if hashlib.sha256(data).digest() != message.digest:
                await stream.send(PushResponse("digest mismatch"))
                return
            self.artifacts[message.digest] = data
            await stream.send(PushResponse(None))

    async def _serve_fetcher(self, stream: MessageStream) -> None:
        async for message in stream:
            assert isinstance(message, FetchRequest)
            data = self.corrupt.get(message.digest, self.artifacts.get(message.digest))
            if data is None:
                await stream.send(FetchResponse(error=f"no artifact {message.digest.hex()}"))
                return
            await stream.send(FetchResponse(size=len(data)))
            await stream.send_bytes_from_file(io.BytesIO(data), len(data))


def store(broker: ScriptedBroker, data: bytes) -> bytes:
    """Put an artifact in the broker's store (as if pushed); returns its digest."""
    digest = hashlib.sha256(data).digest()
    broker.artifacts[digest] = data
    return digest
