"""The test-runner app end to end: a real (tiny) front end, real builds, real containers.

The front end (tests/core/_script_frontend.py) "builds" shell-script test binaries and runs each
case in a rootless container through the real client and local worker; nothing of the framework
or the client is replaced.
"""

from __future__ import annotations

import io
import signal
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import trio
from rich.console import Console

from maelstrom_core.cli import maelstrom_command, runner_options, runner_params
from maelstrom_core.config import GoTestConfig, TestRunnerOptions
from maelstrom_core.errors import FilterError, SpecError, UsageError
from maelstrom_core.testrunner import TestDbStore, run_app

from ._script_frontend import ScriptFrontend, make_project, script

pytestmark = pytest.mark.requires_userns


@dataclass
class Result:
    code: int
    out: str
    err: str
    frontend: ScriptFrontend

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def config(**values: object) -> GoTestConfig:
    cli = {"slots": "4", "ui": "simple", **{k: str(v) for k, v in values.items()}}
    return GoTestConfig.resolve(cli=cli, env={}, config_file="-")


async def run(
    root: Path,
    *,
    options: TestRunnerOptions | None = None,
    programs: Mapping[str, str] | None = None,
    **values: object,
) -> Result:
    frontend = ScriptFrontend(root, programs=dict(programs or {}))

    async def make() -> ScriptFrontend:
        return frontend

    out, err = io.StringIO(), io.StringIO()
    code = await run_app(
        make,
        config(**values),
        options or TestRunnerOptions(),
        console=Console(file=out, width=60, color_system=None),
        err_console=Console(file=err, width=60, color_system=None),
    )
    return Result(code, out.getvalue(), err.getvalue(), frontend)


def case_line(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.startswith(f"{name}.")]
    assert len(found) == 1, (name, lines)
    return found[0]


# The case is PID 1 of its namespace, so signals it sends itself are ignored; the kernel's
# SIGKILL at the CPU-time hard limit is not.
CPU_HOG = "ulimit -t 1; while :; do :; done"

BASIC = {
    "alpha": {
        "unit": script(
            {
                "passes": "echo fine; exit 0",
                "fails": "echo the output; echo on stderr >&2; echo FIXTURE-END; echo trailer; "
                "exit 3",
            },
            ignored=["skipped_by_listing"],
            warn="unused variable",
        ),
    },
    "beta": {
        "integration": script(
            {"works": "cat /proc/self/status > /dev/null", "skips_itself": "echo SKIP"}
        ),
    },
}


async def test_a_run_reports_every_case_and_exits_with_the_failing_code(
    tmp_path: Path, privilege: str
) -> None:
    make_project(tmp_path, BASIC)
    result = await run(tmp_path)
    lines = result.lines
    assert result.code == 3, result.out + result.err
    assert "OK" in case_line(lines, "alpha unit passes")
    assert "FAIL" in case_line(lines, "alpha unit fails")
    assert "IGNORED" in case_line(lines, "alpha unit skipped_by_listing")
    assert "OK" in case_line(lines, "beta integration works")
    assert "IGNORED" in case_line(lines, "beta integration skips_itself")
    # Failure output is stripped of fixture lines, stdout to stdout and stderr to stderr;
    # passing cases show nothing.
    failed_at = lines.index(case_line(lines, "alpha unit fails"))
    assert lines[failed_at + 1] == "the output"
    assert "fixture noise" not in result.out
    assert "trailer" not in result.out
    assert "fine" not in result.out
    assert result.err.splitlines() == ["on stderr"]
    # The summary, then the build's warnings (progress lines dropped).
    summary_at = lines.index("=" * 23 + " Test Summary " + "=" * 23)
    assert lines[summary_at + 1].split() == ["Successful", "Tests:", "2"]
    assert lines[summary_at + 2].split() == ["Failed", "Tests", ":", "1"]
    assert lines[summary_at + 3].strip().startswith("alpha unit fails")
    assert "Ignored Tests" in lines[summary_at + 4]
    assert lines[-1] == "warning: unused variable"
    assert not any("Compiling" in line for line in lines)
    # The test DB remembers every listed case, with the failure.
    db = TestDbStore(tmp_path / ".state").load()
    record = db.get_case("alpha", "unit(test)", "fails")
    assert record is not None
    assert record.outcome == "failure"
    passed = db.get_case("beta", "integration(test)", "works")
    assert passed is not None
    assert passed.outcome == "success"
    assert db.scheduling_hint("alpha", "unit(test)", "passes")[0] == 0
    assert db.scheduling_hint("alpha", "unit(test)", "fails")[0] == 1


async def test_exit_code_is_the_first_failure_in_completion_order(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {"p": {"t": script({"quick": "exit 7", "slow": "sleep 1; exit 9", "ok": "true"})}},
    )
    result = await run(tmp_path)
    assert result.code == 7
    # A signal, a timeout or an error is exit code 1 when it comes first.
    make_project(tmp_path, {"p": {"t": script({"quick": CPU_HOG, "slow": "sleep 3; exit 9"})}})
    result = await run(tmp_path)
    assert result.code == 1


async def test_signals_timeouts_and_errors(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "p": {
                "t": script(
                    {
                        "killed": CPU_HOG,
                        "hangs": "echo started; echo FIXTURE-END; sleep 100",
                        "missing": "true",
                    }
                )
            }
        },
    )
    (tmp_path / "script-maelstrom.toml").write_text(
        ScriptFrontend(tmp_path).default_spec_toml
        + '[[directives]]\nfilter = "name.equals(hangs)"\ntimeout = 1\n'
    )
    result = await run(tmp_path, programs={"missing": "/no/such/program"})
    lines = result.lines
    killed = lines.index(case_line(lines, "p t killed"))
    assert "FAIL" in lines[killed]
    assert lines[killed + 1] == "killed by signal 9"
    hangs = lines.index(case_line(lines, "p t hangs"))
    assert "TIMEOUT" in lines[hangs]
    assert lines[hangs + 1] == "started"  # the partial output, stripped
    missing = lines.index(case_line(lines, "p t missing"))
    assert "ERR" in lines[missing]
    assert lines[missing + 1].startswith("execution error: ")
    assert result.code == 1
    assert "TIMEOUT" in case_line(lines, "p t hangs")


async def test_config_timeout_overrides_directives_and_zero_means_none(tmp_path: Path) -> None:
    make_project(tmp_path, {"p": {"t": script({"naps": "sleep 2"})}})
    (tmp_path / "script-maelstrom.toml").write_text(
        ScriptFrontend(tmp_path).default_spec_toml + "[[directives]]\ntimeout = 1\n"
    )
    assert "TIMEOUT" in case_line((await run(tmp_path)).lines, "p t naps")
    assert "OK" in case_line((await run(tmp_path, timeout=0)).lines, "p t naps")
    (tmp_path / "script-maelstrom.toml").write_text(
        ScriptFrontend(tmp_path).default_spec_toml + "[[directives]]\ntimeout = 60\n"
    )
    assert "TIMEOUT" in case_line((await run(tmp_path, timeout=1)).lines, "p t naps")


async def test_truncated_output_gets_a_note(tmp_path: Path) -> None:
    body = "i=0; while [ $i -lt 50 ]; do echo 0123456789; echo 0123456789 >&2; i=$((i+1)); done"
    make_project(tmp_path, {"p": {"t": script({"chatty": body + "; exit 1"})}})
    result = await run(tmp_path, inline_limit=200)
    assert result.code == 1
    # 28 bytes of fixture lines, then 172 of the 550 bytes of output: 378 are lost.
    assert "job 1: stdout truncated, 378 bytes lost" in result.lines
    assert result.err.splitlines()[-1] == "job 1: stderr truncated, 350 bytes lost"


async def test_directives_shape_each_job(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "p": {"t": script({"env": 'exit "$CODE"', "cwd": '[ "$(pwd)" = /tmp ] || exit 5'})},
            "q": {"t": script({"env": 'exit "${CODE:-0}"', "dropped": "exit 1"})},
        },
    )
    spec = ScriptFrontend(tmp_path).default_spec_toml + (
        "[[directives]]\n"
        'filter = "package.equals(p)"\n'
        'added_environment = { CODE = "0" }\n'
        "[[directives]]\n"
        'filter = "package.equals(p) && name.equals(env)"\n'
        'added_environment = { CODE = "$prev{CODE:-9}4" }\n'
        "[[directives]]\n"
        'filter = "name.equals(cwd)"\n'
        'working_directory = "/tmp"\n'
        "[[directives]]\n"
        'filter = "name.equals(dropped)"\n'
        "ignore = true\n"
    )
    (tmp_path / "script-maelstrom.toml").write_text(spec)
    result = await run(tmp_path)
    assert result.code == 4  # CODE = "0" then "$prev{CODE}4": every matching directive folds
    assert "OK" in case_line(result.lines, "p t cwd")
    assert "OK" in case_line(result.lines, "q t env")
    assert "IGNORED" in case_line(result.lines, "q t dropped")


async def test_shared_libraries_layer_follows_the_directives(tmp_path: Path) -> None:
    make_project(tmp_path, {"p": {"t": script({"a": "true", "b": "true"})}})
    result = await run(tmp_path)
    assert result.code == 0
    assert result.frontend.include_shared_libraries == [True, True]
    (tmp_path / "script-maelstrom.toml").write_text(
        ScriptFrontend(tmp_path).default_spec_toml
        + '[[directives]]\nfilter = "name.equals(b)"\ninclude_shared_libraries = false\n'
    )
    result = await run(tmp_path)
    assert result.code == 0
    assert result.frontend.include_shared_libraries == [True]


async def test_repeat_runs_each_case_n_times_and_ignored_once(tmp_path: Path) -> None:
    make_project(tmp_path, {"p": {"t": script({"a": "true", "b": "exit 2"}, ignored=["c"])}})
    result = await run(tmp_path, repeat=3)
    assert sum(line.startswith("p t a.") for line in result.lines) == 3
    assert sum(line.startswith("p t b.") for line in result.lines) == 3
    assert sum(line.startswith("p t c.") for line in result.lines) == 1
    assert result.code == 2
    db = TestDbStore(tmp_path / ".state").load()
    record = db.get_case("p", "t(test)", "a")
    assert record is not None
    assert len(record.timings) == 3


async def test_stop_after_with_everything_enqueued_counts_exactly(tmp_path: Path) -> None:
    cases = {"fails": "exit 1", **{f"later{i}": "sleep 0.2" for i in range(5)}}
    make_project(tmp_path, {"p": {"t": script(cases)}})
    result = await run(tmp_path, stop_after=1, slots=1)
    assert result.code == 1
    summary = "\n".join(result.lines[result.lines.index("=" * 23 + " Test Summary " + "=" * 23) :])
    assert "Failed Tests    :         1" in summary
    ran = sum(1 for line in result.lines if line.startswith("p t "))
    not_run = next(line for line in result.lines if line.startswith("Tests Not Run"))
    assert not_run.split(":")[1].strip() == str(6 - ran)


async def test_stop_after_kills_the_build_and_estimates_what_did_not_run(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "a": {"t": script({"fails": "exit 1"})},
            "b": {"t": script({"one": "true", "two": "true"})},
        },
    )
    # First a whole run, so the DB knows every case.
    assert (await run(tmp_path)).code == 1
    # Now package a's build hangs after its binary is out; b is never built.
    (tmp_path / "pkgs" / "a" / "HOLD").touch()
    with trio.fail_after(60):
        result = await run(tmp_path, stop_after=1)
    assert result.code == 1
    assert result.frontend.built == ["a"]
    assert result.frontend.held_returncode == -signal.SIGKILL
    assert "Tests Not Run   :        ~2" in result.lines
    # Without a DB the count is a lower bound, or unknown when nothing is left in the queue.
    (tmp_path / ".state" / "test-listing.toml").unlink()
    with trio.fail_after(60):
        result = await run(tmp_path, stop_after=1)
    assert "Tests Not Run   : unknown number of" in result.lines


async def test_a_failed_build_uses_its_status_and_runs_nothing_after(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "a": {"t": script({"slow": "sleep 30"})},
            "b": {"t": script({"never": "true"})},
        },
    )
    (tmp_path / "pkgs" / "b" / "BROKEN").touch()
    with trio.fail_after(60):
        result = await run(tmp_path)
    assert result.code == 3
    assert not any(line.startswith(("a t slow", "b t never")) for line in result.lines)
    assert result.lines[-1] == "error: b"  # the build's output, after the summary
    assert result.err.strip() == "script-maelstrom: error: build of b failed"
    assert "Successful Tests:         0" in result.lines


async def test_filters_select_cases_and_skip_packages(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "a": {"t": script({"one": "true", "two": "true"})},
            "b": {"t": script({"one": "true"})},
        },
    )
    options = TestRunnerOptions(include=("name.equals(one)",), exclude=("package.equals(b)",))
    result = await run(tmp_path, options=options)
    assert result.code == 0
    assert [line.split(".")[0] for line in result.lines if line.startswith(("a ", "b "))] == [
        "a t one"
    ]
    assert result.frontend.built == ["a"]  # b cannot match: not built


async def test_bad_filter_and_bad_spec_file_are_one_line_errors(tmp_path: Path) -> None:
    make_project(tmp_path, {"a": {"t": script({"one": "true"})}})
    with pytest.raises(FilterError, match=r"^--include: invalid filter"):
        await run(tmp_path, options=TestRunnerOptions(include=("name.bogus(x)",)))
    (tmp_path / "script-maelstrom.toml").write_text('[[directives]]\nfilter = "n.eq(x)"\nx = 1\n')
    with pytest.raises(SpecError, match=r"^script-maelstrom.toml:3: directives\[0\]\.x: unknown"):
        await run(tmp_path)


async def test_list_modes_print_and_run_nothing(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "a": {"t": script({"one": "true", "two": "exit 1"}, ignored=["three"])},
            "b": {"t": script({"one": "true"}), "u": script({"x": "true"})},
        },
    )
    result = await run(tmp_path, options=TestRunnerOptions(list_mode="tests"))
    assert result.code == 0
    assert result.lines == ["a t one", "a t two", "a t three", "b t one", "b u x"]
    assert not (tmp_path / ".cache" / "local-worker").exists()  # no client, no jobs
    options = TestRunnerOptions(list_mode="tests", include=("name.equals(one)",))
    assert (await run(tmp_path, options=options)).lines == ["a t one", "b t one"]
    options = TestRunnerOptions(list_mode="binaries", exclude=("test.equals(u)",))
    result = await run(tmp_path, options=options)
    assert result.lines == ["a t (test)", "b t (test)"]
    assert result.frontend.built == []
    options = TestRunnerOptions(list_mode="packages", include=("package.equals(b)",))
    assert (await run(tmp_path, options=options)).lines == ["b"]
    # fancy and quiet cannot list.
    with pytest.raises(UsageError, match="quiet UI does not support listing"):
        await run(tmp_path, options=TestRunnerOptions(list_mode="tests"), ui="quiet")


async def test_init_writes_the_default_once(tmp_path: Path) -> None:
    result = await run(tmp_path, options=TestRunnerOptions(init=True))
    assert result.code == 0
    written = (tmp_path / "script-maelstrom.toml").read_text()
    assert written == result.frontend.default_spec_toml
    assert "# Examples:" in written
    result = await run(tmp_path, options=TestRunnerOptions(init=True))
    assert result.code == 1
    assert "already exists" in result.err
    assert (tmp_path / "script-maelstrom.toml").read_text() == written


async def test_junit_report(tmp_path: Path) -> None:
    make_project(tmp_path, BASIC)
    report = tmp_path / "out" / "junit.xml"
    result = await run(tmp_path, options=TestRunnerOptions(junit_xml=report))
    assert result.code == 3
    root = ET.parse(report).getroot()
    assert root.get("name") == "script-maelstrom"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", "2")
    failed = root.find(".//testcase[@name='alpha unit fails']")
    assert failed is not None
    assert failed.find("failure") is not None
    assert failed.findtext("system-out") == "the output"
    assert failed.findtext("system-err") == "on stderr"


def test_junit_xml_is_a_report_option_not_a_config_key(tmp_path: Path) -> None:
    seen: list[TestRunnerOptions] = []

    @maelstrom_command(
        GoTestConfig,
        distribution="maelstrom-core",
        params=runner_params(["tests"]),
        make_options=runner_options,
    )
    def command(config: GoTestConfig, options: TestRunnerOptions) -> int:
        seen.append(options)
        return 0

    command.main(["--junit-xml", str(tmp_path / "r.xml")], standalone_mode=False)
    assert seen[-1].junit_xml == tmp_path / "r.xml"
    command.main([], standalone_mode=False)
    assert seen[-1].junit_xml is None
    help_text = command.get_help(click.Context(command))
    assert "Report Options:" in help_text
    assert "--junit-xml PATH" in help_text
    assert all(key.name != "junit-xml" for key in GoTestConfig.config_keys())
