"""The manifest binary format: round trips, determinism, and strict decoding of bad bytes."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maelstrom_core._manifest import (
    MANIFEST_INLINE_LIMIT,
    Directory,
    EmptyFile,
    FileByDigest,
    Hardlink,
    InlineFile,
    ManifestEntry,
    Symlink,
    Whiteout,
    decode_manifest,
    encode_manifest,
)
from maelstrom_core.errors import ArtifactError

REG, DIR, LNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK

EXAMPLE = [
    ManifestEntry("/d", DIR | 0o755, 1, 0, Directory()),
    ManifestEntry("/d/opaque", DIR | 0o700, 2, 0, Directory(opaque=True)),
    ManifestEntry("/d/small", REG | 0o644, -5, 3, InlineFile(b"abc")),
    ManifestEntry("/d/empty", REG | 0o644, 0, 0, InlineFile(b"")),
    ManifestEntry("/d/big", REG | 0o755, 2**40, 10**9, FileByDigest(bytes(range(32)))),
    ManifestEntry("/d/stub", REG | 0o444, 1705000271, 0, EmptyFile()),
    ManifestEntry("/d/link", LNK | 0o777, 0, 0, Symlink(b"../x")),
    ManifestEntry("/d/hard", REG | 0o644, 0, 0, Hardlink("/d/small")),
    ManifestEntry("/d/gone", 0o20000, 0, 0, Whiteout()),
    ManifestEntry("/ünï cödé/☃", REG, 0, 1, InlineFile(b"\0")),
]


def test_round_trip_of_every_kind() -> None:
    assert decode_manifest(encode_manifest(EXAMPLE)) == EXAMPLE


def test_starts_with_a_length_prefixed_version_record() -> None:
    data = encode_manifest([])
    length = int.from_bytes(data[:4], "big")
    assert len(data) == 4 + length
    assert decode_manifest(data) == []


def test_inline_limit_is_200_kib() -> None:
    assert MANIFEST_INLINE_LIMIT == 200 * 1024


_names = st.text(
    st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))


@st.composite
def entry_lists(draw: st.DrawFn) -> list[ManifestEntry]:
    paths = draw(st.lists(st.lists(_names, min_size=1, max_size=3), max_size=12))
    unique = list(dict.fromkeys("/" + "/".join(p) for p in paths))
    out: list[ManifestEntry] = []
    files: list[str] = []
    for path in unique:
        mtime = draw(st.integers(-(2**63), 2**63 - 1))
        perm = draw(st.integers(0, 0o7777))
        kind = draw(st.sampled_from(["dir", "inline", "digest", "empty", "link", "hard", "white"]))
        if kind == "hard" and not files:
            kind = "empty"
        match kind:
            case "dir":
                entry = ManifestEntry(path, DIR | perm, mtime, 0, Directory(draw(st.booleans())))
            case "inline":
                data = draw(st.binary(max_size=64))
                entry = ManifestEntry(path, REG | perm, mtime, len(data), InlineFile(data))
            case "digest":
                size = draw(st.integers(0, 2**63 - 1))
                digest = draw(st.binary(min_size=32, max_size=32))
                entry = ManifestEntry(path, REG | perm, mtime, size, FileByDigest(digest))
            case "empty":
                entry = ManifestEntry(path, REG | perm, mtime, 0, EmptyFile())
            case "link":
                target = draw(st.binary(min_size=1, max_size=20).filter(lambda b: b"\0" not in b))
                entry = ManifestEntry(path, LNK | perm, mtime, 0, Symlink(target))
            case "hard":
                entry = ManifestEntry(
                    path, REG | perm, mtime, 0, Hardlink(draw(st.sampled_from(files)))
                )
            case _:
                entry = ManifestEntry(path, draw(st.integers(0, 2**32 - 1)), mtime, 0, Whiteout())
        if kind in ("inline", "digest", "empty"):
            files.append(path)
        out.append(entry)
    return out


@given(entry_lists())
def test_round_trip_property(entries: list[ManifestEntry]) -> None:
    data = encode_manifest(entries)
    assert decode_manifest(data) == entries
    assert encode_manifest(decode_manifest(data)) == data


def test_same_entries_same_bytes_across_processes() -> None:
    script = (
        "import hashlib, sys; sys.path.insert(0, 'tests/core');"
        "from test_manifest import EXAMPLE; from maelstrom_core._manifest import encode_manifest;"
        "print(hashlib.sha256(encode_manifest(EXAMPLE)).hexdigest())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in ("1", "2")
    ]
    import hashlib

    assert runs[0] == runs[1] == hashlib.sha256(encode_manifest(EXAMPLE)).hexdigest() + "\n"


def test_every_truncation_is_an_artifact_error() -> None:
    data = encode_manifest(EXAMPLE)
    boundaries = set()
    pos = 0
    while pos < len(data):
        boundaries.add(pos)
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
    for cut in range(len(data)):
        if cut in boundaries and cut > 0:
            continue  # a clean end at a record boundary is a shorter, valid manifest
        with pytest.raises(ArtifactError, match="manifest"):
            decode_manifest(data[:cut])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_is_an_artifact_error_or_nothing(garbage: bytes) -> None:
    header = encode_manifest([])
    for data in (garbage, header + garbage):
        try:
            decode_manifest(data)
        except ArtifactError:
            pass


def _record(item: object) -> bytes:
    import cbor2

    payload = cbor2.dumps(item)
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (["/a", REG, 0, 1, 1, "text not bytes"], "payload of type str"),
        (["/a", REG, 0, 2, 1, b"x"], "size 2 but 1 inline"),
        (["a", REG, 0, 0, 3], "not an absolute path"),
        (["/a/../b", REG, 0, 0, 3], "'..'"),
        (["/a", REG, 0, 0, 2, b"short"], "not 32"),
        (["/a", DIR, 0, 0, 1, b""], "does not match its data"),
        (["/a", REG, 0, 0, 5, "/nowhere"], "is not earlier"),
        (["/a", REG, 0, 0, 9, None], "kind 9"),
        (["/a", REG, 0, 0, 3, None], "takes no payload"),
        (["/a", REG, True, 0, 3], "wrong types"),
        (["/a", REG, 0, 0], "5- or 6-element"),
        ({"path": "/a"}, "5- or 6-element"),
    ],
)
def test_bad_entries_are_named(record: object, message: str) -> None:
    with pytest.raises(ArtifactError, match=message) as err:
        decode_manifest(encode_manifest([]) + _record(record))
    assert "record 1" in str(err.value)


def test_unknown_version_and_foreign_header_are_rejected() -> None:
    with pytest.raises(ArtifactError, match="version 2 is not supported"):
        decode_manifest(_record(["maelstrom-manifest", 2]))
    with pytest.raises(ArtifactError, match="not a maelstrom manifest"):
        decode_manifest(_record(["something-else", 1]))
    with pytest.raises(ArtifactError, match="empty"):
        decode_manifest(b"")


def test_trailing_bytes_inside_a_record_and_huge_lengths_are_rejected() -> None:
    import cbor2

    payload = cbor2.dumps(["/a", REG, 0, 0, 3]) + b"\0"
    with pytest.raises(ArtifactError, match="trailing bytes"):
        decode_manifest(encode_manifest([]) + len(payload).to_bytes(4, "big") + payload)
    with pytest.raises(ArtifactError, match="bad record length"):
        decode_manifest(encode_manifest([]) + b"\xff\xff\xff\xff")


def test_encode_rejects_duplicates_and_bad_entries() -> None:
    entry = ManifestEntry("/a", REG, 0, 0, EmptyFile())
    with pytest.raises(ArtifactError, match="duplicate"):
        encode_manifest([entry, entry])
    with pytest.raises(ArtifactError, match="absolute"):
        encode_manifest([ManifestEntry("/", DIR, 0, 0, Directory())])
