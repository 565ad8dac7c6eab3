"""cargo-maelstrom's installed console script: help, cargo subcommand form, list options."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from maelstrom_core.config import CargoConfig
from tests._helpers.cli import check_help_lists_every_key, clean_env, printed_config, run_script

SCRIPT = "cargo-maelstrom"


def test_help_lists_every_key_and_option(tmp_path: Path) -> None:
    flat = check_help_lists_every_key(SCRIPT, CargoConfig, tmp_path)
    for option in (
        "-F, --features FEATURES",
        "-r, --repeat, --loop COUNT",
        "-s, --stop-after NUM-FAILURES",
        "-t, --timeout SECONDS",
        "-i, --include FILTER-EXPRESSION",
        "-x, --exclude FILTER-EXPRESSION",
        "--init",
        "-w, --watch",
        "-l, --list-tests, --list",
        "--list-binaries",
        "--list-packages",
        "Test Selection Options:",
        "List Options:",
        "Feature Selection Config Values:",
    ):
        assert option in flat


@pytest.mark.parametrize("prefix", [[], ["maelstrom"]], ids=["direct", "as-cargo-subcommand"])
def test_version_direct_and_as_cargo_subcommand(tmp_path: Path, prefix: list[str]) -> None:
    result = run_script(SCRIPT, *prefix, "--version", env=clean_env(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == f"cargo-maelstrom {importlib.metadata.version(SCRIPT)}\n"


@pytest.mark.parametrize(
    "flags",
    [
        ["-l", "--list-binaries"],
        ["--list-packages", "--list"],
        ["--list-binaries", "--list-packages"],
    ],
)
def test_list_options_are_mutually_exclusive(tmp_path: Path, flags: list[str]) -> None:
    result = run_script(SCRIPT, *flags, env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert "cannot be used with" in result.stderr


def test_var_args_env_lists_and_bools(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        CARGO_MAELSTROM_FEATURES="a,b",
        MAELSTROM_OFFLINE="true",
        CARGO_MAELSTROM_FROZEN="false",
    )
    result = run_script(SCRIPT, "maelstrom", "-P", "--locked", "--", "--test-threads", "1", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["extra-test-binary-args"] == (
        '["--test-threads", "1"]',
        "--extra-test-binary-args",
    )
    assert values["features"] == ('"a,b"', "environment variable CARGO_MAELSTROM_FEATURES")
    assert values["offline"] == ("true", "environment variable MAELSTROM_OFFLINE")
    assert values["frozen"] == ("false", "environment variable CARGO_MAELSTROM_FROZEN")
    assert values["locked"] == ("true", "--locked")
    env = clean_env(tmp_path, MAELSTROM_EXTRA_TEST_BINARY_ARGS=" --a  --b ")
    values = printed_config(run_script(SCRIPT, "-P", env=env).stdout)
    assert values["extra-test-binary-args"][0] == '["--a", "--b"]'


def test_bad_bool_env_is_named(tmp_path: Path) -> None:
    env = clean_env(tmp_path, CARGO_MAELSTROM_ALL_FEATURES="yes")
    result = run_script(SCRIPT, "-P", env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "cargo-maelstrom: error: invalid value 'yes' for all-features "
        "(from environment variable CARGO_MAELSTROM_ALL_FEATURES): expected true or false\n"
    )
