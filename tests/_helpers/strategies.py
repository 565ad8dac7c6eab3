"""Hypothesis strategies for the resolved job model (``_job.py``) and every wire message.

Every value drawn is valid: it survives ``decode(encode(value))`` unchanged. Reuse them in any
package's tests: ``from tests._helpers import strategies as mst``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from maelstrom_core import proto
from maelstrom_core._job import (
    ArtifactType,
    BindMount,
    Device,
    DevicesMount,
    DevptsMount,
    ExitCode,
    ExitStatus,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobMount,
    JobOutcome,
    JobSpec,
    JobState,
    JobTimedOut,
    LayerRef,
    MqueueMount,
    Network,
    Output,
    ProcMount,
    Signaled,
    SysMount,
    TmpMount,
    TtySpec,
    WindowSize,
)

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF

u32s = st.integers(0, U32)
u64s = st.integers(0, U64)
digests = st.binary(min_size=32, max_size=32)
# CBOR text is UTF-8, so lone surrogates (undecodable file names) cannot travel.
texts = st.text(st.characters(codec="utf-8"), max_size=40)
# Text that reaches the launcher as a C string: no NUL.
c_texts = st.text(st.characters(codec="utf-8", blacklist_characters="\0"), max_size=40)
seconds = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
job_ids = st.builds(proto.JobId, u32s, u32s)
roles = st.sampled_from(proto.Role)
status_states = st.sampled_from([s for s in JobState if s is not JobState.COMPLETE])


def small_tuples(elements: st.SearchStrategy[Any], max_size: int = 5) -> st.SearchStrategy[Any]:
    return st.lists(elements, max_size=max_size).map(tuple)


# --- _job.py --------------------------------------------------------------------------------

layer_refs = st.builds(LayerRef, digests, st.sampled_from(ArtifactType))
window_sizes = st.builds(WindowSize, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
tty_specs = st.builds(TtySpec, window_sizes)
mounts: st.SearchStrategy[JobMount] = st.one_of(
    st.builds(BindMount, c_texts, c_texts, st.booleans()),
    st.builds(DevicesMount, st.frozensets(st.sampled_from(Device))),
    st.builds(DevptsMount, c_texts),
    st.builds(MqueueMount, c_texts),
    st.builds(ProcMount, c_texts),
    st.builds(SysMount, c_texts),
    st.builds(TmpMount, c_texts),
)
job_specs = st.builds(
    JobSpec,
    program=c_texts,
    layers=small_tuples(layer_refs),
    arguments=small_tuples(c_texts),
    environment=small_tuples(c_texts),
    mounts=small_tuples(mounts),
    network=st.sampled_from(Network),
    enable_writable_file_system=st.booleans(),
    working_directory=c_texts,
    user=u32s,
    group=u32s,
    timeout=st.none() | u32s,
    estimated_duration=st.none() | seconds,
    priority=st.integers(-128, 127),
    allocate_tty=st.none() | tty_specs,
)
outputs = st.builds(Output, st.binary(max_size=64), u64s)
exit_statuses: st.SearchStrategy[ExitStatus] = st.one_of(
    st.builds(ExitCode, st.integers(0, 255)), st.builds(Signaled, st.integers(1, 127))
)
job_outcomes: st.SearchStrategy[JobOutcome] = st.one_of(
    st.builds(JobCompleted, exit_statuses, outputs, outputs, seconds),
    st.builds(JobTimedOut, outputs, outputs, seconds),
    st.builds(JobError, st.sampled_from(JobErrorKind), texts),
)
job_states = st.sampled_from(JobState)

# --- statistics -----------------------------------------------------------------------------


def _unique_by_id(pairs: st.SearchStrategy[Any], max_size: int = 4) -> st.SearchStrategy[Any]:
    return st.lists(pairs, max_size=max_size, unique_by=lambda pair: pair[0]).map(tuple)


job_state_counts = st.builds(proto.JobStateCounts, u64s, u64s, u64s, u64s)
statistics_samples = st.builds(
    proto.StatisticsSample, seconds, _unique_by_id(st.tuples(u32s, job_state_counts))
)
broker_statistics = st.builds(
    proto.BrokerStatistics,
    _unique_by_id(st.tuples(u32s, st.integers(1, proto.MAX_SLOTS))),
    u32s,
    small_tuples(statistics_samples, max_size=3),
)

# --- messages -------------------------------------------------------------------------------


def _hellos() -> st.SearchStrategy[proto.Hello]:
    workers = st.builds(
        proto.Hello, st.just(proto.Role.WORKER), slots=st.integers(1, proto.MAX_SLOTS)
    )
    others = st.builds(
        proto.Hello, st.sampled_from([r for r in proto.Role if r is not proto.Role.WORKER])
    )
    return workers | others


def _job_status_updates() -> st.SearchStrategy[proto.JobStatusUpdate]:
    return st.builds(proto.JobStatusUpdate, u32s, status_states, st.none() | u32s).filter(
        lambda m: m.worker_id is not None or m.state is not JobState.RUNNING
    )


MESSAGE_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    proto.Hello: _hellos(),
    proto.HelloAccepted: st.builds(proto.HelloAccepted, u32s),
    proto.HelloRejected: st.builds(proto.HelloRejected, st.sampled_from(proto.RejectReason), texts),
    proto.JobRequest: st.builds(proto.JobRequest, u32s, job_specs),
    proto.CancelJob: st.builds(proto.CancelJob, u32s),
    proto.ArtifactTransferred: st.builds(proto.ArtifactTransferred, digests),
    proto.JobStatusUpdate: _job_status_updates(),
    proto.JobResponse: st.builds(proto.JobResponse, u32s, job_outcomes),
    proto.TransferArtifact: st.builds(proto.TransferArtifact, digests),
    proto.GeneralError: st.builds(proto.GeneralError, texts),
    proto.EnqueueJob: st.builds(proto.EnqueueJob, job_ids, job_specs),
    proto.WorkerCancelJob: st.builds(proto.WorkerCancelJob, job_ids),
    proto.WorkerJobStatusUpdate: st.builds(proto.WorkerJobStatusUpdate, job_ids, status_states),
    proto.WorkerJobResponse: st.builds(proto.WorkerJobResponse, job_ids, job_outcomes),
    proto.ShutDown: st.builds(proto.ShutDown, texts),
    proto.StatisticsRequest: st.just(proto.StatisticsRequest()),
    proto.StatisticsResponse: st.builds(proto.StatisticsResponse, broker_statistics),
    proto.StopRequest: st.just(proto.StopRequest()),
    proto.PushRequest: st.builds(proto.PushRequest, digests, u64s),
    proto.PushResponse: st.builds(proto.PushResponse, st.none() | texts),
    proto.FetchRequest: st.builds(proto.FetchRequest, digests),
    proto.FetchResponse: st.one_of(
        st.builds(proto.FetchResponse, size=u64s), st.builds(proto.FetchResponse, error=texts)
    ),
}


def messages(*types: type) -> st.SearchStrategy[Any]:
    """Any valid message, or one of ``types`` if given."""
    chosen = types or tuple(MESSAGE_STRATEGIES)
    return st.one_of(*(MESSAGE_STRATEGIES[t] for t in chosen))


def messages_in(direction: proto.Direction) -> st.SearchStrategy[Any]:
    """Any valid message that ``direction`` allows."""
    return messages(*sorted(direction.messages, key=lambda t: t.TAG))
