"""The github cluster strategy's keys load (the original's config files work) but every
program refuses to run with it, in one line naming where the value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._helpers.cli import clean_env, run_script

PROGRAMS = [
    ("maelstrom-run", ()),
    ("cargo-maelstrom", ()),
    ("maelstrom-go-test", ()),
    ("maelstrom-worker", ()),
    ("maelstrom-broker", ()),
    ("maelstrom-admin", ("status",)),
]


@pytest.mark.parametrize(("script", "args"), PROGRAMS)
def test_github_strategy_is_refused(tmp_path: Path, script: str, args: tuple[str, ...]) -> None:
    env = clean_env(
        tmp_path,
        MAELSTROM_CLUSTER_COMMUNICATION_STRATEGY="github",
        MAELSTROM_GITHUB_ACTIONS_TOKEN="token",
        MAELSTROM_GITHUB_ACTIONS_URL="https://results.example/",
        MAELSTROM_BROKER="127.0.0.1:1",
    )
    result = run_script(script, *args, env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"{script}: error: cluster-communication-strategy github (from environment variable "
        f"MAELSTROM_CLUSTER_COMMUNICATION_STRATEGY) is not supported by this build of {script}; "
        "use tcp\n"
    )
