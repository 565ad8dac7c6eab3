"""Task runner for the maelstrom monorepo. ``nox -l`` lists the sessions; ``nox`` runs the tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")

# distribution name -> folder under packages/ (and the tests/ subfolder of its tests)
PACKAGES = {
    "maelstrom-core": ("maelstrom-core", "core"),
    "maelstrom-broker": ("maelstrom-broker", "broker"),
    "maelstrom-worker": ("maelstrom-worker", "worker"),
    "maelstrom-run": ("maelstrom-run", "run"),
    "cargo-maelstrom": ("cargo-maelstrom", "cargo_maelstrom"),
    "maelstrom-go-test": ("go-test", "go_test"),
}
PACKAGE_DIRS = [f"packages/{folder}" for folder, _ in PACKAGES.values()]


def group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


def install_packages(session: nox.Session) -> None:
    """Install every member as a user would (not editable), so tests see the built wheels."""
    session.install(*PACKAGE_DIRS)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed packages."""
    install_packages(session)
    session.install(*group("test"))
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def pure(session: nox.Session) -> None:
    """Run the suite with the pure-Python twins of core's accelerators."""
    install_packages(session)
    session.install(*group("test"))
    session.run(
        "pytest", "-m", "not c_extension", *session.posargs, env={"MAELSTROM_NO_EXTENSIONS": "1"}
    )


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff, and a check that every member carries the same version and pins its siblings."""
    session.install(*group("lint"))
    session.run("ruff", "check", "packages", "tests", "bench", "noxfile.py", *session.posargs)
    check_versions(session)


def check_versions(session: nox.Session) -> None:
    versions = {}
    for folder in PACKAGE_DIRS:
        project = nox.project.load_toml(f"{folder}/pyproject.toml")["project"]
        versions[project["name"]] = project["version"]
        for dependency in project.get("dependencies", []):
            pinned = f"maelstrom-core=={project['version']}"
            if dependency.startswith("maelstrom-core") and dependency != pinned:
                session.error(f"{folder}: {dependency!r} does not pin the shared version")
    if len(set(versions.values())) != 1:
        session.error(f"members disagree on the version: {versions}")


@nox.session(default=False)
def typecheck(session: nox.Session) -> None:
    """mypy over every member (strict on core)."""
    install_packages(session)
    session.install(*group("typecheck"))
    session.run("mypy", *[f"{d}/src" for d in PACKAGE_DIRS], *session.posargs)


@nox.session(default=False)
def build(session: nox.Session) -> None:
    """An sdist and a wheel per member; each wheel is built from its sdist."""
    session.install(*group("build"))
    out = ROOT / "dist"
    for folder in PACKAGE_DIRS:
        session.run("python", "-m", "build", "--outdir", str(out), folder)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks under bench/: each prints its figures beside a baseline from the same run."""
    install_packages(session)
    session.install(*group("test"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = ROOT / ".bench" / stamp
    results.mkdir(parents=True, exist_ok=True)
    names = session.posargs or sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    for name in names:
        session.run(
            "python", f"bench/{name}.py", env={"MAELSTROM_BENCH_OUT": str(results / f"{name}.json")}
        )
    session.log(f"results in {os.path.relpath(results, ROOT)}")
