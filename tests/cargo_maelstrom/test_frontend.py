"""CargoFrontend: the cargo side of the framework's Frontend interface, on real projects."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import trio

from cargo_maelstrom._frontend import DEFAULT_SPEC_TOML, SPEC_FILE_NAME, CargoFrontend
from maelstrom_core.config import CargoConfig
from maelstrom_core.errors import UsageError
from maelstrom_core.testrunner import (
    CARGO,
    BuildFailed,
    CaseInfo,
    CaseStatus,
    Frontend,
    Package,
    SpecFile,
    TestArtifact,
    TestCase,
    compile_filter,
)

from .conftest import EXAMPLE, copy_project


async def frontend(project: Path, **config: object) -> CargoFrontend:
    cli = {k: str(v) if isinstance(v, Path) else v for k, v in config.items()}
    loaded = CargoConfig.resolve(cli=cli, env={}, config_file="-")
    return await CargoFrontend.open(loaded, cwd=project)


def by_name(packages: list[Package], name: str) -> Package:
    (found,) = [p for p in packages if p.name == name]
    return found


async def built(fe: CargoFrontend, packages: list[Package]) -> list[TestArtifact]:
    lines: list[str] = []
    async with fe.build(packages, lines.append) as artifacts:
        return [artifact async for artifact in artifacts]


async def test_it_is_a_frontend_with_cargos_directories(example_project: Path) -> None:
    fe: Frontend = await frontend(example_project / "crates" / "units")
    target = example_project / "target"
    assert fe.name == "cargo-maelstrom"
    assert fe.dialect is CARGO
    assert fe.project_dir == example_project
    assert fe.state_dir == target / "maelstrom" / "state"
    assert fe.cache_dir == target / "maelstrom" / "cache"
    assert fe.spec_file_name == SPEC_FILE_NAME == "cargo-maelstrom.toml"
    assert fe.template_vars == {"build-dir": str(target / "debug")}
    assert list(fe.watch_excludes) == [target]


async def test_target_dir_profile_and_triple_move_the_directories(example_project: Path) -> None:
    fe = await frontend(
        example_project,
        target_dir=Path("out/t"),
        profile="release",
        target="x86_64-unknown-linux-gnu",
    )
    out = example_project / "out" / "t"
    assert fe.state_dir == out / "maelstrom" / "state"
    assert fe.template_vars == {"build-dir": str(out / "x86_64-unknown-linux-gnu" / "release")}


def test_default_spec_parses_to_the_original_default() -> None:
    spec = SpecFile.parse(DEFAULT_SPEC_TOML, source=SPEC_FILE_NAME, dialect=CARGO)
    (directive,) = spec.directives
    assert directive.filter is None
    text = DEFAULT_SPEC_TOML
    assert '"/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}"' in text
    assert 'RUST_BACKTRACE = "$env{RUST_BACKTRACE:-0}"' in text
    assert 'RUST_LIB_BACKTRACE = "$env{RUST_LIB_BACKTRACE:-0}"' in text


async def test_packages_and_their_artifact_keys(example_project: Path) -> None:
    packages = await (await frontend(example_project)).packages()
    assert [(p.name, p.id, p.artifact_keys) for p in packages] == [
        ("ledger", "ledger@0.1.0", ("ledger(library)", "ledger(test)")),
        ("ledger-cli", "ledger-cli@0.1.0", ("ledger-cli(binary)", "cli(test)")),
        ("units", "units@0.1.0", ("units(library)",)),
    ]
    assert packages[0].case_info == CaseInfo(package="ledger")


async def test_list_other(example_project: Path) -> None:
    fe = await frontend(example_project)
    packages = await fe.packages()
    keep = compile_filter(["binary | library"], [], CARGO)
    assert await fe.list_other("packages", packages[1:], keep.matches) == ["ledger-cli", "units"]
    assert await fe.list_other("binaries", packages, keep.matches) == [
        "ledger (library)",
        "ledger-cli (binary)",
        "units (library)",
    ]
    with pytest.raises(UsageError, match="cargo-maelstrom has no --list-tests"):
        await fe.list_other("tests", packages, keep.matches)  # type: ignore[arg-type]


async def test_build_list_and_describe_cases(example_project: Path) -> None:
    fe = await frontend(example_project, extra_test_binary_args=("--test-threads", "1"))
    packages = await fe.packages()
    artifacts = await built(fe, [by_name(packages, "ledger-cli")])
    assert sorted(a.key for a in artifacts) == ["cli(test)", "ledger-cli(binary)"]
    (cli,) = [a for a in artifacts if a.key == "cli(test)"]
    assert cli.display_prefix == "ledger-cli cli "
    assert cli.case_info == CaseInfo(
        package="ledger-cli", artifact_name="cli", artifact_kind="test"
    )
    cases = await fe.list_cases(cli)
    assert cases == [
        TestCase("bad_input_exits_1_with_the_line"),
        TestCase("prints_balances_and_total"),
    ]
    assert fe.case_info(cli, cases[0]) == CaseInfo(
        package="ledger-cli",
        artifact_name="cli",
        artifact_kind="test",
        name="bad_input_exits_1_with_the_line",
    )
    program, arguments = fe.job(cli, cases[1])
    assert program == "/" + cli.path.name
    assert arguments == (
        "--exact",
        "--nocapture",
        "--test-threads",
        "1",
        "prints_balances_and_total",
    )
    assert len(fe.binary_layers(cli, True)) == 2
    assert len(fe.binary_layers(cli, False)) == 1
    lines = ["", "running 1 test", "mine", "test prints_balances_and_total ... FAILED", "tail"]
    assert fe.strip_output(cli, cases[1], lines) == ["mine"]


async def test_ignored_cases_come_from_the_ignored_listing(example_project: Path) -> None:
    fe = await frontend(example_project)
    (units,) = await built(fe, [by_name(await fe.packages(), "units")])
    ignored = [case.name for case in await fe.list_cases(units) if case.ignored]
    assert ignored == ["tests::round_trips_every_amount_up_to_a_million"]


async def test_db_case_info_parses_artifact_keys(example_project: Path) -> None:
    fe = await frontend(example_project)
    package = by_name(await fe.packages(), "ledger-cli")
    assert fe.db_case_info(package, "cli(test)", "x", {}) == CaseInfo(
        package="ledger-cli", artifact_name="cli", artifact_kind="test", name="x"
    )
    assert fe.db_case_info(package, "odd(name)(library)", "x", {}) == CaseInfo(
        package="ledger-cli", artifact_name="odd(name)", artifact_kind="library", name="x"
    )
    assert fe.db_case_info(package, "cli(gadget)", "x", {}) is None
    assert fe.db_case_info(package, "cli", "x", {}) is None


async def test_nothing_selected_builds_nothing(example_project: Path) -> None:
    fe = await frontend(example_project)
    assert await built(fe, []) == []


async def test_build_failure_raises_build_failed(odd_project: Path) -> None:
    fe = await frontend(odd_project, features="extra")
    packages = [by_name(await fe.packages(), "integration")]
    lines: list[str] = []
    got: list[TestArtifact] = []

    async def consume() -> None:
        async with fe.build(packages, lines.append) as artifacts:
            got.extend([artifact async for artifact in artifacts])

    with pytest.raises(BuildFailed, match=r"^cargo test failed with exit status 101$") as info:
        await consume()
    assert info.value.status == 101
    assert got == []
    warnings = fe.build_warnings(lines)
    assert any("does not contain this feature: extra" in line for line in warnings)
    assert fe.build_warnings(["   Compiling x v0.1.0", "warning: unused", "", "    Finished"]) == [
        "warning: unused"
    ]


async def test_leaving_the_build_early_kills_cargo(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    fe = await frontend(project)
    started = trio.Event()

    def on_line(line: str) -> None:
        started.set()

    with trio.fail_after(60):
        async with fe.build(await fe.packages(), on_line):
            await started.wait()
            assert _live_children()
    assert _live_children() == []


def _live_children() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]


def test_case_status_is_the_default_mapping() -> None:
    from maelstrom_core.job import ExitCode, JobCompleted, Output, Signaled

    fe = CargoFrontend.__new__(CargoFrontend)
    artifact = TestArtifact(
        Package("p", "p@1", CaseInfo(package="p")), "p(library)", Path("/b"), "p ", CaseInfo()
    )
    case = TestCase("t")
    empty = Output(b"", 0)
    assert fe.case_status(artifact, case, JobCompleted(ExitCode(0), empty, empty)) is CaseStatus.OK
    for status in (ExitCode(3), Signaled(9)):
        outcome = JobCompleted(status, empty, empty)
        assert fe.case_status(artifact, case, outcome) is CaseStatus.FAIL
