"""Run a test again as an unprivileged user, since users run maelstrom rootless.

Container tests take the ``privilege`` fixture (params ``root`` and ``unprivileged``). When the
suite runs as root, the ``unprivileged`` variant is not run in-process: ``run_test_as_user``
starts this same interpreter under ``runuser`` as ``maelstrom-test`` (created with ``useradd`` if
missing) to run just that test id, and the outer test passes or fails with it. The interpreter
may live under a directory that user cannot enter (pyenv under ``/root``, mode 700), so the
directories on the way get the other-execute bit for as long as the session lasts, and their
modes are restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "INNER_ENV",
    "USER_NAME",
    "ensure_user",
    "grant_traverse",
    "run_test_as_user",
]

USER_NAME = "maelstrom-test"
INNER_ENV = "MAELSTROM_TEST_AS_USER"  # set in the inner run, so it never recurses
REPO_ROOT = Path(__file__).resolve().parents[2]


def ensure_user() -> pwd.struct_passwd | None:
    """The unprivileged test user, created if we are root and it is missing; else ``None``."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(USER_NAME)
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        return None
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER_NAME],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 and b"already exists" not in result.stderr:
        return None
    try:
        return pwd.getpwnam(USER_NAME)
    except KeyError:
        return None


def _needed_paths() -> list[Path]:
    """Everything the inner interpreter must reach: itself, its stdlib and venv, the repo."""
    paths = {
        Path(os.path.realpath(sys.executable)),
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sysconfig.get_paths()["stdlib"]),
        Path(sysconfig.get_paths()["purelib"]),
        REPO_ROOT,
    }
    return sorted(paths)


@contextlib.contextmanager
def grant_traverse() -> Iterator[None]:
    """Give others execute permission on the ancestors of ``_needed_paths`` while inside."""
    changed: dict[Path, int] = {}
    try:
        for path in _needed_paths():
            for directory in [*reversed(path.parents), path]:
                if directory in changed or not directory.is_dir():
                    continue
                mode = directory.stat().st_mode
                if not mode & stat.S_IXOTH:
                    changed[directory] = stat.S_IMODE(mode)
                    os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
        yield
    finally:
        for directory, mode in changed.items():
            os.chmod(directory, mode)


def run_test_as_user(nodeid: str, user: pwd.struct_passwd) -> subprocess.CompletedProcess[str]:
    """Run one test id with pytest as ``user``; the caller turns failure into a test failure."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        INNER_ENV: "1",
    }
    command = [
        "runuser", "-u", user.pw_name, "--",
        sys.executable, "-m", "pytest", nodeid,
        "-q", "-p", "no:cacheprovider", "--no-header", "-x",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
