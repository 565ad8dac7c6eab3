"""Manifests: a layer's file metadata, with file data inline or named by digest.

A manifest is our own versioned, deterministic binary format: the same entries always give the
same bytes, so the same digest. Entries are written in the order given; the builder sorts them.

Layout: a sequence of records, each a 4-byte big-endian length and one canonical CBOR item. The
first record is the version header ``["maelstrom-manifest", 1]``; every later record is one entry,
``[path, mode, mtime, size, kind]`` plus a payload for the kinds that carry one. A reader can
stream it record by record, and any truncation or garbage is an ``ArtifactError``.
"""

from __future__ import annotations

import io
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import cbor2

from .errors import ArtifactError

__all__ = [
    "MANIFEST_INLINE_LIMIT",
    "MANIFEST_VERSION",
    "Directory",
    "EmptyFile",
    "EntryData",
    "FileByDigest",
    "Hardlink",
    "InlineFile",
    "ManifestEntry",
    "ManifestWriter",
    "Symlink",
    "Whiteout",
    "decode_manifest",
    "encode_manifest",
    "file_digests",
    "iter_manifest",
]

MANIFEST_VERSION = 1
MANIFEST_INLINE_LIMIT = 200 * 1024  # files up to this size travel inside the manifest


@dataclass(frozen=True, slots=True)
class Directory:
    opaque: bool = False  # hides whatever lower layers have below this directory


@dataclass(frozen=True, slots=True)
class InlineFile:
    data: bytes


@dataclass(frozen=True, slots=True)
class FileByDigest:
    digest: bytes  # 32 raw bytes of SHA-256; the blob is a separate artifact


@dataclass(frozen=True, slots=True)
class EmptyFile:
    pass


@dataclass(frozen=True, slots=True)
class Symlink:
    target: bytes


@dataclass(frozen=True, slots=True)
class Hardlink:
    target: str  # in-layer path of an earlier entry of the same manifest


@dataclass(frozen=True, slots=True)
class Whiteout:
    pass


EntryData = Directory | InlineFile | FileByDigest | EmptyFile | Symlink | Hardlink | Whiteout


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One path of a layer. ``mode`` is the raw ``st_mode`` (type bits included)."""

    path: str  # absolute in-layer path, e.g. "/usr/lib/libc.so.6"; never "/" itself
    mode: int
    mtime: int  # whole seconds since the epoch
    size: int  # bytes of a regular file's data; 0 for everything else
    data: EntryData


# --- binary format ----------------------------------------------------------------------------

_MAGIC = "maelstrom-manifest"
_LEN = struct.Struct(">I")
# An inline file is at most MANIFEST_INLINE_LIMIT bytes; anything far larger is garbage, and we
# refuse it before allocating.
_MAX_RECORD = MANIFEST_INLINE_LIMIT + 1024 * 1024
_DIR, _INLINE, _DIGEST, _EMPTY, _SYMLINK, _HARDLINK, _WHITEOUT = range(7)
_MAX_I64 = 2**63 - 1


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ManifestWriter:
    """Writes a manifest to a binary stream record by record, validating each entry."""

    def __init__(self, out: _Writable) -> None:
        self._out = out
        self._checker = _EntryChecker()
        self._record([_MAGIC, MANIFEST_VERSION])

    def write(self, entry: ManifestEntry) -> None:
        self._checker.check(entry)
        self._record(_entry_to_item(entry))

    def _record(self, item: object) -> None:
        payload = cbor2.dumps(item, canonical=True)
        self._out.write(_LEN.pack(len(payload)))
        self._out.write(payload)


def encode_manifest(entries: Iterable[ManifestEntry]) -> bytes:
    """The manifest bytes for ``entries``, in the order given.

    Raises:
        ArtifactError: an entry is malformed (bad path, wrong size, duplicate path, ...).
    """
    out = io.BytesIO()
    writer = ManifestWriter(out)
    for entry in entries:
        writer.write(entry)
    return out.getvalue()


def decode_manifest(data: bytes) -> list[ManifestEntry]:
    """Parse manifest bytes. Raises ArtifactError naming the record on any malformation."""
    return list(iter_manifest(io.BytesIO(data)))


def iter_manifest(stream: IO[bytes]) -> Iterator[ManifestEntry]:
    """Parse a manifest from a binary stream one record at a time.

    Raises:
        ArtifactError: truncated, garbage, wrong types, unknown version or inconsistent entries.
    """
    header = _read_record(stream, 0)
    if header is None:
        raise ArtifactError("manifest is empty: missing version record")
    if (
        not isinstance(header, list)
        or len(header) != 2
        or header[0] != _MAGIC
        or type(header[1]) is not int
    ):
        raise ArtifactError("manifest has no valid version record: not a maelstrom manifest")
    if header[1] != MANIFEST_VERSION:
        raise ArtifactError(f"manifest version {header[1]} is not supported (want 1)")
    checker = _EntryChecker()
    index = 1
    while (item := _read_record(stream, index)) is not None:
        try:
            entry = _item_to_entry(item)
            checker.check(entry)
        except ArtifactError as err:
            raise ArtifactError(f"manifest record {index}: {err}") from None
        yield entry
        index += 1


def _read_record(stream: IO[bytes], index: int) -> Any:
    head = stream.read(_LEN.size)
    if not head:
        return None
    if len(head) < _LEN.size:
        raise ArtifactError(f"manifest record {index}: truncated length prefix")
    (length,) = _LEN.unpack(head)
    if length == 0 or length > _MAX_RECORD:
        raise ArtifactError(f"manifest record {index}: bad record length {length}")
    payload = stream.read(length)
    if len(payload) < length:
        raise ArtifactError(
            f"manifest record {index}: truncated ({len(payload)} of {length} bytes)"
        )
    body = io.BytesIO(payload)
    try:
        item = cbor2.CBORDecoder(body).decode()
    except Exception as err:
        raise ArtifactError(f"manifest record {index}: not valid CBOR ({err})") from None
    if body.tell() != length:
        raise ArtifactError(f"manifest record {index}: trailing bytes after the record")
    return item


def _entry_to_item(entry: ManifestEntry) -> list[object]:
    head: list[object] = [entry.path, entry.mode, entry.mtime, entry.size]
    data = entry.data
    match data:
        case Directory(opaque=opaque):
            return [*head, _DIR, opaque]
        case InlineFile(data=payload):
            return [*head, _INLINE, payload]
        case FileByDigest(digest=digest):
            return [*head, _DIGEST, digest]
        case EmptyFile():
            return [*head, _EMPTY]
        case Symlink(target=target):
            return [*head, _SYMLINK, target]
        case Hardlink(target=target):
            return [*head, _HARDLINK, target]
        case Whiteout():
            return [*head, _WHITEOUT]
    raise ArtifactError(f"entry {entry.path!r}: unknown data {data!r}")


def _item_to_entry(item: Any) -> ManifestEntry:
    if not isinstance(item, list) or len(item) not in (5, 6):
        raise ArtifactError("entry is not a 5- or 6-element array")
    path, mode, mtime, size, kind = item[:5]
    payload = item[5] if len(item) == 6 else None
    has_payload = len(item) == 6
    data: EntryData
    if type(kind) is not int:
        raise ArtifactError("entry kind is not an integer")
    if kind in (_EMPTY, _WHITEOUT):
        if has_payload:
            raise ArtifactError("entry kind takes no payload")
        data = EmptyFile() if kind == _EMPTY else Whiteout()
    elif not has_payload:
        raise ArtifactError(f"entry kind {kind} needs a payload")
    elif kind == _DIR and type(payload) is bool:
        data = Directory(opaque=payload)
    elif kind == _INLINE and type(payload) is bytes:
        data = InlineFile(payload)
    elif kind == _DIGEST and type(payload) is bytes:
        data = FileByDigest(payload)
    elif kind == _SYMLINK and type(payload) is bytes:
        data = Symlink(payload)
    elif kind == _HARDLINK and type(payload) is str:
        data = Hardlink(payload)
    else:
        raise ArtifactError(f"entry kind {kind} with a payload of type {type(payload).__name__}")
    if type(path) is not str or type(mode) is not int or type(mtime) is not int:
        raise ArtifactError("entry path/mode/mtime have wrong types")
    if type(size) is not int:
        raise ArtifactError("entry size is not an integer")
    return ManifestEntry(path=path, mode=mode, mtime=mtime, size=size, data=data)


class _EntryChecker:
    """Checks one entry at a time against the format's rules, including cross-entry ones."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, entry: ManifestEntry) -> None:
        path = entry.path
        _check_path(path, "path")
        if path in self._seen:
            raise ArtifactError(f"entry {path!r}: duplicate path")
        if not 0 <= entry.mode < 2**32:
            raise ArtifactError(f"entry {path!r}: mode {entry.mode} out of range")
        if not -_MAX_I64 - 1 <= entry.mtime <= _MAX_I64:
            raise ArtifactError(f"entry {path!r}: mtime {entry.mtime} out of range")
        if not 0 <= entry.size <= _MAX_I64:
            raise ArtifactError(f"entry {path!r}: size {entry.size} out of range")
        _check_data(entry)
        self._seen.add(path)
        if isinstance(entry.data, Hardlink):
            _check_path(entry.data.target, "hard link target")
            if entry.data.target not in self._seen or entry.data.target == path:
                target = entry.data.target
                raise ArtifactError(f"entry {path!r}: hard link target {target!r} is not earlier")


def _check_path(path: str, what: str) -> None:
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise ArtifactError(f"{what} {path!r} is not an absolute path below /")
    parts = path[1:].split("/")
    if any(part in ("", ".", "..") for part in parts) or "\0" in path:
        raise ArtifactError(f"{what} {path!r} has an empty, '.', '..' or NUL component")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactError(f"{what} {path!r} is not valid UTF-8") from None


def _check_data(entry: ManifestEntry) -> None:
    data, kind, path = entry.data, stat.S_IFMT(entry.mode), entry.path
    if isinstance(data, Directory):
        expected = stat.S_IFDIR
    elif isinstance(data, InlineFile | FileByDigest | EmptyFile | Hardlink):
        expected = stat.S_IFREG
    elif isinstance(data, Symlink):
        expected = stat.S_IFLNK
    else:
        expected = kind  # a whiteout's mode is not interpreted
    if kind != expected:
        raise ArtifactError(f"entry {path!r}: mode {entry.mode:#o} does not match its data")
    if isinstance(data, InlineFile):
        if entry.size != len(data.data):
            raise ArtifactError(
                f"entry {path!r}: size {entry.size} but {len(data.data)} inline bytes"
            )
    elif isinstance(data, FileByDigest):
        if len(data.digest) != 32:
            raise ArtifactError(f"entry {path!r}: digest is {len(data.digest)} bytes, not 32")
    elif entry.size != 0:
        raise ArtifactError(f"entry {path!r}: size {entry.size} for an entry without file data")
    if isinstance(data, Symlink) and (not data.target or b"\0" in data.target):
        raise ArtifactError(f"entry {path!r}: symlink target is empty or holds NUL")


def file_digests(entries: Iterable[ManifestEntry]) -> list[bytes]:
    """The distinct blob digests a manifest's entries refer to, in first-use order."""
    seen: dict[bytes, None] = {}
    for entry in entries:
        if isinstance(entry.data, FileByDigest):
            seen.setdefault(entry.data.digest, None)
    return list(seen)
