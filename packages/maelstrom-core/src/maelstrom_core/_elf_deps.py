"""Shared-library dependencies of ELF binaries, resolved the way the host's ``ld.so`` would.

For each object, every ``DT_NEEDED`` name is searched, in glibc's order: a name with a ``/`` is
used as written; otherwise the ``DT_RPATH`` of the object and of the objects that loaded it (only
when the object has no ``DT_RUNPATH``), then its ``DT_RUNPATH``, then ``/etc/ld.so.cache``, then
the directories of ``/etc/ld.so.conf`` (in case the cache is stale), then the default system
directories. A candidate counts only if it is an ELF object of the binary's class, byte order
and machine. ``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded in search paths.
``LD_LIBRARY_PATH`` is ignored on purpose: a job's layers must not depend on the client's shell.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from ._ldso_cache import parse_ld_so_conf, read_ld_so_cache
from .errors import SpecError

__all__ = ["ElfInfo", "LibraryResolver", "read_elf"]

_ELF_MAGIC = b"\x7fELF"
# e_machine -> (Debian multiarch triplet, $PLATFORM)
_MACHINES = {
    3: ("i386-linux-gnu", "i686"),
    40: ("arm-linux-gnueabihf", "armv7l"),
    62: ("x86_64-linux-gnu", "x86_64"),
    183: ("aarch64-linux-gnu", "aarch64"),
    21: ("powerpc64le-linux-gnu", "ppc64le"),
    22: ("s390x-linux-gnu", "s390x"),
    243: ("riscv64-linux-gnu", "riscv64"),
}


@dataclass(frozen=True, slots=True)
class ElfInfo:
    """What the loader reads from one object."""

    abi: tuple[int, int, int]  # (EI_CLASS, EI_DATA, e_machine): objects must agree on it
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]


def _abi(path: str) -> tuple[int, int, int] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or not head.startswith(_ELF_MAGIC) or head[5] not in (1, 2):
        return None
    (machine,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)
    return head[4], head[5], machine


def read_elf(path: str) -> ElfInfo:
    """Read the loader-relevant parts of an ELF file.

    Raises:
        SpecError: ``path`` is missing, unreadable or not an ELF object.
    """
    abi = _abi(path)
    if abi is None:
        if not os.path.exists(path):
            raise SpecError(f"{path}: no such file")
        raise SpecError(f"{path}: not an ELF file (or unreadable)")
    interpreter: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    interpreter = segment.get_interp_name()
                elif isinstance(segment, DynamicSegment):
                    for tag in segment.iter_tags():
                        # pyelftools attaches the tag's string as an attribute named after it
                        strings = vars(tag)
                        name = tag.entry.d_tag
                        if name == "DT_NEEDED":
                            needed.append(str(strings["needed"]))
                        elif name == "DT_RPATH":
                            rpath.extend(p for p in str(strings["rpath"]).split(":") if p)
                        elif name == "DT_RUNPATH":
                            runpath.extend(p for p in str(strings["runpath"]).split(":") if p)
    except (ELFError, OSError, ValueError, KeyError, struct.error, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: malformed ELF file ({err})") from None
    return ElfInfo(abi, interpreter, tuple(needed), tuple(rpath), tuple(runpath))


@dataclass(slots=True)
class _Pending:
    path: str
    info: ElfInfo
    inherited_rpath: tuple[str, ...] = field(default=())  # loaders' RPATH dirs, expanded


class LibraryResolver:
    """Finds the transitive closure of shared libraries a binary needs.

    Args:
        ld_so_conf: the loader's directory list (``include`` directives honoured).
        ld_so_cache: the loader's soname cache.
        default_dirs: overrides the system directories searched last (for tests).
    """

    def __init__(
        self,
        *,
        ld_so_conf: str = "/etc/ld.so.conf",
        ld_so_cache: str = "/etc/ld.so.cache",
        default_dirs: Iterable[str] | None = None,
    ) -> None:
        self._conf_dirs = parse_ld_so_conf(ld_so_conf)
        self._cache = read_ld_so_cache(ld_so_cache)
        self._default_dirs = None if default_dirs is None else tuple(default_dirs)
        self._infos: dict[str, ElfInfo] = {}

    def dependencies(self, binary: str) -> list[str]:
        """Sorted absolute host paths of every library ``binary`` loads, and its loader.

        The binary itself is not included.

        Raises:
            SpecError: the binary is not a readable ELF file, or a library cannot be found
                (naming the binary, the object that needs it and the library).
        """
        binary = os.path.abspath(binary)
        root = self._info(binary)
        found: set[str] = set()
        if root.interpreter:
            if _abi(root.interpreter) is None:
                raise SpecError(f"{binary}: its ELF interpreter {root.interpreter} is missing")
            found.add(root.interpreter)
        queue = deque([_Pending(binary, root)])
        # $ORIGIN of the main program is its real location, as the kernel resolves it
        origins = {binary: os.path.dirname(os.path.realpath(binary))}
        while queue:
            item = queue.popleft()
            origin = origins.get(item.path, os.path.dirname(item.path))
            own_rpath = self._expand(item.info.rpath, origin, root.abi)
            runpath = self._expand(item.info.runpath, origin, root.abi)
            rpath = () if runpath else (*own_rpath, *item.inherited_rpath)
            for name in item.info.needed:
                path = self._search(name, rpath, runpath, root.abi, origin)
                if path is None:
                    where = "" if item.path == binary else f" (needed by {item.path})"
                    raise SpecError(f"{binary}: shared library {name} not found{where}")
                if path in found or path == binary:
                    continue
                found.add(path)
                queue.append(_Pending(path, self._info(path), (*own_rpath, *item.inherited_rpath)))
        return sorted(found)

    def _info(self, path: str) -> ElfInfo:
        info = self._infos.get(path)
        if info is None:
            info = self._infos[path] = read_elf(path)
        return info

    def _search(
        self,
        name: str,
        rpath: tuple[str, ...],
        runpath: tuple[str, ...],
        abi: tuple[int, int, int],
        origin: str,
    ) -> str | None:
        if "/" in name:
            path = name if os.path.isabs(name) else os.path.join(origin, name)
            return path if _abi(path) == abi else None
        for directory in (*rpath, *runpath):
            if _abi(candidate := os.path.join(directory, name)) == abi:
                return candidate
        for candidate in self._cache.get(name, ()):
            if _abi(candidate) == abi:
                return candidate
        for directory in (*self._conf_dirs, *self._system_dirs(abi)):
            if _abi(candidate := os.path.join(directory, name)) == abi:
                return candidate
        return None

    def _system_dirs(self, abi: tuple[int, int, int]) -> tuple[str, ...]:
        if self._default_dirs is not None:
            return self._default_dirs
        triplet, _ = _MACHINES.get(abi[2], ("", ""))
        bits = "64" if abi[0] == 2 else "32"
        multi = (f"/lib/{triplet}", f"/usr/lib/{triplet}") if triplet else ()
        return (*multi, f"/lib{bits}", f"/usr/lib{bits}", "/lib", "/usr/lib")

    def _expand(
        self, dirs: tuple[str, ...], origin: str, abi: tuple[int, int, int]
    ) -> tuple[str, ...]:
        triplet, platform = _MACHINES.get(abi[2], ("", ""))
        libs = [f"lib/{triplet}"] if triplet else []
        libs.append("lib64" if abi[0] == 2 else "lib")
        out: list[str] = []
        for raw in dirs:
            text = raw.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            text = text.replace("${PLATFORM}", platform).replace("$PLATFORM", platform)
            if "$LIB" in text or "${LIB}" in text:
                out.extend(text.replace("${LIB}", lib).replace("$LIB", lib) for lib in libs)
            else:
                out.append(text)
        return tuple(dict.fromkeys(out))
