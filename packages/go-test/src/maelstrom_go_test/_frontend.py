"""maelstrom-go-test's front end for the shared test-runner framework.

Go runs a package's test binary in the package's directory, so tests open ``testdata/...``
relative to it. Each job here does the same inside its container: the package directory is
at ``/<module-relative path>`` (where a project-relative glob layer would put it), it holds
the package's ``testdata/`` tree, and it is the job's working directory unless a directive
(or an image) sets one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from maelstrom_core._job import ExitCode, JobCompleted
from maelstrom_core._layer_spec import (
    GlobLayer,
    LayerSpec,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
)
from maelstrom_core.config import GoTestConfig
from maelstrom_core.errors import InternalError, MaelstromError, UsageError
from maelstrom_core.testrunner import GO, CaseInfo, TomlValue
from maelstrom_core.testrunner._frontend import (
    BuildFailed,
    OtherListMode,
    Package,
    TestArtifact,
    TestCase,
    default_case_status,
)
from maelstrom_core.testrunner._report import CaseStatus

from ._go import (
    BUILD_DIR_NAME,
    GoBuild,
    GoCommandFailed,
    GoPackage,
    build_stamp,
    build_test_binary,
    container_package_dir,
    find_module_root,
    go_environment,
    go_test_c_args,
    is_skip_output,
    job_arguments,
    list_packages,
    list_test_binary,
    reuse_allowed,
    strip_fixture_output,
    toolchain_identity,
)

__all__ = ["ARTIFACT_KEY", "DEFAULT_SPEC_TOML", "SPEC_FILE_NAME", "GoFrontend"]


SPEC_FILE_NAME = "maelstrom-go-test.toml"
ARTIFACT_KEY = "test"

DEFAULT_SPEC_TOML = """\
# maelstrom-go-test's test spec: how to run each test in its container.
#
# Every directive whose `filter` matches a test applies to it, in order. Each test runs in its
# package's directory, /<package path relative to the module root>, which holds the package's
# testdata/ directory: add layers for any other file a test reads.

# Because it has no `filter` field, this directive applies to all tests.
[[directives]]

# This layer just includes files and directories for mounting the following file-systems and
# devices.
layers = [
    { stubs = [ "/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}" ] },
]

# Provide /tmp, /proc, /sys, and some devices in /dev/. These are used pretty commonly by tests.
mounts = [
    { type = "tmp", mount_point = "/tmp" },
    { type = "proc", mount_point = "/proc" },
    { type = "sys", mount_point = "/sys" },
    { type = "devices", devices = ["full", "null", "random", "urandom", "zero"] },
]

# Have your tests need network access? Uncomment this for them.
#
# [[directives]]
# filter = "package.equals(example.com/m/net) && name.starts_with(TestServer)"
# network = "loopback"

# Do your tests read files outside their package's testdata/? Add them with a layer. Paths in
# a glob are relative to the module root and land at the same place in the container.
#
# [[directives]]
# filter = "package.equals(example.com/m/config)"
# added_layers = [ { glob = "config/examples/**" } ]

# Give a slow test more time, in seconds (0 means no timeout).
#
# [[directives]]
# filter = "name.equals(TestBigMerge)"
# timeout = 120

# Some environment for every test of a package.
#
# [[directives]]
# filter = "package_path.starts_with(internal/)"
# added_environment = { GODEBUG = "madvdontneed=1" }
"""

_GLOB_META = frozenset("*?[]{}\\,!")


def _glob_literal(path: str) -> str:
    """``path`` as a glob that matches only itself."""
    return "".join("\\" + c if c in _GLOB_META else c for c in path)


_Result = GoBuild | MaelstromError


class _Artifacts:
    """The artifacts of one ``build``, each as soon as go has made it."""

    def __init__(self, frontend: GoFrontend, receive: trio.MemoryReceiveChannel[_Result]) -> None:
        self._frontend = frontend
        self._receive = receive

    def __aiter__(self) -> _Artifacts:
        return self

    async def __anext__(self) -> TestArtifact:
        while True:
            try:
                result = await self._receive.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
            if isinstance(result, GoCommandFailed):
                # Its output already went to on_output_line, so it is printed after the summary.
                raise BuildFailed(str(result), status=result.status)
            if isinstance(result, MaelstromError):
                raise result
            if result.binary is not None:
                return self._frontend.artifact_of(result.package, result.binary)


class GoFrontend:
    """One run of maelstrom-go-test against the Go module containing ``cwd``."""

    name = "maelstrom-go-test"
    dialect = GO
    spec_file_name = SPEC_FILE_NAME
    default_spec_toml = DEFAULT_SPEC_TOML

    def __init__(
        self,
        config: GoTestConfig,
        project_dir: Path,
        env: Mapping[str, str],
        *,
        reuse_binaries: bool = True,
        jobs: int | None = None,
    ) -> None:
        self.config = config
        self.project_dir = project_dir
        build_dir = project_dir / BUILD_DIR_NAME
        self.state_dir = build_dir / "state"
        self.cache_dir = build_dir / "cache"
        self.binaries_dir = self.cache_dir / "test-binaries"
        self.template_vars: Mapping[str, str] = {}
        # The original watches its own build dir too, so writing a test binary starts
        # another run; nothing in it is the user's.
        self.watch_excludes: Sequence[Path] = (build_dir,)
        self._env = dict(env)
        self._reuse_binaries = reuse_binaries
        self._jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        self._go_packages: dict[str, GoPackage] | None = None

    @classmethod
    async def open(
        cls,
        config: GoTestConfig,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        reuse_binaries: bool = True,
    ) -> GoFrontend:
        """The front end for the module containing ``cwd`` (default: the current directory)."""
        root = find_module_root(cwd if cwd is not None else Path.cwd())
        return cls(config, root, go_environment(env), reuse_binaries=reuse_binaries)

    # --- packages --------------------------------------------------------------------------

    async def go_packages(self) -> dict[str, GoPackage]:
        """The module's packages by import path (``go list`` runs once per front end)."""
        if self._go_packages is None:
            try:
                found = await list_packages(self.project_dir, self._env)
            except GoCommandFailed as err:
                raise BuildFailed(str(err), status=err.status, output=err.output) from None
            self._go_packages = {p.import_path: p for p in found}
        return self._go_packages

    async def packages(self) -> list[Package]:
        return [self._package(p) for p in (await self.go_packages()).values()]

    @staticmethod
    def _package(go: GoPackage) -> Package:
        info = CaseInfo(package=go.import_path, package_path=go.rel_path, package_name=go.name)
        keys = (ARTIFACT_KEY,) if go.has_tests else ()
        return Package(name=go.import_path, id=go.import_path, case_info=info, artifact_keys=keys)

    def _go_package(self, package: Package) -> GoPackage:
        if self._go_packages is None or package.id not in self._go_packages:
            raise InternalError(f"maelstrom-go-test: unknown package {package.id!r}")
        return self._go_packages[package.id]

    # --- building --------------------------------------------------------------------------

    @asynccontextmanager
    async def build(
        self, packages: Sequence[Package], on_output_line: Callable[[str], None]
    ) -> AsyncIterator[AsyncIterator[TestArtifact]]:
        by_path = await self.go_packages()
        selected = [self._go_package(p) for p in packages]
        stamps = await self._stamps(selected, by_path)
        send, receive = trio.open_memory_channel[_Result](len(selected))
        limiter = trio.CapacityLimiter(self._jobs)

        async def build_one(go: GoPackage, out: trio.MemorySendChannel[_Result]) -> None:
            async with out, limiter:
                try:
                    result: _Result = await build_test_binary(
                        go,
                        self.binaries_dir,
                        self._env,
                        vet=self.config.vet,
                        stamp=stamps.get(go.import_path),
                        on_output_line=on_output_line,
                    )
                except MaelstromError as err:
                    # Reported through the iterator, in order with the artifacts before it.
                    result = err
                await out.send(result)

        try:
            async with trio.open_nursery() as nursery:
                with send:
                    for go in selected:
                        nursery.start_soon(build_one, go, send.clone())
                try:
                    yield _Artifacts(self, receive)
                finally:
                    # Leaving early (stop-after, an error) kills every go still building. No
                    # checkpoint after the cancel: it would replace the error in flight.
                    nursery.cancel_scope.cancel()
                    receive.close()
        except BaseExceptionGroup as group:
            # The builders never raise, so a group holds just what the caller's body raised
            # (BuildFailed from the iterator, say): hand it back as it was.
            if len(group.exceptions) == 1 and not isinstance(
                group.exceptions[0], BaseExceptionGroup
            ):
                raise group.exceptions[0] from None
            raise

    def artifact_of(self, go: GoPackage, binary: Path) -> TestArtifact:
        package = self._package(go)
        return TestArtifact(
            package=package,
            key=ARTIFACT_KEY,
            path=binary,
            display_prefix=f"{go.import_path} ",
            case_info=package.case_info,
        )

    async def _stamps(
        self, selected: Sequence[GoPackage], by_path: Mapping[str, GoPackage]
    ) -> dict[str, str]:
        if not self._reuse_binaries or not reuse_allowed(self.project_dir):
            return {}
        try:
            toolchain = await toolchain_identity(self.project_dir, self._env)
        except GoCommandFailed as err:
            raise BuildFailed(str(err), status=err.status, output=err.output) from None
        return {
            go.import_path: build_stamp(
                go,
                by_path,
                root=self.project_dir,
                toolchain=toolchain,
                go_args=go_test_c_args(Path(), self.config.vet),
            )
            for go in selected
        }

    def build_warnings(self, output_lines: Sequence[str]) -> list[str]:
        # go test -c prints nothing on success: every line is a compile or vet message.
        return [line for line in output_lines if line.strip()]

    # --- cases -----------------------------------------------------------------------------

    async def list_cases(self, artifact: TestArtifact) -> list[TestCase]:
        go = self._go_package(artifact.package)
        try:
            names = await list_test_binary(artifact.path, go.dir)
        except GoCommandFailed as err:
            raise BuildFailed(str(err), status=err.status, output=err.output) from None
        return [TestCase(name) for name in names]

    def case_info(self, artifact: TestArtifact, case: TestCase) -> CaseInfo:
        info = artifact.package.case_info
        return CaseInfo(
            package=info.package,
            name=case.name,
            package_path=info.package_path,
            package_name=info.package_name,
        )

    def db_case_info(
        self, package: Package, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo | None:
        if artifact_key != ARTIFACT_KEY:
            return None
        info = package.case_info
        return CaseInfo(
            package=info.package,
            name=case,
            package_path=info.package_path,
            package_name=info.package_name,
        )

    def job(self, artifact: TestArtifact, case: TestCase) -> tuple[str, tuple[str, ...]]:
        arguments = job_arguments(
            case.name,
            short=self.config.short,
            fullpath=self.config.fullpath,
            extra=self.config.extra_test_binary_args,
        )
        return f"/{artifact.path.name}", arguments

    def working_directory(self, artifact: TestArtifact) -> str:
        """The package's directory in the container: the job's working directory, as under
        ``go test``, unless the directives or the image give one."""
        return container_package_dir(self._go_package(artifact.package))

    def binary_layers(
        self, artifact: TestArtifact, include_shared_libraries: bool
    ) -> list[LayerSpec]:
        binary = str(artifact.path)
        layers: list[LayerSpec] = [
            PathsLayer((binary,), PrefixOptions(strip_prefix=str(artifact.path.parent)))
        ]
        if include_shared_libraries:
            layers.append(
                SharedLibraryDependenciesLayer((binary,), PrefixOptions(follow_symlinks=True))
            )
        layers.extend(self.package_dir_layers(artifact))
        return layers

    def package_dir_layers(self, artifact: TestArtifact) -> list[LayerSpec]:
        """The package's directory (so it can be the working directory) and its testdata/."""
        go = self._go_package(artifact.package)
        if not go.rel_path:
            layers: list[LayerSpec] = []
            testdata = "testdata"
        else:
            layers = [PathsLayer((go.rel_path,))]
            testdata = f"{go.rel_path}/testdata"
        if (self.project_dir / testdata).is_dir():
            layers.append(GlobLayer(f"{_glob_literal(testdata)}/**"))
        return layers

    def case_status(
        self, artifact: TestArtifact, case: TestCase, outcome: JobCompleted
    ) -> CaseStatus:
        if outcome.status == ExitCode(0):
            lines = outcome.stdout.data.decode("utf-8", "replace").splitlines()
            if is_skip_output(case.name, lines):
                return CaseStatus.IGNORED
        return default_case_status(outcome)

    def strip_output(
        self, artifact: TestArtifact, case: TestCase, lines: Sequence[str]
    ) -> list[str]:
        return strip_fixture_output(case.name, lines)

    async def list_other(
        self,
        mode: OtherListMode,
        packages: Sequence[Package],
        matches: Callable[[CaseInfo], bool],
    ) -> list[str]:
        if mode != "packages":
            raise UsageError(f"maelstrom-go-test has no --list-{mode}")
        return [p.name for p in packages if matches(p.case_info)]
