"""maelstrom-go-test's installed console script: help, list options, go keys."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from maelstrom_core.config import GoTestConfig
from tests._helpers.cli import check_help_lists_every_key, clean_env, printed_config, run_script

SCRIPT = "maelstrom-go-test"


def test_help_lists_every_key_and_option(tmp_path: Path) -> None:
    flat = check_help_lists_every_key(SCRIPT, GoTestConfig, tmp_path)
    assert "-l, --list-tests, --list" in flat
    assert "--list-packages" in flat
    assert "--list-binaries" not in flat


def test_version(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--version", env=clean_env(tmp_path))
    assert result.stdout == f"maelstrom-go-test {importlib.metadata.version(SCRIPT)}\n"


def test_list_options(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    result = run_script(SCRIPT, "-l", "--list-packages", env=env)
    assert (result.exit_code, "cannot be used with" in result.stderr) == (2, True)
    result = run_script(SCRIPT, "--list-binaries", env=env)
    assert result.exit_code == 2
    assert "--list-binaries" in result.stderr


def test_go_keys_from_file_env_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / ".config/maelstrom/maelstrom-go-test/config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('vet = "off"\nshort = true\nrepeat = 3\n')
    env = clean_env(tmp_path, MAELSTROM_GO_TEST_REPEAT="4")
    result = run_script(SCRIPT, "-P", "--fullpath", "--stop-after", "2", "--", "-test.v", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["vet"] == ('"off"', f"{conf}:1")
    assert values["short"] == ("true", f"{conf}:2")
    assert values["repeat"] == ("4", "environment variable MAELSTROM_GO_TEST_REPEAT")
    assert values["fullpath"] == ("true", "--fullpath")
    assert values["stop-after"] == ("2", "--stop-after")
    assert values["extra-test-binary-args"][0] == '["-test.v"]'


def test_repeat_zero_is_rejected(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--loop", "0", env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert "for repeat (from --repeat)" in result.stderr
