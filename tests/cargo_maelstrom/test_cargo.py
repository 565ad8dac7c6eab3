"""cargo_maelstrom._cargo: metadata, the streamed build, listing and naming, on real cargo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest
import trio

from cargo_maelstrom import _cargo
from cargo_maelstrom._cargo import (
    BuildTracker,
    BuiltTest,
    CargoError,
    CargoOptions,
    Package,
    Target,
    Workspace,
)
from maelstrom_core.specs import PathsLayer, PrefixOptions, SharedLibraryDependenciesLayer
from maelstrom_core.testrunner import CARGO, compile_filter

from .conftest import EXAMPLE, copy_project


async def metadata(project: Path, **options: object) -> Workspace:
    return await _cargo.read_metadata(CargoOptions(**options), cwd=project)  # type: ignore[arg-type]


def target(workspace: Workspace, package: str) -> Package:
    (found,) = [p for p in workspace.packages if p.name == package]
    return found


# --------------------------------------------------------------------------------------------
# Metadata


async def test_metadata_of_the_example_workspace(example_project: Path) -> None:
    ws = await metadata(example_project / "crates" / "ledger")  # any member dir finds the root
    assert ws.root == example_project
    assert ws.target_directory == example_project / "target"
    assert [p.name for p in ws.packages] == ["ledger", "ledger-cli", "units"]
    cli = target(ws, "ledger-cli")
    assert cli.spec == "ledger-cli@0.1.0"
    assert cli.manifest_path == example_project / "crates" / "ledger-cli" / "Cargo.toml"
    assert set(cli.targets) == {Target("ledger-cli", "binary", True), Target("cli", "test", True)}
    assert cli.waits_for_binaries() == {"ledger-cli"}
    assert target(ws, "ledger").waits_for_binaries() == frozenset()


async def test_metadata_honours_manifest_path(example_project: Path, tmp_path: Path) -> None:
    ws = await metadata(tmp_path, manifest_path=example_project / "Cargo.toml")
    assert ws.root == example_project


async def test_metadata_failure_is_one_line_naming_cargo(tmp_path: Path) -> None:
    with pytest.raises(CargoError, match=r"^cargo metadata failed: error: .*Cargo\.toml") as info:
        await metadata(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "output is not JSON"),
        ("{}", "missing field 'workspace_root'"),
        (
            '{"workspace_root": "/w", "target_directory": "/w/t", "workspace_members": ["x"],'
            ' "packages": [{"id": "x", "name": 3}]}',
            r"packages\[0\]: missing field 'targets'",
        ),
        (
            '{"workspace_root": "/w", "target_directory": "/w/t", "workspace_members": ["x"],'
            ' "packages": [{"id": "x", "targets": [{"kind": ["lib"], "name": 7}]}]}',
            r"packages\[0\].targets\[0\]: field 'name' is not a str",
        ),
    ],
)
def test_bad_metadata_is_named(text: str, message: str) -> None:
    with pytest.raises(CargoError, match=f"^cargo metadata: {message}"):
        _cargo.parse_metadata(text)


def test_kinds() -> None:
    assert _cargo.artifact_kind(["lib"]) == "library"
    assert _cargo.artifact_kind(["rlib", "cdylib"]) == "library"
    assert _cargo.artifact_kind(["bin"]) == "binary"
    assert _cargo.artifact_kind(["test"]) == "test"
    assert _cargo.artifact_kind(["bench"]) == "benchmark"
    assert _cargo.artifact_kind(["example"]) == "example"
    assert _cargo.artifact_kind(["proc-macro"]) is None
    assert _cargo.artifact_kind(["custom-build"]) is None


# --------------------------------------------------------------------------------------------
# Names, directories, commands


def test_display_prefix_drops_the_packages_own_target() -> None:
    assert _cargo.display_prefix("ledger-cli", "ledger_cli") == "ledger-cli "
    assert _cargo.display_prefix("ledger-cli", "ledger-cli") == "ledger-cli "
    assert _cargo.display_prefix("ledger-cli", "cli") == "ledger-cli cli "
    assert _cargo.display_prefix("units", "units") == "units "


def test_build_dir_follows_profile_and_target() -> None:
    t = Path("/w/target")
    assert _cargo.build_dir(t, None, None) == t / "debug"
    assert _cargo.build_dir(t, "dev", None) == t / "debug"
    assert _cargo.build_dir(t, "test", None) == t / "debug"
    assert _cargo.build_dir(t, "release", None) == t / "release"
    assert _cargo.build_dir(t, "bench", None) == t / "release"
    assert _cargo.build_dir(t, "ci-fast", None) == t / "ci-fast"
    triple = "x86_64-unknown-linux-gnu"
    assert _cargo.build_dir(t, None, triple) == t / triple / "debug"
    assert _cargo.build_dir(t, "release", triple) == t / triple / "release"


def test_build_command_passes_every_option_through() -> None:
    options = CargoOptions(
        features="a,b",
        all_features=True,
        no_default_features=True,
        profile="release",
        target="x86_64-unknown-linux-gnu",
        target_dir=Path("out"),
        manifest_path=Path("w/Cargo.toml"),
        frozen=True,
        locked=True,
        offline=True,
    )
    package = Package("p", "1.2.3", "id", Path("/p/Cargo.toml"), ())
    assert _cargo.build_command(options, [package], color=False) == [
        "cargo",
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
        "--color=never",
        "--features=a,b",
        "--all-features",
        "--no-default-features",
        "--profile=release",
        "--target=x86_64-unknown-linux-gnu",
        "--target-dir",
        "out",
        "--manifest-path",
        "w/Cargo.toml",
        "--frozen",
        "--locked",
        "--offline",
        "--package",
        "p@1.2.3",
    ]
    assert options.metadata_command() == [
        "cargo",
        "metadata",
        "--no-deps",
        "--format-version=1",
        "--features=a,b",
        "--all-features",
        "--no-default-features",
        "--manifest-path",
        "w/Cargo.toml",
        "--frozen",
        "--locked",
        "--offline",
    ]
    assert "--color=always" in _cargo.build_command(CargoOptions(), [], color=True)


def test_job_command_and_layers() -> None:
    binary = Path("/w/target/debug/deps/units-0123abcd")
    assert _cargo.test_command(binary, "tests::sums", ["--test-threads", "1"]) == (
        "/units-0123abcd",
        ("--exact", "--nocapture", "--test-threads", "1", "tests::sums"),
    )
    assert _cargo.test_layers(binary, include_shared_libraries=True) == [
        SharedLibraryDependenciesLayer((str(binary),), PrefixOptions(follow_symlinks=True)),
        PathsLayer((str(binary),), PrefixOptions(strip_prefix="/w/target/debug/deps")),
    ]
    odd = Path("/w/<x>/t")
    assert _cargo.test_layers(odd, include_shared_libraries=False) == [
        PathsLayer(("/w/<<x>/t",), PrefixOptions(strip_prefix="/w/<<x>")),
    ]


def test_list_binaries_lines_honour_the_filter(example_project: Path) -> None:
    ws = trio.run(metadata, example_project)
    everything = compile_filter([], [], CARGO).matches
    assert _cargo.list_binaries_lines(ws.packages, everything) == [
        "ledger (library)",
        "ledger (test)",
        "ledger-cli (binary)",
        "ledger-cli cli (test)",
        "units (library)",
    ]
    tests_only = compile_filter(["test"], [], CARGO).matches
    assert _cargo.list_binaries_lines(ws.packages, tests_only) == [
        "ledger (test)",
        "ledger-cli cli (test)",
    ]
    # A name filter is unknown for binaries: every binary may hold a match.
    by_name = compile_filter(["name.equals(x)"], ["package.equals(units)"], CARGO).matches
    assert len(_cargo.list_binaries_lines(ws.packages, by_name)) == 4


# --------------------------------------------------------------------------------------------
# The readiness rule, sans IO


def _package(name: str, *targets: Target) -> Package:
    return Package(name, "0.1.0", f"path+file:///w/{name}#0.1.0", Path(f"/w/{name}"), targets)


def _message(package: Package, name: str, kinds: list[str], *, test: bool) -> str:
    return json.dumps(
        {
            "reason": "compiler-artifact",
            "package_id": package.id,
            "target": {"name": name, "kind": kinds},
            "profile": {"test": test},
            "executable": f"/w/t/{name}-{'t' if test else 'b'}",
        }
    )


def test_tracker_holds_tests_until_the_packages_binaries_are_built() -> None:
    app = _package(
        "app",
        Target("app", "library", True),
        Target("app", "binary", True),
        Target("helper", "binary", True),
        Target("it", "test", True),
    )
    other = _package("other", Target("other", "library", True))
    tracker = BuildTracker(Workspace(Path("/w"), Path("/w/t"), (app, other)))
    assert tracker.feed(_message(app, "app", ["lib"], test=True)) == []
    assert tracker.feed(_message(app, "it", ["test"], test=True)) == []
    assert tracker.feed(_message(app, "app", ["bin"], test=False)) == []
    # another package is not held up
    (ready,) = tracker.feed(_message(other, "other", ["lib"], test=True))
    assert (ready.package, ready.key) == (other, "other(library)")
    assert tracker.feed('{"reason": "compiler-message"}') == []
    assert tracker.feed("not json: cargo never prints this on stdout") == []
    released = tracker.feed(_message(app, "helper", ["bin"], test=False))
    assert [b.key for b in released] == ["app(library)", "it(test)"]
    # once the binaries are in, later test binaries go at once
    (late,) = tracker.feed(_message(app, "app", ["bin"], test=True))
    assert late == BuiltTest(app, "app", "binary", Path("/w/t/app-t"))
    assert tracker.finish() == []


def test_tracker_ignores_proc_macros_and_releases_the_rest_at_the_end() -> None:
    app = _package("app", Target("app", "binary", True), Target("it", "test", True))
    tracker = BuildTracker(Workspace(Path("/w"), Path("/w/t"), (app,)))
    assert tracker.feed(_message(app, "derive", ["proc-macro"], test=True)) == []
    assert tracker.feed(_message(app, "build-script-build", ["custom-build"], test=False)) == []
    assert tracker.feed(_message(app, "it", ["test"], test=True)) == []
    assert [b.key for b in tracker.finish()] == ["it(test)"]


def test_tracker_names_a_garbled_line() -> None:
    tracker = BuildTracker(Workspace(Path("/w"), Path("/w/t"), ()))
    with pytest.raises(CargoError, match=r"^cargo test: bad JSON message: '\{\"reason\":'$"):
        tracker.feed('{"reason": ')


# --------------------------------------------------------------------------------------------
# The real build


async def test_build_streams_artifacts_after_the_binaries_they_need(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    options = CargoOptions(target_dir=Path("elsewhere"), offline=True)
    ws = await _cargo.read_metadata(options, cwd=project)
    bin_path = _cargo.build_dir(project / "elsewhere", None, None) / "ledger-cli"
    seen: list[tuple[str, str, bool]] = []
    stderr: list[str] = []

    finished_before: list[bool] = []

    def on_ready(built: BuiltTest) -> None:
        assert built.path.is_file()
        seen.append((built.package.name, built.key, bin_path.is_file()))
        finished_before.append(any(line.lstrip().startswith("Finished") for line in stderr))

    status = await _cargo.run_build(
        _cargo.build_command(options, ws.packages, color=False),
        ws,
        cwd=project,
        on_ready=on_ready,
        on_stderr=stderr.append,
    )
    assert status == 0
    assert sorted(s[:2] for s in seen) == [
        ("ledger", "ledger(library)"),
        ("ledger", "ledger(test)"),
        ("ledger-cli", "cli(test)"),
        ("ledger-cli", "ledger-cli(binary)"),
        ("units", "units(library)"),
    ]
    assert all(bin_built for name, _, bin_built in seen if name == "ledger-cli")
    # streamed: the first test binary came while cargo was still compiling the others
    assert finished_before[0] is False
    assert any(line.lstrip().startswith("Compiling units") for line in stderr)
    assert all(_cargo.is_progress_line(line) for line in stderr if line.strip())
    assert not (project / "target").exists()  # --target-dir went to cargo


async def test_build_of_selected_packages_only(odd_project: Path) -> None:
    ws = await metadata(odd_project)
    selected = [target(ws, "outcomes")]
    keys: list[str] = []
    status = await _cargo.run_build(
        _cargo.build_command(CargoOptions(), selected, color=False),
        ws,
        cwd=odd_project,
        on_ready=lambda built: keys.append(built.key),
        on_stderr=lambda line: None,
    )
    assert (status, keys) == (0, ["outcomes(library)"])


async def test_build_failure_returns_cargos_status(odd_project: Path) -> None:
    ws = await metadata(odd_project)
    stderr: list[str] = []
    command = _cargo.build_command(
        CargoOptions(features="extra"), [target(ws, "integration")], color=False
    )
    status = await _cargo.run_build(
        command,
        ws,
        cwd=odd_project,
        on_ready=lambda built: pytest.fail("nothing is built"),
        on_stderr=stderr.append,
    )
    assert status == 101
    assert any("does not contain this feature: extra" in line for line in stderr)
    assert not any(_cargo.is_progress_line(line) for line in stderr if "error" in line)


async def test_build_killed_by_a_signal_reports_128_plus_it(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    ws = await metadata(project)
    fake = tmp_path / "bin" / "cargo"
    fake.parent.mkdir()
    # A cargo that dies of SIGTERM half way, as an OOM-killed or interrupted cargo would.
    fake.write_text("#!/bin/sh\necho '   Compiling x' >&2\nkill -TERM $$\n")
    fake.chmod(0o755)
    status = await _cargo.run_build(
        [str(fake), "test"], ws, cwd=project, on_ready=print, on_stderr=lambda line: None
    )
    assert status == 128 + 15


async def test_cancelling_the_build_kills_cargo(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    ws = await metadata(project)
    first_line = trio.Event()

    def on_stderr(line: str) -> None:
        first_line.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: _cargo.run_build(
                _cargo.build_command(CargoOptions(), ws.packages, color=False),
                ws,
                cwd=project,
                on_ready=lambda built: None,
                on_stderr=on_stderr,
            )
        )
        with trio.fail_after(60):
            await first_line.wait()
        assert _cargo_children()
        nursery.cancel_scope.cancel()
    assert _cargo_children() == []


def _cargo_children() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]


async def test_cargo_missing_is_a_clear_error(example_project: Path) -> None:
    ws = await metadata(example_project)
    with pytest.raises(CargoError, match=r"^cannot run cargo: No such file or directory"):
        await _cargo.run_build(
            [str(example_project / "no-cargo-here")],
            ws,
            cwd=example_project,
            on_ready=print,
            on_stderr=print,
        )


# --------------------------------------------------------------------------------------------
# Listing and fixture stripping on real test binaries


async def _built(project: Path, package: str) -> list[BuiltTest]:
    ws = await metadata(project)
    found: list[BuiltTest] = []
    status = await _cargo.run_build(
        _cargo.build_command(CargoOptions(), [target(ws, package)], color=False),
        ws,
        cwd=project,
        on_ready=found.append,
        on_stderr=lambda line: None,
    )
    assert status == 0
    return found


async def test_listing_finds_cases_and_ignored_ones(odd_project: Path) -> None:
    (lib,) = await _built(odd_project, "outcomes")
    cases, ignored = await _cargo.list_cases(lib.path, cwd=odd_project, what="outcomes")
    assert sorted(cases) == [
        "nested::deeper::passes_too",
        "tests::exits_3",
        "tests::fails",
        "tests::ignored",
        "tests::panics",
        "tests::passes",
        "tests::sleeps_forever",
    ]
    assert ignored == {"tests::ignored"}


def test_parse_listing_leaves_out_benchmarks() -> None:
    text = "a::b: test\nbench_it: benchmark\nweird: name: test\n\n"
    assert _cargo.parse_listing(text) == ["a::b", "weird: name"]


async def test_listing_failure_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-test-binary"
    bad.write_text("#!/bin/sh\necho 'error: no such flag' >&2\nexit 2\n")
    bad.chmod(0o755)
    with pytest.raises(CargoError, match=r"^pkg t \(test\): listing tests with .* failed with"):
        await _cargo.list_cases(bad, cwd=tmp_path, what="pkg t (test)")


async def test_fixture_output_is_stripped_from_a_real_failure(odd_project: Path) -> None:
    (lib,) = await _built(odd_project, "outcomes")
    command, args = _cargo.test_command(lib.path, "tests::fails", [])
    result = subprocess.run(
        [str(lib.path), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    assert command == "/" + lib.path.name
    assert result.returncode == 101
    lines = result.stdout.splitlines()
    assert "running 1 test" in lines
    assert _cargo.strip_fixture_output(lines, "tests::fails") == ["stdout before failing"]


def test_strip_fixture_output_edges() -> None:
    strip = _cargo.strip_fixture_output
    # no trailing newline from the test: libtest's status shares its line
    assert strip(["", "running 1 test", "partial test t ... FAILED", "x"], "t") == ["partial "]
    # the last status line counts, not an earlier line the test printed itself
    assert strip(["running 1 test", "test t ... fake", "mine", "test t ... ok"], "t") == [
        "test t ... fake",
        "mine",
    ]
    # a process that died before libtest's framing: everything is the test's
    assert strip(["boom"], "t") == ["boom"]
    assert strip([], "t") == []
