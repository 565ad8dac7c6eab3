"""Messages: round trips of every type, determinism, strict decoding, directions, fuzzing."""

from __future__ import annotations

import copy
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maelstrom_core import proto
from maelstrom_core._job import (
    ArtifactType,
    Device,
    DevicesMount,
    ExitCode,
    JobCompleted,
    JobSpec,
    JobState,
    LayerRef,
    Output,
    ProcMount,
)
from maelstrom_core.errors import InternalError, ProtocolError, VersionMismatch
from tests._helpers import strategies as mst

ALL_DIRECTIONS = [
    proto.HELLO_TO_BROKER,
    proto.HELLO_REPLY,
    proto.CLIENT_TO_BROKER,
    proto.BROKER_TO_CLIENT,
    proto.WORKER_TO_BROKER,
    proto.BROKER_TO_WORKER,
    proto.MONITOR_TO_BROKER,
    proto.BROKER_TO_MONITOR,
    proto.PUSHER_TO_BROKER,
    proto.BROKER_TO_PUSHER,
    proto.FETCHER_TO_BROKER,
    proto.BROKER_TO_FETCHER,
]


def test_strategies_cover_every_message() -> None:
    assert set(mst.MESSAGE_STRATEGIES) == set(proto.ALL_MESSAGES)
    assert len({cls.TAG for cls in proto.ALL_MESSAGES}) == len(proto.ALL_MESSAGES)


def test_every_message_belongs_to_exactly_one_direction() -> None:
    for cls in proto.ALL_MESSAGES:
        assert sum(d.allows(cls) for d in ALL_DIRECTIONS) == 1, cls


@pytest.mark.parametrize("cls", proto.ALL_MESSAGES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_round_trip_every_message(cls: type, data: st.DataObject) -> None:
    message = data.draw(mst.MESSAGE_STRATEGIES[cls])
    payload = proto.encode(message)
    decoded = proto.decode(payload)
    assert decoded == message
    assert type(decoded) is cls
    # Deterministic: an equal message built independently encodes to the same bytes.
    assert proto.encode(decoded) == payload
    assert proto.encode(copy.deepcopy(message)) == payload
    # The first item on the wire is the class's tag.
    assert cbor2.loads(payload)[0] == cls.TAG


def test_devices_encode_in_a_fixed_order() -> None:
    a = frozenset([Device.ZERO, Device.NULL, Device.TTY, Device.FUSE])
    b = frozenset(sorted(a, key=lambda d: d.value, reverse=True))
    spec_a = JobSpec("p", (), mounts=(DevicesMount(a),))
    spec_b = JobSpec("p", (), mounts=(DevicesMount(b),))
    assert proto.encode(proto.JobRequest(1, spec_a)) == proto.encode(proto.JobRequest(1, spec_b))


def test_integral_durations_encode_as_floats() -> None:
    spec = JobSpec("p", (), estimated_duration=3)
    decoded = proto.decode(proto.encode(proto.JobRequest(0, spec)))
    assert isinstance(decoded, proto.JobRequest)
    assert type(decoded.spec.estimated_duration) is float


def test_job_id_display_and_order() -> None:
    assert str(proto.JobId(3, 17)) == "3.17"
    assert sorted([proto.JobId(2, 0), proto.JobId(1, 5)]) == [proto.JobId(1, 5), proto.JobId(2, 0)]


def test_encode_refuses_non_messages() -> None:
    with pytest.raises(InternalError, match="not a protocol message: str"):
        proto.encode("hello")  # type: ignore[arg-type]


# --- strict decoding ------------------------------------------------------------------------

DIGEST = bytes(range(32))
SPEC = JobSpec(
    "/bin/true",
    tuple(LayerRef(DIGEST, ArtifactType.TAR) for _ in range(3)),
    arguments=("a", "b"),
    mounts=(ProcMount("/proc"), DevicesMount(frozenset([Device.NULL]))),
)
COMPLETED = JobCompleted(ExitCode(0), Output(b"out"), Output(b""), 0.5)


def raw(message: proto.Message) -> Any:
    return cbor2.loads(proto.encode(message))


def mutated(message: proto.Message, change: Callable[[Any], object]) -> bytes:
    value = raw(message)
    change(value)
    return cbor2.dumps(value)


def setitem(path: tuple[int, ...], new: object) -> Callable[[Any], None]:
    def change(value: Any) -> None:
        for index in path[:-1]:
            value = value[index]
        value[path[-1]] = new

    return change


BAD: list[tuple[str, bytes, str]] = [
    (
        "short digest",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 1, 2, 0), b"abcde")),
        r"^JobRequest\.spec\.layers\[2\]\.digest: expected 32 bytes, got 5$",
    ),
    (
        "digest as text",
        mutated(proto.TransferArtifact(DIGEST), setitem((1,), "ab")),
        r"^TransferArtifact\.digest: expected 32 bytes, got text$",
    ),
    (
        "message arity",
        cbor2.dumps([11, 1, 2]),
        r"^CancelJob: expected an array of 2, got an array of 3$",
    ),
    (
        "spec arity",
        mutated(proto.JobRequest(1, SPEC), lambda v: v[2].pop()),
        r"^JobRequest\.spec: expected an array of 14, got an array of 13$",
    ),
    ("unknown tag", cbor2.dumps([99]), r"^message: unknown message tag 99$"),
    ("text tag", cbor2.dumps(["Hello"]), r"^message: unknown message tag 'Hello'$"),
    (
        "not an array",
        cbor2.dumps(5),
        r"^message: expected an array starting with a tag, got an integer$",
    ),
    ("empty array", cbor2.dumps([]), r"^message: expected an array starting with a tag"),
    (
        "u32 overflow",
        cbor2.dumps([11, 1 << 32]),
        r"^CancelJob\.client_job_id: expected an integer in 0\.\.4294967295, got 4294967296$",
    ),
    ("negative u32", cbor2.dumps([11, -1]), r"^CancelJob\.client_job_id: expected an integer in"),
    (
        "bool is not an int",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 8), True)),
        r"^JobRequest\.spec\.user: expected an integer, got a boolean$",
    ),
    (
        "priority i8",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 12), 128)),
        r"^JobRequest\.spec\.priority: expected an integer in -128\.\.127, got 128$",
    ),
    (
        "bad enum",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 5), "wifi")),
        r"^JobRequest\.spec\.network: unknown value 'wifi' \(expected one of",
    ),
    (
        "enum as list",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 1, 0, 1), ["tar"])),
        r"^JobRequest\.spec\.layers\[0\]\.type: expected text, got an array of 1$",
    ),
    (
        "nul in argument",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 2, 1), "b\0c")),
        r"^JobRequest\.spec\.arguments\[1\]: contains a NUL character$",
    ),
    (
        "argument not text",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 2, 0), b"x")),
        r"^JobRequest\.spec\.arguments\[0\]: expected text, got bytes$",
    ),
    (
        "unknown mount kind",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 4, 0, 0), 9)),
        r"^JobRequest\.spec\.mounts\[0\]\.kind: expected an integer in 0\.\.6, got 9$",
    ),
    (
        "duplicate device",
        mutated(proto.JobRequest(1, SPEC), setitem((2, 4, 1, 1), ["null", "null"])),
        r"^JobRequest\.spec\.mounts\[1\]\.devices\[1\]: duplicate device 'null'$",
    ),
    (
        "worker job id",
        cbor2.dumps([21, [1]]),
        r"^WorkerCancelJob\.job_id: expected an array of 2, got an array of 1$",
    ),
    (
        "nan duration",
        mutated(proto.JobResponse(1, COMPLETED), setitem((2, 4), math.nan)),
        r"^JobResponse\.outcome\.duration: expected a finite number of seconds >= 0, got nan$",
    ),
    (
        "negative truncated",
        mutated(proto.JobResponse(1, COMPLETED), setitem((2, 2, 1), -3)),
        r"^JobResponse\.outcome\.stdout\.truncated: expected an integer in 0\.\.",
    ),
    (
        "exit code range",
        mutated(proto.JobResponse(1, COMPLETED), setitem((2, 1, 1), 256)),
        r"^JobResponse\.outcome\.status\.code: expected an integer in 0\.\.255, got 256$",
    ),
    (
        "complete is not a status",
        cbor2.dumps([13, 1, "complete", None]),
        r"^JobStatusUpdate\.state: a status update cannot say 'complete'",
    ),
    (
        "running needs a worker",
        cbor2.dumps([13, 1, "running", None]),
        r"^JobStatusUpdate\.worker_id: a running job must name its worker$",
    ),
    (
        "worker hello without slots",
        cbor2.dumps([0, proto.PROTOCOL_VERSION, "worker", None]),
        r"^Hello\.slots: expected an integer, got null$",
    ),
    (
        "too many slots",
        cbor2.dumps([0, proto.PROTOCOL_VERSION, "worker", 1001]),
        r"^Hello\.slots: expected an integer in 1\.\.1000, got 1001$",
    ),
    (
        "client hello with slots",
        cbor2.dumps([0, proto.PROTOCOL_VERSION, "client", 4]),
        r"^Hello\.slots: only a worker gives slots, not a client$",
    ),
    (
        "fetch response with both",
        cbor2.dumps([43, 5, "oops"]),
        r"^FetchResponse: expected exactly one of size and error$",
    ),
    (
        "duplicate worker in statistics",
        cbor2.dumps([31, [[[1, 2], [1, 3]], 0, []]]),
        r"^StatisticsResponse\.statistics\.worker_slots\[1\]\.worker_id: duplicate worker id 1$",
    ),
    (
        "trailing data",
        proto.encode(proto.CancelJob(1)) + b"\x00",
        r"^message: 1 bytes of trailing data after the CBOR item$",
    ),
    (
        "map",
        cbor2.dumps({"tag": 11}),
        r"^message: expected an array starting with a tag, got a map$",
    ),
    ("invalid utf-8", b"\x82\x10\x62\xff\xfe", r"^message: not valid CBOR"),
    ("empty payload", b"", r"^message: not valid CBOR"),
    ("truncated item", proto.encode(proto.GeneralError("hello"))[:-2], r"^message: not valid CBOR"),
    ("indefinite array", b"\x9f\x0b\x01\xff", r"^message: not valid CBOR"),
    ("deep nesting", b"\x81" * 100_000 + b"\x00", r"^message: not valid CBOR"),
    (
        "huge byte string",
        b"\x5b" + (1 << 60).to_bytes(8, "big") + b"ab",
        r"^message: not valid CBOR",
    ),
    ("huge array", b"\x9b" + (1 << 62).to_bytes(8, "big") + b"\x00", r"^message: not valid CBOR"),
    ("huge map", b"\xbb" + (1 << 62).to_bytes(8, "big") + b"\x00", r"^message: not valid CBOR"),
    ("int map keys", b"\x82\x10\xa1\x01\x02", r"^message: not valid CBOR"),
    ("undefined", b"\x82\x10\xf7", r"^GeneralError\.message: expected text, got UndefinedType$"),
]

TAGGED = [
    (0, cbor2.dumps("2020-01-01T00:00:00Z")),  # date/time
    (1, cbor2.dumps(1)),  # epoch time
    (2, cbor2.dumps(b"\xff" * 100)),  # bignum
    (4, cbor2.dumps([1, 2])),  # decimal fraction
    (28, cbor2.dumps([1])),  # shareable
    (29, cbor2.dumps(0)),  # shared reference
    (30, cbor2.dumps([1, 2])),  # rational
    (35, cbor2.dumps("(a+)+$")),  # regular expression
    (37, cbor2.dumps(b"\x00" * 16)),  # uuid
    (258, cbor2.dumps([1, 2])),  # set
    (55799, cbor2.dumps([11, 1])),  # self-described CBOR
    (99, cbor2.dumps(1)),  # unassigned
    (1 << 40, cbor2.dumps(1)),
]


@pytest.mark.parametrize(("payload", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_strict_decoding(payload: bytes, pattern: str) -> None:
    with pytest.raises(ProtocolError, match=pattern) as info:
        proto.decode(payload)
    assert type(info.value) is ProtocolError
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("tag", "inner"), TAGGED, ids=[str(t[0]) for t in TAGGED])
def test_cbor_tags_are_refused(tag: int, inner: bytes) -> None:
    head = cbor2.dumps(cbor2.CBORTag(tag, 0))[:-1]
    for payload in (head + inner, b"\x82\x10" + head + inner):
        with pytest.raises(ProtocolError, match="CBOR tag"):
            proto.decode(payload)


def test_version_mismatch_is_reported_before_other_fields() -> None:
    # A future Hello may lay out its other fields differently: still a version mismatch.
    for payload in (
        cbor2.dumps([0, proto.PROTOCOL_VERSION + 1, "client", None]),
        cbor2.dumps([0, 7]),
        cbor2.dumps([0, 7, {"role": "pilot"}, "x", "y"]),
    ):
        with pytest.raises(
            VersionMismatch, match=r"^Hello\.protocol_version: peer speaks protocol"
        ):
            proto.decode(payload)
    with pytest.raises(ProtocolError, match=r"^Hello: expected an array of 4, got an array of 1$"):
        proto.decode(cbor2.dumps([0]))


def test_many_tiny_items_refused_without_a_huge_allocation() -> None:
    # 2 MiB of empty arrays would be ~130 MB of Python lists; the item walk refuses it first.
    count = 2 * 1024 * 1024
    payload = b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match=r"^message: more than 1048576 CBOR items"):
            proto.decode(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


def test_big_frames_with_few_items_still_decode() -> None:
    big = proto.JobResponse(1, JobCompleted(ExitCode(1), Output(b"x" * 3_000_000), Output(), 1.0))
    assert proto.decode(proto.encode(big)) == big


# --- directions -----------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ALL_DIRECTIONS, ids=lambda d: d.name)
def test_directions_refuse_other_messages(direction: proto.Direction) -> None:
    for cls in proto.ALL_MESSAGES:
        message = _example(cls)
        payload = proto.encode(message)
        if direction.allows(cls):
            assert proto.decode(payload, direction) == message
        else:
            with pytest.raises(
                ProtocolError, match=f"^{cls.__name__} is not allowed {direction.name}$"
            ):
                proto.decode(payload, direction)


def test_worker_sending_job_request_is_a_protocol_error() -> None:
    payload = proto.encode(proto.JobRequest(1, SPEC))
    with pytest.raises(ProtocolError, match=r"^JobRequest is not allowed from worker to broker$"):
        proto.decode(payload, proto.to_broker(proto.Role.WORKER))


def test_role_directions() -> None:
    for role in proto.Role:
        assert proto.to_broker(role).name.endswith("to broker")
        assert proto.from_broker(role).name.startswith("from broker")
    assert proto.to_broker(proto.Role.CLIENT) is proto.CLIENT_TO_BROKER
    assert proto.from_broker(proto.Role.ARTIFACT_FETCH) is proto.BROKER_TO_FETCHER


def _example(cls: type) -> proto.Message:
    examples: dict[type, proto.Message] = {
        proto.Hello: proto.Hello(proto.Role.WORKER, slots=4),
        proto.HelloAccepted: proto.HelloAccepted(3),
        proto.HelloRejected: proto.HelloRejected(proto.RejectReason.ROLE, "no"),
        proto.JobRequest: proto.JobRequest(1, SPEC),
        proto.CancelJob: proto.CancelJob(1),
        proto.ArtifactTransferred: proto.ArtifactTransferred(DIGEST),
        proto.JobStatusUpdate: proto.JobStatusUpdate(1, JobState.RUNNING, 2),
        proto.JobResponse: proto.JobResponse(1, COMPLETED),
        proto.TransferArtifact: proto.TransferArtifact(DIGEST),
        proto.GeneralError: proto.GeneralError("boom"),
        proto.EnqueueJob: proto.EnqueueJob(proto.JobId(1, 2), SPEC),
        proto.WorkerCancelJob: proto.WorkerCancelJob(proto.JobId(1, 2)),
        proto.WorkerJobStatusUpdate: proto.WorkerJobStatusUpdate(
            proto.JobId(1, 2), JobState.PENDING
        ),
        proto.WorkerJobResponse: proto.WorkerJobResponse(proto.JobId(1, 2), COMPLETED),
        proto.ShutDown: proto.ShutDown("bye"),
        proto.StatisticsRequest: proto.StatisticsRequest(),
        proto.StatisticsResponse: proto.StatisticsResponse(proto.BrokerStatistics(((1, 4),), 2)),
        proto.StopRequest: proto.StopRequest(),
        proto.PushRequest: proto.PushRequest(DIGEST, 10),
        proto.PushResponse: proto.PushResponse(),
        proto.FetchRequest: proto.FetchRequest(DIGEST),
        proto.FetchResponse: proto.FetchResponse(size=10),
    }
    return examples[cls]


# --- fuzzing --------------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 64) + 1, (1 << 64) - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_error(payload: bytes) -> None:
    try:
        proto.decode(payload)
    except ProtocolError:
        pass


@given(
    st.sampled_from(sorted(cls.TAG for cls in proto.ALL_MESSAGES)),
    st.lists(cbor_values, max_size=5),
)
def test_random_structures_only_raise_protocol_error(tag: int, fields: list[Any]) -> None:
    try:
        message = proto.decode(cbor2.dumps([tag, *fields]))
    except ProtocolError:
        return
    assert proto.decode(proto.encode(message)) == message


@given(mst.messages(), st.data())
def test_corrupted_encodings_only_raise_protocol_error(message: Any, data: st.DataObject) -> None:
    payload = bytearray(proto.encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    try:
        decoded = proto.decode(bytes(payload))
    except ProtocolError:
        return
    assert proto.decode(proto.encode(decoded)) == decoded
