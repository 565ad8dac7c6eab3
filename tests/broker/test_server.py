"""The broker's server over real TCP on 127.0.0.1, with scripted clients, workers and monitors.

Every peer is built from ``maelstrom_core.net`` (or raw trio sockets for broken peers), so the
real framing, handshake and artifact phases are exercised end to end. Each test has an absolute
deadline so a hang fails instead of stalling the run.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from maelstrom_broker._server import BrokerSettings, RunningBroker, serve_broker
from maelstrom_core.errors import ArtifactError, PeerBroken
from maelstrom_core.job import (
    ArtifactType,
    ExitCode,
    JobCompleted,
    JobSpec,
    JobState,
    LayerRef,
    Output,
)
from maelstrom_core.manifest import FileByDigest, ManifestEntry, encode_manifest
from maelstrom_core.net import HELLO_TIMEOUT, MessageStream, open_message_stream
from maelstrom_core.proto import (
    ArtifactTransferred,
    EnqueueJob,
    FetchRequest,
    FetchResponse,
    GeneralError,
    Hello,
    JobId,
    JobRequest,
    JobResponse,
    JobStatusUpdate,
    Message,
    PushRequest,
    PushResponse,
    Role,
    ShutDown,
    StatisticsRequest,
    StatisticsResponse,
    StopRequest,
    TransferArtifact,
    WorkerCancelJob,
    WorkerJobResponse,
    encode,
    encode_frame,
)

DEADLINE = 20.0
DONE = JobCompleted(ExitCode(0), Output(b"hi\n"), Output(), 0.01)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tar_job(*layers: bytes, program: str = "/bin/true") -> JobSpec:
    return JobSpec(program, tuple(LayerRef(sha(data), ArtifactType.TAR) for data in layers))


@asynccontextmanager
async def running_broker(
    root: Path, *, cache_size: int = 10**9, hello_timeout: float = HELLO_TIMEOUT
) -> AsyncIterator[RunningBroker]:
    async with trio.open_nursery() as nursery:
        broker: RunningBroker = await nursery.start(
            serve_broker,
            BrokerSettings(
                cache_root=root / "cache",
                cache_size=cache_size,
                host="127.0.0.1",
                hello_timeout=hello_timeout,
            ),
        )
        yield broker
        broker.request_stop("the test is over")


async def connect(broker: RunningBroker, role: Role, slots: int | None = None) -> MessageStream:
    return await open_message_stream("127.0.0.1", broker.port, Hello(role, slots=slots))


async def push(broker: RunningBroker, data: bytes, digest: bytes | None = None) -> PushResponse:
    async with await connect(broker, Role.ARTIFACT_PUSH) as pusher:
        await pusher.send(PushRequest(sha(data) if digest is None else digest, len(data)))
        await pusher.send_bytes_from_file(io.BytesIO(data), len(data))
        reply = await pusher.receive()
        assert isinstance(reply, PushResponse)
        return reply


async def fetch(fetcher: MessageStream, digest: bytes) -> bytes | str:
    await fetcher.send(FetchRequest(digest))
    reply = await fetcher.receive()
    assert isinstance(reply, FetchResponse)
    if reply.error is not None:
        return reply.error
    assert reply.size is not None
    out = io.BytesIO()
    await fetcher.receive_bytes_into_file(reply.size, out)
    return out.getvalue()


async def expect(stream: MessageStream, kind: type[Message]) -> Message:
    message = await stream.receive()
    assert isinstance(message, kind), message
    return message


async def until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the broker sends until it closes the connection."""
    received = bytearray()
    try:
        while data := await stream.receive_some(65536):
            received += data
    except trio.BrokenResourceError:
        pass
    return bytes(received)


# --- the whole path ---------------------------------------------------------------------------


async def test_job_with_an_upload_runs_on_a_worker_that_fetches_it(tmp_path: Path) -> None:
    layer = b"pretend this is a tar file" * 1000
    digest = sha(layer)
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            worker = await connect(broker, Role.WORKER, slots=2)
            client = await connect(broker, Role.CLIENT)
            job = tar_job(layer)
            await client.send(JobRequest(0, job))
            assert await client.receive() == TransferArtifact(digest)
            assert await client.receive() == JobStatusUpdate(0, JobState.WAITING_FOR_ARTIFACTS)
            assert await push(broker, layer) == PushResponse(None)
            await client.send(ArtifactTransferred(digest))
            jid = JobId(client.peer_id or 0, 0)
            assert await worker.receive() == EnqueueJob(jid, job)
            assert await client.receive() == JobStatusUpdate(0, JobState.RUNNING, worker.peer_id)
            stored = tmp_path / "cache/sha256/blob" / digest.hex()
            assert stored.read_bytes() == layer
            async with await connect(broker, Role.ARTIFACT_FETCH) as fetcher:
                assert await fetch(fetcher, digest) == layer
                assert await fetch(fetcher, digest) == layer  # the connection is reused
            await worker.send(WorkerJobResponse(jid, DONE))
            assert await client.receive() == JobResponse(0, DONE)
            # No job holds it now: fetches are refused, and the connection is closed.
            async with await connect(broker, Role.ARTIFACT_FETCH) as fetcher:
                error = await fetch(fetcher, digest)
                assert isinstance(error, str)
                assert "not held by any job" in error
                with pytest.raises(PeerBroken):
                    await fetcher.receive()
            await client.aclose()
            await worker.aclose()


async def test_manifest_blobs_are_asked_for_and_served(tmp_path: Path) -> None:
    blob = b"x" * 300_000
    manifest = encode_manifest(
        [ManifestEntry("/big", 0o100644, 0, len(blob), FileByDigest(sha(blob)))]
    )
    job = JobSpec("/big", (LayerRef(sha(manifest), ArtifactType.MANIFEST),))
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            worker = await connect(broker, Role.WORKER, slots=1)
            client = await connect(broker, Role.CLIENT)
            await client.send(JobRequest(5, job))
            assert await client.receive() == TransferArtifact(sha(manifest))
            await expect(client, JobStatusUpdate)
            assert await push(broker, manifest) == PushResponse(None)
            await client.send(ArtifactTransferred(sha(manifest)))
            assert await client.receive() == TransferArtifact(sha(blob))
            assert await push(broker, blob) == PushResponse(None)
            await client.send(ArtifactTransferred(sha(blob)))
            enqueue = await expect(worker, EnqueueJob)
            assert isinstance(enqueue, EnqueueJob)
            assert enqueue.spec == job
            async with await connect(broker, Role.ARTIFACT_FETCH) as fetcher:
                assert await fetch(fetcher, sha(manifest)) == manifest
                assert await fetch(fetcher, sha(blob)) == blob
            await client.aclose()
            assert await worker.receive() == WorkerCancelJob(enqueue.job_id)
            await worker.aclose()


async def test_two_clients_needing_one_artifact_are_both_asked(tmp_path: Path) -> None:
    layer = b"shared layer"
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            first = await connect(broker, Role.CLIENT)
            second = await connect(broker, Role.CLIENT)
            await first.send(JobRequest(0, tar_job(layer)))
            await second.send(JobRequest(0, tar_job(layer)))
            assert await first.receive() == TransferArtifact(sha(layer))
            assert await second.receive() == TransferArtifact(sha(layer))
            await first.aclose()  # leaves before uploading; the second is not stranded
            await expect(second, JobStatusUpdate)
            assert await push(broker, layer) == PushResponse(None)
            await second.send(ArtifactTransferred(sha(layer)))
            worker = await connect(broker, Role.WORKER, slots=1)
            enqueue = await expect(worker, EnqueueJob)
            assert isinstance(enqueue, EnqueueJob)
            assert enqueue.job_id == JobId(second.peer_id or 0, 0)
            await second.aclose()
            await worker.aclose()


# --- faults -----------------------------------------------------------------------------------


async def test_digest_mismatch_on_push_is_refused_and_closes_that_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            claimed = sha(b"what the client said")
            async with await connect(broker, Role.ARTIFACT_PUSH) as pusher:
                data = b"what the client sent"
                await pusher.send(PushRequest(claimed, len(data)))
                await pusher.send_bytes_from_file(io.BytesIO(data), len(data))
                reply = await pusher.receive()
                assert isinstance(reply, PushResponse)
                assert reply.error is not None
                assert claimed.hex() in reply.error
                assert sha(data).hex() in reply.error
                with pytest.raises(PeerBroken):
                    await pusher.receive()
            assert not broker.scheduler.is_stored(claimed)
            assert list((tmp_path / "cache/tmp").iterdir()) == []
            assert list((tmp_path / "cache/sha256/blob").iterdir()) == []
            # Other pushes are served on.
            assert await push(broker, b"fine") == PushResponse(None)
            assert broker.scheduler.is_stored(sha(b"fine"))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "artifact-push" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()


HELLO_CLIENT = encode_frame(encode(Hello(Role.CLIENT)))


@pytest.mark.parametrize(
    ("name", "data", "half_close"),
    [
        ("garbage instead of a hello", b"\x00\x00\x00\x05hello", False),
        ("binary noise", bytes(range(256)) * 4, True),
        ("oversized frame", HELLO_CLIENT + b"\xff\xff\xff\xf0" + b"x" * 100, False),
        ("truncated frame", HELLO_CLIENT + b"\x00\x00\x01\x00" + b"abc", True),
        ("truncated length", HELLO_CLIENT + b"\x00\x00", True),
        ("frame that is not CBOR", HELLO_CLIENT + b"\x00\x00\x00\x02\xff\xfe", False),
        (
            "message of another role",
            HELLO_CLIENT + encode_frame(encode(StatisticsRequest())),
            False,
        ),
        (
            "wrong fields",
            HELLO_CLIENT + encode_frame(b"\x83\x0a\x61\x78\x00"),  # [10, "x", 0]
            False,
        ),
    ],
)
async def test_bad_frames_close_only_that_connection(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: bytes,
    half_close: bool,
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            worker = await connect(broker, Role.WORKER, slots=1)
            client = await connect(broker, Role.CLIENT)
            raw = await trio.open_tcp_stream("127.0.0.1", broker.port)
            await raw.send_all(data)
            if half_close:
                await raw.send_eof()
            await until_closed(raw)
            await raw.aclose()
            # The good connections are still served.
            await client.send(JobRequest(1, tar_job()))
            enqueue = await expect(worker, EnqueueJob)
            assert isinstance(enqueue, EnqueueJob)
            await worker.send(WorkerJobResponse(enqueue.job_id, DONE))
            assert await client.receive() == JobStatusUpdate(1, JobState.RUNNING, worker.peer_id)
            assert await client.receive() == JobResponse(1, DONE)
            await client.aclose()
            await worker.aclose()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, (name, errors)
    assert "\n" not in errors[0]


async def test_worker_lost_its_jobs_run_on_another_worker(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            doomed = await connect(broker, Role.WORKER, slots=1)
            client = await connect(broker, Role.CLIENT)
            await client.send(JobRequest(0, tar_job()))
            first = await expect(doomed, EnqueueJob)
            assert isinstance(first, EnqueueJob)
            assert await client.receive() == JobStatusUpdate(0, JobState.RUNNING, doomed.peer_id)
            await doomed.aclose()
            assert await client.receive() == JobStatusUpdate(0, JobState.PENDING)
            survivor = await connect(broker, Role.WORKER, slots=1)
            again = await expect(survivor, EnqueueJob)
            assert again == first
            assert await client.receive() == JobStatusUpdate(0, JobState.RUNNING, survivor.peer_id)
            await survivor.send(WorkerJobResponse(first.job_id, DONE))
            assert await client.receive() == JobResponse(0, DONE)
            await client.aclose()
            await survivor.aclose()


async def test_client_lost_its_running_job_is_cancelled_on_the_worker(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            worker = await connect(broker, Role.WORKER, slots=1)
            client = await connect(broker, Role.CLIENT)
            await client.send(JobRequest(3, tar_job()))
            enqueue = await expect(worker, EnqueueJob)
            assert isinstance(enqueue, EnqueueJob)
            await client.aclose()
            assert await worker.receive() == WorkerCancelJob(enqueue.job_id)
            # Its late response goes nowhere and harms nothing.
            await worker.send(WorkerJobResponse(enqueue.job_id, DONE))
            monitor = await connect(broker, Role.MONITOR)
            await monitor.send(StatisticsRequest())
            reply = await expect(monitor, StatisticsResponse)
            assert isinstance(reply, StatisticsResponse)
            assert reply.statistics.num_clients == 0
            assert reply.statistics.worker_slots == ((worker.peer_id, 1),)
            await monitor.aclose()
            await worker.aclose()


# --- monitors ---------------------------------------------------------------------------------


async def test_statistics_report_workers_clients_and_samples(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            worker = await connect(broker, Role.WORKER, slots=7)
            client = await connect(broker, Role.CLIENT)
            await client.send(JobRequest(0, tar_job(b"never uploaded")))
            await expect(client, TransferArtifact)
            await trio.sleep(0.6)  # at least one sample with the job in it
            monitor = await connect(broker, Role.MONITOR)
            await monitor.send(StatisticsRequest())
            reply = await expect(monitor, StatisticsResponse)
            assert isinstance(reply, StatisticsResponse)
            stats = reply.statistics
            assert stats.worker_slots == ((worker.peer_id, 7),)
            assert stats.num_clients == 1
            last = dict(stats.samples[-1].clients)
            assert last[client.peer_id or 0].waiting_for_artifacts == 1
            await monitor.aclose()
            await client.aclose()
            await worker.aclose()


async def test_stop_request_shuts_workers_down_and_ends_the_broker(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            broker: RunningBroker = await nursery.start(
                serve_broker,
                BrokerSettings(cache_root=tmp_path / "cache", cache_size=1000, host="127.0.0.1"),
            )
            worker = await connect(broker, Role.WORKER, slots=1)
            client = await connect(broker, Role.CLIENT)
            monitor = await connect(broker, Role.MONITOR)
            await monitor.send(StopRequest())
            with pytest.raises(PeerBroken):
                await monitor.receive()
            shut_down = await expect(worker, ShutDown)
            assert isinstance(shut_down, ShutDown)
            assert "asked the broker to stop" in (shut_down.reason)
            with pytest.raises(PeerBroken):
                await worker.receive()
            error = await expect(client, GeneralError)
            assert isinstance(error, GeneralError)
            assert "shutting down" in error.message
            for stream in (worker, client, monitor):
                await stream.aclose()
        # serve_broker returned by itself: the nursery could close.
    with pytest.raises(OSError, match=r"Connection refused|connect"):
        await trio.open_tcp_stream("127.0.0.1", broker.port)


# --- the store --------------------------------------------------------------------------------


async def test_store_keeps_artifacts_across_restarts_and_is_locked(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            assert await push(broker, b"kept") == PushResponse(None)
            with pytest.raises(ExceptionGroup) as info:
                async with running_broker(tmp_path):
                    pass
            assert info.group_contains(ArtifactError, match="in use by another process")
        async with running_broker(tmp_path) as broker:
            assert broker.scheduler.is_stored(sha(b"kept"))
        async with running_broker(tmp_path, cache_size=0) as broker:
            # Over the target at start and held by nobody: evicted.
            assert not broker.scheduler.is_stored(sha(b"kept"))
        assert list((tmp_path / "cache/sha256/blob").iterdir()) == []


async def test_silent_peer_is_dropped_after_the_hello_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path, hello_timeout=0.2) as broker:
            raw = await trio.open_tcp_stream("127.0.0.1", broker.port)
            await until_closed(raw)  # a HelloRejected, then the broker hangs up
            await raw.aclose()
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "sent no hello within 0.2 s" in error


async def test_upload_cut_short_stores_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"y" * 100_000
    with trio.fail_after(DEADLINE):
        async with running_broker(tmp_path) as broker:
            pusher = await connect(broker, Role.ARTIFACT_PUSH)
            await pusher.send(PushRequest(sha(data), len(data)))
            await pusher.stream.send_all(data[:1000])
            await pusher.aclose()
            while not any(r.levelno >= logging.WARNING for r in caplog.records):
                await trio.sleep(0.01)
            assert not broker.scheduler.is_stored(sha(data))
            assert list((tmp_path / "cache/tmp").iterdir()) == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "after 1000 of 100000 raw bytes" in warning
