"""FrameDecoder / encode_frame: incremental framing, limits, truncation and raw leftovers."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maelstrom_core._framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
from maelstrom_core.errors import ProtocolError

payload_lists = st.lists(st.binary(max_size=300), max_size=8)


def test_encode_frame_is_big_endian_length_then_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


@given(payload_lists)
def test_byte_by_byte(payloads: list[bytes]) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    got: list[bytes] = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        got.extend(decoder)
    assert got == payloads
    assert decoder.buffered == 0
    decoder.check_eof()


@given(payload_lists, st.data())
def test_random_splits(payloads: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = FrameDecoder()
    got: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.feed(memoryview(wire)[start:end])
        got.extend(decoder)
    assert got == payloads


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x00\x00", "truncated frame: stream ended after 2 of 4 length bytes"),
        (b"\x00\x00\x00\x05ab", "truncated frame: stream ended after 2 of 5 payload bytes"),
        (encode_frame(b"ok") + b"\x00", "truncated frame: stream ended after 1 of 4 length bytes"),
    ],
)
def test_truncated_frame_at_eof(wire: bytes, message: str) -> None:
    decoder = FrameDecoder()
    decoder.feed(wire)
    list(decoder)
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        decoder.check_eof()


def test_complete_frame_still_buffered_is_not_truncation() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"x"))
    decoder.check_eof()
    assert decoder.next_frame() == b"x"


def test_4gib_length_prefix_rejected_before_allocating() -> None:
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        decoder.feed(b"\xff\xff\xff\xff")
        with pytest.raises(ProtocolError, match="frame length 4294967295 exceeds the maximum"):
            decoder.next_frame()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    # The decoder stays failed: the byte stream has lost its framing.
    with pytest.raises(ProtocolError):
        decoder.feed(b"more")
    with pytest.raises(ProtocolError):
        decoder.check_eof()


def test_max_frame_size_is_per_decoder() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    decoder.feed(encode_frame(b"0123456789"))
    assert decoder.next_frame() == b"0123456789"
    decoder.feed(b"\x00\x00\x00\x0b")
    with pytest.raises(ProtocolError, match="frame length 11 exceeds the maximum frame size of 10"):
        decoder.next_frame()
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE == 16 * 1024 * 1024


def test_encode_frame_refuses_oversized_payload() -> None:
    with pytest.raises(ProtocolError, match="11 bytes exceeds the maximum frame size of 10"):
        encode_frame(b"x" * 11, max_frame_size=10)


def test_bad_max_frame_size() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(max_frame_size=1 << 32)


@given(st.binary(max_size=50), st.binary(max_size=200), st.binary(max_size=50), st.data())
def test_raw_phase_leftovers(header: bytes, raw: bytes, after: bytes, data: st.DataObject) -> None:
    """A frame, then raw bytes, then a frame, all arriving in arbitrary pieces: next_frame stops
    at the first frame, take_raw hands back exactly the raw bytes buffered, and the last frame
    decodes intact whatever was buffered when the raw phase began."""
    wire = encode_frame(header) + raw + encode_frame(after)
    split = data.draw(st.integers(len(header) + 4, len(wire)))
    decoder = FrameDecoder()
    decoder.feed(wire[:split])
    assert decoder.next_frame() == header
    taken = decoder.take_raw(len(raw))
    assert raw.startswith(taken)
    # What the caller would read itself from the socket, never past the raw bytes:
    rest_of_raw = wire[split : len(header) + 4 + len(raw)] if len(taken) < len(raw) else b""
    assert taken + rest_of_raw == raw
    decoder.feed(wire[max(split, len(header) + 4 + len(raw)) :])
    assert decoder.next_frame() == after
    assert decoder.buffered == 0


def test_take_raw_bounds() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"abcdef")
    assert decoder.take_raw(0) == b""
    assert decoder.take_raw(4) == b"abcd"
    assert decoder.take_raw(10) == b"ef"
    assert decoder.buffered == 0
    with pytest.raises(ValueError, match="limit"):
        decoder.take_raw(-1)


def test_sans_io_modules_do_not_import_trio() -> None:
    code = (
        "import sys, maelstrom_core._framing, maelstrom_core.proto;sys.exit('trio' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
