"""A tiny but real test-runner front end for the framework's tests: shell-script "test binaries".

A project is ``<root>/pkgs/<package>/<binary>.sh``. "Building" copies each script of a selected
package to ``<root>/build/<package>/<binary>`` (executable) through a real ``sh`` process
whose output is the build output; listing runs the built script on the host with ``--list``
(and ``--ignored``); each case runs in a real container as ``/<binary> <case>``, with
``/bin/sh`` and a few tools from the spec file's layers.

Knobs for the tests: a package directory holding ``BROKEN`` fails its build with status 3; one
holding ``HOLD`` keeps the build running (a ``sleep`` child) after its artifacts are out, so
leaving the build early must kill it; a script line ``# warn: TEXT`` makes the build print
``warning: TEXT``. A case printing ``SKIP`` last is IGNORED (like go's ``t.Skip``), fixture
lines up to ``FIXTURE-BEGIN`` and from ``FIXTURE-END`` are stripped from failure output.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from maelstrom_core._job import JobCompleted
from maelstrom_core._layer_spec import (
    LayerSpec,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
)
from maelstrom_core.errors import UsageError
from maelstrom_core.testrunner import (
    CARGO,
    BuildFailed,
    CaseInfo,
    CaseStatus,
    OtherListMode,
    Package,
    TestArtifact,
    TestCase,
    TomlValue,
    default_case_status,
)

TOOLS = ("/bin/sh", "/bin/echo", "/bin/cat", "/bin/sleep")

DEFAULT_SPEC = f"""\
# The default spec of the test front end: host tools, their libraries, mount points.
[[directives]]
layers = [
    {{ paths = {list(TOOLS)!r}, follow_symlinks = true }},
    {{ shared_library_dependencies = {list(TOOLS)!r}, follow_symlinks = true }},
    {{ stubs = ["/{{proc,sys,tmp}}/", "/dev/{{full,null,random,urandom,zero}}"] }},
]
mounts = [
    {{ type = "tmp", mount_point = "/tmp" }},
    {{ type = "proc", mount_point = "/proc" }},
    {{ type = "devices", devices = ["null", "zero"] }},
]
environment = {{ PATH = "/bin" }}

# Examples:
# [[directives]]
# filter = "package.equals(foo)"
# timeout = 5
""".replace("'", '"')


def script(cases: Mapping[str, str], ignored: Sequence[str] = (), warn: str | None = None) -> str:
    """A test binary: ``--list`` prints the cases, ``<case>`` runs that case's shell body."""
    names = [*cases, *ignored]
    lines = ["#!/bin/sh"]
    if warn:
        lines.append(f"# warn: {warn}")
    lines += [
        'case "$1" in',
        "--list) " + " ".join(f"echo {n};" for n in names) + " ;;",
        "--ignored) " + " ".join(f"echo {n};" for n in ignored) + " true ;;",
    ]
    for name, body in cases.items():
        lines.append(f"{name}) echo fixture noise; echo FIXTURE-BEGIN\n{body}\n;;")
    lines += ["*) echo unknown case >&2; exit 64 ;;", "esac"]
    return "\n".join(lines) + "\n"


def make_project(root: Path, packages: Mapping[str, Mapping[str, str]]) -> Path:
    """``packages``: package -> binary -> script text."""
    for package, binaries in packages.items():
        directory = root / "pkgs" / package
        directory.mkdir(parents=True, exist_ok=True)
        for binary, text in binaries.items():
            (directory / f"{binary}.sh").write_text(text)
    return root


@dataclass
class ScriptFrontend:
    root: Path
    programs: dict[str, str] = field(default_factory=dict)  # case -> program override
    name: str = "script-maelstrom"
    dialect = CARGO
    spec_file_name: str = "script-maelstrom.toml"
    default_spec_toml: str = DEFAULT_SPEC
    template_vars: Mapping[str, str] = field(default_factory=dict)
    watch_excludes: Sequence[Path] = (Path("build"),)
    # What happened, for assertions.
    built: list[str] = field(default_factory=list)
    held_returncode: int | None = None
    include_shared_libraries: list[bool] = field(default_factory=list)

    @property
    def project_dir(self) -> Path:
        return self.root

    @property
    def state_dir(self) -> Path:
        return self.root / ".state"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    async def packages(self) -> list[Package]:
        packages = []
        pkgs = self.root / "pkgs"
        for directory in sorted(pkgs.iterdir()) if pkgs.is_dir() else []:
            keys = tuple(f"{p.stem}(test)" for p in sorted(directory.glob("*.sh")))
            info = CaseInfo(package=directory.name)
            packages.append(Package(directory.name, directory.name, info, keys))
        return packages

    @asynccontextmanager
    async def build(
        self, packages: Sequence[Package], on_output_line: Callable[[str], None]
    ) -> AsyncIterator[AsyncIterator[TestArtifact]]:
        async with trio.open_nursery() as nursery:
            held: list[trio.Process] = []
            try:
                yield self._artifacts(packages, on_output_line, nursery, held)
            finally:
                for process in held:
                    process.kill()
                    with trio.CancelScope(shield=True):
                        self.held_returncode = await process.wait()
                nursery.cancel_scope.cancel()

    async def _artifacts(
        self,
        packages: Sequence[Package],
        on_output_line: Callable[[str], None],
        nursery: trio.Nursery,
        held: list[trio.Process],
    ) -> AsyncIterator[TestArtifact]:
        for package in packages:
            source = self.root / "pkgs" / package.name
            if (source / "BROKEN").exists():
                raise BuildFailed(
                    f"build of {package.name} failed", status=3, output=[f"error: {package.name}"]
                )
            self.built.append(package.name)
            out_dir = self.root / "build" / package.name
            out_dir.mkdir(parents=True, exist_ok=True)
            for source_file in sorted(source.glob("*.sh")):
                binary = out_dir / source_file.stem
                command = (
                    f'echo "Compiling {package.name} {source_file.stem}"; '
                    f'sed -n "s/^# warn: /warning: /p" "{source_file}"; '
                    f'cp "{source_file}" "{binary}"'
                )
                result = await trio.run_process(["sh", "-c", command], capture_stdout=True)
                for line in result.stdout.decode().splitlines():
                    on_output_line(line)
                binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                yield TestArtifact(
                    package=package,
                    key=f"{source_file.stem}(test)",
                    path=binary,
                    display_prefix=f"{package.name} {source_file.stem} ",
                    case_info=CaseInfo(
                        package=package.name, artifact_name=source_file.stem, artifact_kind="test"
                    ),
                )
            if (source / "HOLD").exists():
                process = await trio.lowlevel.open_process(["sleep", "600"])
                held.append(process)
                await process.wait()

    async def list_cases(self, artifact: TestArtifact) -> list[TestCase]:
        listed = await trio.run_process([str(artifact.path), "--list"], capture_stdout=True)
        ignored = await trio.run_process([str(artifact.path), "--ignored"], capture_stdout=True)
        skip = set(ignored.stdout.decode().split())
        return [TestCase(n, n in skip) for n in listed.stdout.decode().split()]

    def case_info(self, artifact: TestArtifact, case: TestCase) -> CaseInfo:
        return CaseInfo(
            package=artifact.package.name,
            artifact_name=artifact.case_info.artifact_name,
            artifact_kind="test",
            name=case.name,
        )

    def db_case_info(
        self, package: Package, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo | None:
        return CaseInfo(
            package=package.name,
            artifact_name=artifact_key.removesuffix("(test)"),
            artifact_kind="test",
            name=case,
        )

    def job(self, artifact: TestArtifact, case: TestCase) -> tuple[str, tuple[str, ...]]:
        program = self.programs.get(case.name, f"/{artifact.path.name}")
        return program, (case.name,)

    def working_directory(self, artifact: TestArtifact) -> str | None:
        return None  # "/" unless the directives say otherwise

    def binary_layers(
        self, artifact: TestArtifact, include_shared_libraries: bool
    ) -> list[LayerSpec]:
        layers: list[LayerSpec] = [
            PathsLayer(
                (str(artifact.path),), PrefixOptions(strip_prefix=f"{artifact.path.parent}/")
            )
        ]
        if include_shared_libraries:
            self.include_shared_libraries.append(True)
            layers.append(
                SharedLibraryDependenciesLayer(
                    (os.path.realpath(shutil.which("sh") or "/bin/sh"),),
                    PrefixOptions(follow_symlinks=True),
                )
            )
        return layers

    def build_warnings(self, output_lines: Sequence[str]) -> list[str]:
        return [line for line in output_lines if not line.startswith("Compiling ")]

    def case_status(
        self, artifact: TestArtifact, case: TestCase, outcome: JobCompleted
    ) -> CaseStatus:
        lines = [line for line in outcome.stdout.data.decode().splitlines() if line.strip()]
        if lines and lines[-1] == "SKIP" and default_case_status(outcome) is CaseStatus.OK:
            return CaseStatus.IGNORED
        return default_case_status(outcome)

    def strip_output(
        self, artifact: TestArtifact, case: TestCase, lines: Sequence[str]
    ) -> list[str]:
        kept = list(lines)
        if "FIXTURE-BEGIN" in kept:
            kept = kept[kept.index("FIXTURE-BEGIN") + 1 :]
        if "FIXTURE-END" in kept:
            kept = kept[: kept.index("FIXTURE-END")]
        return kept

    async def list_other(
        self,
        mode: OtherListMode,
        packages: Sequence[Package],
        matches: Callable[[CaseInfo], bool],
    ) -> list[str]:
        if mode == "packages":
            return [p.name for p in packages]
        if mode == "binaries":
            lines = []
            for package in packages:
                for key in package.artifact_keys or ():
                    target = key.removesuffix("(test)")
                    info = CaseInfo(
                        package=package.name, artifact_name=target, artifact_kind="test"
                    )
                    if matches(info):
                        lines.append(f"{package.name} {target} (test)")
            return lines
        raise UsageError(f"no list mode {mode}")
