"""cargo maelstrom end to end: the installed console script on real cargo projects.

Every test case runs in a real container on the embedded local worker. The projects are the
session-wide copies from conftest.py (built once); tests that change sources or build with
other options use their own copy or target dir.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cargo_maelstrom._frontend import DEFAULT_SPEC_TOML, SPEC_FILE_NAME
from maelstrom_core.testrunner import CARGO, SpecFile
from tests._helpers.cli import ScriptResult, clean_env, run_script, script_path

from .conftest import EXAMPLE, ODD, cargo_env, copy_project, prebuild, scratch_dir

_CASE_LINE = re.compile(r"^(\S.*?)\.{2,}\s*(OK|FAIL|TIMEOUT|ERR|IGNORED)\b")


def cargo_maelstrom(project: Path, *args: str, timeout: float = 180, **env: str) -> ScriptResult:
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    return run_script(
        "cargo-maelstrom",
        "--ui",
        "simple",
        *args,
        cwd=project,
        env=clean_env(home, **cargo_env(), **env),
        timeout=timeout,
    )


def statuses(stdout: str) -> dict[str, list[str]]:
    """Case display name -> the statuses of its lines, in order."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        m = _CASE_LINE.match(line)
        if m:
            found.setdefault(m.group(1), []).append(m.group(2))
    return found


def summary_count(stdout: str, label: str) -> int | None:
    m = re.search(rf"^{label}\s*:\s*(\d+)", stdout, re.MULTILINE)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------------------------
# The example workspace


def test_example_workspace_runs_all_green(example_project: Path, privilege: str) -> None:
    # As root, and again as an unprivileged user (conftest's privilege fixture): rootless.
    result = cargo_maelstrom(example_project)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {
        "units tests::parses_whole_and_fractional_amounts": ["OK"],
        "units tests::rejects_bad_amounts": ["OK"],
        "units tests::displays_with_two_decimals": ["OK"],
        "units tests::sums": ["OK"],
        "units tests::round_trips_every_amount_up_to_a_million": ["IGNORED"],
        "ledger tests::comments_and_blank_lines_are_skipped": ["OK"],
        "ledger balances_accumulate_per_account": ["OK"],
        "ledger errors_name_the_line": ["OK"],
        # needs the glob layer of tests/data from cargo-maelstrom.toml
        "ledger reads_the_sample_ledger": ["OK"],
        # run the binary through CARGO_BIN_EXE_ledger-cli at its <build-dir> path
        "ledger-cli cli prints_balances_and_total": ["OK"],
        "ledger-cli cli bad_input_exits_1_with_the_line": ["OK"],
    }
    assert summary_count(result.stdout, "Successful Tests") == 10
    assert summary_count(result.stdout, "Failed Tests") == 0
    assert summary_count(result.stdout, "Ignored Tests") == 1
    state = example_project / "target" / "maelstrom" / "state" / "test-listing.toml"
    assert '[ledger-cli."cli(test)".prints_balances_and_total]' in state.read_text()
    assert (example_project / "target" / "maelstrom" / "cache").is_dir()


def test_list_tests_binaries_and_packages(example_project: Path) -> None:
    result = cargo_maelstrom(example_project, "--list-tests", "-i", "package.equals(units)")
    assert result.exit_code == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "units tests::displays_with_two_decimals",
        "units tests::parses_whole_and_fractional_amounts",
        "units tests::rejects_bad_amounts",
        "units tests::round_trips_every_amount_up_to_a_million",
        "units tests::sums",
    ]
    result = cargo_maelstrom(example_project, "--list-binaries")
    assert (result.exit_code, result.stdout.splitlines()) == (
        0,
        [
            "ledger (library)",
            "ledger (test)",
            "ledger-cli (binary)",
            "ledger-cli cli (test)",
            "units (library)",
        ],
    )
    result = cargo_maelstrom(example_project, "--list-binaries", "-i", "test", "-x", "p.eq(ledger)")
    assert result.stdout.splitlines() == ["ledger-cli cli (test)"]
    result = cargo_maelstrom(example_project, "--list-packages", "-x", "package.starts_with(l)")
    assert (result.exit_code, result.stdout) == (0, "units\n")
    result = cargo_maelstrom(example_project, "-l", "-i", "te.eq(cli) | n.ends_with(sums)")
    assert sorted(result.stdout.splitlines()) == [
        "ledger-cli cli bad_input_exits_1_with_the_line",
        "ledger-cli cli prints_balances_and_total",
        "units tests::sums",
    ]


@pytest.mark.slow
def test_profile_and_build_dir_follow_the_profile(example_project: Path) -> None:
    # <build-dir> becomes target/release: the CARGO_BIN_EXE directive must find the release
    # binary there, and only the selected package is built.
    result = cargo_maelstrom(
        example_project, "--profile=release", "-i", "package.equals(ledger-cli)"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {
        "ledger-cli cli prints_balances_and_total": ["OK"],
        "ledger-cli cli bad_input_exits_1_with_the_line": ["OK"],
    }
    release = example_project / "target" / "release"
    assert (release / "ledger-cli").is_file()
    # units is built as a dependency, but its test binary (no suffix) is not
    assert not [p for p in (release / "deps").glob("units-*") if not p.suffix]


@pytest.mark.slow
def test_target_triple_moves_the_build_dir(example_project: Path) -> None:
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    (triple,) = re.findall(r"^host: (\S+)$", host, re.MULTILINE)
    result = cargo_maelstrom(
        example_project, f"--target={triple}", "-i", "package.equals(ledger-cli) & test"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {
        "ledger-cli cli prints_balances_and_total": ["OK"],
        "ledger-cli cli bad_input_exits_1_with_the_line": ["OK"],
    }
    assert (example_project / "target" / triple / "debug" / "ledger-cli").is_file()


def test_as_a_cargo_subcommand(example_project: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, **cargo_env())
    env["PATH"] = f"{script_path('cargo-maelstrom').parent}{os.pathsep}{env['PATH']}"
    version = subprocess.run(
        ["cargo", "maelstrom", "--version"], env=env, capture_output=True, text=True, check=False
    )
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"cargo-maelstrom \S+\n", version.stdout)
    listed = subprocess.run(
        ["cargo", "maelstrom", "--list-packages"],
        env=env,
        cwd=example_project / "crates" / "units",  # any directory of the workspace
        capture_output=True,
        text=True,
        check=False,
    )
    assert (listed.returncode, listed.stdout) == (0, "ledger\nledger-cli\nunits\n")


def test_init_writes_the_default_spec_once(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    (project / SPEC_FILE_NAME).unlink()
    result = cargo_maelstrom(project / "crates" / "ledger", "--init")
    assert result.exit_code == 0, result.stderr
    assert (project / SPEC_FILE_NAME).read_text() == DEFAULT_SPEC_TOML
    again = cargo_maelstrom(project, "--init")
    assert again.exit_code == 1
    spec = SpecFile.parse(DEFAULT_SPEC_TOML, source=SPEC_FILE_NAME, dialect=CARGO)
    assert len(spec.directives) == 1


# --------------------------------------------------------------------------------------------
# Every outcome, against what the test binary itself (as cargo test runs it) says

ODD_CASES = {
    "outcomes tests::passes": "OK",
    "outcomes nested::deeper::passes_too": "OK",
    "outcomes tests::fails": "FAIL",
    "outcomes tests::ignored": "IGNORED",
    "outcomes tests::panics": "FAIL",
    "outcomes tests::exits_3": "FAIL",
    "outcomes tests::sleeps_forever": "TIMEOUT",
    "integration it passes": "OK",
    "integration it fails_with_output": "FAIL",
}


def test_every_outcome_matches_cargo_test(odd_project: Path) -> None:
    result = cargo_maelstrom(odd_project)
    assert {name: s[0] for name, s in statuses(result.stdout).items()} == ODD_CASES
    # The exit code is the first failure's: 101 (panic), 3 (exit), or 1 (timeout).
    assert result.exit_code in (101, 3, 1)
    assert summary_count(result.stdout, "Successful Tests") == 3
    assert summary_count(result.stdout, "Failed Tests") == 5
    assert summary_count(result.stdout, "Ignored Tests") == 1
    # The same binaries run on the host, one case each, as `cargo test -- --exact` runs them.
    for name, status in ODD_CASES.items():
        if status in ("IGNORED", "TIMEOUT"):
            continue
        package, *target, case = name.split(" ")
        host = _host_exit_code(odd_project, package, target[0] if target else None, case)
        assert (host == 0) == (status == "OK"), name


def _host_exit_code(project: Path, package: str, test: str | None, case: str) -> int:
    which = ["--test", test] if test else ["--lib"]
    return subprocess.run(
        ["cargo", "test", "--offline", "--quiet", "-p", package, *which, "--", "--exact", case],
        cwd=project,
        capture_output=True,
        check=False,
    ).returncode


@pytest.mark.parametrize(
    ("case", "status", "exit_code"),
    [
        ("tests::passes", "OK", 0),
        ("tests::exits_3", "FAIL", 3),
        ("tests::panics", "FAIL", 101),
        ("tests::sleeps_forever", "TIMEOUT", 1),
        ("tests::ignored", "IGNORED", 0),
    ],
)
def test_exit_code_passes_through(
    odd_project: Path, case: str, status: str, exit_code: int
) -> None:
    result = cargo_maelstrom(odd_project, "-i", f"name.equals({case})")
    assert statuses(result.stdout) == {f"outcomes {case}": [status]}
    assert result.exit_code == exit_code, result.stdout + result.stderr


def test_failure_output_without_libtest_framing(odd_project: Path) -> None:
    result = cargo_maelstrom(odd_project, "-i", "name.equals(fails_with_output)")
    assert result.exit_code == 101
    assert "line one on stdout" in result.stdout
    assert "line two on stderr" in result.stderr
    assert "failing on purpose" in result.stderr
    assert "running 1 test" not in result.stdout
    assert "test fails_with_output ..." not in result.stdout
    assert "integration it fails_with_output: failure" in result.stdout


def test_timeout_option_overrides_the_directive(odd_project: Path) -> None:
    # 0 means no timeout at all, even over the directive's; so give a real one instead.
    result = cargo_maelstrom(odd_project, "-i", "name.equals(tests::sleeps_forever)", "-t", "2")
    assert statuses(result.stdout) == {"outcomes tests::sleeps_forever": ["TIMEOUT"]}
    assert re.search(r"TIMEOUT\s+2\.\d{3}s", result.stdout), result.stdout


def test_repeat_runs_each_case_n_times(odd_project: Path) -> None:
    result = cargo_maelstrom(
        odd_project, "--repeat", "3", "-i", "name.ends_with(passes) | name.equals(tests::ignored)"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {
        "outcomes tests::passes": ["OK"] * 3,
        "integration it passes": ["OK"] * 3,
        "outcomes tests::ignored": ["IGNORED"],  # ignored tests appear once
    }
    assert summary_count(result.stdout, "Successful Tests") == 6


def test_stop_after_stops_early(odd_project: Path) -> None:
    result = cargo_maelstrom(
        odd_project, "--stop-after", "1", "--repeat", "20", "-i", "name.equals(tests::fails)"
    )
    assert result.exit_code == 101
    assert summary_count(result.stdout, "Failed Tests") is not None
    assert "Tests Not Run" in result.stdout
    assert len(statuses(result.stdout)["outcomes tests::fails"]) < 20


def test_junit_xml_report(odd_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = cargo_maelstrom(
        odd_project,
        "--junit-xml",
        str(report),
        "-i",
        "package.equals(outcomes)",
        "-x",
        "n.c(sleep)",
    )
    assert result.exit_code in (101, 3)
    root = ET.parse(report).getroot()
    cases = {case.get("name"): [child.tag for child in case] for case in root.iter("testcase")}
    assert set(cases) == {
        "outcomes tests::passes",
        "outcomes nested::deeper::passes_too",
        "outcomes tests::fails",
        "outcomes tests::panics",
        "outcomes tests::exits_3",
        "outcomes tests::ignored",
    }
    assert "failure" in cases["outcomes tests::fails"]
    assert "skipped" in cases["outcomes tests::ignored"]
    assert "failure" not in cases["outcomes tests::passes"]


def test_filters_prune_packages_from_the_build(odd_project: Path, tmp_path: Path) -> None:
    target_dir = tmp_path / "fresh-target"
    result = cargo_maelstrom(
        odd_project,
        "--target-dir",
        str(target_dir),
        *("-i", "package.equals(outcomes) | package.equals(nothing-else)"),
        *("-x", "name.matches(pass|fail|panic|exit|sleep)"),  # leaves tests::ignored: not run
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {"outcomes tests::ignored": ["IGNORED"]}
    deps = target_dir / "debug" / "deps"
    assert list(deps.glob("outcomes-*"))
    assert not list(deps.glob("it-*"))  # integration was never built
    assert not list(deps.glob("integration-*"))
    assert (target_dir / "maelstrom" / "state" / "test-listing.toml").is_file()


def test_features_pass_through(odd_project: Path) -> None:
    result = cargo_maelstrom(
        odd_project, "--features", "extra", "-i", "package.equals(outcomes) & n.c(extra)"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert statuses(result.stdout) == {"outcomes tests::only_with_extra": ["OK"]}
    plain = cargo_maelstrom(odd_project, "-l", "-i", "package.equals(outcomes) & n.c(extra)")
    assert plain.stdout == ""


def test_build_failure_exits_with_cargos_status(odd_project: Path) -> None:
    result = cargo_maelstrom(
        odd_project, "--features", "extra", "-i", "package.equals(integration)"
    )
    assert result.exit_code == 101
    assert "does not contain this feature: extra" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert statuses(result.stdout) == {}


@pytest.mark.slow
def test_compile_error_is_reported_after_the_summary(tmp_path: Path) -> None:
    project = copy_project(ODD, tmp_path / "odd")
    lib = project / "crates" / "integration" / "src" / "lib.rs"
    lib.write_text(lib.read_text() + '\npub fn broken() -> u32 { "not a number" }\n')
    result = cargo_maelstrom(project, "--offline")
    assert result.exit_code == 101
    both = result.stdout + result.stderr
    assert "error[E0308]: mismatched types" in both
    assert "Compiling" not in both.split("error[E0308]")[-1]  # progress lines are dropped
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_filter_is_one_line(example_project: Path) -> None:
    result = cargo_maelstrom(example_project, "-i", "package.nope(x)")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        'cargo-maelstrom: error: --include: invalid filter "package.nope(x)": unknown matcher'
    )
    assert len(result.stderr.splitlines()) == 1


def test_not_a_cargo_project(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cargo_maelstrom(tmp_path / "empty")
    assert result.exit_code == 1
    assert result.stderr.startswith("cargo-maelstrom: error: cargo metadata failed: error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_spec_file_is_named(tmp_path: Path) -> None:
    project = copy_project(EXAMPLE, tmp_path / "ws")
    (project / SPEC_FILE_NAME).write_text("[[directives]]\ntimeout = 'soon'\n")
    result = cargo_maelstrom(project, "--list-packages")
    assert result.exit_code != 0
    assert SPEC_FILE_NAME in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Watch mode


@pytest.mark.slow
def test_watch_rebuilds_and_reruns_after_a_change() -> None:
    with scratch_dir() as base:
        project = copy_project(ODD, base / "odd")
        prebuild(project)
        home = base / "home"
        home.mkdir()
        out = base / "watch.out"
        with out.open("w") as sink:
            process = subprocess.Popen(
                [
                    str(script_path("cargo-maelstrom")),
                    "--ui",
                    "simple",
                    "--watch",
                    "-i",
                    "package.equals(integration) & name.starts_with(pass)",
                ],
                cwd=project,
                env=clean_env(home, **cargo_env()),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for(out, lambda text: "waiting for changes" in text, process)
            test_file = project / "crates" / "integration" / "tests" / "it.rs"
            test_file.write_text(
                test_file.read_text()
                + "\n#[test]\nfn passes_after_a_change() {\n    assert_eq!(1 + 1, 2);\n}\n"
            )
            text = _wait_for(
                out, lambda text: text.count("waiting for changes") >= 2, process, timeout=120
            )
            # The rebuild wrote into target/ and the run into its state dir: neither is a change.
            time.sleep(1.5)
            assert out.read_text().count("waiting for changes") == 2
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        second_run = text.split("waiting for changes", 1)[1]
        assert statuses(second_run) == {
            "integration it passes": ["OK"],
            "integration it passes_after_a_change": ["OK"],
        }


def _wait_for(
    path: Path,
    done: object,
    process: subprocess.Popen[bytes],
    timeout: float = 90,
) -> str:
    assert callable(done)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if done(text):
            return text
        if process.poll() is not None:
            pytest.fail(f"cargo-maelstrom --watch exited with {process.returncode}:\n{text}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting; output so far:\n{path.read_text()}")
    raise AssertionError  # unreachable: pytest.fail raises
