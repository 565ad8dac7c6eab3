"""Small, real root file systems for container tests, built from the host's own binaries.

A root is a list of layer directories, top first, the way the cache hands them to the launcher:
a stubs layer (mount points for /proc, /sys, /tmp, /mnt and the /dev nodes, as empty files and
directories) over a binaries layer (host programs plus every shared library ``ldd`` names and the
dynamic loader, at their host paths, so the loader finds them without an ld.so cache).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_PROGRAMS", "DEVICE_STUBS", "build_binaries_layer", "build_stubs_layer"]

DEFAULT_PROGRAMS = (
    "sh", "cat", "ls", "id", "sleep", "env", "true", "false", "mkdir", "touch", "rm",
    "readlink", "head", "wc", "dd", "yes", "stat", "grep", "kill",
)  # fmt: skip

STUB_DIRS = ("proc", "sys", "tmp", "mnt", "dev", "dev/pts", "dev/mqueue", "dev/shm", "root")
DEVICE_STUBS = ("full", "fuse", "null", "random", "tty", "urandom", "zero")

_LDD_PATH = re.compile(r"(/\S+)")


@functools.cache
def _libraries(program: str) -> tuple[str, ...]:
    """Absolute paths of the shared libraries and the loader ``program`` needs."""
    result = subprocess.run(["ldd", program], capture_output=True, text=True, check=False)
    if result.returncode != 0:  # a static binary
        return ()
    paths = []
    for line in result.stdout.splitlines():
        match = _LDD_PATH.search(line.split("=>")[-1])
        if match:
            paths.append(match.group(1))
    return tuple(paths)


def _copy_at_host_path(root: Path, host_path: str) -> None:
    """Copy ``host_path`` into ``root`` at the same path, recreating symlinks on the way."""
    destination = root / host_path.lstrip("/")
    if destination.exists() or destination.is_symlink():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(host_path):
        target = os.readlink(host_path)
        destination.symlink_to(target)
        _copy_at_host_path(root, os.path.join(os.path.dirname(host_path), target))
        return
    shutil.copy2(host_path, destination)


def build_binaries_layer(root: Path, programs: Iterable[str] = DEFAULT_PROGRAMS) -> Path:
    """Put each host program at ``/bin/<name>`` in ``root`` with its libraries and loader."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in programs:
        host = shutil.which(name)
        if host is None:
            raise FileNotFoundError(f"host program {name!r} not found for a test root")
        real = os.path.realpath(host)
        shutil.copy2(real, bin_dir / name)
        for library in _libraries(real):
            _copy_at_host_path(root, library)
    return root


def build_stubs_layer(root: Path) -> Path:
    """Empty mount points for every mount type and device a job may ask for."""
    for directory in STUB_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for device in DEVICE_STUBS:
        (root / "dev" / device).touch()
    return root
