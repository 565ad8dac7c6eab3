"""The interface between the shared test-runner framework and a language's front end.

A front end (cargo, go, pytest, ...) knows its build tool and nothing else: it finds the
project, lists packages, builds test artifacts, lists each artifact's cases, and says how to
run one case. The framework (``run_app`` in ``_app.py``) does everything else: filters,
directives, the test DB, the client and its jobs, the UI, reports, exit codes and watching.

The flow, as the framework drives it for one run::

    frontend = await make_frontend()            # fresh for every run (watch mode re-reads all)
    packages = await frontend.packages()        # filtered with Package.case_info (unknown = keep)
    async with frontend.build(selected, on_line) as artifacts:
        async for artifact in artifacts:        # each as soon as it is ready
            for case in await frontend.list_cases(artifact):
                info = frontend.case_info(artifact, case)          # include/exclude, directives
                program, arguments = frontend.job(artifact, case)
                layers = frontend.binary_layers(artifact, include_shared_libraries)
                ... run it; frontend.case_status(...) / frontend.strip_output(...) on the outcome

Leaving the ``build`` context early (``--stop-after``, Ctrl-C, an error) must kill the build
tool and return promptly. Errors are ``MaelstromError``s with one-line messages; a build tool
that fails raises :class:`BuildFailed` from the artifact iterator.

A front end's entry point hands the framework a factory, so watch mode can start each run from
scratch (re-reading metadata and the spec file)::

    from maelstrom_core.testrunner import run_app

    async def main(config: CargoConfig, options: TestRunnerOptions) -> int:
        async def make_frontend() -> CargoFrontend:
            return await CargoFrontend.open(config)   # cargo metadata etc.
        return await run_app(make_frontend, config, options)

``run_app(make_frontend, config, options, *, console=None) -> int`` handles ``--init``,
``--list-*``, ``--watch``, ``--junit-xml`` (``options.junit_xml``) and returns the exit code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from .._job import ExitCode, JobCompleted
from .._layer_spec import LayerSpec
from ..errors import MaelstromError
from ._filter import CaseInfo, Dialect
from ._report import CaseStatus
from ._testdb import TomlValue

__all__ = [
    "BuildFailed",
    "Frontend",
    "OtherListMode",
    "Package",
    "TestArtifact",
    "TestCase",
    "default_case_status",
]

#: The list modes a front end answers itself; ``tests`` is the framework's (it builds and lists).
OtherListMode: TypeAlias = Literal["binaries", "packages"]


@dataclass(frozen=True, slots=True)
class Package:
    """A package of the project, before anything is built.

    Attributes:
        name: the package's name in the test DB and in displays (cargo package name, go
            import path, pytest ``default``).
        id: what the build tool needs to select it (cargo ``name@version``, go import path).
        case_info: the package as the filter sees it: package fields set, case fields
            ``None`` (unknown), so a filter that depends on cases keeps the package.
        artifact_keys: the test DB artifact keys this package can produce (cargo
            ``target(kind)`` of every test target, go ``("test",)``), used to prune the DB;
            ``None`` if not knowable before building (the package's entries are then kept).
    """

    name: str
    id: str
    case_info: CaseInfo
    artifact_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TestArtifact:
    """A built test binary (or a collected test file), ready to be listed.

    Attributes:
        package: the package it belongs to (one of those given to ``Frontend.build``).
        key: its artifact key in the test DB (cargo ``name(kind)``, go ``test``).
        path: the test binary on the host (what ``binary_layers`` puts into the container).
        display_prefix: put before a case name to display it, including the trailing space:
            cargo ``"pkg "`` or ``"pkg target "``, go ``"example.com/m/pkg "``.
        case_info: the artifact as the filter sees it: package and artifact fields set,
            ``name`` ``None``.
    """

    __test__ = False  # not a pytest test class, despite the name

    package: Package
    key: str
    path: Path
    display_prefix: str
    case_info: CaseInfo


@dataclass(frozen=True, slots=True)
class TestCase:
    """One case of an artifact, as its listing gives it.

    Attributes:
        name: the case's name as the test framework lists it (and as the DB stores it).
        ignored: known ignored before running (cargo ``#[ignore]``); reported ``IGNORED``,
            never run. (Go's ``t.Skip`` is only known after the run: see ``case_status``.)
        metadata: extra keys stored with the case in the test DB (pytest ``node_id``).
    """

    __test__ = False

    name: str
    ignored: bool = False
    metadata: Mapping[str, TomlValue] = field(default_factory=dict)


class BuildFailed(MaelstromError):
    """The build tool (or collection) failed: the run stops and exits with ``status``.

    ``status`` is the tool's exit status (128+N for a signal, as shells report it); the
    framework exits with it, printing ``output`` (lines the tool wrote that were *not* already
    passed to ``on_output_line``) after the summary. ``str(err)`` is a one-line message.
    """

    def __init__(self, message: str, *, status: int, output: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status if status != 0 else 1
        self.output = tuple(output)


def default_case_status(outcome: JobCompleted) -> CaseStatus:
    """Exit code 0 is OK; anything else (a non-zero code, a signal) is FAIL."""
    return CaseStatus.OK if outcome.status == ExitCode(0) else CaseStatus.FAIL


class Frontend(Protocol):
    """What a language front end provides. One instance serves one run.

    Attributes:
        name: the program name, e.g. ``cargo-maelstrom`` (messages, JUnit suite name).
        dialect: the filter dialect for ``--include``/``--exclude`` and directive filters.
        project_dir: the project root: relative layer paths, the spec file and watching.
        state_dir: where ``test-listing.toml`` lives (created by the framework).
        cache_dir: the client cache dir (created by the framework).
        spec_file_name: the spec file in ``project_dir``, e.g. ``cargo-maelstrom.toml``.
        default_spec_toml: the embedded default spec (§4.6) with commented examples: used
            when the spec file is absent, and written as is by ``--init``. It must parse.
        template_vars: ``<name>`` values for layer paths, e.g. ``{"build-dir": ...}``.
        watch_excludes: paths (absolute, or relative to ``project_dir``) whose changes do
            not trigger a rerun in ``--watch`` (cargo's target dir). ``.git`` and the tags
            lock file are always excluded.
    """

    # Read-only properties, so a front end may use plain attributes or properties.
    @property
    def name(self) -> str: ...
    @property
    def dialect(self) -> Dialect: ...
    @property
    def project_dir(self) -> Path: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def cache_dir(self) -> Path: ...
    @property
    def spec_file_name(self) -> str: ...
    @property
    def default_spec_toml(self) -> str: ...
    @property
    def template_vars(self) -> Mapping[str, str]: ...
    @property
    def watch_excludes(self) -> Sequence[Path]: ...

    async def packages(self) -> list[Package]:
        """Every package of the project (the framework filters them). Nothing is built."""
        ...

    def build(
        self, packages: Sequence[Package], on_output_line: Callable[[str], None]
    ) -> AbstractAsyncContextManager[AsyncIterator[TestArtifact]]:
        """Build ``packages``; the context yields their test artifacts as each is ready.

        ``on_output_line`` receives each line of the tool's output (no newline; ANSI colour
        allowed) for the UI's build pane; the framework prints ``build_warnings`` of them
        after the summary. The iterator raises ``BuildFailed`` when the tool fails (after
        yielding whatever was ready). Exiting the context before the iterator is exhausted
        kills the tool (SIGKILL) and waits for it.
        """
        ...

    def build_warnings(self, output_lines: Sequence[str]) -> list[str]:
        """Of all lines given to ``on_output_line``, those to print after the summary
        (cargo drops its Compiling/Finished progress lines and keeps warnings)."""
        ...

    async def list_cases(self, artifact: TestArtifact) -> list[TestCase]:
        """The artifact's cases, in listing order (runs the binary on the host)."""
        ...

    def case_info(self, artifact: TestArtifact, case: TestCase) -> CaseInfo:
        """The case as filters (command-line and directive) see it; every field known."""
        ...

    def db_case_info(
        self, package: Package, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo | None:
        """A case known only from the test DB, as the filter sees it: for the expected test
        count before listing ends. ``None`` if it cannot be described (not counted)."""
        ...

    def job(self, artifact: TestArtifact, case: TestCase) -> tuple[str, tuple[str, ...]]:
        """(program, arguments) inside the container, e.g. ``("/foo-1a2b", ("--exact",
        "--nocapture", "tests::adds"))``."""
        ...

    def binary_layers(
        self, artifact: TestArtifact, include_shared_libraries: bool
    ) -> list[LayerSpec]:
        """The layers appended after the directives' ones: the binary at ``/`` (a paths
        layer with ``strip_prefix``) and, when ``include_shared_libraries``, a
        shared-library-dependencies layer for it (``follow_symlinks=True``)."""
        ...

    def working_directory(self, artifact: TestArtifact) -> str | None:
        """The case's working directory in the container when neither the directives nor an
        image (through ``use``) give one; ``None`` for ``/``. Go runs tests in their package's
        directory, as ``go test`` does."""
        ...

    def case_status(
        self, artifact: TestArtifact, case: TestCase, outcome: JobCompleted
    ) -> CaseStatus:
        """The status of a case whose job completed (exited or was signalled). Normally
        ``default_case_status(outcome)``; go returns ``IGNORED`` for a ``t.Skip``."""
        ...

    def strip_output(
        self, artifact: TestArtifact, case: TestCase, lines: Sequence[str]
    ) -> list[str]:
        """A failed case's stdout lines without the test harness's fixture noise."""
        ...

    async def list_other(
        self,
        mode: OtherListMode,
        packages: Sequence[Package],
        matches: Callable[[CaseInfo], bool],
    ) -> list[str]:
        """The lines of ``--list-binaries`` / ``--list-packages`` (nothing is built).

        ``packages`` are already filtered; ``matches`` is the compiled filter with unknown
        counted as a match, for front ends that filter finer (cargo targets). Raise
        ``UsageError`` for a mode the runner does not have.
        """
        ...
