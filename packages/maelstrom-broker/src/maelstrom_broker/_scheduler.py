"""The broker's state machine: jobs, artifact gathering, the queue, workers. Sans-IO, no trio.

Every method is synchronous, does no I/O and returns the effects the trio layer must carry out
(``Send``, ``Disconnect``, ``ReadManifest``, ``Evict``), in order. Connection ids (clients and
workers) come from one counter in the server, so an id names one connection.

Artifact gathering (internals §2.7). A new job takes a reference on every layer the store
holds; for every missing one the job waits and the job's client is asked (``TransferArtifact``)
unless it was asked already. Each client is asked for itself, so one client leaving never
strands another's jobs. A manifest layer, once held, is read (by the trio layer, ``ReadManifest``)
and every blob it names is gathered the same way. References are held until the job's response
or its client leaves, which is what lets workers fetch the blobs later (fetches are served only
for referenced artifacts).

Scheduling (DESIGN §4). One queue: higher priority first; within a priority, jobs with no
estimate first, then the longest estimate first (LPT); equal keys in arrival order. A worker
holds at most ``2 * slots`` jobs; a ready job goes to the worker with the lowest
outstanding/slots (ties: the lower id). When a worker answers, the best queued job goes straight
to that worker (the completion fast path).

Status updates to a client: ``WAITING_FOR_ARTIFACTS`` when a job must wait for artifacts,
``PENDING`` when it is ready but no worker has room, ``RUNNING`` with the worker's id when it is
sent to a worker. States only move forward: for its client a job at a worker is ``RUNNING``,
so a worker's own progress reports (``WorkerJobStatusUpdate``: fetching layers, waiting for a
slot, executing) are not relayed; a client would read the first two as going backwards.

Failures: a worker lost puts its jobs back in the queue (a response from it afterwards cannot
match: the job is no longer at that worker); a client lost drops its waiting and queued jobs and
cancels its running ones (``WorkerCancelJob``) at once. A local-only job (bind mounts, host
network, TTY) is answered at once with a system-error ``JobResponse``: it is the client's to run
on its local worker, and failing just that job leaves the client's other jobs running.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from maelstrom_core.cache import CacheKey, CacheState, EntryKind, GetResult
from maelstrom_core.errors import InternalError
from maelstrom_core.job import ArtifactType, JobError, JobErrorKind, JobOutcome, JobSpec, JobState
from maelstrom_core.proto import (
    ArtifactTransferred,
    BrokerStatistics,
    CancelJob,
    EnqueueJob,
    GeneralError,
    JobId,
    JobRequest,
    JobResponse,
    JobStateCounts,
    JobStatusUpdate,
    Message,
    ShutDown,
    StatisticsSample,
    TransferArtifact,
    WorkerCancelJob,
    WorkerJobResponse,
    WorkerJobStatusUpdate,
)

__all__ = [
    "MAX_REASKS",
    "STATISTICS_SAMPLES",
    "Disconnect",
    "Effect",
    "Evict",
    "ReadManifest",
    "Scheduler",
    "Send",
]

STATISTICS_SAMPLES: Final = 1024
# Parsed manifests kept in memory, counted in blob digests (~100 bytes each with overhead).
MANIFEST_CACHE_DIGESTS: Final = 100_000
# How often a client that says it pushed an artifact the broker does not have is asked again
# before that client's jobs needing it fail.
MAX_REASKS: Final = 3


# --- effects --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` on connection ``dest`` (a client or a worker)."""

    dest: int
    message: Message


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close connection ``dest`` once what was sent before is out (after a ``GeneralError``)."""

    dest: int


@dataclass(frozen=True, slots=True)
class ReadManifest:
    """Read stored manifest ``digest`` and report its blobs with ``Scheduler.manifest_read``."""

    digest: bytes
    generation: int


@dataclass(frozen=True, slots=True)
class Evict:
    """Nothing holds stored artifact ``digest`` and the store is over its target: delete it."""

    digest: bytes


Effect: TypeAlias = Send | Disconnect | ReadManifest | Evict


# --- state ----------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Job:
    jid: JobId
    spec: JobSpec
    manifests: frozenset[bytes]  # layer digests to read as manifests
    state: JobState = JobState.WAITING_FOR_ARTIFACTS
    missing: set[bytes] = field(default_factory=set)  # not stored yet
    unread: set[bytes] = field(default_factory=set)  # held manifests whose blobs are unknown
    seen: set[bytes] = field(default_factory=set)  # every digest gathered, held or missing
    held: list[bytes] = field(default_factory=list)  # one store reference per digest
    worker: int | None = None
    seq: int = 0  # queue entry that is live for this job


@dataclass(eq=False, slots=True)
class _Client:
    jobs: dict[int, _Job] = field(default_factory=dict)  # by client job id
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # by _STATE_INDEX
    asked: set[bytes] = field(default_factory=set)  # digests asked of this client
    reasks: collections.Counter[bytes] = field(default_factory=collections.Counter)


@dataclass(eq=False, slots=True)
class _Worker:
    slots: int
    jobs: set[JobId] = field(default_factory=set)
    version: int = 0  # live worker-heap entry


_STATE_INDEX: Final = {
    JobState.WAITING_FOR_ARTIFACTS: 0,
    JobState.PENDING: 1,
    JobState.RUNNING: 2,
    JobState.COMPLETE: 3,
}


def _queue_key(spec: JobSpec) -> tuple[int, int, float]:
    estimate = spec.estimated_duration
    if estimate is None:
        return (-spec.priority, 0, 0.0)
    return (-spec.priority, 1, -estimate)


def _blob(digest: bytes) -> CacheKey:
    return CacheKey(EntryKind.BLOB, digest)


class Scheduler:
    """The broker's state. Feed it events; carry out the effects it returns, in order.

    Args:
        cache_target: soft byte target of the artifact store.
        stored: artifacts already in the store at start (digest, size), oldest first.
    """

    def __init__(self, cache_target: int, stored: Iterable[tuple[bytes, int]] = ()) -> None:
        self._store = CacheState(cache_target)
        self._clients: dict[int, _Client] = {}
        self._workers: dict[int, _Worker] = {}
        self._jobs: dict[JobId, _Job] = {}
        self._queue: list[tuple[tuple[int, int, float], int, JobId]] = []
        self._pending = 0  # live entries in _queue
        self._worker_heap: list[tuple[float, int, int]] = []  # (load, worker id, version)
        self._seq = itertools.count(1)
        self._waiting: dict[bytes, set[JobId]] = {}  # missing digest -> jobs waiting for it
        self._asked: dict[bytes, set[int]] = {}  # missing digest -> clients asked for it
        self._manifest_waiting: dict[bytes, set[JobId]] = {}
        self._reading: dict[bytes, int] = {}  # manifest -> generation being read
        self._generation: dict[bytes, int] = {}  # stored digest -> which arrival of it
        self._generations = itertools.count(1)
        self._manifest_blobs: collections.OrderedDict[bytes, tuple[bytes, ...]] = (
            collections.OrderedDict()
        )
        self._manifest_digests = 0
        self._samples: collections.deque[StatisticsSample] = collections.deque(
            maxlen=STATISTICS_SAMPLES
        )
        self._evictions: list[bytes] = []
        for digest, size in stored:
            self._generation[digest] = next(self._generations)
            for key in self._store.load(_blob(digest), size):
                self._generation.pop(key.digest, None)
                self._evictions.append(key.digest)

    # --- queries ---------------------------------------------------------------------------

    def initial_evictions(self) -> list[Effect]:
        """Stored artifacts over the target at start, to delete now."""
        evictions: list[Effect] = [Evict(d) for d in self._evictions]
        self._evictions = []
        return evictions

    def is_stored(self, digest: bytes) -> bool:
        return self._store.is_present(_blob(digest))

    def refcount(self, digest: bytes) -> int:
        return self._store.refcount(_blob(digest))

    def job_state(self, job_id: JobId) -> JobState | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.state

    def worker_load(self, worker_id: int) -> int:
        """Jobs outstanding at the worker."""
        return len(self._workers[worker_id].jobs)

    @property
    def queued(self) -> int:
        """Jobs ready and waiting for a worker."""
        return self._pending

    @property
    def clients(self) -> list[int]:
        return sorted(self._clients)

    @property
    def workers(self) -> list[int]:
        return sorted(self._workers)

    @property
    def bytes_stored(self) -> int:
        return self._store.bytes_used

    def statistics(self) -> BrokerStatistics:
        return BrokerStatistics(
            worker_slots=tuple((wid, self._workers[wid].slots) for wid in sorted(self._workers)),
            num_clients=len(self._clients),
            samples=tuple(self._samples),
        )

    def sample_statistics(self, now: float) -> None:
        """Record every client's job-state counts (the server calls this every 500 ms)."""
        self._samples.append(
            StatisticsSample(
                now,
                tuple(
                    (cid, JobStateCounts(*self._clients[cid].counts))
                    for cid in sorted(self._clients)
                ),
            )
        )

    # --- connections -----------------------------------------------------------------------

    def add_client(self, client_id: int) -> list[Effect]:
        if client_id in self._clients or client_id in self._workers:
            raise InternalError(f"connection id {client_id} used twice")
        self._clients[client_id] = _Client()
        return []

    def remove_client(self, client_id: int) -> list[Effect]:
        """The client left: drop its jobs, cancel the running ones, forget what it was asked."""
        client = self._clients.pop(client_id)
        out: list[Effect] = []
        touched: set[int] = set()
        for job in list(client.jobs.values()):
            if job.worker is not None:
                touched.add(job.worker)
            self._drop(job, out, client, cancel=True)
        for digest in client.asked:
            asked = self._asked.get(digest)
            if asked is not None:
                asked.discard(client_id)
                if not asked:
                    del self._asked[digest]
        if touched:
            for wid in touched:
                self._touch_worker(wid)
            self._dispatch(out)
        return out

    def add_worker(self, worker_id: int, slots: int) -> list[Effect]:
        if worker_id in self._workers or worker_id in self._clients:
            raise InternalError(f"connection id {worker_id} used twice")
        if slots < 1:
            raise InternalError(f"worker {worker_id} has {slots} slots")
        self._workers[worker_id] = _Worker(slots)
        self._touch_worker(worker_id)
        out: list[Effect] = []
        self._dispatch(out)
        return out

    def remove_worker(self, worker_id: int) -> list[Effect]:
        """The worker left: its jobs go back to the queue (by priority and estimate as before)."""
        worker = self._workers.pop(worker_id)
        out: list[Effect] = []
        for jid in sorted(worker.jobs):
            job = self._jobs[jid]
            job.worker = None
            self._set_state(job, JobState.PENDING)
            self._enqueue(job)
            out.append(Send(jid.client_id, JobStatusUpdate(jid.client_job_id, JobState.PENDING)))
        worker.jobs.clear()
        self._dispatch(out)
        return out

    def shut_down(self, reason: str, *, stop_workers: bool) -> list[Effect]:
        """The broker is stopping: tell every client why, and disconnect every worker.

        Workers are told to exit only when an admin stops the cluster; a broker stopped by a
        signal is usually being restarted, and its workers reconnect to the new one.
        """
        out: list[Effect] = []
        for wid in sorted(self._workers):
            if stop_workers:
                out.append(Send(wid, ShutDown(reason)))
            out.append(Disconnect(wid))
        for cid in sorted(self._clients):
            out.append(Send(cid, GeneralError(f"the broker is shutting down: {reason}")))
            out.append(Disconnect(cid))
        return out

    # --- client messages -------------------------------------------------------------------

    def client_message(self, client_id: int, message: Message) -> list[Effect]:
        client = self._clients[client_id]
        out: list[Effect] = []
        if isinstance(message, JobRequest):
            self._submit(client_id, client, message, out)
        elif isinstance(message, CancelJob):
            job = client.jobs.get(message.client_job_id)
            if job is not None:
                worker = job.worker
                self._drop(job, out, client, cancel=True)
                if worker is not None:
                    self._touch_worker(worker)
                    self._dispatch(out)
        elif isinstance(message, ArtifactTransferred):
            self._transferred(client_id, client, message.digest, out)
        else:
            raise InternalError(f"client message {type(message).__name__} got past decoding")
        return out

    def _submit(self, cid: int, client: _Client, request: JobRequest, out: list[Effect]) -> None:
        cjid = request.client_job_id
        spec = request.spec
        if cjid in client.jobs:
            out.append(Send(cid, GeneralError(f"job id {cjid} is already in use by this client")))
            out.append(Disconnect(cid))
            return
        if spec.must_run_locally:
            outcome = JobError(
                JobErrorKind.SYSTEM,
                "this job must run on the client's local worker (it has bind mounts, the "
                "host's network or a TTY); the broker does not take such jobs",
            )
            client.counts[3] += 1
            out.append(Send(cid, JobResponse(cjid, outcome)))
            return
        jid = JobId(cid, cjid)
        manifests = frozenset(
            layer.digest for layer in spec.layers if layer.type is ArtifactType.MANIFEST
        )
        job = _Job(jid, spec, manifests)
        client.jobs[cjid] = job
        self._jobs[jid] = job
        client.counts[0] += 1
        for layer in spec.layers:
            self._gather(job, layer.digest, out)
        if not self._ready_check(job, out):
            out.append(Send(cid, JobStatusUpdate(cjid, JobState.WAITING_FOR_ARTIFACTS)))

    def _transferred(self, cid: int, client: _Client, digest: bytes, out: list[Effect]) -> None:
        if self.is_stored(digest):
            return
        waiting = [jid for jid in self._waiting.get(digest, ()) if jid.client_id == cid]
        if not waiting:
            return  # nothing of this client needs it any more (its job was cancelled)
        # The store lost it between the push and this notice (evicted while nobody held it):
        # ask again, a few times, then give up on the jobs rather than wait forever.
        client.reasks[digest] += 1
        if client.reasks[digest] <= MAX_REASKS:
            out.append(Send(cid, TransferArtifact(digest)))
            return
        message = (
            f"the client reported artifact {digest.hex()} transferred {MAX_REASKS + 1} times "
            "but the broker never stored it"
        )
        for jid in sorted(waiting):
            self._fail(self._jobs[jid], message, out)

    # --- worker messages -------------------------------------------------------------------

    def worker_message(self, worker_id: int, message: Message) -> list[Effect]:
        worker = self._workers[worker_id]
        out: list[Effect] = []
        if isinstance(message, WorkerJobResponse):
            jid = message.job_id
            if jid not in worker.jobs:
                return out  # cancelled since, or never this worker's: nobody waits for it
            worker.jobs.remove(jid)
            job = self._jobs[jid]
            self._complete(job, message.outcome, out)
            best = self._pop_queue()
            if best is not None:
                self._assign(best, worker_id, worker, out)  # the fast path
            else:
                self._touch_worker(worker_id)
        elif isinstance(message, WorkerJobStatusUpdate):
            pass  # see the module docstring: the client was told RUNNING at assignment
        else:
            raise InternalError(f"worker message {type(message).__name__} got past decoding")
        return out

    # --- artifacts -------------------------------------------------------------------------

    def artifact_arrived(self, digest: bytes, size: int) -> list[Effect]:
        """A pushed artifact was verified and stored. Call before acknowledging the push."""
        key = _blob(digest)
        out: list[Effect] = []
        if self._store.is_present(key):
            return out
        if self._store.get(key) is not GetResult.GET:
            raise InternalError(f"artifact {digest.hex()} arrived while being got")
        self._generation[digest] = next(self._generations)
        # The arrival holds a reference of its own until every waiting job has taken one, so
        # nothing it brings is evicted half way.
        self._evict(self._store.got(key, size), out)
        self._asked.pop(digest, None)
        for jid in sorted(self._waiting.pop(digest, ())):
            job = self._jobs[jid]
            job.missing.discard(digest)
            self._hold(job, digest, out)
            self._ready_check(job, out)
        self._evict(self._store.release(key), out)
        return out

    def manifest_read(
        self,
        digest: bytes,
        generation: int,
        blobs: tuple[bytes, ...] | None,
        error: str | None = None,
    ) -> list[Effect]:
        """A ``ReadManifest`` finished: ``blobs`` are the digests it names, or ``error`` says
        why it could not be read."""
        out: list[Effect] = []
        if self._reading.get(digest) == generation:
            del self._reading[digest]
        waiters = self._manifest_waiting.get(digest)
        if not waiters:
            return out
        current = self._generation.get(digest)
        if current != generation:
            # Read from a copy evicted (and maybe stored again) since: read the current one.
            if current is not None and digest not in self._reading:
                self._reading[digest] = current
                out.append(ReadManifest(digest, current))
            return out
        del self._manifest_waiting[digest]
        if blobs is None:
            why = f"manifest {digest.hex()} cannot be read: {error or 'unknown error'}"
            for jid in sorted(waiters):
                self._fail(self._jobs[jid], why, out)
            return out
        self._remember_manifest(digest, blobs)
        for jid in sorted(waiters):
            job = self._jobs[jid]
            job.unread.discard(digest)
            for blob in blobs:
                self._gather(job, blob, out)
            self._ready_check(job, out)
        return out

    def acquire_for_fetch(self, digest: bytes) -> bool:
        """A worker asks for ``digest``: served only while a job holds it. On True the fetch
        holds a reference until ``release_after_fetch``."""
        key = _blob(digest)
        if self._store.refcount(key) == 0:
            return False
        self._store.get(key)
        return True

    def release_after_fetch(self, digest: bytes) -> list[Effect]:
        out: list[Effect] = []
        self._evict(self._store.release(_blob(digest)), out)
        return out

    # --- gathering -------------------------------------------------------------------------

    def _gather(self, job: _Job, digest: bytes, out: list[Effect]) -> None:
        if digest in job.seen:
            return
        job.seen.add(digest)
        if self._store.is_present(_blob(digest)):
            self._hold(job, digest, out)
            return
        job.missing.add(digest)
        self._waiting.setdefault(digest, set()).add(job.jid)
        cid = job.jid.client_id
        asked = self._asked.setdefault(digest, set())
        if cid not in asked:
            asked.add(cid)
            self._clients[cid].asked.add(digest)
            out.append(Send(cid, TransferArtifact(digest)))

    def _hold(self, job: _Job, digest: bytes, out: list[Effect]) -> None:
        if self._store.get(_blob(digest)) is not GetResult.SUCCESS:
            raise InternalError(f"artifact {digest.hex()} held while absent")
        job.held.append(digest)
        if digest not in job.manifests:
            return
        blobs = self._manifest_blobs.get(digest)
        if blobs is not None:
            self._manifest_blobs.move_to_end(digest)
            for blob in blobs:
                self._gather(job, blob, out)
            return
        job.unread.add(digest)
        self._manifest_waiting.setdefault(digest, set()).add(job.jid)
        generation = self._generation[digest]
        if self._reading.get(digest) != generation:
            self._reading[digest] = generation
            out.append(ReadManifest(digest, generation))

    def _remember_manifest(self, digest: bytes, blobs: tuple[bytes, ...]) -> None:
        if digest in self._manifest_blobs:
            return
        self._manifest_blobs[digest] = blobs
        self._manifest_digests += len(blobs)
        while self._manifest_digests > MANIFEST_CACHE_DIGESTS and len(self._manifest_blobs) > 1:
            _, dropped = self._manifest_blobs.popitem(last=False)
            self._manifest_digests -= len(dropped)

    def _ready_check(self, job: _Job, out: list[Effect]) -> bool:
        """Queue ``job`` if it has everything; True if it did (or it was not waiting)."""
        if job.state is not JobState.WAITING_FOR_ARTIFACTS:
            return True
        if job.missing or job.unread:
            return False
        self._set_state(job, JobState.PENDING)
        self._enqueue(job)
        if not self._dispatch(out, until=job):
            out.append(Send(job.jid.client_id, JobStatusUpdate(job.jid.client_job_id, job.state)))
        return True

    # --- queue and workers -----------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        job.seq = next(self._seq)
        heapq.heappush(self._queue, (_queue_key(job.spec), job.seq, job.jid))
        self._pending += 1

    def _pop_queue(self) -> _Job | None:
        queue = self._queue
        while queue:
            _, seq, jid = heapq.heappop(queue)
            job = self._jobs.get(jid)
            if job is not None and job.seq == seq and job.state is JobState.PENDING:
                self._pending -= 1
                return job
        return None

    def _touch_worker(self, worker_id: int) -> None:
        """Record the worker's new load in the worker heap."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return
        worker.version += 1
        heap = self._worker_heap
        heapq.heappush(heap, (len(worker.jobs) / worker.slots, worker_id, worker.version))
        if len(heap) > 4 * len(self._workers) + 64:
            # Stale entries of busy workers can sit below the top for long; start afresh.
            heap[:] = [(len(w.jobs) / w.slots, wid, w.version) for wid, w in self._workers.items()]
            heapq.heapify(heap)

    def _least_loaded(self) -> int | None:
        """The worker with the lowest load that has room (load below 2), if any.

        Loads are exact: a/b and c/d with b, d <= 1000 that differ as fractions differ as
        floats, so comparing the quotients is comparing by cross-multiplication."""
        heap = self._worker_heap
        while heap:
            load, wid, version = heap[0]
            worker = self._workers.get(wid)
            if worker is None or worker.version != version:
                heapq.heappop(heap)
                continue
            return wid if load < 2 else None
        return None

    def _dispatch(self, out: list[Effect], until: _Job | None = None) -> bool:
        """Give queued jobs to the least-loaded workers while any has room.

        Returns whether ``until`` was among the jobs sent."""
        sent = False
        while self._pending:
            wid = self._least_loaded()
            if wid is None:
                break
            job = self._pop_queue()
            if job is None:
                break
            self._assign(job, wid, self._workers[wid], out)
            if job is until:
                sent = True
        return sent

    def _assign(self, job: _Job, wid: int, worker: _Worker, out: list[Effect]) -> None:
        worker.jobs.add(job.jid)
        job.worker = wid
        self._set_state(job, JobState.RUNNING)
        self._touch_worker(wid)
        out.append(Send(wid, EnqueueJob(job.jid, job.spec)))
        out.append(
            Send(job.jid.client_id, JobStatusUpdate(job.jid.client_job_id, JobState.RUNNING, wid))
        )

    # --- ending jobs -----------------------------------------------------------------------

    def _set_state(self, job: _Job, state: JobState) -> None:
        counts = self._clients[job.jid.client_id].counts
        counts[_STATE_INDEX[job.state]] -= 1
        counts[_STATE_INDEX[state]] += 1
        job.state = state

    def _complete(self, job: _Job, outcome: JobOutcome, out: list[Effect]) -> None:
        jid = job.jid
        out.append(Send(jid.client_id, JobResponse(jid.client_job_id, outcome)))
        self._set_state(job, JobState.COMPLETE)
        self._forget(job, self._clients[jid.client_id], out)

    def _fail(self, job: _Job, message: str, out: list[Effect]) -> None:
        """End a job that is still gathering artifacts with a system error."""
        self._complete(job, JobError(JobErrorKind.SYSTEM, message), out)

    def _drop(self, job: _Job, out: list[Effect], client: _Client, *, cancel: bool) -> None:
        """End a job with no response: its client cancelled it or left."""
        if job.worker is not None:
            worker = self._workers[job.worker]
            worker.jobs.discard(job.jid)
            if cancel:
                out.append(Send(job.worker, WorkerCancelJob(job.jid)))
        if job.state is JobState.PENDING:
            self._pending -= 1  # its queue entry is now stale
        client.counts[_STATE_INDEX[job.state]] -= 1
        job.state = JobState.COMPLETE
        self._forget(job, client, out)

    def _forget(self, job: _Job, client: _Client, out: list[Effect]) -> None:
        jid = job.jid
        del self._jobs[jid]
        del client.jobs[jid.client_job_id]
        job.worker = None
        for digest in job.missing:
            waiting = self._waiting.get(digest)
            if waiting is not None:
                waiting.discard(jid)
                if not waiting:
                    del self._waiting[digest]
        for digest in job.unread:
            waiting = self._manifest_waiting.get(digest)
            if waiting is not None:
                waiting.discard(jid)
                if not waiting:
                    del self._manifest_waiting[digest]
        for digest in job.held:
            self._evict(self._store.release(_blob(digest)), out)
        job.missing.clear()
        job.unread.clear()
        job.held.clear()

    def _evict(self, keys: list[CacheKey], out: list[Effect]) -> None:
        for key in keys:
            digest = key.digest
            self._generation.pop(digest, None)
            blobs = self._manifest_blobs.pop(digest, None)
            if blobs is not None:
                self._manifest_digests -= len(blobs)
            out.append(Evict(digest))
