"""An in-memory pair of connected ``MessageStream``s, for tests that need no sockets."""

from __future__ import annotations

import trio.testing

from maelstrom_core.net import MessageStream
from maelstrom_core.proto import DEFAULT_MAX_FRAME_SIZE, Role, from_broker, to_broker


def memory_message_stream_pair(
    role: Role | None = None, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> tuple[MessageStream, MessageStream]:
    """Return ``(peer, broker)``: two message streams joined by trio's in-memory streams.

    With ``role``, both ends behave as after a handshake by a peer in that role: ``peer`` may
    send only what that role may send to the broker and receive only what the broker may send
    it, and ``broker`` the reverse. Without ``role`` any message passes in either direction.
    No handshake is performed; send a ``Hello`` yourself to test one.
    """
    peer_end, broker_end = trio.testing.memory_stream_pair()
    if role is None:
        peer = MessageStream(peer_end, max_frame_size=max_frame_size, peer="broker")
        broker = MessageStream(broker_end, max_frame_size=max_frame_size, peer="peer")
        return peer, broker
    peer = MessageStream(
        peer_end,
        receive_direction=from_broker(role),
        send_direction=to_broker(role),
        max_frame_size=max_frame_size,
        peer="broker",
    )
    broker = MessageStream(
        broker_end,
        receive_direction=to_broker(role),
        send_direction=from_broker(role),
        max_frame_size=max_frame_size,
        peer=role.value,
    )
    return peer, broker
