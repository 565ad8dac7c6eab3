"""trio adapters for the wire protocol: message streams, the handshake, and raw artifact bytes.

This is the only protocol module that imports trio; framing and messages are sans-IO
(``maelstrom_core.proto``). Every error is a ``MaelstromError``: ``PeerBroken`` when the other
side closed or reset the connection, ``ProtocolError`` when it sent something invalid,
``ConnectionClosed`` when we use a stream we closed (or left out of step, see below).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import BinaryIO, Final

import trio

from maelstrom_core.errors import (
    ArtifactError,
    ConnectionClosed,
    InternalError,
    PeerBroken,
    ProtocolError,
    VersionMismatch,
)
from maelstrom_core.proto import (
    DEFAULT_MAX_FRAME_SIZE,
    HELLO_REPLY,
    HELLO_TO_BROKER,
    Direction,
    FrameDecoder,
    Hello,
    HelloAccepted,
    HelloRejected,
    Message,
    RejectReason,
    Role,
    decode,
    encode,
    encode_frame,
    from_broker,
    to_broker,
)

__all__ = [
    "HELLO_TIMEOUT",
    "MessageStream",
    "accept_hello",
    "open_message_stream",
    "set_socket_options",
]

HELLO_TIMEOUT: Final = 10.0  # seconds a server waits for a new connection's Hello
_RECEIVE_SIZE: Final = 256 * 1024
_FILE_CHUNK: Final = 1024 * 1024  # file I/O goes to a thread in pieces of this size
_REJECT_GRACE: Final = 1.0  # seconds we try to tell a rejected peer why, before hanging up


def set_socket_options(stream: trio.abc.Stream) -> None:
    """TCP_NODELAY and keepalive (3 probes, 300 s idle, 300 s apart), as the original sets.

    Streams that are not TCP sockets are left alone."""
    if not isinstance(stream, trio.SocketStream):
        return
    sock = stream.socket
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 300)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 300)


class MessageStream(trio.abc.AsyncResource):
    """Messages over a ``trio.abc.Stream``, plus the raw-bytes phase of artifact transfer.

    One task may receive while others send; sends are serialised by a lock so frames never
    interleave. ``receive_direction``/``send_direction`` restrict what may arrive (a violation
    is the peer's ``ProtocolError``) and what may be sent (a violation is our
    ``InternalError``). Iterating yields messages until the peer closes cleanly.

    A raw-bytes phase interrupted part way (cancelled, or a file came up short) leaves the
    byte stream out of step with the framing; the stream then refuses further use with
    ``ConnectionClosed`` and must be closed.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        receive_direction: Direction | None = None,
        send_direction: Direction | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        peer: str = "peer",
    ) -> None:
        self._stream = stream
        self._decoder = FrameDecoder(max_frame_size)
        self._max_frame_size = max_frame_size
        self._receive_direction = receive_direction
        self._send_direction = send_direction
        self._send_lock = trio.Lock()
        self._peer = peer
        self._out_of_step = False
        self._closed = False
        self._peer_eof = False
        self.peer_id: int | None = None  # the broker's id for this connection, after a hello

    @property
    def stream(self) -> trio.abc.Stream:
        return self._stream

    @property
    def peer(self) -> str:
        """Who is at the other end, for messages: "broker at host:port", "127.0.0.1:5000"."""
        return self._peer

    def use_directions(self, receive: Direction | None, send: Direction | None) -> None:
        """Change what may be received and sent, for example once a handshake is done."""
        self._receive_direction = receive
        self._send_direction = send

    # --- messages ---

    async def send(self, message: Message) -> None:
        """Send one message.

        Raises:
            PeerBroken: the connection broke.
            ConnectionClosed: we closed this stream, or left it out of step.
            InternalError: ``message`` may not be sent in this stream's send direction.
            ProtocolError: the message does not fit in one frame.
        """
        direction = self._send_direction
        if direction is not None and type(message) not in direction.messages:
            raise InternalError(f"{type(message).__name__} may not be sent {direction.name}")
        frame = encode_frame(encode(message), self._max_frame_size)
        async with self._send_lock:
            self._check_usable()
            await self._send_all(frame)

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send several messages with one write, in order: a busy server's outbox costs one
        system call per batch instead of one per message. Raises as ``send`` does."""
        direction = self._send_direction
        frames = []
        for message in messages:
            if direction is not None and type(message) not in direction.messages:
                raise InternalError(f"{type(message).__name__} may not be sent {direction.name}")
            frames.append(encode_frame(encode(message), self._max_frame_size))
        async with self._send_lock:
            self._check_usable()
            await self._send_all(b"".join(frames))

    async def receive(self) -> Message:
        """Receive one message.

        Raises:
            PeerBroken: the peer closed or reset the connection.
            ProtocolError: the peer sent an invalid, oversized or truncated frame, or a message
                not allowed in this stream's receive direction.
            ConnectionClosed: we closed this stream, or left it out of step.
        """
        self._check_usable()
        decoder = self._decoder
        while True:
            payload = decoder.next_frame()
            if payload is not None:
                return decode(payload, self._receive_direction)
            data = await self._receive_some(_RECEIVE_SIZE)
            if not data:
                decoder.check_eof()
                raise PeerBroken(f"{self._peer} closed the connection")
            decoder.feed(data)

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except PeerBroken:
            # Only a clean end between frames ends iteration; a reset still raises.
            if self._decoder.buffered == 0 and self._peer_eof:
                raise StopAsyncIteration from None
            raise

    # --- raw bytes (artifact bodies) ---

    async def send_bytes_from_file(self, file: BinaryIO, size: int) -> None:
        """Send exactly ``size`` bytes read from ``file``'s current position, in chunks.

        Send the header message (``PushRequest``, ``FetchResponse``) first, from the same task.

        Raises:
            ArtifactError: the file holds fewer than ``size`` bytes (it shrank). The stream is
                then out of step and must be closed.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        async with self._send_lock:
            self._check_usable()
            remaining = size
            try:
                while remaining:
                    chunk = await trio.to_thread.run_sync(file.read, min(remaining, _FILE_CHUNK))
                    if not chunk:
                        name = getattr(file, "name", "artifact file")
                        raise ArtifactError(
                            f"{name}: ended {remaining} bytes short of the {size} announced"
                        )
                    await self._send_all(chunk)
                    remaining -= len(chunk)
            finally:
                if remaining:
                    self._out_of_step = True

    async def receive_bytes_into_file(self, size: int, file: BinaryIO) -> None:
        """Receive exactly ``size`` raw bytes that follow the last message into ``file``.

        Bytes already buffered behind that message are used first; the socket is never read
        past ``size``, so the next frame stays intact. Memory use is bounded by the chunk size.

        Raises:
            PeerBroken: the connection ended before ``size`` bytes arrived.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self._check_usable()
        pending = bytearray(self._decoder.take_raw(size))
        received = len(pending)
        try:
            while received < size:
                data = await self._receive_some(min(size - received, _RECEIVE_SIZE))
                if not data:
                    raise PeerBroken(
                        f"{self._peer} closed the connection after {received} of {size} raw bytes"
                    )
                pending += data
                received += len(data)
                if len(pending) >= _FILE_CHUNK:
                    chunk, pending = pending, bytearray()
                    await trio.to_thread.run_sync(file.write, chunk)
            if pending:
                await trio.to_thread.run_sync(file.write, pending)
        finally:
            if received != size:
                self._out_of_step = True

    # --- plumbing ---

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionClosed(f"connection to {self._peer} was closed by us")
        if self._out_of_step:
            raise ConnectionClosed(
                f"connection to {self._peer} is unusable after an interrupted artifact transfer"
            )

    async def _send_all(self, data: bytes | bytearray) -> None:
        try:
            await self._stream.send_all(data)
        except trio.BrokenResourceError as err:
            raise PeerBroken(f"connection to {self._peer} broke: {_cause(err)}") from err
        except trio.ClosedResourceError as err:
            raise ConnectionClosed(f"connection to {self._peer} was closed by us") from err

    async def _receive_some(self, max_bytes: int) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except trio.BrokenResourceError as err:
            raise PeerBroken(f"connection to {self._peer} broke: {_cause(err)}") from err
        except trio.ClosedResourceError as err:
            raise ConnectionClosed(f"connection to {self._peer} was closed by us") from err
        if not data:
            self._peer_eof = True
        return data


def _cause(err: BaseException) -> str:
    cause = err.__cause__ or err.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause or err) or type(err).__name__


def _peer_name(stream: trio.abc.Stream) -> str:
    if isinstance(stream, trio.SocketStream):
        try:
            address = stream.socket.getpeername()
        except OSError:
            return "peer"
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "peer"


async def open_message_stream(
    host: str,
    port: int,
    hello: Hello,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> MessageStream:
    """Connect to the broker, say ``hello`` and wait for its answer.

    The returned stream is restricted to ``hello.role``'s directions and has ``peer_id`` set.

    Raises:
        PeerBroken: the connection could not be made, or broke during the handshake.
        VersionMismatch: the broker speaks another protocol version or refuses our role.
        ProtocolError: the broker refused our hello as invalid, or answered with garbage.
    """
    peer = f"broker at {host}:{port}"
    try:
        raw = await trio.open_tcp_stream(host, port)
    except OSError as err:
        raise PeerBroken(f"cannot connect to {peer}: {err.strerror or err}") from err
    stream = MessageStream(
        raw,
        receive_direction=HELLO_REPLY,
        send_direction=HELLO_TO_BROKER,
        max_frame_size=max_frame_size,
        peer=peer,
    )
    try:
        set_socket_options(raw)
        await _say_hello(stream, hello)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def _say_hello(stream: MessageStream, hello: Hello) -> None:
    await stream.send(hello)
    reply = await stream.receive()
    if isinstance(reply, HelloRejected):
        error = ProtocolError if reply.reason is RejectReason.INVALID else VersionMismatch
        raise error(f"{stream.peer} rejected our hello: {reply.message}")
    if not isinstance(reply, HelloAccepted):  # HELLO_REPLY allows only these two
        raise InternalError(f"unexpected hello reply {type(reply).__name__}")
    stream.peer_id = reply.peer_id
    stream.use_directions(receive=from_broker(hello.role), send=to_broker(hello.role))


async def accept_hello(
    stream: trio.abc.Stream,
    allowed_roles: Iterable[Role],
    *,
    peer_id: int = 0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    timeout: float = HELLO_TIMEOUT,
) -> tuple[MessageStream, Hello]:
    """Server side of the handshake on a freshly accepted connection.

    Reads the peer's ``Hello``; answers ``HelloAccepted(peer_id)`` when its version matches and
    its role is one of ``allowed_roles``, else ``HelloRejected`` (best effort) and raises. On
    success the message stream is restricted to the role's directions. On failure ``stream`` is
    closed.

    Raises:
        VersionMismatch: the peer speaks another protocol version or plays another role.
        ProtocolError: the first message was not a valid ``Hello`` or did not come in time.
        PeerBroken: the peer went away during the handshake.
    """
    messages = MessageStream(
        stream,
        receive_direction=HELLO_TO_BROKER,
        send_direction=HELLO_REPLY,
        max_frame_size=max_frame_size,
        peer=_peer_name(stream),
    )
    try:
        set_socket_options(stream)
        hello = await _receive_hello(messages, timeout)
        await _check_role(messages, hello, frozenset(allowed_roles))
        await messages.send(HelloAccepted(peer_id))
    except BaseException:
        await trio.aclose_forcefully(messages)
        raise
    messages.peer_id = peer_id
    messages.use_directions(receive=to_broker(hello.role), send=from_broker(hello.role))
    return messages, hello


async def _receive_hello(messages: MessageStream, timeout: float) -> Hello:
    peer = messages.peer
    try:
        with trio.fail_after(timeout):
            hello = await messages.receive()
    except trio.TooSlowError:
        error = ProtocolError(f"{peer}: sent no hello within {timeout:g} s")
        await _reject(messages, RejectReason.INVALID, str(error))
        raise error from None
    except VersionMismatch as err:
        await _reject(messages, RejectReason.VERSION, str(err))
        raise VersionMismatch(f"{peer}: {err}") from None
    except ProtocolError as err:
        await _reject(messages, RejectReason.INVALID, str(err))
        raise ProtocolError(f"{peer}: {err}") from None
    if not isinstance(hello, Hello):  # HELLO_TO_BROKER allows nothing else
        raise InternalError(f"unexpected first message {type(hello).__name__}")
    return hello


async def _check_role(messages: MessageStream, hello: Hello, allowed: frozenset[Role]) -> None:
    if hello.role in allowed:
        return
    roles = ", ".join(sorted(role.value for role in allowed)) or "none"
    text = f"this port does not take {hello.role.value} connections (it takes {roles})"
    await _reject(messages, RejectReason.ROLE, text)
    raise VersionMismatch(f"{messages.peer}: {text}")


async def _reject(messages: MessageStream, reason: RejectReason, text: str) -> None:
    # The peer may already be gone or may not read; telling it why is a courtesy, so it is
    # bounded in time and its failure is not the error we report.
    with trio.move_on_after(_REJECT_GRACE):
        try:
            await messages.send(HelloRejected(reason, text))
        except (PeerBroken, ConnectionClosed):
            pass
