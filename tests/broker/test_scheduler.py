"""The broker's scheduler state machine, driven event by event with no sockets and no trio."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maelstrom_broker._scheduler import (
    MAX_REASKS,
    STATISTICS_SAMPLES,
    Disconnect,
    Effect,
    Evict,
    ReadManifest,
    Scheduler,
    Send,
)
from maelstrom_core.job import (
    ArtifactType,
    BindMount,
    ExitCode,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobSpec,
    JobState,
    LayerRef,
    Network,
)
from maelstrom_core.proto import (
    ArtifactTransferred,
    CancelJob,
    EnqueueJob,
    GeneralError,
    JobId,
    JobRequest,
    JobResponse,
    JobStatusUpdate,
    Message,
    ShutDown,
    TransferArtifact,
    WorkerCancelJob,
    WorkerJobResponse,
    WorkerJobStatusUpdate,
)

OK = JobCompleted(ExitCode(0))


def digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def spec(
    *layers: str,
    priority: int = 0,
    estimate: float | None = None,
    manifests: tuple[str, ...] = (),
    program: str = "/bin/true",
) -> JobSpec:
    refs = [LayerRef(digest(name), ArtifactType.TAR) for name in layers]
    refs += [LayerRef(digest(name), ArtifactType.MANIFEST) for name in manifests]
    return JobSpec(
        program=program, layers=tuple(refs), priority=priority, estimated_duration=estimate
    )


def sends(effects: list[Effect], dest: int | None = None) -> list[Message]:
    return [e.message for e in effects if isinstance(e, Send) and dest in (None, e.dest)]


def enqueued(effects: list[Effect], worker: int | None = None) -> list[JobId]:
    return [m.job_id for m in sends(effects, worker) if isinstance(m, EnqueueJob)]


def enqueued_to(effects: list[Effect]) -> list[tuple[int, JobId]]:
    return [
        (e.dest, e.message.job_id)
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, EnqueueJob)
    ]


def statuses(effects: list[Effect], client: int) -> list[tuple[int, JobState, int | None]]:
    return [
        (m.client_job_id, m.state, m.worker_id)
        for m in sends(effects, client)
        if isinstance(m, JobStatusUpdate)
    ]


def responses(effects: list[Effect], client: int) -> dict[int, object]:
    return {
        m.client_job_id: m.outcome for m in sends(effects, client) if isinstance(m, JobResponse)
    }


def transfers(effects: list[Effect], client: int) -> list[bytes]:
    return [m.digest for m in sends(effects, client) if isinstance(m, TransferArtifact)]


def stored(*names: str, size: int = 10) -> list[tuple[bytes, int]]:
    return [(digest(name), size) for name in names]


C1, C2, W1, W2, W3 = 1, 2, 11, 12, 13


def submit(s: Scheduler, client: int, cjid: int, job: JobSpec) -> list[Effect]:
    return s.client_message(client, JobRequest(cjid, job))


def finish(s: Scheduler, worker: int, jid: JobId) -> list[Effect]:
    return s.worker_message(worker, WorkerJobResponse(jid, OK))


# --- the basic path ---------------------------------------------------------------------------


def test_job_with_stored_layers_goes_straight_to_a_worker() -> None:
    s = Scheduler(10**9, stored("base"))
    s.add_client(C1)
    assert s.add_worker(W1, 4) == []
    out = submit(s, C1, 0, spec("base"))
    assert out == [
        Send(W1, EnqueueJob(JobId(C1, 0), spec("base"))),
        Send(C1, JobStatusUpdate(0, JobState.RUNNING, W1)),
    ]
    assert s.refcount(digest("base")) == 1
    out = finish(s, W1, JobId(C1, 0))
    assert out == [Send(C1, JobResponse(0, OK))]
    assert s.refcount(digest("base")) == 0
    assert s.job_state(JobId(C1, 0)) is None


def test_ready_job_with_no_worker_is_pending_then_sent_when_one_comes() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    out = submit(s, C1, 7, spec())
    assert statuses(out, C1) == [(7, JobState.PENDING, None)]
    assert s.queued == 1
    out = s.add_worker(W1, 1)
    assert enqueued(out, W1) == [JobId(C1, 7)]
    assert statuses(out, C1) == [(7, JobState.RUNNING, W1)]
    assert s.queued == 0


def test_worker_progress_reports_are_not_relayed_a_running_job_stays_running() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    out = submit(s, C1, 0, spec())
    assert statuses(out, C1) == [(0, JobState.RUNNING, W1)]
    for state in (JobState.WAITING_FOR_ARTIFACTS, JobState.PENDING, JobState.RUNNING):
        assert s.worker_message(W1, WorkerJobStatusUpdate(JobId(C1, 0), state)) == []
    assert s.job_state(JobId(C1, 0)) is JobState.RUNNING
    # A worker reporting on a job it does not hold changes nothing either.
    s.add_worker(W2, 1)
    assert s.worker_message(W2, WorkerJobStatusUpdate(JobId(C1, 0), JobState.RUNNING)) == []
    assert responses(finish(s, W1, JobId(C1, 0)), C1) == {0: OK}


# --- order, caps, worker choice, fast path ----------------------------------------------------


def test_queue_order_priority_then_unknown_estimate_then_longest_first() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    jobs = {
        0: spec(priority=0, estimate=1.0),
        1: spec(priority=0, estimate=5.0),
        2: spec(priority=0, estimate=None),
        3: spec(priority=1, estimate=0.5),
        4: spec(priority=-1, estimate=None),
        5: spec(priority=1, estimate=None),
        6: spec(priority=0, estimate=5.0),  # equal keys run in arrival order
        7: spec(priority=0, estimate=None),
    }
    for cjid, job in jobs.items():
        submit(s, C1, cjid, job)
    order: list[int] = []
    out = s.add_worker(W1, 1)  # holds two at a time
    pending = enqueued(out, W1)
    while pending:
        jid = pending.pop(0)
        order.append(jid.client_job_id)
        pending += enqueued(finish(s, W1, jid), W1)
    assert order == [5, 3, 2, 7, 1, 6, 0, 4]


def test_each_worker_holds_at_most_twice_its_slots() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 2)
    out: list[Effect] = []
    for cjid in range(10):
        out += submit(s, C1, cjid, spec())
    assert len(enqueued(out, W1)) == 4
    assert s.worker_load(W1) == 4
    assert s.queued == 6
    pending_updates = [u for u in statuses(out, C1) if u[1] is JobState.PENDING]
    assert [u[0] for u in pending_updates] == list(range(4, 10))


def test_next_job_goes_to_the_least_loaded_worker_ties_to_the_lower_id() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W2, 1)
    s.add_worker(W1, 3)
    out: list[Effect] = []
    for cjid in range(8):
        out += submit(s, C1, cjid, spec())
    # Loads (outstanding/slots): W1 0/3 and W2 0/1 tie -> W1 (lower id); then W2 (0 < 1/3);
    # then W1 (1/3 < 1); W1 (2/3 < 1); then W1 1 vs W2 1 tie -> W1; W2; W1; W1 is full at 6/3.
    assert [dest for dest, _ in enqueued_to(out)] == [W1, W2, W1, W1, W1, W2, W1, W1]
    assert (s.worker_load(W1), s.worker_load(W2), s.queued) == (6, 2, 0)
    out = submit(s, C1, 8, spec())
    assert enqueued(out) == []
    assert s.queued == 1


def test_completion_fast_path_gives_the_best_queued_job_to_that_worker() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    s.add_worker(W2, 1)
    for cjid in range(4):
        submit(s, C1, cjid, spec())
    submit(s, C1, 4, spec(priority=0))
    submit(s, C1, 5, spec(priority=3))
    assert s.queued == 2
    out = finish(s, W2, JobId(C1, 1))
    assert out == [
        Send(C1, JobResponse(1, OK)),
        Send(W2, EnqueueJob(JobId(C1, 5), spec(priority=3))),
        Send(C1, JobStatusUpdate(5, JobState.RUNNING, W2)),
    ]
    out = finish(s, W1, JobId(C1, 0))
    assert enqueued_to(out) == [(W1, JobId(C1, 4))]
    out = finish(s, W1, JobId(C1, 2))
    assert enqueued(out) == []
    assert (s.worker_load(W1), s.worker_load(W2)) == (1, 2)
    # With the queue empty, the freed capacity is used by the next submission.
    out = submit(s, C1, 6, spec())
    assert enqueued_to(out) == [(W1, JobId(C1, 6))]


# --- workers leaving --------------------------------------------------------------------------


def test_worker_lost_requeues_its_jobs_without_losing_or_duplicating_them() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    for cjid in range(3):
        submit(s, C1, cjid, spec())
    assert s.worker_load(W1) == 2
    assert s.queued == 1
    out = s.remove_worker(W1)
    assert statuses(out, C1) == [(0, JobState.PENDING, None), (1, JobState.PENDING, None)]
    assert s.queued == 3
    assert s.job_state(JobId(C1, 0)) is JobState.PENDING
    out = s.add_worker(W2, 2)
    assert sorted(enqueued(out, W2)) == [JobId(C1, 0), JobId(C1, 1), JobId(C1, 2)]
    # W2 completes job 0 twice (a confused worker): the second response is ignored.
    assert responses(finish(s, W2, JobId(C1, 0)), C1) == {0: OK}
    assert finish(s, W2, JobId(C1, 0)) == []
    # A new worker that never held job 1 cannot complete it either.
    s.add_worker(W3, 1)
    assert finish(s, W3, JobId(C1, 1)) == []
    assert responses(finish(s, W2, JobId(C1, 1)), C1) == {1: OK}


def test_worker_lost_keeps_artifact_references() -> None:
    s = Scheduler(10**9, stored("base"))
    s.add_client(C1)
    s.add_worker(W1, 1)
    submit(s, C1, 0, spec("base"))
    s.remove_worker(W1)
    assert s.refcount(digest("base")) == 1
    assert s.acquire_for_fetch(digest("base"))


# --- clients leaving and cancelling -----------------------------------------------------------


def test_client_lost_drops_queued_cancels_running_and_refills_the_worker() -> None:
    s = Scheduler(10, stored("base", size=10))
    s.add_client(C1)
    s.add_client(C2)
    s.add_worker(W1, 1)
    submit(s, C1, 0, spec("base"))
    submit(s, C1, 1, spec("base"))
    submit(s, C1, 2, spec("base"))  # queued
    submit(s, C1, 3, spec("missing"))  # waiting for artifacts
    submit(s, C2, 0, spec())  # queued behind C1's
    assert s.refcount(digest("base")) == 3
    out = s.remove_client(C1)
    assert [m for m in sends(out, W1) if isinstance(m, WorkerCancelJob)] == [
        WorkerCancelJob(JobId(C1, 0)),
        WorkerCancelJob(JobId(C1, 1)),
    ]
    assert sends(out, C1) == []  # nobody to tell
    assert enqueued(out, W1) == [JobId(C2, 0)]  # the freed capacity goes to the other client
    assert s.refcount(digest("base")) == 0
    assert not s.acquire_for_fetch(digest("base"))
    assert s.queued == 0
    assert s.clients == [C2]
    # A late response for a cancelled job is ignored.
    assert finish(s, W1, JobId(C1, 0)) == []


def test_cancel_job_running_queued_and_waiting() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    for cjid in range(3):
        submit(s, C1, cjid, spec())
    submit(s, C1, 3, spec("missing"))
    out = s.client_message(C1, CancelJob(0))
    assert sends(out, W1)[0] == WorkerCancelJob(JobId(C1, 0))
    assert enqueued(out, W1) == [JobId(C1, 2)]  # refilled from the queue
    assert s.client_message(C1, CancelJob(3)) == []
    assert s.client_message(C1, CancelJob(99)) == []  # unknown: nothing to do
    # The waiting job no longer waits: its artifact arriving sends nothing.
    assert sends(s.artifact_arrived(digest("missing"), 5)) == []
    assert finish(s, W1, JobId(C1, 0)) == []


def test_cancelled_queued_job_is_never_sent() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    submit(s, C1, 0, spec())
    submit(s, C1, 1, spec())
    s.client_message(C1, CancelJob(0))
    assert s.queued == 1
    assert enqueued(s.add_worker(W1, 4)) == [JobId(C1, 1)]


# --- artifact gathering -----------------------------------------------------------------------


def test_missing_layers_are_asked_for_once_per_client_and_the_job_waits() -> None:
    s = Scheduler(10**9, stored("base"))
    s.add_client(C1)
    s.add_worker(W1, 1)
    out = submit(s, C1, 0, spec("base", "app", "app"))
    assert transfers(out, C1) == [digest("app")]
    assert statuses(out, C1) == [(0, JobState.WAITING_FOR_ARTIFACTS, None)]
    assert s.refcount(digest("base")) == 1
    out = submit(s, C1, 1, spec("app"))
    assert transfers(out, C1) == []  # already asked
    out = s.artifact_arrived(digest("app"), 100)
    assert sorted(enqueued(out, W1)) == [JobId(C1, 0), JobId(C1, 1)]
    assert s.refcount(digest("app")) == 2
    assert s.client_message(C1, ArtifactTransferred(digest("app"))) == []


def test_two_clients_needing_one_digest_are_both_asked_and_one_leaving_strands_nobody() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_client(C2)
    s.add_worker(W1, 1)
    assert transfers(submit(s, C1, 0, spec("shared")), C1) == [digest("shared")]
    assert transfers(submit(s, C2, 0, spec("shared")), C2) == [digest("shared")]
    s.remove_client(C1)
    out = s.artifact_arrived(digest("shared"), 3)  # C2's push
    assert enqueued(out, W1) == [JobId(C2, 0)]
    assert s.refcount(digest("shared")) == 1


def test_client_leaving_forgets_what_it_was_asked() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    submit(s, C1, 0, spec("x"))
    s.remove_client(C1)
    s.add_client(C2)
    assert transfers(submit(s, C2, 0, spec("x")), C2) == [digest("x")]


def test_unrequested_push_is_stored_unreferenced_and_evictable() -> None:
    s = Scheduler(5)
    out = s.artifact_arrived(digest("x"), 10)
    assert out == [Evict(digest("x"))]
    assert not s.is_stored(digest("x"))
    s = Scheduler(100)
    assert s.artifact_arrived(digest("x"), 10) == []
    assert s.is_stored(digest("x"))
    assert s.refcount(digest("x")) == 0
    assert s.artifact_arrived(digest("x"), 10) == []  # pushed twice: one copy
    assert s.bytes_stored == 10


def test_manifest_layer_is_read_and_its_blobs_gathered() -> None:
    s = Scheduler(10**9, stored("blob-a"))
    s.add_client(C1)
    s.add_worker(W1, 1)
    m = digest("manifest")
    out = submit(s, C1, 0, spec(manifests=("manifest",)))
    assert transfers(out, C1) == [m]
    out = s.artifact_arrived(m, 50)
    reads = [e for e in out if isinstance(e, ReadManifest)]
    assert [r.digest for r in reads] == [m]
    assert enqueued(out) == []
    out = s.manifest_read(m, reads[0].generation, (digest("blob-a"), digest("blob-b")))
    assert transfers(out, C1) == [digest("blob-b")]
    assert enqueued(out) == []
    out = s.artifact_arrived(digest("blob-b"), 7)
    assert enqueued(out, W1) == [JobId(C1, 0)]
    for name in ("manifest", "blob-a", "blob-b"):
        assert s.refcount(digest(name)) == 1, name
        assert s.acquire_for_fetch(digest(name))
        s.release_after_fetch(digest(name))
    finish(s, W1, JobId(C1, 0))
    for name in ("manifest", "blob-a", "blob-b"):
        assert s.refcount(digest(name)) == 0, name
        assert not s.acquire_for_fetch(digest(name))


def test_known_manifest_is_not_read_again() -> None:
    s = Scheduler(10**9, stored("manifest", "blob"))
    s.add_client(C1)
    s.add_worker(W1, 4)
    out = submit(s, C1, 0, spec(manifests=("manifest",)))
    (read,) = [e for e in out if isinstance(e, ReadManifest)]
    # A second job asking while the read is under way waits for the same read.
    out = submit(s, C1, 1, spec(manifests=("manifest",)))
    assert [e for e in out if isinstance(e, ReadManifest)] == []
    out = s.manifest_read(read.digest, read.generation, (digest("blob"),))
    assert sorted(enqueued(out)) == [JobId(C1, 0), JobId(C1, 1)]
    out = submit(s, C1, 2, spec(manifests=("manifest",)))
    assert [e for e in out if isinstance(e, ReadManifest)] == []
    assert enqueued(out) == [JobId(C1, 2)]
    assert s.refcount(digest("blob")) == 3


def test_unreadable_manifest_fails_its_jobs_with_a_system_error() -> None:
    s = Scheduler(10**9, stored("manifest"))
    s.add_client(C1)
    out = submit(s, C1, 0, spec(manifests=("manifest",)))
    (read,) = [e for e in out if isinstance(e, ReadManifest)]
    out = s.manifest_read(read.digest, read.generation, None, "bad magic in record 0")
    outcome = responses(out, C1)[0]
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert digest("manifest").hex() in outcome.message
    assert "bad magic in record 0" in outcome.message
    assert s.refcount(digest("manifest")) == 0


def test_manifest_read_of_an_evicted_copy_is_ignored_and_the_current_one_read() -> None:
    s = Scheduler(0)
    s.add_client(C1)
    m = digest("manifest")
    submit(s, C1, 0, spec(manifests=("manifest",)))
    (old,) = [e for e in s.artifact_arrived(m, 10) if isinstance(e, ReadManifest)]
    out = s.client_message(C1, CancelJob(0))
    assert Evict(m) in out
    out = submit(s, C1, 1, spec(manifests=("manifest",)))
    assert transfers(out, C1) == [m]
    (new,) = [e for e in s.artifact_arrived(m, 10) if isinstance(e, ReadManifest)]
    assert new.generation != old.generation
    # The old read fails (its file was evicted): job 1 is not failed for it.
    assert s.manifest_read(m, old.generation, None, "no such file") == []
    s.add_worker(W1, 1)
    out = s.manifest_read(m, new.generation, ())
    assert enqueued(out) == [JobId(C1, 1)]


def test_transferred_notice_for_an_artifact_the_broker_lacks_reasks_then_fails() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    submit(s, C1, 0, spec("x"))
    for _ in range(MAX_REASKS):
        out = s.client_message(C1, ArtifactTransferred(digest("x")))
        assert transfers(out, C1) == [digest("x")]
    out = s.client_message(C1, ArtifactTransferred(digest("x")))
    outcome = responses(out, C1)[0]
    assert isinstance(outcome, JobError)
    assert digest("x").hex() in outcome.message
    # Nothing of this client waits for it any more: the notice is ignored.
    assert s.client_message(C1, ArtifactTransferred(digest("x"))) == []


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job",
    [
        JobSpec("/bin/true", (), network=Network.LOCAL),
        JobSpec("/bin/true", (), mounts=(BindMount("/mnt", "/tmp"),)),
    ],
)
def test_local_only_job_is_refused_with_a_system_error(job: JobSpec) -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    out = submit(s, C1, 3, job)
    outcome = responses(out, C1)[3]
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert "local worker" in outcome.message
    assert enqueued(out) == []
    assert s.statistics().worker_slots == ((W1, 1),)


def test_reused_job_id_is_a_general_error_and_disconnects_the_client() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    submit(s, C1, 0, spec())
    out = submit(s, C1, 0, spec())
    assert out == [
        Send(C1, GeneralError("job id 0 is already in use by this client")),
        Disconnect(C1),
    ]


# --- store references and eviction ------------------------------------------------------------


def test_fetch_is_served_only_while_a_job_holds_the_artifact() -> None:
    s = Scheduler(10**9, stored("base"))
    assert not s.acquire_for_fetch(digest("base"))
    s.add_client(C1)
    submit(s, C1, 0, spec("base"))
    assert s.acquire_for_fetch(digest("base"))
    assert s.refcount(digest("base")) == 2
    assert s.release_after_fetch(digest("base")) == []
    assert not s.acquire_for_fetch(digest("nothing"))


def test_store_over_target_evicts_oldest_released_first_and_never_held_ones() -> None:
    s = Scheduler(25, stored("a", "b", "c", "d"))  # 40 bytes found at start
    assert s.initial_evictions() == [Evict(digest("a")), Evict(digest("b"))]
    assert s.initial_evictions() == []
    s.add_client(C1)
    s.add_worker(W1, 1)
    submit(s, C1, 0, spec("c", "d"))
    out = s.artifact_arrived(digest("e"), 10)  # 30 bytes, but c and d are held
    assert out == [Evict(digest("e"))]
    assert s.is_stored(digest("c"))
    assert s.is_stored(digest("d"))
    out = finish(s, W1, JobId(C1, 0))
    assert [e for e in out if isinstance(e, Evict)] == []  # 20 bytes: under the target
    assert s.bytes_stored == 20


# --- statistics and shutdown ------------------------------------------------------------------


def test_statistics_sample_per_client_counts_into_a_bounded_ring() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_client(C2)
    s.add_worker(W1, 1)
    s.add_worker(W2, 2)
    for cjid in range(8):
        submit(s, C1, cjid, spec())
    submit(s, C2, 0, spec("missing"))
    finish(s, W1, JobId(C1, 0))
    s.sample_statistics(1000.0)
    stats = s.statistics()
    assert stats.worker_slots == ((W1, 1), (W2, 2))
    assert stats.num_clients == 2
    (sample,) = stats.samples
    assert sample.time == 1000.0
    counts = dict(sample.clients)
    assert (counts[C1].waiting_for_artifacts, counts[C1].pending) == (0, 1)
    assert (counts[C1].running, counts[C1].complete) == (6, 1)
    assert (counts[C2].waiting_for_artifacts, counts[C2].running) == (1, 0)
    for tick in range(STATISTICS_SAMPLES + 10):
        s.sample_statistics(2000.0 + tick)
    samples = s.statistics().samples
    assert len(samples) == STATISTICS_SAMPLES
    assert samples[0].time == 2010.0
    assert samples[-1].time == 2000.0 + STATISTICS_SAMPLES + 9


def test_shut_down_tells_workers_and_clients() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    assert s.shut_down("asked to", stop_workers=True) == [
        Send(W1, ShutDown("asked to")),
        Disconnect(W1),
        Send(C1, GeneralError("the broker is shutting down: asked to")),
        Disconnect(C1),
    ]


def test_shut_down_for_a_restart_leaves_workers_free_to_reconnect() -> None:
    s = Scheduler(10**9)
    s.add_client(C1)
    s.add_worker(W1, 1)
    assert s.shut_down("SIGTERM", stop_workers=False) == [
        Disconnect(W1),
        Send(C1, GeneralError("the broker is shutting down: SIGTERM")),
        Disconnect(C1),
    ]


def test_many_jobs_many_workers_end_in_exactly_one_response_each() -> None:
    """A long mixed run: every job submitted gets one response, whatever workers do."""
    s = Scheduler(10**9)
    s.add_client(C1)
    workers = {100 + i: 1 + i % 3 for i in range(6)}
    held: dict[int, list[JobId]] = {}
    for wid, slots in workers.items():
        for jid in enqueued(s.add_worker(wid, slots)):
            held.setdefault(wid, []).append(jid)
    got: list[int] = []
    total = 500

    def note(out: list[Effect]) -> None:
        got.extend(responses(out, C1))
        for dest, jid in enqueued_to(out):
            held.setdefault(dest, []).append(jid)
            assert s.worker_load(dest) <= 2 * workers[dest]

    for cjid in range(total):
        note(submit(s, C1, cjid, spec(priority=cjid % 3, estimate=float(cjid % 7) or None)))
        if cjid % 50 == 49:  # a worker dies and a fresh one takes its place
            victim = min(held, key=lambda w: -len(held[w]))
            held.pop(victim)
            note(s.remove_worker(victim))
            workers[1000 + cjid] = 2
            note(s.add_worker(1000 + cjid, 2))
        for wid in list(held):
            if held[wid] and cjid % 2:
                note(finish(s, wid, held[wid].pop(0)))
    while any(held.values()):
        for wid in list(held):
            if held[wid]:
                note(finish(s, wid, held[wid].pop(0)))
    assert sorted(got) == list(range(total))
    assert s.queued == 0


# --- random event sequences -------------------------------------------------------------------

_OPS = st.one_of(
    st.tuples(
        st.just("submit"),
        st.integers(0, 2),
        st.integers(-1, 1),
        st.sampled_from([None, 1.0, 2.0]),
        st.frozensets(st.sampled_from("abc"), max_size=2),
    ),
    st.tuples(st.just("arrive"), st.sampled_from("abc")),
    st.tuples(st.just("finish"), st.integers(0, 3)),
    st.tuples(st.just("add_worker"), st.integers(1, 3)),
    st.tuples(st.just("remove_worker"), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(0, 2), st.integers(0, 9)),
    st.tuples(st.just("remove_client"), st.integers(0, 2)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_OPS, max_size=60))
def test_random_events_keep_the_invariants_and_every_job_ends_once(
    ops: list[tuple[Any, ...]],
) -> None:
    s = Scheduler(10**9)
    clients = [1, 2, 3]
    for cid in clients:
        s.add_client(cid)
    gone: set[int] = set()
    cancelled: set[JobId] = set()
    slots: dict[int, int] = {}
    held: dict[int, list[JobId]] = {}
    answered: list[JobId] = []
    next_cjid = dict.fromkeys(clients, 0)
    next_worker = iter(range(100, 10_000))

    def note(out: list[Effect]) -> None:
        for effect in out:
            if not isinstance(effect, Send):
                continue
            message = effect.message
            if isinstance(message, EnqueueJob):
                assert all(message.job_id not in jobs for jobs in held.values())
                held[effect.dest].append(message.job_id)
            elif isinstance(message, WorkerCancelJob):
                held[effect.dest].remove(message.job_id)
            elif isinstance(message, JobResponse):
                assert effect.dest not in gone
                answered.append(JobId(effect.dest, message.client_job_id))
        for wid, jobs in held.items():
            assert s.worker_load(wid) == len(jobs) <= 2 * slots[wid]
        if s.queued:
            assert all(len(held[wid]) == 2 * slots[wid] for wid in held)

    for op in ops:
        kind = op[0]
        if kind == "submit":
            cid = clients[op[1]]
            if cid in gone:
                continue
            job = JobSpec(
                "/bin/true",
                tuple(LayerRef(digest(n), ArtifactType.TAR) for n in sorted(op[4])),
                priority=op[2],
                estimated_duration=op[3],
            )
            note(submit(s, cid, next_cjid[cid], job))
            next_cjid[cid] += 1
        elif kind == "arrive":
            note(s.artifact_arrived(digest(op[1]), 1))
        elif kind == "finish" and held:
            wid = sorted(held)[op[1] % len(held)]
            if held[wid]:
                note(finish(s, wid, held[wid].pop(0)))
        elif kind == "add_worker":
            wid = next(next_worker)
            slots[wid] = op[1]
            held[wid] = []
            note(s.add_worker(wid, op[1]))
        elif kind == "remove_worker" and held:
            wid = sorted(held)[op[1] % len(held)]
            del held[wid]
            note(s.remove_worker(wid))
        elif kind == "cancel":
            cid = clients[op[1]]
            if cid not in gone and op[2] < next_cjid[cid]:
                cancelled.add(JobId(cid, op[2]))
                note(s.client_message(cid, CancelJob(op[2])))
        elif kind == "remove_client":
            cid = clients[op[1]]
            if cid not in gone:
                gone.add(cid)
                note(s.remove_client(cid))
    # Drain: every artifact arrives, a worker comes, and workers answer everything.
    for name in "abc":
        note(s.artifact_arrived(digest(name), 1))
    wid = next(next_worker)
    slots[wid] = 2
    held[wid] = []
    note(s.add_worker(wid, 2))
    while any(held.values()):
        for wid in sorted(held):
            if held[wid]:
                note(finish(s, wid, held[wid].pop(0)))
    assert len(answered) == len(set(answered))
    expected = {
        JobId(cid, cjid) for cid in clients if cid not in gone for cjid in range(next_cjid[cid])
    }
    assert set(answered) | cancelled >= expected
    assert s.queued == 0
    for name in "abc":
        assert s.refcount(digest(name)) == 0
