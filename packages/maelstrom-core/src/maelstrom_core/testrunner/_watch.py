"""``--watch``: wait until something in the project changes (§4.8).

The project directory is watched recursively with inotify (through ctypes: one watch per
directory, added for new directories as they appear). Read and access events do not count;
nor do paths under the excluded prefixes (``.git``, the tags lock file, the front end's
excludes such as cargo's target dir). The first event that counts starts a ~100 ms quiet
period, so an editor's save or a ``git checkout`` becomes one rerun. A watcher error (the
event queue overflowing, say) also counts as a change: rerunning is the safe answer.

Where inotify is unavailable (an ``ENOSYS`` seccomp filter, a full ``max_user_instances``),
the tree is polled once a second for changed stat results instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

import trio

__all__ = ["DEBOUNCE_SECONDS", "TAGS_LOCK_FILE", "ChangeWatcher", "watch_excludes"]

DEBOUNCE_SECONDS: Final = 0.1
TAGS_LOCK_FILE: Final = "maelstrom-container-tags.lock"
_POLL_SECONDS: Final = 1.0

# <sys/inotify.h>
_IN_MODIFY: Final = 0x002
_IN_ATTRIB: Final = 0x004
_IN_CLOSE_WRITE: Final = 0x008
_IN_MOVED_FROM: Final = 0x040
_IN_MOVED_TO: Final = 0x080
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_DELETE_SELF: Final = 0x400
_IN_MOVE_SELF: Final = 0x800
_IN_Q_OVERFLOW: Final = 0x4000
_IN_IGNORED: Final = 0x8000
_IN_ONLYDIR: Final = 0x01000000
_IN_DONT_FOLLOW: Final = 0x02000000
_IN_ISDIR: Final = 0x40000000
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = os.O_CLOEXEC
# Everything that changes the tree; IN_ACCESS, IN_OPEN and IN_CLOSE_NOWRITE (reads) are left out.
_CHANGES: Final = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_EVENT: Final = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

log = logging.getLogger("maelstrom_core.testrunner")


def watch_excludes(project_dir: Path, extra: Iterable[Path]) -> list[Path]:
    """The excluded prefixes: ``.git``, the tags lock file, and ``extra`` (relative paths are
    relative to ``project_dir``), all absolute."""
    paths = [project_dir / ".git", project_dir / TAGS_LOCK_FILE]
    paths += [path if path.is_absolute() else project_dir / path for path in extra]
    return [Path(os.path.abspath(path)) for path in paths]


class ChangeWatcher:
    """Watches ``root`` recursively; ``await wait()`` returns after a change settles.

    Open with ``with ChangeWatcher(root, excludes) as watcher``; events from before that are
    not seen. Changes under a path in ``excludes`` are ignored.
    """

    def __init__(
        self, root: Path, excludes: Sequence[Path], *, debounce: float = DEBOUNCE_SECONDS
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self._excludes = tuple(str(Path(os.path.abspath(p))) for p in excludes)
        self._debounce = debounce
        self._fd: int | None = None
        self._dirs: dict[int, str] = {}
        self._snapshot: dict[str, tuple[int, int, int, int]] | None = None

    # -- lifetime --------------------------------------------------------------------------

    def __enter__(self) -> ChangeWatcher:
        try:
            self._fd = _inotify_init()
        except OSError as err:
            log.warning("cannot watch with inotify (%s); polling for changes instead", err)
            self._snapshot = self._scan()
            return self
        self._watch_tree(self.root)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def uses_inotify(self) -> bool:
        return self._fd is not None

    # -- waiting ---------------------------------------------------------------------------

    async def wait(self) -> None:
        """Return once a change counts and no further event came for the debounce time."""
        if self._fd is None:
            await self._poll()
            return
        while not self._relevant(await self._read()):
            pass
        # Swallow the burst that usually follows (editors write, rename and chmod): wait
        # until no change that counts has come for the debounce time.
        deadline = trio.current_time() + self._debounce
        while True:
            with trio.move_on_at(deadline) as scope:
                data = await self._read()
            if scope.cancelled_caught:
                return
            if self._relevant(data):
                deadline = trio.current_time() + self._debounce

    async def _read(self) -> bytes:
        fd = self._fd
        assert fd is not None
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, 64 * 1024)
            except BlockingIOError:
                continue

    def _relevant(self, data: bytes) -> bool:
        relevant = False
        for wd, mask, name in _events(data):
            if mask & _IN_Q_OVERFLOW:
                relevant = True  # events were lost: assume one of them mattered
                continue
            if mask & _IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            directory = self._dirs.get(wd)
            if directory is None:
                continue
            path = os.path.join(directory, name) if name else directory
            if self._excluded(path):
                continue
            if mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
                self._watch_tree(Path(path))
            relevant = True
        return relevant

    async def _poll(self) -> None:
        while True:
            await trio.sleep(_POLL_SECONDS)
            current = await trio.to_thread.run_sync(self._scan)
            if current != self._snapshot:
                self._snapshot = current
                await trio.sleep(self._debounce)
                self._snapshot = await trio.to_thread.run_sync(self._scan)
                return

    # -- the tree --------------------------------------------------------------------------

    def _excluded(self, path: str) -> bool:
        return any(path == ex or path.startswith(ex + os.sep) for ex in self._excludes)

    def _directories(self, top: Path) -> Iterator[str]:
        for directory, subdirs, _ in os.walk(top, onerror=None, followlinks=False):
            subdirs[:] = [d for d in subdirs if not self._excluded(os.path.join(directory, d))]
            if not self._excluded(directory):
                yield directory

    def _watch_tree(self, top: Path) -> None:
        assert self._fd is not None
        for directory in self._directories(top):
            try:
                wd = _add_watch(self._fd, directory, _CHANGES | _IN_ONLYDIR | _IN_DONT_FOLLOW)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    continue  # gone already, or not ours to read: nothing to watch there
                if err.errno == errno.ENOSPC:
                    log.warning(
                        "inotify watch limit reached (fs.inotify.max_user_watches); "
                        "changes under %s may be missed",
                        directory,
                    )
                    return
                raise
            self._dirs[wd] = directory

    def _scan(self) -> dict[str, tuple[int, int, int, int]]:
        snapshot: dict[str, tuple[int, int, int, int]] = {}
        for directory in self._directories(self.root):
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                path = entry.path
                if self._excluded(path):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                snapshot[path] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
        return snapshot


def _events(data: bytes) -> Iterator[tuple[int, int, str]]:
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        raw = data[offset : offset + length]
        offset += length
        yield wd, mask, os.fsdecode(raw.split(b"\0", 1)[0])


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.inotify_init1.argtypes = [ctypes.c_int]
        _libc.inotify_init1.restype = ctypes.c_int
        _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        _libc.inotify_add_watch.restype = ctypes.c_int
    return _libc


def _inotify_init() -> int:
    try:
        lib = _lib()
        fd: int = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError) as err:
        raise OSError(errno.ENOSYS, f"no inotify in the C library: {err}") from None
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def _add_watch(fd: int, path: str, mask: int) -> int:
    wd: int = _lib().inotify_add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return wd
