"""Go projects for the maelstrom-go-test tests: copies of the repository's, built for real.

Every test gets its own copy (tests edit them), but all builds share go's own build cache
(GOCACHE, whatever the environment gives), so only the first build of a session compiles.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GO_MODULE = REPO / "examples" / "go-module"
GO_ODD = REPO / "tests" / "fixtures" / "go-odd"


def copy_project(source: Path, dest: Path) -> Path:
    # Never the source's own build dir: a test must see a fresh project.
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".maelstrom-go-test"))
    return dest


@pytest.fixture(autouse=True)
def _need_go() -> None:
    if shutil.which("go") is None:
        pytest.skip("no go command on PATH")


@pytest.fixture
def go_module(tmp_path: Path) -> Path:
    """A copy of examples/go-module: every test passes."""
    return copy_project(GO_MODULE, tmp_path / "go-module")


@pytest.fixture
def go_odd(tmp_path: Path) -> Path:
    """A copy of tests/fixtures/go-odd: every outcome (see tests/fixtures/README.md)."""
    return copy_project(GO_ODD, tmp_path / "go-odd")
