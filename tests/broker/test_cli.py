"""maelstrom-broker's installed console script: help, version, layered config, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from maelstrom_core.config import BrokerConfig
from tests._helpers.cli import check_help_lists_every_key, clean_env, printed_config, run_script

SCRIPT = "maelstrom-broker"


def test_help_lists_every_key(tmp_path: Path) -> None:
    flat = check_help_lists_every_key(SCRIPT, BrokerConfig, tmp_path)
    assert "-p, --port PORT" in flat
    assert "-H, --http-port PORT" in flat


def test_version(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--version", env=clean_env(tmp_path))
    assert (result.exit_code, result.stdout.split()[0]) == (0, "maelstrom-broker")
    assert result.stdout.strip() == f"maelstrom-broker {importlib.metadata.version(SCRIPT)}"


def test_layers_take_effect_in_a_real_process(tmp_path: Path) -> None:
    home_file = tmp_path / ".config/maelstrom/broker/config.toml"
    home_file.parent.mkdir(parents=True)
    home_file.write_text('cache-size = "5 MB"\nhttp-port = 8080\nport = 1\n')
    system = tmp_path / "sys"
    system_file = system / "maelstrom/broker/config.toml"
    system_file.parent.mkdir(parents=True)
    system_file.write_text('cache-root = "/srv/cache"\nhttp-port = 9090\n')
    env = clean_env(
        tmp_path, XDG_CONFIG_DIRS=str(system), MAELSTROM_PORT="2", MAELSTROM_BROKER_PORT="3"
    )
    result = run_script(SCRIPT, "--print-config", "--http-port", "7", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["port"] == ("3", "environment variable MAELSTROM_BROKER_PORT")
    assert values["http-port"] == ("7", "--http-port")
    assert values["cache-size"] == ('"5 MB"', f"{home_file}:1")
    assert values["cache-root"] == ('"/srv/cache"', f"{system_file}:1")
    assert values["log-level"] == ('"info"', "default")


def test_hidden_keys_settable_through_the_environment(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        MAELSTROM_CLUSTER_COMMUNICATION_STRATEGY="github",
        MAELSTROM_GITHUB_ACTIONS_TOKEN="tok",
        MAELSTROM_GITHUB_ACTIONS_URL="https://results.example/x",
    )
    result = run_script(SCRIPT, "-P", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["cluster-communication-strategy"][0] == '"github"'
    assert values["github-actions-url"][0] == '"https://results.example/x"'
    assert values["github-actions-token"][0] == '"***"'


def test_bad_file_value_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "broker.toml"
    file.write_text("\nport = 99999\n")
    result = run_script(SCRIPT, "-c", str(file), env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"maelstrom-broker: error: invalid value 99999 for port (from {file}:2): "
        "must be between 0 and 65535\n"
    )
    assert result.stdout == ""


def test_unknown_option_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--slots", "3", env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "--slots" in result.stderr


# --- maelstrom-admin ----------------------------------------------------------------------------

ADMIN = "maelstrom-admin"


def test_admin_help_lists_every_key_and_the_commands(tmp_path: Path) -> None:
    from maelstrom_core.config import AdminConfig

    flat = check_help_lists_every_key(ADMIN, AdminConfig, tmp_path)
    assert "-b, --broker SOCKADDR" in flat
    for name in ("status", "stats", "stat", "stop", "shut-down", "shutdown"):
        assert name in flat


def test_admin_version(tmp_path: Path) -> None:
    result = run_script(ADMIN, "--version", env=clean_env(tmp_path))
    assert (result.exit_code, result.stdout.split()[0]) == (0, ADMIN)


def test_admin_needs_a_broker(tmp_path: Path) -> None:
    result = run_script(ADMIN, "status", env=clean_env(tmp_path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "maelstrom-admin: error: broker must be set to connect over tcp: use --broker, "
        "MAELSTROM_ADMIN_BROKER, MAELSTROM_BROKER or broker in a config file\n"
    )


def test_admin_needs_a_known_command(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MAELSTROM_BROKER="localhost:1")
    for args in ((), ("restart",)):
        result = run_script(ADMIN, *args, env=env)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1, args
        assert "status" in result.stderr, args


def test_admin_broker_from_file_and_hidden_keys_from_env(tmp_path: Path) -> None:
    home_file = tmp_path / ".config/maelstrom/admin/config.toml"
    home_file.parent.mkdir(parents=True)
    home_file.write_text('broker = "example.com:1234"\n')
    env = clean_env(tmp_path, MAELSTROM_ADMIN_GITHUB_ACTIONS_TOKEN="tok")
    result = run_script(ADMIN, "-P", "status", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["broker"] == ('"example.com:1234"', f"{home_file}:1")
    assert values["github-actions-token"][0] == '"***"'
