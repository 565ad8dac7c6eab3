"""core's click layer: grouped help, option plumbing, entry points and error-to-exit mapping."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import maelstrom_core
from maelstrom_core._config import STRING_LIST, key
from maelstrom_core.cli import (
    configure_logging,
    load_entry_point,
    maelstrom_command,
    run_cli,
    run_entry_point,
    run_options,
    run_params,
    runner_options,
    runner_params,
)
from maelstrom_core.config import RunOptions, TestRunnerConfig, TestRunnerOptions
from maelstrom_core.errors import ConfigError, InternalError, SpecError, UsageError


class ToyConfig(TestRunnerConfig):
    program = "toy"
    xdg_prefix = "maelstrom/toy"
    env_prefix = "TOY_"
    log_to_stdout = True

    extra_args: tuple[str, ...] = key(STRING_LIST, "Extra args.", var_arg=True, metavar="EXTRA")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(("MAELSTROM_", "TOY_", "XDG_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc"))
    yield tmp_path
    # run_cli configures the root logger; leave it as pytest had it.
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "maelstrom", False):
            logging.getLogger().removeHandler(handler)


Seen = list[tuple[ToyConfig, TestRunnerOptions]]


def toy_command(behaviour: Any = None, seen: Seen | None = None) -> Any:
    @maelstrom_command(
        ToyConfig,
        distribution="maelstrom-core",
        params=runner_params(["tests", "binaries", "packages"]),
        make_options=runner_options,
    )
    def cli(config: ToyConfig, options: TestRunnerOptions) -> int | None:
        """A toy test runner."""
        if seen is not None:
            seen.append((config, options))
        if behaviour is None:
            return None
        if isinstance(behaviour, int):
            return behaviour
        raise behaviour

    return cli


def run(
    capsys: pytest.CaptureFixture[str], *args: str, behaviour: Any = None, seen: Seen | None = None
) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        run_cli(toy_command(behaviour, seen), list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


# --- help ---------------------------------------------------------------------------------------


def test_help_groups_every_visible_key_under_headings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    flat = " ".join(out.split())
    headings = [line[:-1] for line in out.splitlines() if re.fullmatch(r"[A-Z][\w -]+:", line)]
    assert headings[:2] == ["Print-and-Exit Options", "Config File Options"]
    for expected in (
        "Config Values",
        "Local Worker Config Values",
        "Container Image Config Values",
        "Cluster Communication Config Values",
        "Test Runner Config Values",
        "Test Selection Options",
        "List Options",
    ):
        assert expected in headings
    for k in ToyConfig.config_keys():
        prog_env, generic_env = k.env_names("TOY_")
        if k.hidden:
            assert k.flag not in flat
            assert prog_env not in flat
            continue
        shown = f"-- {k.metavar}..." if k.var_arg else k.flag
        assert shown in flat
        assert f"[env: {prog_env} or {generic_env}]" in flat
        assert f"[default: {k.describe_default(os.environ)}]" in flat
    for flag in ("-h, --help", "--version", "-P, --print-config", "-c, --config-file PATH"):
        assert flag in flat
    assert "-r, --repeat, --loop COUNT" in flat
    assert "-l, --list-tests, --list" in flat


def test_help_names_the_resolved_config_files(
    capsys: pytest.CaptureFixture[str], clean_environment: Path
) -> None:
    os.environ["XDG_CONFIG_HOME"] = str(clean_environment / "mine")
    _, out, _ = run(capsys, "-h")
    flat = "".join(out.split())  # paths may be wrapped anywhere
    assert f"{clean_environment}/mine/maelstrom/toy/config.toml" in flat
    assert f"{clean_environment}/etc/maelstrom/toy/config.toml" in flat


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"toy {maelstrom_core.__version__}\n", "")


# --- options to config and options ----------------------------------------------------------------


def test_flags_env_and_var_args_reach_the_program(capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["TOY_TIMEOUT"] = "30"
    seen: Seen = []
    code, _, _ = run(
        capsys,
        "--slots=3",
        "-b",
        "h:1",
        "--loop",
        "2",
        "-i",
        "name.equals(a)",
        "-i",
        "b",
        "-x",
        "c",
        "--list",
        "--",
        "--nocapture",
        "-P",
        seen=seen,
    )
    assert code == 0
    ((config, options),) = seen
    assert (config.slots, str(config.broker), config.repeat, config.timeout) == (3, "h:1", 2, 30)
    assert config.extra_args == ("--nocapture", "-P")
    assert options == TestRunnerOptions(
        include=("name.equals(a)", "b"), exclude=("c",), list_mode="tests"
    )


def test_defaults_of_options(capsys: pytest.CaptureFixture[str]) -> None:
    seen: Seen = []
    run(capsys, seen=seen)
    assert seen[0][1] == TestRunnerOptions(include=("all",), exclude=(), list_mode=None)


def test_positional_before_double_dash_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stray")
    assert code == 2
    assert err == "toy: error: Got unexpected extra argument (stray) (see --help)\n"


@pytest.mark.parametrize(
    "flags",
    [
        ("-l", "--list-binaries"),
        ("--list-packages", "--list-tests"),
        ("--list-binaries", "--list-packages"),
    ],
)
def test_list_options_are_mutually_exclusive(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, str]
) -> None:
    code, _, err = run(capsys, *flags)
    assert code == 2
    assert re.fullmatch(r"toy: error: --list-\w+ cannot be used with --list-\w+\n", err)


def test_print_config_prints_and_does_not_run(
    capsys: pytest.CaptureFixture[str], clean_environment: Path
) -> None:
    os.environ["MAELSTROM_UI"] = "quiet"
    file = clean_environment / "c.toml"
    file.write_text("# x\nstop-after = 4\n")
    seen: Seen = []
    code, out, _ = run(capsys, "-P", "-c", str(file), "--slots", "5", seen=seen)
    assert code == 0
    assert seen == []
    assert "slots = 5  # --slots" in out
    assert 'ui = "quiet"  # environment variable MAELSTROM_UI' in out
    assert f"stop-after = 4  # {file}:2" in out


def test_config_error_from_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--cache-size", "huge")
    assert code == 2
    assert err.startswith("toy: error: invalid value 'huge' for cache-size (from --cache-size)")
    assert err.count("\n") == 1


def test_bool_flags_take_no_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--accept-invalid-remote-container-tls-certs=false")
    assert code == 2
    assert err.startswith("toy: error: ")


def test_hidden_keys_are_settable_by_flag(capsys: pytest.CaptureFixture[str]) -> None:
    seen: Seen = []
    run(
        capsys,
        "--cluster-communication-strategy=github",
        "--github-actions-token=t",
        "--github-actions-url=https://x.example/",
        seen=seen,
    )
    assert seen[0][0].cluster_communication_strategy == "github"


# --- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (SpecError("spec.toml:3: bad field"), 1, "toy: error: spec.toml:3: bad field\n"),
        (UsageError("nope"), 2, "toy: error: nope\n"),
        (ConfigError("line one\nline two"), 2, "toy: error: line one line two\n"),
        (
            ExceptionGroup("g", [SpecError("inside a group")]),
            1,
            "toy: error: inside a group\n",
        ),
    ],
)
def test_maelstrom_errors_become_one_line_and_their_exit_code(
    capsys: pytest.CaptureFixture[str], error: Exception, code: int, message: str
) -> None:
    assert run(capsys, behaviour=error) == (code, "", message)


def test_return_value_is_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, behaviour=17)[0] == 17


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, behaviour=KeyboardInterrupt())
    assert code == 130
    assert "Traceback" not in err


def test_unexpected_exception_is_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, behaviour=ZeroDivisionError("boom"))
    assert code == InternalError.exit_code == 70
    assert err == (
        "toy: error: internal error: ZeroDivisionError: boom "
        "(run with --log-level debug for a traceback)\n"
    )


def test_debug_log_level_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-L", "debug", behaviour=ZeroDivisionError("boom"))
    assert code == 70
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "toy: error: internal error: ZeroDivisionError: boom"


# --- entry points ---------------------------------------------------------------------------------


def test_missing_entry_module_is_not_available(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^the toy runner is not available in this build$"):
        load_entry_point("toy_program_absent._main", "the toy runner")


def test_missing_dependency_of_entry_module_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toy_entry_broken.py").write_text("import toy_dependency_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="toy_dependency_absent"):
        load_entry_point("toy_entry_broken", "the toy runner")


def test_sync_and_async_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toy_entry_sync.py").write_text(
        "def main(config, options):\n    return config.slots + len(options.include)\n"
    )
    (tmp_path / "toy_entry_async.py").write_text(
        "import trio\n"
        "async def main(config, options):\n"
        "    await trio.sleep(0)\n"
        "    return config.repeat * 10\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = ToyConfig.resolve(cli={"slots": "4", "repeat": "3"}, env={}, config_file="-")
    options = TestRunnerOptions(include=("a", "b"))
    assert run_entry_point("toy_entry_sync", "toy", config, options) == 6
    assert run_entry_point("toy_entry_async", "toy", config, options) == 30


# --- maelstrom-run's options ---------------------------------------------------------------------


def test_run_options_rules() -> None:
    base = {"file": None, "one": False, "tty": False, "command": ()}
    assert run_options(base) == RunOptions()
    assert run_options(base | {"one": True, "command": ("ls", "-l")}) == RunOptions(
        one=True, command=("ls", "-l")
    )
    assert run_options(base | {"file": "jobs.json"}).file == Path("jobs.json")
    with pytest.raises(UsageError, match="--one cannot be used with --tty"):
        run_options(base | {"one": True, "tty": True})
    with pytest.raises(UsageError, match="only be given with --one or --tty"):
        run_options(base | {"command": ("ls",)})
    assert {p.name for p in run_params()} == {"file", "one", "tty", "command"}


# --- logging --------------------------------------------------------------------------------------


def test_logging_is_one_line_per_record_at_the_level() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream=stream)
    log = logging.getLogger("maelstrom.test")
    log.info("hidden")
    log.warning("two\nlines")
    configure_logging("debug", stream=stream)  # reconfiguring replaces, never duplicates
    log.debug("shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("WARNING maelstrom.test: two\\nlines")
    assert lines[1].endswith("DEBUG maelstrom.test: shown")
    assert sys.stdout is not stream
