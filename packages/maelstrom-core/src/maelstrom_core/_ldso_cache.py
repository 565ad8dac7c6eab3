"""The host dynamic loader's configuration: ``/etc/ld.so.cache`` and ``/etc/ld.so.conf``.

The cache is glibc's binary index of sonames to paths (the ``glibc-ld.so.cache1.1`` format,
alone or after the old ``ld.so-1.7.0`` table). ``ld.so.conf`` lists directories, one or more
per line, with ``include <glob>`` directives (relative globs are relative to the including file's
directory) and ``#`` comments. Both are read leniently: a missing or unreadable file is empty,
because the loader itself treats it so.
"""

from __future__ import annotations

import glob
import logging
import os
import struct

__all__ = ["parse_ld_so_cache", "parse_ld_so_conf", "read_ld_so_cache"]

log = logging.getLogger("maelstrom_core.layers")

_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_NEW_HEADER = struct.Struct("<20sIIB3xI12x")  # magic+version, nlibs, len_strings, flags, ext
_NEW_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_OLD_ENTRY = struct.Struct("<iII")  # flags, key, value


def read_ld_so_cache(path: str = "/etc/ld.so.cache") -> dict[str, list[str]]:
    """Sonames to candidate paths, in the cache's order; empty if there is no usable cache."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    try:
        return parse_ld_so_cache(data)
    except ValueError as err:
        log.warning("%s: ignoring unreadable loader cache (%s)", path, err)
        return {}


def parse_ld_so_cache(data: bytes) -> dict[str, list[str]]:
    """Parse the bytes of an ``ld.so.cache``. Raises ValueError if they are not one."""
    start = 0
    if data.startswith(_OLD_MAGIC):
        if len(data) < 16:
            raise ValueError("truncated old-format header")
        (nlibs,) = struct.unpack_from("<I", data, 12)
        start = 16 + nlibs * _OLD_ENTRY.size
        start = (start + 7) & ~7  # the new table is aligned for its 64-bit fields
        if not data.startswith(_NEW_MAGIC, start):
            return _parse_old(data, nlibs)
    if not data.startswith(_NEW_MAGIC, start):
        raise ValueError("not an ld.so.cache")
    if len(data) < start + _NEW_HEADER.size:
        raise ValueError("truncated header")
    _, nlibs, _len_strings, _flags, _ext = _NEW_HEADER.unpack_from(data, start)
    table = start + _NEW_HEADER.size
    if table + nlibs * _NEW_ENTRY.size > len(data):
        raise ValueError("entry table runs past the end")
    out: dict[str, list[str]] = {}
    for i in range(nlibs):
        _flags_e, key, value, _os, _hwcap = _NEW_ENTRY.unpack_from(
            data, table + i * _NEW_ENTRY.size
        )
        # offsets in the new format count from the start of the new header
        name, where = _string(data, start + key), _string(data, start + value)
        out.setdefault(name, []).append(where)
    return out


def _parse_old(data: bytes, nlibs: int) -> dict[str, list[str]]:
    strings = 16 + nlibs * _OLD_ENTRY.size
    if strings > len(data):
        raise ValueError("entry table runs past the end")
    out: dict[str, list[str]] = {}
    for i in range(nlibs):
        _flags, key, value = _OLD_ENTRY.unpack_from(data, 16 + i * _OLD_ENTRY.size)
        out.setdefault(_string(data, strings + key), []).append(_string(data, strings + value))
    return out


def _string(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset >= len(data) or end < 0:
        raise ValueError(f"string offset {offset} out of range")
    return os.fsdecode(data[offset:end])


def parse_ld_so_conf(path: str = "/etc/ld.so.conf") -> list[str]:
    """Directories listed by ``path`` and everything it includes, in order, without repeats."""
    dirs: list[str] = []
    _read_conf(path, dirs, seen=set())
    return list(dict.fromkeys(dirs))


def _read_conf(path: str, dirs: list[str], seen: set[str]) -> None:
    real = os.path.realpath(path)
    if real in seen:  # include loops are the admin's mistake, not a hang for us
        return
    seen.add(real)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    here = os.path.dirname(path)
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        if word == "include":
            for pattern in rest.split():
                full = pattern if os.path.isabs(pattern) else os.path.join(here, pattern)
                for included in sorted(glob.glob(full)):
                    _read_conf(included, dirs, seen)
        elif word == "hwcap":
            continue
        else:
            for item in line.replace(",", " ").replace(":", " ").replace("\t", " ").split():
                # the old "dir=TYPE" form names a library type after the directory
                directory = item.split("=", 1)[0]
                if directory.startswith("/"):
                    dirs.append(directory.rstrip("/") or "/")
