"""maelstrom-run's installed console script: help, its options and its config."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

from maelstrom_core.config import RunConfig
from tests._helpers.cli import check_help_lists_every_key, clean_env, printed_config, run_script

SCRIPT = "maelstrom-run"


def test_help_lists_every_key_and_option(tmp_path: Path) -> None:
    flat = check_help_lists_every_key(SCRIPT, RunConfig, tmp_path)
    for option in ("-f, --file PATH", "-1, --one", "-t, --tty", "[PROGRAM [ARGS]...]"):
        assert option in flat
    assert "[default: ^]]" in flat


def test_version(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--version", env=clean_env(tmp_path))
    assert result.stdout == f"maelstrom-run {importlib.metadata.version(SCRIPT)}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--one", "--tty"], "--one cannot be used with --tty"),
        (["ls"], "PROGRAM and ARGS can only be given with --one or --tty"),
        (["-f"], "Option '-f' requires an argument."),
    ],
)
def test_option_rules(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_script(SCRIPT, *args, env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"maelstrom-run: error: {message}")
    assert result.stderr.count("\n") == 1


def test_escape_char_and_cache_root_from_env_and_file(tmp_path: Path) -> None:
    conf = tmp_path / ".config/maelstrom/run/config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('escape-char = "\\\\x01"\nslots = 2\n')
    env = clean_env(tmp_path, MAELSTROM_RUN_CACHE_ROOT="/var/tmp/run", XDG_CACHE_HOME="/c")
    result = run_script(SCRIPT, "-P", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["escape-char"] == ('"^A"', f"{conf}:1")
    assert values["cache-root"] == (
        '"/var/tmp/run"',
        "environment variable MAELSTROM_RUN_CACHE_ROOT",
    )
    assert values["container-image-depot-root"] == ('"/c/maelstrom/container"', "default")


def test_bad_escape_char_names_the_flag(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--escape-char", "ab", env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert "for escape-char (from --escape-char)" in result.stderr
