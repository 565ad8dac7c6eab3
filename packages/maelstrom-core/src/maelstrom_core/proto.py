"""The wire protocol: every message a maelstrom program sends, and its encoding. Sans-IO.

Wire format (also in ``docs/protocol.md``):

* A frame is a 4-byte big-endian length and one CBOR item (``_framing``). Frames over the
  maximum size (16 MiB unless configured) are refused from the length prefix alone.
* A message is a CBOR array ``[tag, field, ...]``: ``tag`` is a small unsigned integer naming
  the message (``TAG`` on each class), the fields follow in the order the class lists them.
  Nested records are arrays too, in field order; tagged unions (mounts, outcomes, exit
  statuses) are arrays whose first item is the variant number; enums are their ``.value``
  text; optional fields are ``null`` when absent; digests are 32-byte byte strings.
* Only definite-length arrays, unsigned/negative integers, floats, text, byte strings, booleans
  and ``null`` appear. Maps, CBOR tags, indefinite lengths, trailing bytes, wrong arity, wrong
  types, out-of-range integers (u32 ids, u64 sizes, i8 priority), non-finite or negative
  durations, NUL characters in anything that becomes a C string, and unknown tags or enum
  values are all rejected with a ``ProtocolError`` naming the message and field, for example
  ``JobRequest.spec.layers[2].digest: expected 32 bytes, got 5``.
* The first message on every connection is ``Hello``; the broker answers ``HelloAccepted`` or
  ``HelloRejected``. These three keep their layout in every protocol version, so a version
  mismatch is always reported as such (``VersionMismatch``) on both ends.

Messages are grouped by ``Direction`` (for example ``WORKER_TO_BROKER``); ``decode`` checks the
tag against the direction before decoding any field, so a worker sending ``JobRequest`` is a
``ProtocolError``. ``encode`` trusts its (typed) input and is deterministic: equal messages give
equal bytes.
"""

from __future__ import annotations

import enum
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

import cbor2

from maelstrom_core._framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
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
from maelstrom_core.errors import InternalError, ProtocolError, VersionMismatch

__all__ = [
    "ALL_MESSAGES",
    "BROKER_TO_CLIENT",
    "BROKER_TO_FETCHER",
    "BROKER_TO_MONITOR",
    "BROKER_TO_PUSHER",
    "BROKER_TO_WORKER",
    "CLIENT_TO_BROKER",
    "DEFAULT_MAX_FRAME_SIZE",
    "FETCHER_TO_BROKER",
    "HELLO_REPLY",
    "HELLO_TO_BROKER",
    "MAX_SLOTS",
    "MONITOR_TO_BROKER",
    "PROTOCOL_VERSION",
    "PUSHER_TO_BROKER",
    "WORKER_TO_BROKER",
    "ArtifactTransferred",
    "BrokerStatistics",
    "CancelJob",
    "Direction",
    "EnqueueJob",
    "FetchRequest",
    "FetchResponse",
    "FrameDecoder",
    "GeneralError",
    "Hello",
    "HelloAccepted",
    "HelloRejected",
    "JobId",
    "JobRequest",
    "JobResponse",
    "JobStateCounts",
    "JobStatusUpdate",
    "Message",
    "PushRequest",
    "PushResponse",
    "RejectReason",
    "Role",
    "ShutDown",
    "StatisticsRequest",
    "StatisticsResponse",
    "StatisticsSample",
    "StopRequest",
    "TransferArtifact",
    "WorkerCancelJob",
    "WorkerJobResponse",
    "WorkerJobStatusUpdate",
    "decode",
    "encode",
    "encode_frame",
    "from_broker",
    "to_broker",
]

PROTOCOL_VERSION: Final = 1
MAX_SLOTS: Final = 1000

_U32: Final = 0xFFFF_FFFF
_U64: Final = 0xFFFF_FFFF_FFFF_FFFF


# --- identifiers and roles ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class JobId:
    """A job as the broker and workers know it: the client's id and that client's job id."""

    client_id: int
    client_job_id: int

    def __str__(self) -> str:
        return f"{self.client_id}.{self.client_job_id}"


class Role(enum.Enum):
    """What a connection to the broker is for; announced in ``Hello``."""

    CLIENT = "client"
    WORKER = "worker"
    MONITOR = "monitor"
    ARTIFACT_PUSH = "artifact-push"
    ARTIFACT_FETCH = "artifact-fetch"


class RejectReason(enum.Enum):
    VERSION = "version"  # the peer speaks another protocol version
    ROLE = "role"  # this listener does not take connections of the peer's role
    INVALID = "invalid"  # the first message was not a valid Hello


# --- handshake ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of every connection. ``slots`` is given by workers (1..1000) only."""

    TAG: ClassVar[int] = 0
    role: Role
    protocol_version: int = PROTOCOL_VERSION
    slots: int | None = None


@dataclass(frozen=True, slots=True)
class HelloAccepted:
    """The broker's answer to a good ``Hello``; ``peer_id`` is the id it gave the connection."""

    TAG: ClassVar[int] = 1
    peer_id: int
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class HelloRejected:
    """The broker's answer to a bad ``Hello``; it closes the connection after sending it."""

    TAG: ClassVar[int] = 2
    reason: RejectReason
    message: str
    protocol_version: int = PROTOCOL_VERSION


# --- client <-> broker ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRequest:
    TAG: ClassVar[int] = 10
    client_job_id: int
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Client to broker: drop this job (``--stop-after``, Ctrl-C). No response follows."""

    TAG: ClassVar[int] = 11
    client_job_id: int


@dataclass(frozen=True, slots=True)
class ArtifactTransferred:
    """Client to broker, after ``PushResponse`` said ok: the pushed artifact is in place."""

    TAG: ClassVar[int] = 12
    digest: bytes


@dataclass(frozen=True, slots=True)
class JobStatusUpdate:
    """Broker to client: progress of a job. ``state`` is never ``COMPLETE`` (that is
    ``JobResponse``); ``worker_id`` names the worker holding the job, and is required when
    ``state`` is ``RUNNING``."""

    TAG: ClassVar[int] = 13
    client_job_id: int
    state: JobState
    worker_id: int | None = None


@dataclass(frozen=True, slots=True)
class JobResponse:
    TAG: ClassVar[int] = 14
    client_job_id: int
    outcome: JobOutcome


@dataclass(frozen=True, slots=True)
class TransferArtifact:
    """Broker to client: push me this artifact on an artifact-push connection."""

    TAG: ClassVar[int] = 15
    digest: bytes


@dataclass(frozen=True, slots=True)
class GeneralError:
    """Broker to client: a fatal error; the broker closes the connection after it."""

    TAG: ClassVar[int] = 16
    message: str


# --- worker <-> broker ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueJob:
    TAG: ClassVar[int] = 20
    job_id: JobId
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class WorkerCancelJob:
    """Broker to worker: kill or drop the job. The worker sends nothing back for it."""

    TAG: ClassVar[int] = 21
    job_id: JobId


@dataclass(frozen=True, slots=True)
class WorkerJobStatusUpdate:
    """Worker to broker: ``WAITING_FOR_ARTIFACTS``, ``PENDING`` or ``RUNNING``."""

    TAG: ClassVar[int] = 22
    job_id: JobId
    state: JobState


@dataclass(frozen=True, slots=True)
class WorkerJobResponse:
    TAG: ClassVar[int] = 23
    job_id: JobId
    outcome: JobOutcome


@dataclass(frozen=True, slots=True)
class ShutDown:
    """Broker to worker: cancel every job and exit."""

    TAG: ClassVar[int] = 24
    reason: str


# --- monitor <-> broker ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobStateCounts:
    """How many of one client's jobs are in each ``JobState``."""

    waiting_for_artifacts: int = 0
    pending: int = 0
    running: int = 0
    complete: int = 0


@dataclass(frozen=True, slots=True)
class StatisticsSample:
    """Per-client job-state counts at one instant (``time`` in seconds since the epoch)."""

    time: float
    clients: tuple[tuple[int, JobStateCounts], ...] = ()  # (client id, counts), ids unique


@dataclass(frozen=True, slots=True)
class BrokerStatistics:
    worker_slots: tuple[tuple[int, int], ...] = ()  # (worker id, slots), ids unique
    num_clients: int = 0
    samples: tuple[StatisticsSample, ...] = ()  # oldest first


@dataclass(frozen=True, slots=True)
class StatisticsRequest:
    TAG: ClassVar[int] = 30


@dataclass(frozen=True, slots=True)
class StatisticsResponse:
    TAG: ClassVar[int] = 31
    statistics: BrokerStatistics


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Monitor to broker: exit."""

    TAG: ClassVar[int] = 32


# --- artifact side channels -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushRequest:
    """Pusher to broker; exactly ``size`` raw bytes follow the frame."""

    TAG: ClassVar[int] = 40
    digest: bytes
    size: int


@dataclass(frozen=True, slots=True)
class PushResponse:
    """Broker to pusher: ``error`` is ``None`` when the artifact was stored and verified."""

    TAG: ClassVar[int] = 41
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FetchRequest:
    TAG: ClassVar[int] = 42
    digest: bytes


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """Broker to fetcher: exactly one of ``size`` (then ``size`` raw bytes follow the frame)
    and ``error`` is set."""

    TAG: ClassVar[int] = 43
    size: int | None = None
    error: str | None = None


Message: TypeAlias = (
    Hello
    | HelloAccepted
    | HelloRejected
    | JobRequest
    | CancelJob
    | ArtifactTransferred
    | JobStatusUpdate
    | JobResponse
    | TransferArtifact
    | GeneralError
    | EnqueueJob
    | WorkerCancelJob
    | WorkerJobStatusUpdate
    | WorkerJobResponse
    | ShutDown
    | StatisticsRequest
    | StatisticsResponse
    | StopRequest
    | PushRequest
    | PushResponse
    | FetchRequest
    | FetchResponse
)

ALL_MESSAGES: Final[tuple[type[Message], ...]] = (
    Hello,
    HelloAccepted,
    HelloRejected,
    JobRequest,
    CancelJob,
    ArtifactTransferred,
    JobStatusUpdate,
    JobResponse,
    TransferArtifact,
    GeneralError,
    EnqueueJob,
    WorkerCancelJob,
    WorkerJobStatusUpdate,
    WorkerJobResponse,
    ShutDown,
    StatisticsRequest,
    StatisticsResponse,
    StopRequest,
    PushRequest,
    PushResponse,
    FetchRequest,
    FetchResponse,
)


# --- directions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Direction:
    """The messages one end of one kind of connection may send, e.g. "from worker to broker"."""

    name: str
    messages: frozenset[type[Message]]

    def allows(self, message_type: type[Message]) -> bool:
        return message_type in self.messages


def _direction(name: str, *messages: type[Message]) -> Direction:
    return Direction(name, frozenset(messages))


HELLO_TO_BROKER: Final = _direction("as the first message to the broker", Hello)
HELLO_REPLY: Final = _direction("as the broker's reply to Hello", HelloAccepted, HelloRejected)
CLIENT_TO_BROKER: Final = _direction(
    "from client to broker", JobRequest, CancelJob, ArtifactTransferred
)
BROKER_TO_CLIENT: Final = _direction(
    "from broker to client", JobStatusUpdate, JobResponse, TransferArtifact, GeneralError
)
WORKER_TO_BROKER: Final = _direction(
    "from worker to broker", WorkerJobStatusUpdate, WorkerJobResponse
)
BROKER_TO_WORKER: Final = _direction("from broker to worker", EnqueueJob, WorkerCancelJob, ShutDown)
MONITOR_TO_BROKER: Final = _direction("from monitor to broker", StatisticsRequest, StopRequest)
BROKER_TO_MONITOR: Final = _direction("from broker to monitor", StatisticsResponse)
PUSHER_TO_BROKER: Final = _direction("from artifact pusher to broker", PushRequest)
BROKER_TO_PUSHER: Final = _direction("from broker to artifact pusher", PushResponse)
FETCHER_TO_BROKER: Final = _direction("from artifact fetcher to broker", FetchRequest)
BROKER_TO_FETCHER: Final = _direction("from broker to artifact fetcher", FetchResponse)

_TO_BROKER: Final = {
    Role.CLIENT: CLIENT_TO_BROKER,
    Role.WORKER: WORKER_TO_BROKER,
    Role.MONITOR: MONITOR_TO_BROKER,
    Role.ARTIFACT_PUSH: PUSHER_TO_BROKER,
    Role.ARTIFACT_FETCH: FETCHER_TO_BROKER,
}
_FROM_BROKER: Final = {
    Role.CLIENT: BROKER_TO_CLIENT,
    Role.WORKER: BROKER_TO_WORKER,
    Role.MONITOR: BROKER_TO_MONITOR,
    Role.ARTIFACT_PUSH: BROKER_TO_PUSHER,
    Role.ARTIFACT_FETCH: BROKER_TO_FETCHER,
}


def to_broker(role: Role) -> Direction:
    """What a peer in ``role`` may send the broker after the handshake."""
    return _TO_BROKER[role]


def from_broker(role: Role) -> Direction:
    """What the broker may send a peer in ``role`` after the handshake."""
    return _FROM_BROKER[role]


# --- encoding -------------------------------------------------------------------------------
# One direct function per type: a generic dataclass walk would cost several times more per
# message, and the field order on the wire must not silently follow a reordering in _job.py.


def _enc_layer(layer: LayerRef) -> list[Any]:
    return [layer.digest, layer.type.value]


def _enc_mount(mount: JobMount) -> list[Any]:
    if type(mount) is BindMount:
        return [0, mount.mount_point, mount.local_path, mount.read_only]
    if type(mount) is DevicesMount:
        return [1, sorted(device.value for device in mount.devices)]
    return [_MOUNT_KIND[type(mount)], mount.mount_point]  # type: ignore[union-attr]


def _enc_spec(spec: JobSpec) -> list[Any]:
    tty = spec.allocate_tty
    return [
        spec.program,
        [[layer.digest, layer.type.value] for layer in spec.layers],
        spec.arguments,
        spec.environment,
        [_enc_mount(mount) for mount in spec.mounts],
        spec.network.value,
        spec.enable_writable_file_system,
        spec.working_directory,
        spec.user,
        spec.group,
        spec.timeout,
        None if spec.estimated_duration is None else float(spec.estimated_duration),
        spec.priority,
        None if tty is None else [tty.window_size.rows, tty.window_size.columns],
    ]


def _enc_status(status: ExitStatus) -> list[Any]:
    if type(status) is ExitCode:
        return [0, status.code]
    return [1, status.signal]  # type: ignore[union-attr]


def _enc_outcome(outcome: JobOutcome) -> list[Any]:
    if type(outcome) is JobCompleted:
        return [
            0,
            _enc_status(outcome.status),
            [outcome.stdout.data, outcome.stdout.truncated],
            [outcome.stderr.data, outcome.stderr.truncated],
            float(outcome.duration),
        ]
    if type(outcome) is JobTimedOut:
        return [
            1,
            [outcome.stdout.data, outcome.stdout.truncated],
            [outcome.stderr.data, outcome.stderr.truncated],
            float(outcome.duration),
        ]
    return [2, outcome.kind.value, outcome.message]  # type: ignore[union-attr]


def _enc_job_id(job_id: JobId) -> list[int]:
    return [job_id.client_id, job_id.client_job_id]


def _enc_statistics(stats: BrokerStatistics) -> list[Any]:
    return [
        [[worker, slots] for worker, slots in stats.worker_slots],
        stats.num_clients,
        [
            [
                float(sample.time),
                [
                    [cid, c.waiting_for_artifacts, c.pending, c.running, c.complete]
                    for cid, c in sample.clients
                ],
            ]
            for sample in stats.samples
        ],
    ]


_MOUNT_KIND: Final[dict[type, int]] = {
    BindMount: 0,
    DevicesMount: 1,
    DevptsMount: 2,
    MqueueMount: 3,
    ProcMount: 4,
    SysMount: 5,
    TmpMount: 6,
}

# Each takes the message and returns its CBOR array, tag first. The lambdas' parameter is Any:
# the table is keyed by the exact class, so the right encoder always meets the right type.
_ENCODERS: Final[dict[type, Callable[[Any], list[Any]]]] = {
    Hello: lambda m: [0, m.protocol_version, m.role.value, m.slots],
    HelloAccepted: lambda m: [1, m.protocol_version, m.peer_id],
    HelloRejected: lambda m: [2, m.protocol_version, m.reason.value, m.message],
    JobRequest: lambda m: [10, m.client_job_id, _enc_spec(m.spec)],
    CancelJob: lambda m: [11, m.client_job_id],
    ArtifactTransferred: lambda m: [12, m.digest],
    JobStatusUpdate: lambda m: [13, m.client_job_id, m.state.value, m.worker_id],
    JobResponse: lambda m: [14, m.client_job_id, _enc_outcome(m.outcome)],
    TransferArtifact: lambda m: [15, m.digest],
    GeneralError: lambda m: [16, m.message],
    EnqueueJob: lambda m: [20, _enc_job_id(m.job_id), _enc_spec(m.spec)],
    WorkerCancelJob: lambda m: [21, _enc_job_id(m.job_id)],
    WorkerJobStatusUpdate: lambda m: [22, _enc_job_id(m.job_id), m.state.value],
    WorkerJobResponse: lambda m: [23, _enc_job_id(m.job_id), _enc_outcome(m.outcome)],
    ShutDown: lambda m: [24, m.reason],
    StatisticsRequest: lambda m: [30],
    StatisticsResponse: lambda m: [31, _enc_statistics(m.statistics)],
    StopRequest: lambda m: [32],
    PushRequest: lambda m: [40, m.digest, m.size],
    PushResponse: lambda m: [41, m.error],
    FetchRequest: lambda m: [42, m.digest],
    FetchResponse: lambda m: [43, m.size, m.error],
}


def encode(message: Message) -> bytes:
    """The CBOR payload of ``message`` (frame it with ``encode_frame``). Deterministic."""
    try:
        encoder = _ENCODERS[type(message)]
    except KeyError:
        raise InternalError(f"not a protocol message: {type(message).__name__}") from None
    try:
        return cbor2.dumps(encoder(message))
    except (AttributeError, TypeError, ValueError, cbor2.CBOREncodeError) as err:
        raise InternalError(f"cannot encode {type(message).__name__}: {err}") from err


# --- decoding -------------------------------------------------------------------------------


class _Invalid(Exception):
    """A field failed validation. Raised at the leaf, it collects path segments (innermost
    first) on its way out, so the success path never formats a field path."""

    def __init__(self, segment: str, detail: str) -> None:
        super().__init__(detail)
        self.segments = [segment] if segment else []
        self.detail = detail

    def within(self, segment: str) -> _Invalid:
        self.segments.append(segment)
        return self

    def path(self) -> str:
        return ".".join(reversed(self.segments))


def _describe(value: object) -> str:
    kind = type(value)
    if kind is list:
        return f"an array of {len(value)}"  # type: ignore[arg-type]
    return _TYPE_NAMES.get(kind, kind.__name__)


_TYPE_NAMES: Final[dict[type, str]] = {
    int: "an integer",
    bool: "a boolean",
    str: "text",
    bytes: "bytes",
    float: "a float",
    dict: "a map",
    type(None): "null",
}


def _array(value: object, size: int, name: str) -> list[Any]:
    if type(value) is not list:
        raise _Invalid(name, f"expected an array of {size}, got {_describe(value)}")
    if len(value) != size:
        raise _Invalid(name, f"expected an array of {size}, got an array of {len(value)}")
    return value


def _list(value: object, name: str) -> list[Any]:
    if type(value) is not list:
        raise _Invalid(name, f"expected an array, got {_describe(value)}")
    return value


def _int(value: object, low: int, high: int, name: str) -> int:
    if type(value) is not int:
        raise _Invalid(name, f"expected an integer, got {_describe(value)}")
    if not low <= value <= high:
        raise _Invalid(name, f"expected an integer in {low}..{high}, got {value}")
    return value


def _u32(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= _U32:
        return _int(value, 0, _U32, name)
    return value


def _u64(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= _U64:
        return _int(value, 0, _U64, name)
    return value


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise _Invalid(name, f"expected a boolean, got {_describe(value)}")
    return value


def _text(value: object, name: str) -> str:
    if type(value) is not str:
        raise _Invalid(name, f"expected text, got {_describe(value)}")
    return value


def _ctext(value: object, name: str) -> str:
    """Text that ends up as a C string in the launcher, where a NUL would cut it short."""
    if type(value) is not str:
        raise _Invalid(name, f"expected text, got {_describe(value)}")
    if "\0" in value:
        raise _Invalid(name, "contains a NUL character")
    return value


def _opt_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _bytes(value: object, name: str) -> bytes:
    if type(value) is not bytes:
        raise _Invalid(name, f"expected bytes, got {_describe(value)}")
    return value


def _digest(value: object, name: str) -> bytes:
    if type(value) is not bytes:
        raise _Invalid(name, f"expected 32 bytes, got {_describe(value)}")
    if len(value) != 32:
        raise _Invalid(name, f"expected 32 bytes, got {len(value)}")
    return value


def _seconds(value: object, name: str) -> float:
    if type(value) is not float:
        raise _Invalid(name, f"expected a float, got {_describe(value)}")
    if not (math.isfinite(value) and value >= 0.0):
        raise _Invalid(name, f"expected a finite number of seconds >= 0, got {value}")
    return value


def _enum_decoder(
    enum_type: type[enum.Enum],
) -> Callable[[object, str], Any]:
    table = {member.value: member for member in enum_type}
    choices = ", ".join(repr(v) for v in table)

    def decode_member(value: object, name: str) -> Any:
        if type(value) is not str:
            raise _Invalid(name, f"expected text, got {_describe(value)}")
        member = table.get(value)
        if member is None:
            raise _Invalid(name, f"unknown value {value!r} (expected one of {choices})")
        return member

    return decode_member


_ARTIFACT_TYPES: Final = {member.value: member for member in ArtifactType}
_role: Final = _enum_decoder(Role)
_reason: Final = _enum_decoder(RejectReason)
_artifact_type: Final = _enum_decoder(ArtifactType)
_network: Final = _enum_decoder(Network)
_device: Final = _enum_decoder(Device)
_error_kind: Final = _enum_decoder(JobErrorKind)
_job_state: Final = _enum_decoder(JobState)


def _status_state(value: object, name: str) -> JobState:
    state: JobState = _job_state(value, name)
    if state is JobState.COMPLETE:
        raise _Invalid(name, "a status update cannot say 'complete' (that is a job response)")
    return state


def _str_tuple(value: object, name: str) -> tuple[str, ...]:
    items = _list(value, name)
    for index, item in enumerate(items):
        if type(item) is not str or "\0" in item:
            try:
                _ctext(item, "")
            except _Invalid as err:
                raise err.within(f"{name}[{index}]") from None
    return tuple(items)


def _dec_layer(value: object) -> LayerRef:
    fields = _array(value, 2, "")
    return LayerRef(_digest(fields[0], "digest"), _artifact_type(fields[1], "type"))


def _dec_mount(value: object) -> JobMount:
    items = _list(value, "")
    if not items:
        raise _Invalid("", "expected a mount kind first, got an empty array")
    kind = _int(items[0], 0, 6, "kind")
    if kind == 0:
        fields = _array(value, 4, "")
        return BindMount(
            _ctext(fields[1], "mount_point"),
            _ctext(fields[2], "local_path"),
            _bool(fields[3], "read_only"),
        )
    fields = _array(value, 2, "")
    if kind == 1:
        names = _list(fields[1], "devices")
        devices = set()
        for index, name in enumerate(names):
            try:
                device = _device(name, "")
            except _Invalid as err:
                raise err.within(f"devices[{index}]") from None
            if device in devices:
                raise _Invalid(f"devices[{index}]", f"duplicate device {name!r}")
            devices.add(device)
        return DevicesMount(frozenset(devices))
    mount_point = _ctext(fields[1], "mount_point")
    if kind == 2:
        return DevptsMount(mount_point)
    if kind == 3:
        return MqueueMount(mount_point)
    if kind == 4:
        return ProcMount(mount_point)
    if kind == 5:
        return SysMount(mount_point)
    return TmpMount(mount_point)


def _dec_spec(value: object) -> JobSpec:
    f = _array(value, 14, "")
    layers = []
    for index, item in enumerate(_list(f[1], "layers")):
        # Inline fast path for the common case; the checked decoder explains any failure.
        if (
            type(item) is list
            and len(item) == 2
            and type(item[0]) is bytes
            and len(item[0]) == 32
            and type(item[1]) is str
            and (kind := _ARTIFACT_TYPES.get(item[1])) is not None
        ):
            layers.append(LayerRef(item[0], kind))
            continue
        try:
            layers.append(_dec_layer(item))
        except _Invalid as err:
            raise err.within(f"layers[{index}]") from None
    mounts = []
    for index, item in enumerate(_list(f[4], "mounts")):
        try:
            mounts.append(_dec_mount(item))
        except _Invalid as err:
            raise err.within(f"mounts[{index}]") from None
    timeout = f[10]
    estimate = f[11]
    tty = f[13]
    if tty is not None:
        size = _array(tty, 2, "allocate_tty")
        tty = TtySpec(
            WindowSize(
                _int(size[0], 0, 0xFFFF, "allocate_tty.rows"),
                _int(size[1], 0, 0xFFFF, "allocate_tty.columns"),
            )
        )
    return JobSpec(
        program=_ctext(f[0], "program"),
        layers=tuple(layers),
        arguments=_str_tuple(f[2], "arguments"),
        environment=_str_tuple(f[3], "environment"),
        mounts=tuple(mounts),
        network=_network(f[5], "network"),
        enable_writable_file_system=_bool(f[6], "enable_writable_file_system"),
        working_directory=_ctext(f[7], "working_directory"),
        user=_u32(f[8], "user"),
        group=_u32(f[9], "group"),
        timeout=None if timeout is None else _u32(timeout, "timeout"),
        estimated_duration=None if estimate is None else _seconds(estimate, "estimated_duration"),
        priority=_int(f[12], -128, 127, "priority"),
        allocate_tty=tty,
    )


def _dec_output(value: object, name: str) -> Output:
    if type(value) is list and len(value) == 2:
        data, truncated = value
        if type(data) is bytes and type(truncated) is int and 0 <= truncated <= _U64:
            return Output(data, truncated)
    try:
        fields = _array(value, 2, "")
        return Output(_bytes(fields[0], "data"), _u64(fields[1], "truncated"))
    except _Invalid as err:
        raise err.within(name) from None


def _dec_outcome(value: object) -> JobOutcome:
    items = _list(value, "")
    if not items:
        raise _Invalid("", "expected an outcome kind first, got an empty array")
    kind = _int(items[0], 0, 2, "kind")
    if kind == 0:
        f = _array(value, 5, "")
        status_fields = _list(f[1], "status")
        if not status_fields:
            raise _Invalid("status", "expected an exit status kind first, got an empty array")
        status_kind = _int(status_fields[0], 0, 1, "status.kind")
        status_fields = _array(status_fields, 2, "status")
        status: ExitStatus
        if status_kind == 0:
            status = ExitCode(_int(status_fields[1], 0, 255, "status.code"))
        else:
            status = Signaled(_int(status_fields[1], 1, 127, "status.signal"))
        return JobCompleted(
            status,
            _dec_output(f[2], "stdout"),
            _dec_output(f[3], "stderr"),
            _seconds(f[4], "duration"),
        )
    if kind == 1:
        f = _array(value, 4, "")
        return JobTimedOut(
            _dec_output(f[1], "stdout"), _dec_output(f[2], "stderr"), _seconds(f[3], "duration")
        )
    f = _array(value, 3, "")
    return JobError(_error_kind(f[1], "kind"), _text(f[2], "message"))


def _dec_job_id(value: object) -> JobId:
    fields = _array(value, 2, "job_id")
    return JobId(_u32(fields[0], "job_id.client_id"), _u32(fields[1], "job_id.client_job_id"))


def _nested(decoder: Callable[[object], Any], value: object, name: str) -> Any:
    try:
        return decoder(value)
    except _Invalid as err:
        raise err.within(name) from None


def _dec_statistics(value: object) -> BrokerStatistics:
    f = _array(value, 3, "")
    workers = []
    seen: set[int] = set()
    for index, item in enumerate(_list(f[0], "worker_slots")):
        where = f"worker_slots[{index}]"
        pair = _array(item, 2, where)
        worker = _u32(pair[0], f"{where}.worker_id")
        if worker in seen:
            raise _Invalid(f"{where}.worker_id", f"duplicate worker id {worker}")
        seen.add(worker)
        workers.append((worker, _int(pair[1], 1, MAX_SLOTS, f"{where}.slots")))
    samples = []
    for index, item in enumerate(_list(f[2], "samples")):
        where = f"samples[{index}]"
        sample = _array(item, 2, where)
        clients = []
        seen = set()
        for cindex, row in enumerate(_list(sample[1], f"{where}.clients")):
            cwhere = f"{where}.clients[{cindex}]"
            counts = _array(row, 5, cwhere)
            client = _u32(counts[0], f"{cwhere}.client_id")
            if client in seen:
                raise _Invalid(f"{cwhere}.client_id", f"duplicate client id {client}")
            seen.add(client)
            clients.append(
                (
                    client,
                    JobStateCounts(
                        _u64(counts[1], f"{cwhere}.waiting_for_artifacts"),
                        _u64(counts[2], f"{cwhere}.pending"),
                        _u64(counts[3], f"{cwhere}.running"),
                        _u64(counts[4], f"{cwhere}.complete"),
                    ),
                )
            )
        samples.append(StatisticsSample(_seconds(sample[0], f"{where}.time"), tuple(clients)))
    return BrokerStatistics(tuple(workers), _u32(f[1], "num_clients"), tuple(samples))


def _dec_hello(f: list[Any]) -> Hello:
    # The version is checked before anything else: a peer of another version may lay out the
    # remaining fields differently, and must hear "version mismatch", not "bad field".
    if len(f) < 2:
        raise _Invalid("", f"expected an array of 4, got an array of {len(f)}")
    version = _u32(f[1], "protocol_version")
    if version != PROTOCOL_VERSION:
        raise _Invalid(
            "protocol_version", f"peer speaks protocol {version}, we speak {PROTOCOL_VERSION}"
        )
    _array(f, 4, "")
    role = _role(f[2], "role")
    slots = f[3]
    if role is Role.WORKER:
        slots = _int(slots, 1, MAX_SLOTS, "slots")
    elif slots is not None:
        raise _Invalid("slots", f"only a worker gives slots, not a {role.value}")
    return Hello(role, version, slots)


def _dec_status_update(f: list[Any]) -> JobStatusUpdate:
    state = _status_state(f[2], "state")
    worker = f[3]
    if worker is not None:
        worker = _u32(worker, "worker_id")
    elif state is JobState.RUNNING:
        raise _Invalid("worker_id", "a running job must name its worker")
    return JobStatusUpdate(_u32(f[1], "client_job_id"), state, worker)


def _dec_fetch_response(f: list[Any]) -> FetchResponse:
    size, error = f[1], f[2]
    if (size is None) == (error is None):
        raise _Invalid("", "expected exactly one of size and error")
    return FetchResponse(
        None if size is None else _u64(size, "size"),
        None if error is None else _text(error, "error"),
    )


# tag -> (class, array length including the tag, decoder of the whole array)
_DECODERS: Final[dict[int, tuple[type[Message], int, Callable[[list[Any]], Message]]]] = {
    0: (Hello, 4, _dec_hello),
    1: (
        HelloAccepted,
        3,
        lambda f: HelloAccepted(_u32(f[2], "peer_id"), _u32(f[1], "protocol_version")),
    ),
    2: (
        HelloRejected,
        4,
        lambda f: HelloRejected(
            _reason(f[2], "reason"), _text(f[3], "message"), _u32(f[1], "protocol_version")
        ),
    ),
    10: (
        JobRequest,
        3,
        lambda f: JobRequest(_u32(f[1], "client_job_id"), _nested(_dec_spec, f[2], "spec")),
    ),
    11: (CancelJob, 2, lambda f: CancelJob(_u32(f[1], "client_job_id"))),
    12: (ArtifactTransferred, 2, lambda f: ArtifactTransferred(_digest(f[1], "digest"))),
    13: (JobStatusUpdate, 4, _dec_status_update),
    14: (
        JobResponse,
        3,
        lambda f: JobResponse(_u32(f[1], "client_job_id"), _nested(_dec_outcome, f[2], "outcome")),
    ),
    15: (TransferArtifact, 2, lambda f: TransferArtifact(_digest(f[1], "digest"))),
    16: (GeneralError, 2, lambda f: GeneralError(_text(f[1], "message"))),
    20: (
        EnqueueJob,
        3,
        lambda f: EnqueueJob(_dec_job_id(f[1]), _nested(_dec_spec, f[2], "spec")),
    ),
    21: (WorkerCancelJob, 2, lambda f: WorkerCancelJob(_dec_job_id(f[1]))),
    22: (
        WorkerJobStatusUpdate,
        3,
        lambda f: WorkerJobStatusUpdate(_dec_job_id(f[1]), _status_state(f[2], "state")),
    ),
    23: (
        WorkerJobResponse,
        3,
        lambda f: WorkerJobResponse(_dec_job_id(f[1]), _nested(_dec_outcome, f[2], "outcome")),
    ),
    24: (ShutDown, 2, lambda f: ShutDown(_text(f[1], "reason"))),
    30: (StatisticsRequest, 1, lambda f: StatisticsRequest()),
    31: (
        StatisticsResponse,
        2,
        lambda f: StatisticsResponse(_nested(_dec_statistics, f[1], "statistics")),
    ),
    32: (StopRequest, 1, lambda f: StopRequest()),
    40: (
        PushRequest,
        3,
        lambda f: PushRequest(_digest(f[1], "digest"), _u64(f[2], "size")),
    ),
    41: (PushResponse, 2, lambda f: PushResponse(_opt_text(f[1], "error"))),
    42: (FetchRequest, 2, lambda f: FetchRequest(_digest(f[1], "digest"))),
    43: (FetchResponse, 3, _dec_fetch_response),
}

# Tags cbor2 would turn into Python objects (dates, bignums, sets, shared references, regular
# expressions, ...). We use none of them, so each is refused before its object is built.
_BUILTIN_CBOR_TAGS: Final = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258)
_MORE_BUILTIN_CBOR_TAGS: Final = (260, 261, 1004, 55799)


class _RefusedTag(Exception):
    pass


def _refuse(*_args: object) -> Any:
    raise _RefusedTag


_SEMANTIC_REFUSALS: Final = dict.fromkeys(_BUILTIN_CBOR_TAGS + _MORE_BUILTIN_CBOR_TAGS, _refuse)

# Our deepest message is 6 arrays deep (a devices mount inside a spec inside a job request);
# anything much deeper is garbage and must not cost recursion.
_MAX_DEPTH: Final = 16

# A CBOR item can be one byte (an empty array), while the Python object it becomes costs ~60.
# Big frames are therefore walked first and refused past this many items, so a 16 MiB frame of
# empty arrays cannot cost a gigabyte. Small frames skip the walk: their worst case is small.
MAX_ITEMS: Final = 1 << 20
_WALK_THRESHOLD: Final = 64 * 1024


def _check_item_count(data: bytes | bytearray | memoryview, limit: int) -> None:
    """Count the CBOR items in ``data`` by their heads alone; raise past ``limit``.

    Malformed input is left for cbor2 to report: this only bounds the work it will do.
    """
    end = len(data)
    pos = 0
    pending = 1
    count = 0
    while pending and pos < end:
        initial = data[pos]
        pos += 1
        major = initial >> 5
        info = initial & 0x1F
        if info < 24:
            argument = info
        elif info <= 27:
            width = 1 << (info - 24)
            argument = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        else:
            return  # indefinite or reserved: cbor2 refuses it
        pending -= 1
        count += 1
        if count > limit:
            raise ProtocolError(f"message: more than {limit} CBOR items in one frame")
        if major == 2 or major == 3:
            pos += argument
        elif major == 4:
            pending += argument
        elif major == 5:
            pending += 2 * argument
        elif major == 6:
            pending += 1


def decode(payload: bytes | bytearray | memoryview, direction: Direction | None = None) -> Message:
    """Decode one frame's payload into a message.

    Args:
        payload: the bytes of exactly one CBOR item.
        direction: if given, a message type it does not allow is refused before its fields
            are decoded.

    Raises:
        VersionMismatch: a ``Hello`` of another protocol version.
        ProtocolError: anything else that is not exactly one valid message; the message names
            the message type and field.
    """
    if len(payload) > _WALK_THRESHOLD:
        _check_item_count(payload, MAX_ITEMS)
    stream = io.BytesIO(payload)
    try:
        value = cbor2.CBORDecoder(
            stream,
            tag_hook=_refuse,
            semantic_decoders=_SEMANTIC_REFUSALS,
            max_depth=_MAX_DEPTH,
            allow_indefinite=False,
            strict_hashable_types=True,
        ).decode()
    except Exception as err:
        # cbor2 wraps our refusal; anything it raises on hostile input (including a
        # MemoryError or RecursionError from an older cbor2) means "not a valid message".
        raise ProtocolError(f"message: not valid CBOR: {_cbor_error(err)}") from None
    if stream.tell() != len(payload):
        raise ProtocolError(
            f"message: {len(payload) - stream.tell()} bytes of trailing data after the CBOR item"
        )
    if type(value) is not list or not value:
        raise ProtocolError(
            f"message: expected an array starting with a tag, got {_describe(value)}"
        )
    tag = value[0]
    entry = _DECODERS.get(tag) if type(tag) is int else None
    if entry is None:
        raise ProtocolError(f"message: unknown message tag {tag!r}")
    cls, size, decoder = entry
    name = cls.__name__
    if direction is not None and cls not in direction.messages:
        raise ProtocolError(f"{name} is not allowed {direction.name}")
    if len(value) != size and cls is not Hello:  # Hello checks its version before its size
        raise ProtocolError(f"{name}: expected an array of {size}, got an array of {len(value)}")
    try:
        return decoder(value)
    except _Invalid as err:
        path = err.path()
        where = f"{name}.{path}" if path else name
        if cls is Hello and err.segments == ["protocol_version"] and "speaks" in err.detail:
            raise VersionMismatch(f"{where}: {err.detail}") from None
        raise ProtocolError(f"{where}: {err.detail}") from None


def _cbor_error(err: Exception) -> str:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, _RefusedTag):
            return "uses a CBOR tag, which this protocol never does"
        seen = seen.__cause__ or seen.__context__
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]
