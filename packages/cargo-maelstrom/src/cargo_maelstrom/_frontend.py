"""cargo maelstrom's front end for the shared test-runner framework."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Final

import trio

from maelstrom_core.config import CargoConfig
from maelstrom_core.errors import MaelstromError, UsageError
from maelstrom_core.job import JobCompleted
from maelstrom_core.specs import LayerSpec
from maelstrom_core.testrunner import (
    ARTIFACT_KINDS,
    CARGO,
    BuildFailed,
    CaseInfo,
    CaseStatus,
    Dialect,
    OtherListMode,
    Package,
    TestArtifact,
    TestCase,
    TomlValue,
    default_case_status,
)

from . import _cargo

__all__ = ["DEFAULT_SPEC_TOML", "SPEC_FILE_NAME", "CargoFrontend"]

SPEC_FILE_NAME: Final = "cargo-maelstrom.toml"

DEFAULT_SPEC_TOML: Final = """\
# The default directive: it applies to every test (it has no filter).
[[directives]]
# Files and directories to mount the file systems and devices below onto.
layers = [
    { stubs = [ "/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}" ] },
]
mounts = [
    { type = "tmp", mount_point = "/tmp" },
    { type = "proc", mount_point = "/proc" },
    { type = "sys", mount_point = "/sys" },
    { type = "devices", devices = ["full", "null", "random", "urandom", "zero"] },
]

[directives.added_environment]
RUST_BACKTRACE = "$env{RUST_BACKTRACE:-0}"
RUST_LIB_BACKTRACE = "$env{RUST_LIB_BACKTRACE:-0}"

# Examples (uncomment and edit). Directives apply in order; every matching one is folded in.
#
# Give one package's tests more time, in seconds (0: no timeout):
# [[directives]]
# filter = "package.equals(my-package)"
# timeout = 60
#
# Put test data into the container: files matching a glob, relative to the workspace root.
# [[directives]]
# filter = "package.equals(my-package)"
# added_layers = [ { glob = "my-package/tests/data/**", strip_prefix = "my-package/" } ]
#
# Let an integration test run the package's binary through env!("CARGO_BIN_EXE_my-bin"):
# [[directives]]
# filter = "package.equals(my-package) && test.equals(cli)"
# added_layers = [
#     { paths = [ "<build-dir>/my-bin" ], canonicalize = true },
#     { shared_library_dependencies = [ "<build-dir>/my-bin" ], follow_symlinks = true },
# ]
#
# Give tests loopback networking and a writable root file system:
# [[directives]]
# filter = "name.starts_with(net::)"
# network = "loopback"
# enable_writable_file_system = true
#
# Skip a test without editing its source:
# [[directives]]
# filter = "package.equals(my-package) && name.equals(tests::flaky)"
# ignore = true
"""

_KEY: Final = re.compile(r"(.*)\((\w+)\)")


def cargo_options(config: CargoConfig) -> _cargo.CargoOptions:
    return _cargo.CargoOptions(
        features=config.features,
        all_features=config.all_features,
        no_default_features=config.no_default_features,
        profile=config.profile,
        target=config.target,
        target_dir=config.target_dir,
        manifest_path=config.manifest_path,
        frozen=config.frozen,
        locked=config.locked,
        offline=config.offline,
    )


class CargoFrontend:
    """One run of cargo maelstrom: the workspace as ``cargo metadata`` describes it now."""

    name = "cargo-maelstrom"
    dialect: Dialect = CARGO
    spec_file_name = SPEC_FILE_NAME
    default_spec_toml = DEFAULT_SPEC_TOML

    def __init__(
        self,
        workspace: _cargo.Workspace,
        options: _cargo.CargoOptions,
        *,
        cwd: Path,
        extra_test_binary_args: Sequence[str] = (),
        color: bool = False,
    ) -> None:
        self.workspace = workspace
        self.options = options
        self._cwd = cwd
        self._extra_args = tuple(extra_test_binary_args)
        self._color = color
        # --target-dir is relative to where cargo runs, as cargo reads it.
        target_dir = (
            cwd / options.target_dir
            if options.target_dir is not None
            else workspace.target_directory
        )
        self.target_dir = Path(os.path.normpath(target_dir))
        self.project_dir = workspace.root
        self.state_dir = self.target_dir / "maelstrom" / "state"
        self.cache_dir = self.target_dir / "maelstrom" / "cache"
        self.build_dir = _cargo.build_dir(self.target_dir, options.profile, options.target)
        self.template_vars: Mapping[str, str] = {"build-dir": str(self.build_dir)}
        self.watch_excludes: Sequence[Path] = (self.target_dir,)
        self._packages = {package.spec: package for package in workspace.packages}

    @classmethod
    async def open(cls, config: CargoConfig, *, cwd: Path | None = None) -> CargoFrontend:
        """Read the workspace with ``cargo metadata`` (feature and manifest options applied)."""
        here = Path.cwd() if cwd is None else cwd
        options = cargo_options(config)
        workspace = await _cargo.read_metadata(options, cwd=here)
        return cls(
            workspace,
            options,
            cwd=here,
            extra_test_binary_args=config.extra_test_binary_args,
            # The build pane and the warnings after the summary both go to stdout.
            color=sys.stdout.isatty(),
        )

    # ----------------------------------------------------------------------------------------
    # Packages and listings that need no build

    async def packages(self) -> list[Package]:
        return [
            Package(
                name=package.name,
                id=package.spec,
                case_info=CaseInfo(package=package.name),
                artifact_keys=tuple(
                    f"{target.name}({target.kind})" for target in package.targets if target.test
                ),
            )
            for package in self.workspace.packages
        ]

    async def list_other(
        self,
        mode: OtherListMode,
        packages: Sequence[Package],
        matches: Callable[[CaseInfo], bool],
    ) -> list[str]:
        if mode == "packages":
            return [package.name for package in packages]
        if mode == "binaries":
            return _cargo.list_binaries_lines(self._cargo_packages(packages), matches)
        raise UsageError(f"cargo-maelstrom has no --list-{mode}")

    def _cargo_packages(self, packages: Sequence[Package]) -> list[_cargo.Package]:
        return [self._packages[package.id] for package in packages]

    # ----------------------------------------------------------------------------------------
    # The build

    def build(
        self, packages: Sequence[Package], on_output_line: Callable[[str], None]
    ) -> AbstractAsyncContextManager[AsyncIterator[TestArtifact]]:
        return self._build(packages, on_output_line)

    @asynccontextmanager
    async def _build(
        self, packages: Sequence[Package], on_output_line: Callable[[str], None]
    ) -> AsyncIterator[AsyncIterator[TestArtifact]]:
        by_id = {package.id: package for package in packages}
        send, receive = trio.open_memory_channel[TestArtifact | MaelstromError](math.inf)
        command = _cargo.build_command(
            self.options, self._cargo_packages(packages), color=self._color
        )

        def on_ready(built: _cargo.BuiltTest) -> None:
            send.send_nowait(self._artifact(by_id[built.package.spec], built))

        async def build() -> None:
            async with send:
                # Errors travel through the channel, so the run sees them in order, after the
                # artifacts that were ready, and unwrapped by the nursery.
                try:
                    status = await _cargo.run_build(
                        command,
                        self.workspace,
                        cwd=self._cwd,
                        on_ready=on_ready,
                        on_stderr=on_output_line,
                    )
                except MaelstromError as err:
                    send.send_nowait(err)
                    return
                if status != 0:
                    send.send_nowait(
                        BuildFailed(f"cargo test failed with exit status {status}", status=status)
                    )

        try:
            async with trio.open_nursery() as nursery:
                if packages:
                    nursery.start_soon(build)
                else:
                    send.close()  # nothing selected: nothing to build
                try:
                    yield _Artifacts(receive)
                finally:
                    # Leaving early (--stop-after, an error) kills cargo; after a finished
                    # build there is nothing left to cancel.
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The build task reports through the channel and never raises, so this is the
            # caller's own exception (BuildFailed, say): give it back unwrapped.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def _artifact(self, package: Package, built: _cargo.BuiltTest) -> TestArtifact:
        return TestArtifact(
            package=package,
            key=built.key,
            path=built.path,
            display_prefix=_cargo.display_prefix(package.name, built.target),
            case_info=CaseInfo(
                package=package.name, artifact_name=built.target, artifact_kind=built.kind
            ),
        )

    def build_warnings(self, output_lines: Sequence[str]) -> list[str]:
        return [line for line in output_lines if line.strip() and not _cargo.is_progress_line(line)]

    # ----------------------------------------------------------------------------------------
    # Cases

    async def list_cases(self, artifact: TestArtifact) -> list[TestCase]:
        cargo_package = self._packages[artifact.package.id]
        what = f"{artifact.display_prefix.rstrip()} ({artifact.case_info.artifact_kind})"
        names, ignored = await _cargo.list_cases(
            artifact.path, cwd=cargo_package.manifest_path.parent, what=what
        )
        return [TestCase(name, ignored=name in ignored) for name in names]

    def case_info(self, artifact: TestArtifact, case: TestCase) -> CaseInfo:
        info = artifact.case_info
        return CaseInfo(
            package=info.package,
            artifact_name=info.artifact_name,
            artifact_kind=info.artifact_kind,
            name=case.name,
        )

    def db_case_info(
        self, package: Package, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo | None:
        m = _KEY.fullmatch(artifact_key)
        if m is None or m.group(2) not in ARTIFACT_KINDS:
            return None
        return CaseInfo(
            package=package.name, artifact_name=m.group(1), artifact_kind=m.group(2), name=case
        )

    def job(self, artifact: TestArtifact, case: TestCase) -> tuple[str, tuple[str, ...]]:
        return _cargo.test_command(artifact.path, case.name, self._extra_args)

    def working_directory(self, artifact: TestArtifact) -> str | None:
        return None  # cargo test runs test binaries wherever it is: "/" in the container

    def binary_layers(
        self, artifact: TestArtifact, include_shared_libraries: bool
    ) -> list[LayerSpec]:
        return _cargo.test_layers(artifact.path, include_shared_libraries=include_shared_libraries)

    def case_status(
        self, artifact: TestArtifact, case: TestCase, outcome: JobCompleted
    ) -> CaseStatus:
        return default_case_status(outcome)

    def strip_output(
        self, artifact: TestArtifact, case: TestCase, lines: Sequence[str]
    ) -> list[str]:
        return _cargo.strip_fixture_output(lines, case.name)


class _Artifacts:
    """The build's artifacts as they become ready; a failed build raises at the end."""

    def __init__(self, receive: trio.MemoryReceiveChannel[TestArtifact | MaelstromError]) -> None:
        self._receive = receive

    def __aiter__(self) -> _Artifacts:
        return self

    async def __anext__(self) -> TestArtifact:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, MaelstromError):
            raise item
        return item
