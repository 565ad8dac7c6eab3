"""MessageStream, the handshake and raw artifact bytes, over real TCP on 127.0.0.1 and in memory.

Every I/O test runs under an absolute trio deadline so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from maelstrom_core import net, proto
from maelstrom_core._job import ExitCode, JobCompleted, JobSpec, JobState, Output
from maelstrom_core.errors import (
    ArtifactError,
    ConnectionClosed,
    InternalError,
    PeerBroken,
    ProtocolError,
    VersionMismatch,
)
from maelstrom_core.testing import memory_message_stream_pair

DEADLINE = 30
DIGEST = hashlib.sha256(b"artifact").digest()
SPEC = JobSpec("/bin/true", ())

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def start_server(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, host="127.0.0.1"), handler, 0)
    return int(listeners[0].socket.getsockname()[1])


class HelloServer:
    """Runs accept_hello on each connection and records what each handshake produced."""

    def __init__(
        self,
        allowed: list[proto.Role],
        then: Callable[[net.MessageStream], Awaitable[None]] | None = None,
    ) -> None:
        self.allowed = allowed
        self.then = then
        self.results: list[Any] = []
        self.done = trio.Event()
        self.next_id = 41

    async def __call__(self, stream: trio.SocketStream) -> None:
        self.next_id += 1
        try:
            messages, hello = await net.accept_hello(stream, self.allowed, peer_id=self.next_id)
        except (ProtocolError, PeerBroken) as err:
            self.results.append(err)
            self.done.set()
            return
        self.results.append(hello)
        async with messages:
            if self.then is not None:
                await self.then(messages)
        self.done.set()


async def test_handshake_and_messages_over_tcp() -> None:
    async def serve(messages: net.MessageStream) -> None:
        request = await messages.receive()
        assert request == proto.JobRequest(5, SPEC)
        await messages.send(proto.JobStatusUpdate(5, JobState.RUNNING, worker_id=2))
        await messages.send(proto.JobResponse(5, JobCompleted(ExitCode(0), Output(b"hi"))))

    server = HelloServer([proto.Role.CLIENT], serve)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server)
            client = await net.open_message_stream(
                "127.0.0.1", port, proto.Hello(proto.Role.CLIENT)
            )
            async with client:
                assert client.peer_id == 42
                assert client.peer == f"broker at 127.0.0.1:{port}"
                await client.send(proto.JobRequest(5, SPEC))
                replies = [await client.receive(), await client.receive()]
                # After the handshake the stream only sends what a client may send.
                with pytest.raises(
                    InternalError, match="StopRequest may not be sent from client to broker"
                ):
                    await client.send(proto.StopRequest())
            await server.done.wait()
            nursery.cancel_scope.cancel()
    assert server.results == [proto.Hello(proto.Role.CLIENT)]
    assert replies[0] == proto.JobStatusUpdate(5, JobState.RUNNING, worker_id=2)
    assert isinstance(replies[1], proto.JobResponse)


async def test_socket_options_are_set() -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, HelloServer([proto.Role.MONITOR]))
            client = await net.open_message_stream(
                "127.0.0.1", port, proto.Hello(proto.Role.MONITOR)
            )
            async with client:
                sock = client.stream.socket  # type: ignore[attr-defined]
                import socket

                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 300
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            nursery.cancel_scope.cancel()


async def test_version_mismatch_on_both_sides() -> None:
    server = HelloServer(list(proto.Role))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server)
            future = proto.Hello(proto.Role.CLIENT, protocol_version=proto.PROTOCOL_VERSION + 1)
            with pytest.raises(VersionMismatch) as client_error:
                await net.open_message_stream("127.0.0.1", port, future)
            await server.done.wait()
            nursery.cancel_scope.cancel()
    [server_error] = server.results
    assert type(server_error) is VersionMismatch
    assert "peer speaks protocol 2, we speak 1" in str(server_error)
    assert str(client_error.value).startswith(f"broker at 127.0.0.1:{port} rejected our hello: ")
    assert "peer speaks protocol 2, we speak 1" in str(client_error.value)


async def test_role_mismatch_on_both_sides() -> None:
    server = HelloServer([proto.Role.WORKER])
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server)
            with pytest.raises(
                VersionMismatch, match="does not take client connections \\(it takes worker\\)"
            ):
                await net.open_message_stream("127.0.0.1", port, proto.Hello(proto.Role.CLIENT))
            await server.done.wait()
            nursery.cancel_scope.cancel()
    assert type(server.results[0]) is VersionMismatch


async def test_invalid_first_message_is_rejected_on_both_sides() -> None:
    server = HelloServer([proto.Role.CLIENT])
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, server)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            async with net.MessageStream(raw) as stream:
                await stream.send(proto.JobRequest(1, SPEC))
                reply = await stream.receive()
            await server.done.wait()
            nursery.cancel_scope.cancel()
    assert isinstance(reply, proto.HelloRejected)
    assert reply.reason is proto.RejectReason.INVALID
    assert "JobRequest is not allowed as the first message to the broker" in reply.message
    assert type(server.results[0]) is ProtocolError


async def test_connect_refused_is_peer_broken() -> None:
    with trio.fail_after(DEADLINE):
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()  # bound then closed: nothing listens there
        with pytest.raises(PeerBroken, match=f"cannot connect to broker at 127.0.0.1:{port}"):
            await net.open_message_stream("127.0.0.1", port, proto.Hello(proto.Role.CLIENT))


async def test_hello_timeout(autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()
    with pytest.raises(ProtocolError, match="sent no hello within 10 s"):
        await net.accept_hello(b, [proto.Role.CLIENT])
    # The peer was told why before the server hung up.
    reply = await net.MessageStream(a).receive()
    assert isinstance(reply, proto.HelloRejected)


async def test_clean_eof_ends_iteration_and_receive_raises_peer_broken() -> None:
    peer, broker = memory_message_stream_pair()
    with trio.fail_after(DEADLINE):
        await peer.send(proto.CancelJob(1))
        await peer.send(proto.CancelJob(2))
        await peer.aclose()
        assert [m async for m in broker] == [proto.CancelJob(1), proto.CancelJob(2)]
        with pytest.raises(PeerBroken, match="closed the connection"):
            await broker.receive()
        with pytest.raises(ConnectionClosed):
            await peer.send(proto.CancelJob(3))


async def test_truncated_frame_at_eof_is_protocol_error() -> None:
    a, b = trio.testing.memory_stream_pair()
    stream = net.MessageStream(b)
    with trio.fail_after(DEADLINE):
        frame = proto.encode_frame(proto.encode(proto.GeneralError("cut short")))
        await a.send_all(frame[:-3])
        await a.aclose()
        with pytest.raises(ProtocolError, match="truncated frame"):
            await stream.receive()


async def test_oversized_prefix_over_tcp() -> None:
    errors: list[Exception] = []

    async def handler(raw: trio.SocketStream) -> None:
        try:
            await net.MessageStream(raw).receive()
        except ProtocolError as err:
            errors.append(err)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, handler)
            async with await trio.open_tcp_stream("127.0.0.1", port) as raw:
                await raw.send_all(b"\xff\xff\xff\xff")
                # The server refuses from the prefix alone and hangs up without waiting for 4 GiB.
                assert await raw.receive_some() == b""
            nursery.cancel_scope.cancel()
    assert "frame length 4294967295 exceeds the maximum" in str(errors[0])


async def test_receive_direction_is_enforced() -> None:
    a, b = trio.testing.memory_stream_pair()
    sender = net.MessageStream(a)
    receiver = net.MessageStream(b, receive_direction=proto.to_broker(proto.Role.WORKER))
    with trio.fail_after(DEADLINE):
        await sender.send(proto.JobRequest(1, SPEC))
        with pytest.raises(
            ProtocolError, match=r"^JobRequest is not allowed from worker to broker$"
        ):
            await receiver.receive()


async def test_memory_pair_with_role() -> None:
    worker, broker = memory_message_stream_pair(proto.Role.WORKER)
    with trio.fail_after(DEADLINE):
        await broker.send(proto.EnqueueJob(proto.JobId(1, 2), SPEC))
        assert await worker.receive() == proto.EnqueueJob(proto.JobId(1, 2), SPEC)
        await worker.send(proto.WorkerJobStatusUpdate(proto.JobId(1, 2), JobState.RUNNING))
        assert isinstance(await broker.receive(), proto.WorkerJobStatusUpdate)
        with pytest.raises(InternalError):
            await worker.send(proto.JobRequest(1, SPEC))


async def test_concurrent_senders_never_interleave() -> None:
    received: list[proto.Message] = []
    big = "x" * 200_000

    async def handler(raw: trio.SocketStream) -> None:
        async with net.MessageStream(raw) as stream:
            received.extend([m async for m in stream])

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, handler)
            stream = net.MessageStream(await trio.open_tcp_stream("127.0.0.1", port))
            async with trio.open_nursery() as senders:
                for i in range(20):
                    senders.start_soon(stream.send, proto.GeneralError(f"{i}{big}"))
            await stream.aclose()
            while len(received) < 20:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert sorted(int(m.message[: -len(big)]) for m in received) == list(range(20))  # type: ignore[union-attr]


# --- raw artifact bytes ---------------------------------------------------------------------


def random_file(directory: Path, size: int) -> Path:
    path = directory / "artifact"
    path.write_bytes(os.urandom(size))
    return path


async def test_push_multi_megabyte_artifact_over_tcp(tmp_path: Path) -> None:
    """Header, raw body and the next message travel back to back; the receiver's buffer holds
    part of the body after the header, and the message after the body must still decode."""
    size = 5 * 1024 * 1024 + 123
    source = random_file(tmp_path, size)
    target = tmp_path / "received"
    got: list[proto.Message] = []

    async def handler(raw: trio.SocketStream) -> None:
        messages, _hello = await net.accept_hello(raw, [proto.Role.ARTIFACT_PUSH])
        async with messages:
            request = await messages.receive()
            assert isinstance(request, proto.PushRequest)
            with target.open("wb") as out:
                await messages.receive_bytes_into_file(request.size, out)
            got.append(request)
            got.append(await messages.receive())  # the next header, intact
            await messages.send(proto.PushResponse())

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, handler)
            pusher = await net.open_message_stream(
                "127.0.0.1", port, proto.Hello(proto.Role.ARTIFACT_PUSH)
            )
            async with pusher:
                await pusher.send(proto.PushRequest(DIGEST, size))
                with source.open("rb") as file:
                    await pusher.send_bytes_from_file(file, size)
                await pusher.send(proto.PushRequest(DIGEST, 0))
                assert await pusher.receive() == proto.PushResponse()
            nursery.cancel_scope.cancel()
    assert got == [proto.PushRequest(DIGEST, size), proto.PushRequest(DIGEST, 0)]
    assert (
        hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )


async def test_raw_bytes_already_buffered_with_next_frame(tmp_path: Path) -> None:
    """Everything (header, body, next frame) arrives in one piece: the body comes entirely from
    the decoder's buffer and the next frame is neither lost nor read twice."""
    a, b = trio.testing.memory_stream_pair()
    stream = net.MessageStream(b)
    body = b"raw artifact body \x00\x00\x00\x04 that looks like a length prefix"
    wire = (
        proto.encode_frame(proto.encode(proto.FetchResponse(size=len(body))))
        + body
        + proto.encode_frame(proto.encode(proto.FetchResponse(error="gone")))
    )
    with trio.fail_after(DEADLINE):
        await a.send_all(wire)
        header = await stream.receive()
        assert header == proto.FetchResponse(size=len(body))
        with (tmp_path / "out").open("wb") as out:
            await stream.receive_bytes_into_file(len(body), out)
        assert await stream.receive() == proto.FetchResponse(error="gone")
    assert (tmp_path / "out").read_bytes() == body


async def test_receive_into_file_keeps_memory_bounded(tmp_path: Path) -> None:
    size = 16 * 1024 * 1024
    a, b = trio.testing.lockstep_stream_pair()  # no hidden buffer: the peak is the receiver's
    receiver = net.MessageStream(b)
    chunk = os.urandom(64 * 1024)

    async def send() -> None:
        for _ in range(size // len(chunk)):
            await a.send_all(chunk)

    with trio.fail_after(DEADLINE):
        tracemalloc.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                with (tmp_path / "out").open("wb") as out:
                    await receiver.receive_bytes_into_file(size, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (tmp_path / "out").stat().st_size == size
    assert peak < size // 4


async def test_short_raw_phase_is_peer_broken_and_stream_unusable(tmp_path: Path) -> None:
    a, b = trio.testing.memory_stream_pair()
    stream = net.MessageStream(b)
    with trio.fail_after(DEADLINE):
        await a.send_all(b"only ten b")
        await a.aclose()
        with (
            (tmp_path / "out").open("wb") as out,
            pytest.raises(PeerBroken, match="after 10 of 100 raw bytes"),
        ):
            await stream.receive_bytes_into_file(100, out)
        with pytest.raises(ConnectionClosed, match="interrupted artifact transfer"):
            await stream.receive()


async def test_shrunken_file_is_artifact_error_and_stream_unusable(tmp_path: Path) -> None:
    source = random_file(tmp_path, 1000)
    peer, _broker = memory_message_stream_pair()
    with trio.fail_after(DEADLINE):
        with (
            source.open("rb") as file,
            pytest.raises(ArtifactError, match="ended 24 bytes short of the 1024 announced"),
        ):
            await peer.send_bytes_from_file(file, 1024)
        with pytest.raises(ConnectionClosed):
            await peer.send(proto.PushRequest(DIGEST, 1))


async def test_cancelled_raw_phase_leaves_stream_unusable(tmp_path: Path) -> None:
    _peer, broker = memory_message_stream_pair()
    with trio.fail_after(DEADLINE):
        with trio.move_on_after(0.05), (tmp_path / "out").open("wb") as out:
            await broker.receive_bytes_into_file(10, out)  # nothing arrives: cancelled
        with pytest.raises(ConnectionClosed):
            await broker.receive()


async def test_zero_byte_raw_phase(tmp_path: Path) -> None:
    peer, broker = memory_message_stream_pair()
    with trio.fail_after(DEADLINE):
        await peer.send(proto.FetchResponse(size=0))
        await peer.send(proto.FetchResponse(error="next"))
        await broker.receive()
        with tempfile.TemporaryFile() as out:
            await broker.receive_bytes_into_file(0, out)
        assert await broker.receive() == proto.FetchResponse(error="next")


async def test_send_many_sends_every_message_in_order_and_checks_the_direction() -> None:
    worker, broker = memory_message_stream_pair(proto.Role.WORKER)
    job_ids = [proto.JobId(1, n) for n in range(300)]
    batch: list[proto.Message] = [proto.WorkerCancelJob(job_id) for job_id in job_ids]
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(broker.send_many, batch)
            for job_id in job_ids:
                assert await worker.receive() == proto.WorkerCancelJob(job_id)
        with pytest.raises(InternalError, match="JobRequest may not be sent"):
            await broker.send_many([proto.ShutDown("x"), proto.JobRequest(0, JobSpec("/x", ()))])
        await broker.send_many([])  # nothing to send is fine
        await broker.send(proto.ShutDown("after"))
        assert await worker.receive() == proto.ShutDown("after")  # nothing of the refused batch
