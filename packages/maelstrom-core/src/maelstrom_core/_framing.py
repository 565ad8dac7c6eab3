"""Length-prefixed frames: a 4-byte big-endian length, then that many payload bytes.

Sans-IO: ``FrameDecoder`` is fed whatever bytes arrived and hands back whole payloads one at a
time. It never interprets bytes past the frame it was asked for, so a caller that switches to
a raw-bytes phase (an artifact body following its header message) takes the bytes already
buffered with ``take_raw`` and reads the rest itself: nothing is lost or read twice.
"""

from __future__ import annotations

from maelstrom_core.errors import ProtocolError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "HEADER_SIZE", "FrameDecoder", "encode_frame"]

HEADER_SIZE = 4
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_LENGTH_LIMIT = (1 << 32) - 1


def encode_frame(payload: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Prefix ``payload`` with its length. An oversized payload is refused before it is sent,
    since the peer would drop the connection on it anyway."""
    size = len(payload)
    if size > max_frame_size:
        raise ProtocolError(
            f"frame payload of {size} bytes exceeds the maximum frame size of {max_frame_size}"
        )
    return size.to_bytes(HEADER_SIZE, "big") + payload


class FrameDecoder:
    """Incremental frame decoder.

    ``feed`` appends received bytes; ``next_frame`` returns one complete payload or ``None``.
    Iterating yields every complete payload buffered so far (use ``next_frame`` instead when a
    raw-bytes phase may follow a frame). After a ``ProtocolError`` the decoder stays failed: the
    stream has lost its framing and must be closed.
    """

    __slots__ = ("_buf", "_error", "_max", "_pos")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 0 <= max_frame_size <= _LENGTH_LIMIT:
            raise ValueError(f"max_frame_size must be in 0..{_LENGTH_LIMIT}, got {max_frame_size}")
        self._max = max_frame_size
        self._buf = bytearray()
        self._pos = 0  # consumed prefix of _buf, dropped lazily to keep feed() amortised O(n)
        self._error: ProtocolError | None = None

    @property
    def max_frame_size(self) -> int:
        return self._max

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out (partial frames, or raw bytes)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or ``None`` if more bytes are needed.

        Raises:
            ProtocolError: the length prefix announces more than ``max_frame_size`` bytes. This
                is checked as soon as the 4 prefix bytes are in, before anything is reserved.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        start = self._pos
        if len(buf) - start < HEADER_SIZE:
            return None
        size = int.from_bytes(buf[start : start + HEADER_SIZE], "big")
        if size > self._max:
            self._error = ProtocolError(
                f"frame length {size} exceeds the maximum frame size of {self._max}"
            )
            raise self._error
        end = start + HEADER_SIZE + size
        if len(buf) < end:
            return None
        payload = bytes(buf[start + HEADER_SIZE : end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return payload

    def __iter__(self) -> FrameDecoder:
        return self

    def __next__(self) -> bytes:
        payload = self.next_frame()
        if payload is None:
            raise StopIteration
        return payload

    def take_raw(self, limit: int) -> bytes:
        """Remove and return up to ``limit`` buffered bytes, for a raw-bytes phase."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        start = self._pos
        end = min(len(self._buf), start + limit)
        raw = bytes(self._buf[start:end])
        if end == len(self._buf):
            self._buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return raw

    def check_eof(self) -> None:
        """Call at end of stream: raise ``ProtocolError`` if a frame was cut short."""
        if self._error is not None:
            raise self._error
        pending = self.buffered
        if pending == 0:
            return
        if pending < HEADER_SIZE:
            raise ProtocolError(f"truncated frame: stream ended after {pending} of 4 length bytes")
        start = self._pos
        size = int.from_bytes(self._buf[start : start + HEADER_SIZE], "big")
        if pending - HEADER_SIZE >= size:
            return  # a whole frame is still waiting to be taken; nothing was cut short
        raise ProtocolError(
            f"truncated frame: stream ended after {pending - HEADER_SIZE} of {size} payload bytes"
        )
