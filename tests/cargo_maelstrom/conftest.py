"""Session-wide copies of the example workspace and the odd-outcomes fixture, built once.

Each project is copied to a scratch directory (nothing is written into the repository) and
built with ``cargo test --no-run`` once; every test then shares that target dir, so their own
builds are no-ops and only what a test changes gets rebuilt.

The scratch directory is not under /tmp: the default directive mounts a fresh tmpfs on /tmp
inside each container, which would hide a binary that a directive puts at its host path (the
example's CARGO_BIN_EXE test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rust-workspace"
ODD = REPO / "tests" / "fixtures" / "rust-odd"

# The odd fixture's spec: the default directive, plus a timeout for the test that never ends.
ODD_SPEC = """\
[[directives]]
layers = [{ stubs = ["/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}"] }]
mounts = [
    { type = "tmp", mount_point = "/tmp" },
    { type = "proc", mount_point = "/proc" },
    { type = "sys", mount_point = "/sys" },
    { type = "devices", devices = ["full", "null", "random", "urandom", "zero"] },
]
added_environment = { RUST_BACKTRACE = "0" }

[[directives]]
filter = "name.equals(tests::sleeps_forever)"
timeout = 1
"""


def cargo_env() -> dict[str, str]:
    """Where cargo and rustup live, for runs with another HOME (both default to HOME's dirs).

    The unprivileged re-run of a test gets a HOME of its own, so when the variables are not
    set, the home is the one whose ``.cargo/bin`` holds the ``cargo`` on PATH (rustup's layout).
    """
    home = Path.home()
    cargo = shutil.which("cargo")
    if cargo is not None and Path(cargo).parent.match(".cargo/bin"):
        home = Path(cargo).parent.parent.parent
    return {
        "CARGO_HOME": os.environ.get("CARGO_HOME", str(home / ".cargo")),
        "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(home / ".rustup")),
    }


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh directory outside /tmp when the host has /var/tmp, removed afterwards."""
    parent = "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="cargo-maelstrom-tests-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def copy_project(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("target"))
    return dest


def prebuild(project: Path, *extra: str) -> None:
    subprocess.run(
        ["cargo", "test", "--no-run", "--offline", "--quiet", *extra],
        cwd=project,
        env={**os.environ, **cargo_env()},
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def example_project() -> Iterator[Path]:
    """examples/rust-workspace, copied and built. Tests must not modify its sources."""
    with scratch_dir() as base:
        project = copy_project(EXAMPLE, base / "rust-workspace")
        prebuild(project)
        yield project


@pytest.fixture(scope="session")
def odd_project() -> Iterator[Path]:
    """tests/fixtures/rust-odd with ODD_SPEC, copied and built. Do not modify its sources."""
    with scratch_dir() as base:
        project = copy_project(ODD, base / "rust-odd")
        (project / "cargo-maelstrom.toml").write_text(ODD_SPEC)
        prebuild(project)
        yield project
