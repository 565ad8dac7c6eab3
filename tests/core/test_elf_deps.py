"""Shared-library resolution with pyelftools and the host loader's configuration."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from maelstrom_core._elf_deps import LibraryResolver, read_elf
from maelstrom_core._ldso_cache import parse_ld_so_cache, parse_ld_so_conf, read_ld_so_cache
from maelstrom_core.errors import SpecError

LS = shutil.which("ls") or "/bin/ls"
PYTHON3 = "/usr/bin/python3"


def ldd(binary: str) -> set[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and parts[parts.index("=>") + 1].startswith("/"):
            found.add(os.path.realpath(parts[parts.index("=>") + 1]))
        elif parts and parts[0].startswith("/"):
            found.add(os.path.realpath(parts[0]))
    return found


@pytest.mark.parametrize("binary", [LS, PYTHON3])
def test_host_binaries_match_ldd(binary: str) -> None:
    if not os.path.exists(binary) or shutil.which("ldd") is None:
        pytest.skip(f"{binary} or ldd not on this host")
    deps = LibraryResolver().dependencies(binary)
    assert deps == sorted(set(deps))
    assert binary not in deps
    assert any(os.path.basename(p) == "libc.so.6" for p in deps)
    interpreter = read_elf(binary).interpreter
    assert interpreter in deps  # the loader, at the path the kernel asks for
    assert {os.path.realpath(p) for p in deps} == ldd(binary)


def test_not_an_elf_and_missing_binary(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(SpecError, match="not an ELF file"):
        LibraryResolver().dependencies(str(script))
    with pytest.raises(SpecError, match="no such file"):
        LibraryResolver().dependencies(str(tmp_path / "nope"))


def test_missing_library_names_binary_and_library(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    resolver = LibraryResolver(
        ld_so_conf=str(tmp_path / "no.conf"),
        ld_so_cache=str(tmp_path / "no.cache"),
        default_dirs=[str(empty)],
    )
    with pytest.raises(SpecError, match=r"ls: shared library lib\S+ not found"):
        resolver.dependencies(LS)


def test_default_dirs_are_searched_when_cache_and_conf_are_empty(tmp_path: Path) -> None:
    # Copies of ls's libraries in a directory of our own, found only as a system directory.
    libs = tmp_path / "libs"
    libs.mkdir()
    for dep in LibraryResolver().dependencies(LS):
        shutil.copy(dep, libs / os.path.basename(dep))
    resolver = LibraryResolver(
        ld_so_conf=str(tmp_path / "no.conf"),
        ld_so_cache=str(tmp_path / "no.cache"),
        default_dirs=[str(libs)],
    )
    deps = resolver.dependencies(LS)
    interpreter = read_elf(LS).interpreter
    assert all(p.startswith(str(libs)) or p == interpreter for p in deps)


def test_ld_so_conf_includes_comments_and_loops(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (tmp_path / "ld.so.conf").write_text(
        "# comment\n/first/dir  # trailing comment\ninclude conf.d/*.conf\n/last:/also,/too\n"
    )
    (conf_d / "b.conf").write_text("/from/b\n")
    (conf_d / "a.conf").write_text("/from/a\ninclude ../ld.so.conf\nhwcap 0 nosegneg\n")
    assert parse_ld_so_conf(str(tmp_path / "ld.so.conf")) == [
        "/first/dir",
        "/from/a",
        "/from/b",
        "/last",
        "/also",
        "/too",
    ]
    assert parse_ld_so_conf(str(tmp_path / "missing.conf")) == []


def _cache_bytes(pairs: list[tuple[str, str]]) -> bytes:
    strings = b""
    offsets = []
    base = 48 + 24 * len(pairs)
    for key, value in pairs:
        k = base + len(strings)
        strings += key.encode() + b"\0"
        v = base + len(strings)
        strings += value.encode() + b"\0"
        offsets.append((k, v))
    head = struct.pack("<20sIIB3xI12x", b"glibc-ld.so.cache1.1", len(pairs), len(strings), 0, 0)
    table = b"".join(struct.pack("<iIIIQ", 0x303, k, v, 0, 0) for k, v in offsets)
    return head + table + strings


def test_ld_so_cache_parsing(tmp_path: Path) -> None:
    data = _cache_bytes([("libx.so.1", "/opt/x/libx.so.1"), ("libx.so.1", "/usr/libx.so.1")])
    assert parse_ld_so_cache(data) == {"libx.so.1": ["/opt/x/libx.so.1", "/usr/libx.so.1"]}
    with pytest.raises(ValueError, match="past the end"):
        parse_ld_so_cache(data[:60])
    with pytest.raises(ValueError, match=r"not an ld\.so\.cache"):
        parse_ld_so_cache(b"junk" * 20)
    bad = tmp_path / "bad.cache"
    bad.write_bytes(b"junk")
    assert read_ld_so_cache(str(bad)) == {}
    if os.path.exists("/etc/ld.so.cache"):
        assert "libc.so.6" in read_ld_so_cache()
