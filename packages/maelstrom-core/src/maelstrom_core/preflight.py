"""Can this host run our containers? Answered once per process by launching a tiny one.

Reading sysctls alone cannot tell (AppArmor profiles, seccomp filters of an outer container and
masked /proc entries all show up only when trying), so ``check_host`` builds an empty two-layer
root and runs the real launcher on it with a writable overlay, proc and tmpfs, and turns a
failure into ``HostUnsupported`` naming what to change, using the sysctls only to explain why.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import errors

__all__ = ["check_host", "host_problem"]

_checked: errors.HostUnsupported | bool | None = False


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def _explain_userns() -> str:
    """What to change, from the sysctls that are known to switch user namespaces off."""
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "set the sysctl kernel.unprivileged_userns_clone=1"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "set the sysctl user.max_user_namespaces to a positive number (e.g. 15000)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor restricts unprivileged user namespaces (Ubuntu 24.04+): set the sysctl"
            " kernel.apparmor_restrict_unprivileged_userns=0 or add an AppArmor profile that"
            " allows userns for this program"
        )
    if _read("/proc/sys/kernel/unprivileged_userns_apparmor_policy") == "1":
        return "AppArmor policy denies unprivileged user namespaces; allow userns for this program"
    return (
        "user namespaces are unavailable; if this runs inside a container, start that container"
        " with user namespaces allowed (e.g. docker --security-opt seccomp=unconfined"
        " --security-opt apparmor=unconfined, or --privileged)"
    )


def _build_trial_root(base: Path) -> tuple[Path, Path, str]:
    """Two empty layers with stubs for /proc and /tmp, and a program path that does not exist.

    The trial execs a program that cannot exist (``/maelstrom-preflight``); reaching the exec
    step and failing there with ENOENT proves every namespace, map and mount step worked,
    without having to copy any host binary into the root.
    """
    top, bottom = base / "top", base / "bottom"
    for layer in (top, bottom):
        layer.mkdir()
    for stub in ("proc", "tmp"):
        (top / stub).mkdir()
    return top, bottom, "/maelstrom-preflight"


def host_problem() -> errors.HostUnsupported | None:
    """The reason this host cannot run containers, or ``None``. Launches one trial container."""
    from ._job import ProcMount, TmpMount
    from .launcher import LaunchSpec, spawn

    base = Path(tempfile.mkdtemp(prefix="maelstrom-preflight-"))
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        top, bottom, program = _build_trial_root(base)
        stdio = null if null >= 3 else os.dup(null)
        try:
            spawn(
                LaunchSpec(
                    program=program,
                    layer_dirs=(top, bottom),
                    stdin=stdio,
                    stdout=stdio,
                    stderr=stdio,
                    writable=True,
                    mounts=(ProcMount("/proc"), TmpMount("/tmp")),
                )
            ).close()
        finally:
            if stdio != null:
                os.close(stdio)
    except errors.LaunchError as error:
        if error.step == "exec" and error.errno == errno.ENOENT:
            return None
        if error.step == "clone" or error.step in ("uid-map", "setgroups", "gid-map"):
            return errors.HostUnsupported(
                f"cannot create a rootless container ({error}): {_explain_userns()}"
            )
        if error.step.startswith("root-"):
            return errors.HostUnsupported(
                f"cannot build an overlayfs root in a user namespace ({error}): needs Linux 5.11+"
                " with overlayfs (modprobe overlay)"
            )
        if error.step in ("mount-create", "pivot-root", "detach-old-root", "mount-attach"):
            return errors.HostUnsupported(
                f"cannot mount proc or tmpfs in a container ({error}): if this is a nested"
                " container, its /proc must not be partly masked (e.g. run it with"
                " --security-opt systempaths=unconfined, or privileged)"
            )
        return errors.HostUnsupported(f"cannot launch containers: {error}")
    except errors.MaelstromError as error:
        return errors.HostUnsupported(f"cannot launch containers: {error}")
    finally:
        os.close(null)
        shutil.rmtree(base, ignore_errors=True)
    return errors.HostUnsupported(
        "a trial container ran a program that does not exist; the launcher is broken"
    )


def check_host() -> None:
    """Raise ``HostUnsupported`` (with what to change) if this host cannot run our containers.

    The trial launch happens once per process; later calls repeat its verdict.
    """
    global _checked
    if sys.platform != "linux":
        raise errors.HostUnsupported("maelstrom containers need Linux")
    if _checked is False:
        _checked = host_problem()
    if isinstance(_checked, errors.HostUnsupported):
        raise _checked
