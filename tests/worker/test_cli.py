"""maelstrom-worker's installed console script: help, required broker, config files."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from maelstrom_core.config import WorkerConfig
from tests._helpers.cli import check_help_lists_every_key, clean_env, printed_config, run_script

SCRIPT = "maelstrom-worker"


def home_config(home: Path, text: str) -> Path:
    path = home / ".config/maelstrom/worker/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_help_lists_every_key(tmp_path: Path) -> None:
    flat = check_help_lists_every_key(SCRIPT, WorkerConfig, tmp_path)
    assert "-b, --broker SOCKADDR" in flat
    assert "[default: no default, must be set]" in flat


def test_version(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "--version", env=clean_env(tmp_path))
    assert result.stdout == f"maelstrom-worker {importlib.metadata.version(SCRIPT)}\n"


def test_broker_is_required(tmp_path: Path) -> None:
    result = run_script(SCRIPT, "-P", env=clean_env(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith("maelstrom-worker: error: broker must be set")
    assert "MAELSTROM_WORKER_BROKER" in result.stderr


def test_home_file_env_and_flag(tmp_path: Path) -> None:
    path = home_config(tmp_path, 'broker = "10.1.2.3:9000"\nslots = 4\ninline-limit = "2 MiB"\n')
    env = clean_env(tmp_path, MAELSTROM_SLOTS="6")
    result = run_script(SCRIPT, "-P", "--cache-size=3GB", env=env)
    assert result.exit_code == 0, result.stderr
    values = printed_config(result.stdout)
    assert values["broker"] == ('"10.1.2.3:9000"', f"{path}:1")
    assert values["slots"] == ("6", "environment variable MAELSTROM_SLOTS")
    assert values["inline-limit"] == ('"2.097152 MB"', f"{path}:3")
    assert values["cache-size"] == ('"3 GB"', "--cache-size")
    assert values["cache-root"][0] == f'"{tmp_path}/.cache/maelstrom/worker"'


def test_config_file_option_and_dash(tmp_path: Path) -> None:
    home_config(tmp_path, 'broker = "home:1"\n')
    only = tmp_path / "only.toml"
    only.write_text('broker = "only:2"\n')
    env = clean_env(tmp_path)
    result = run_script(SCRIPT, "-P", "--config-file", str(only), env=env)
    assert printed_config(result.stdout)["broker"][0] == '"only:2"'
    result = run_script(SCRIPT, "-P", "-c", "-", env=env)
    assert result.exit_code == 2
    assert "broker must be set" in result.stderr


def test_xdg_config_home_is_honoured(tmp_path: Path) -> None:
    conf = tmp_path / "elsewhere"
    (conf / "maelstrom/worker").mkdir(parents=True)
    (conf / "maelstrom/worker/config.toml").write_text('broker = "[::1]:77"\n')
    env = clean_env(tmp_path, XDG_CONFIG_HOME=str(conf))
    result = run_script(SCRIPT, "-P", env=env)
    assert printed_config(result.stdout)["broker"][0] == '"[::1]:77"'


def test_bad_broker_address_names_the_env_var(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MAELSTROM_WORKER_BROKER="host:99999")
    result = run_script(SCRIPT, env=env)
    assert result.exit_code == 2
    assert "(from environment variable MAELSTROM_WORKER_BROKER)" in result.stderr
