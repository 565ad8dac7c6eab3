"""cargo itself: workspace metadata, the streamed test build, test listing, naming.

The pure parts (metadata parsing, the build's readiness rule, listing parsing, names, fixture
stripping) are plain synchronous code; only the functions that run cargo or a test binary
touch trio.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from maelstrom_core.errors import MaelstromError
from maelstrom_core.specs import (
    LayerSpec,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
)
from maelstrom_core.testrunner import ArtifactKind, CaseInfo

__all__ = [
    "BuildTracker",
    "BuiltTest",
    "CargoError",
    "CargoOptions",
    "Package",
    "Target",
    "Workspace",
    "artifact_kind",
    "build_command",
    "build_dir",
    "display_prefix",
    "escape_template",
    "is_progress_line",
    "list_binaries_lines",
    "list_cases",
    "parse_listing",
    "parse_metadata",
    "read_metadata",
    "run_build",
    "strip_fixture_output",
    "test_command",
    "test_layers",
]

# cargo's own target kinds, as `cargo metadata` and compiler-artifact messages spell them.
_LIBRARY_KINDS: Final = frozenset({"lib", "rlib", "dylib", "cdylib", "staticlib"})
_KIND_BY_CARGO: Final[Mapping[str, ArtifactKind]] = {
    "bin": "binary",
    "test": "test",
    "bench": "benchmark",
    "example": "example",
}

# What cargo prints on stderr while it works; everything else (warnings, errors, notes) is
# kept for after the summary. Matched on the first word of a stripped line.
_PROGRESS_WORDS: Final = frozenset(
    {
        "Compiling",
        "Building",
        "Blocking",
        "Finished",
        "Checking",
        "Fresh",
        "Locking",
        "Adding",
        "Updating",
        "Downloading",
        "Downloaded",
        "Executable",
    }
)
_ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# libtest's terse listing: "name: test"; benchmarks ("name: benchmark") are not run, as under
# `cargo test`.
_LISTING_LINE: Final = re.compile(r"^(.*): test$")


class CargoError(MaelstromError):
    """cargo could not be run or its output made no sense; the message says which command."""


@dataclass(frozen=True, slots=True)
class CargoOptions:
    """cargo's pass-through options (maelstrom-features.md §1.1)."""

    features: str | None = None
    all_features: bool = False
    no_default_features: bool = False
    profile: str | None = None
    target: str | None = None
    target_dir: Path | None = None
    manifest_path: Path | None = None
    frozen: bool = False
    locked: bool = False
    offline: bool = False

    def feature_args(self) -> list[str]:
        args: list[str] = []
        if self.features is not None:
            args.append(f"--features={self.features}")
        if self.all_features:
            args.append("--all-features")
        if self.no_default_features:
            args.append("--no-default-features")
        return args

    def manifest_args(self) -> list[str]:
        args: list[str] = []
        if self.manifest_path is not None:
            args += ["--manifest-path", str(self.manifest_path)]
        if self.frozen:
            args.append("--frozen")
        if self.locked:
            args.append("--locked")
        if self.offline:
            args.append("--offline")
        return args

    def metadata_command(self) -> list[str]:
        return [
            "cargo",
            "metadata",
            "--no-deps",
            "--format-version=1",
            *self.feature_args(),
            *self.manifest_args(),
        ]

    def compilation_args(self) -> list[str]:
        args: list[str] = []
        if self.profile is not None:
            args.append(f"--profile={self.profile}")
        if self.target is not None:
            args.append(f"--target={self.target}")
        if self.target_dir is not None:
            args += ["--target-dir", str(self.target_dir)]
        return args


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: ArtifactKind
    test: bool  # cargo test builds and runs it as a test (the target's `test` flag)


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    id: str
    manifest_path: Path
    targets: tuple[Target, ...]

    @property
    def spec(self) -> str:
        """The ``--package`` argument that names exactly this package."""
        return f"{self.name}@{self.version}"

    def waits_for_binaries(self) -> frozenset[str]:
        """The ``bin`` targets this package's tests wait for (``CARGO_BIN_EXE_*``).

        cargo builds a package's binaries for `cargo test` only when it has an integration
        test or a benchmark to test; otherwise there is nothing to wait for.
        """
        if not any(t.test and t.kind in ("test", "benchmark") for t in self.targets):
            return frozenset()
        return frozenset(t.name for t in self.targets if t.kind == "binary")


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    target_directory: Path
    packages: tuple[Package, ...]


def artifact_kind(cargo_kinds: Iterable[str]) -> ArtifactKind | None:
    """Our kind for a cargo target's kinds; None for proc macros and build scripts."""
    kinds = list(cargo_kinds)
    for kind in kinds:
        if kind in _KIND_BY_CARGO:
            return _KIND_BY_CARGO[kind]
    if any(kind in _LIBRARY_KINDS for kind in kinds):
        return "library"
    return None


def _field(obj: object, key: str, kind: type, where: str) -> object:
    if not isinstance(obj, dict) or key not in obj:
        raise CargoError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise CargoError(f"{where}: field {key!r} is not a {kind.__name__}")
    return value


def parse_metadata(text: str, *, where: str = "cargo metadata") -> Workspace:
    """The workspace described by ``cargo metadata --no-deps --format-version=1`` output."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise CargoError(f"{where}: output is not JSON: {err}") from None
    root = Path(str(_field(doc, "workspace_root", str, where)))
    target_directory = Path(str(_field(doc, "target_directory", str, where)))
    members = _field(doc, "workspace_members", list, where)
    raw_packages = _field(doc, "packages", list, where)
    assert isinstance(members, list)
    assert isinstance(raw_packages, list)
    member_ids = {str(member) for member in members}
    packages: list[Package] = []
    for index, raw in enumerate(raw_packages):
        here = f"{where}: packages[{index}]"
        package_id = str(_field(raw, "id", str, here))
        if package_id not in member_ids:
            continue
        targets: list[Target] = []
        raw_targets = _field(raw, "targets", list, here)
        assert isinstance(raw_targets, list)
        for t_index, raw_target in enumerate(raw_targets):
            t_here = f"{here}.targets[{t_index}]"
            kinds = _field(raw_target, "kind", list, t_here)
            assert isinstance(kinds, list)
            kind = artifact_kind(str(k) for k in kinds)
            if kind is None:
                continue
            test = raw_target.get("test", False)
            targets.append(Target(str(_field(raw_target, "name", str, t_here)), kind, test is True))
        packages.append(
            Package(
                name=str(_field(raw, "name", str, here)),
                version=str(_field(raw, "version", str, here)),
                id=package_id,
                manifest_path=Path(str(_field(raw, "manifest_path", str, here))),
                targets=tuple(targets),
            )
        )
    packages.sort(key=lambda p: p.name)
    return Workspace(root, target_directory, tuple(packages))


async def read_metadata(options: CargoOptions, *, cwd: Path) -> Workspace:
    """Run ``cargo metadata`` in ``cwd`` and parse what it prints.

    Raises:
        CargoError: cargo is missing, fails (its last error line is quoted), or prints
            something that is not workspace metadata.
    """
    command = options.metadata_command()
    try:
        result = await trio.run_process(
            command, cwd=cwd, capture_stdout=True, capture_stderr=True, check=False
        )
    except OSError as err:
        raise CargoError(f"cannot run cargo: {err.strerror or err}") from None
    if result.returncode != 0:
        raise CargoError(f"cargo metadata failed: {_last_error(result.stderr)}")
    return parse_metadata(result.stdout.decode("utf-8", "replace"))


def _last_error(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith("error"):
            return line
    return lines[-1] if lines else "no error message"


def list_binaries_lines(
    packages: Iterable[Package], matches: Callable[[CaseInfo], bool]
) -> list[str]:
    """``--list-binaries``: ``pkg[ target] (kind)`` per selected target cargo would test."""
    lines: list[str] = []
    for package in packages:
        for target in package.targets:
            info = CaseInfo(
                package=package.name, artifact_name=target.name, artifact_kind=target.kind
            )
            if target.test and matches(info):
                prefix = display_prefix(package.name, target.name)
                lines.append(f"{prefix.rstrip()} ({target.kind})")
    return lines


def build_dir(target_dir: Path, profile: str | None, target: str | None) -> Path:
    """The ``<build-dir>`` template variable: where cargo puts this profile's outputs."""
    name = profile or "dev"
    # cargo's own mapping of profile names to output directories.
    directory = {"dev": "debug", "test": "debug", "release": "release", "bench": "release"}.get(
        name, name
    )
    base = target_dir / target if target else target_dir
    return base / directory


def build_command(options: CargoOptions, packages: Iterable[Package], *, color: bool) -> list[str]:
    command = [
        "cargo",
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
        f"--color={'always' if color else 'never'}",
        *options.feature_args(),
        *options.compilation_args(),
        *options.manifest_args(),
    ]
    for package in packages:
        command += ["--package", package.spec]
    return command


# --------------------------------------------------------------------------------------------
# The build


@dataclass(frozen=True, slots=True)
class BuiltTest:
    """A test binary cargo built: which package and target, and where it is."""

    package: Package
    target: str
    kind: ArtifactKind
    path: Path

    @property
    def key(self) -> str:
        """The test DB's artifact key, ``name(kind)``."""
        return f"{self.target}({self.kind})"


@dataclass
class _PackageState:
    waiting_for: set[str]
    held: list[BuiltTest] = field(default_factory=list)


class BuildTracker:
    """Turns cargo's JSON messages into test binaries, in the order they may run.

    A package's test binaries are held until every ``bin`` target of that package is built,
    because integration tests may run them through ``CARGO_BIN_EXE_*``. Proc macros and build
    scripts are never tests. Sans-IO: feed it lines, get ready binaries back.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._packages = {package.id: package for package in workspace.packages}
        self._states: dict[str, _PackageState] = {}

    def _state(self, package: Package) -> _PackageState:
        state = self._states.get(package.id)
        if state is None:
            state = _PackageState(set(package.waits_for_binaries()))
            self._states[package.id] = state
        return state

    def feed(self, line: str) -> list[BuiltTest]:
        """One line of cargo's stdout. Returns the test binaries it makes ready.

        Raises:
            CargoError: a line that looks like JSON but is not.
        """
        line = line.strip()
        if not line.startswith("{"):
            return []
        try:
            message = json.loads(line)
        except ValueError:
            raise CargoError(f"cargo test: bad JSON message: {line[:80]!r}") from None
        if not isinstance(message, dict) or message.get("reason") != "compiler-artifact":
            return []
        package = self._packages.get(str(message.get("package_id")))
        target = message.get("target")
        profile = message.get("profile")
        if package is None or not isinstance(target, dict) or not isinstance(profile, dict):
            return []
        kinds = target.get("kind")
        kind = artifact_kind(str(k) for k in kinds) if isinstance(kinds, list) else None
        if kind is None:
            return []
        state = self._state(package)
        name = str(target.get("name"))
        executable = message.get("executable")
        if profile.get("test") is True:
            if not isinstance(executable, str):
                return []
            state.held.append(BuiltTest(package, name, kind, Path(executable)))
        elif kind == "binary":
            state.waiting_for.discard(name)
        if state.waiting_for:
            return []
        ready, state.held = state.held, []
        return ready

    def finish(self) -> list[BuiltTest]:
        """cargo succeeded: whatever is still held (on a binary cargo skipped) is ready."""
        ready: list[BuiltTest] = []
        for state in self._states.values():
            ready += state.held
            state.held = []
            state.waiting_for.clear()
        return ready


def is_progress_line(line: str) -> bool:
    """One of cargo's progress lines (Compiling, Finished...), dropped after the build."""
    words = _ANSI.sub("", line).split(maxsplit=1)
    return bool(words) and words[0] in _PROGRESS_WORDS


async def _read_lines(stream: trio.abc.ReceiveStream, on_line: Callable[[str], None]) -> None:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            on_line(line.decode("utf-8", "replace").rstrip("\r"))
    if buffer:
        on_line(buffer.decode("utf-8", "replace").rstrip("\r"))


async def run_build(
    command: Sequence[str],
    workspace: Workspace,
    *,
    cwd: Path,
    on_ready: Callable[[BuiltTest], None],
    on_stderr: Callable[[str], None],
) -> int:
    """Run ``cargo test --no-run``, reporting each test binary as soon as it may run.

    Args:
        command: from :func:`build_command`.
        workspace: what ``cargo metadata`` said, to map cargo's package ids.
        cwd: where to run cargo.
        on_ready: called in the trio thread for each test binary that may run.
        on_stderr: called with each line cargo writes to stderr, as it comes.

    Returns:
        0, cargo's non-zero exit status, or 128+N if a signal N ended it.

    Cancellation:
        cargo is killed with SIGKILL and reaped before the cancellation propagates.

    Raises:
        CargoError: cargo cannot be started or prints something other than its JSON.
    """
    tracker = BuildTracker(workspace)
    errors: list[CargoError] = []

    def stdout_line(line: str) -> None:
        for built in tracker.feed(line):
            on_ready(built)

    try:
        process = await trio.lowlevel.open_process(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        raise CargoError(f"cannot run cargo: {err.strerror or err}") from None
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        async with trio.open_nursery() as nursery:

            async def pump(stream: trio.abc.ReceiveStream, on_line: Callable[[str], None]) -> None:
                # Kept out of the nursery's exception group: callers get the one-line error.
                try:
                    await _read_lines(stream, on_line)
                except CargoError as err:
                    errors.append(err)
                    nursery.cancel_scope.cancel()

            nursery.start_soon(pump, process.stdout, stdout_line)
            nursery.start_soon(pump, process.stderr, on_stderr)
        if errors:
            raise errors[0]
        returncode = await process.wait()
    finally:
        if process.returncode is None:
            # Cancelled (--stop-after) or failed: nothing cargo would do after SIGTERM is wanted.
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    await trio.aclose_forcefully(stream)
    if returncode == 0:
        for built in tracker.finish():
            on_ready(built)
        return 0
    return 128 - returncode if returncode < 0 else returncode


# --------------------------------------------------------------------------------------------
# Listing and running one case


def parse_listing(text: str) -> list[str]:
    """Case names from ``<bin> --list --format terse`` (benchmarks left out)."""
    cases: list[str] = []
    for line in text.splitlines():
        m = _LISTING_LINE.match(line)
        if m:
            cases.append(m.group(1))
    return cases


async def list_cases(binary: Path, *, cwd: Path, what: str) -> tuple[list[str], frozenset[str]]:
    """All cases of a test binary, and the ``#[ignore]``d ones among them (run on the host).

    ``what`` names the binary in error messages.
    """
    listed = await _run_listing(binary, cwd, what, ignored=False)
    ignored = await _run_listing(binary, cwd, what, ignored=True)
    return parse_listing(listed), frozenset(parse_listing(ignored))


async def _run_listing(binary: Path, cwd: Path, what: str, *, ignored: bool) -> str:
    command = [str(binary), "--list", "--format", "terse"]
    if ignored:
        command.append("--ignored")
    try:
        result = await trio.run_process(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    except OSError as err:
        raise CargoError(f"{what}: cannot run {binary}: {err.strerror or err}") from None
    if result.returncode != 0:
        raise CargoError(
            f"{what}: listing tests with {binary} failed with {_status_text(result.returncode)}:"
            f" {_last_error(result.stderr)}"
        )
    return result.stdout.decode("utf-8", "replace")


def _status_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _same_name(package: str, target: str) -> bool:
    return target.replace("_", "-") == package


def display_prefix(package: str, target: str) -> str:
    """What goes before a case name: ``"<package> "`` or ``"<package> <target> "``.

    The target is left out when it is the package's own (its name after ``_`` -> ``-``).
    """
    if _same_name(package, target):
        return f"{package} "
    return f"{package} {target} "


def escape_template(path: str) -> str:
    """A literal path for a layer spec, whose ``<`` would otherwise start a template variable."""
    return path.replace("<", "<<")


def test_command(binary: Path, case: str, extra_args: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The job's program and arguments: ``/<bin> --exact --nocapture [extra] <case>``."""
    return f"/{binary.name}", ("--exact", "--nocapture", *extra_args, case)


def test_layers(binary: Path, *, include_shared_libraries: bool) -> list[LayerSpec]:
    """The layers after the directives' layers: the binary's libraries, then it at ``/``."""
    path = escape_template(str(binary))
    layers: list[LayerSpec] = []
    if include_shared_libraries:
        layers.append(SharedLibraryDependenciesLayer((path,), PrefixOptions(follow_symlinks=True)))
    strip = escape_template(str(binary.parent))
    layers.append(PathsLayer((path,), PrefixOptions(strip_prefix=strip)))
    return layers


def strip_fixture_output(lines: Sequence[str], case: str) -> list[str]:
    """Failure stdout without libtest's framing.

    Drops everything through the ``running 1 test`` line and everything from the last
    ``test <case> ... `` line onward, leaving what the test itself printed.
    """
    start = 0
    for index, line in enumerate(lines):
        if line.rstrip("\r\n") == "running 1 test":
            start = index + 1
            break
    kept = list(lines[start:])
    marker = f"test {case} ... "
    for index in range(len(kept) - 1, -1, -1):
        at = kept[index].find(marker)
        if at >= 0:
            # A test that prints without a final newline shares the status line with libtest.
            head = kept[index][:at]
            return kept[:index] + ([head] if head else [])
    return kept
