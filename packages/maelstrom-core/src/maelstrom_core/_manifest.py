"""Manifests: a layer's file metadata, with file data inline or named by digest.

A manifest is our own versioned, deterministic binary format: the same entries always give the
same bytes, so the same digest. Entries are written in the order given; the builder sorts them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Directory",
    "EmptyFile",
    "EntryData",
    "FileByDigest",
    "Hardlink",
    "InlineFile",
    "ManifestEntry",
    "Symlink",
    "Whiteout",
]


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
