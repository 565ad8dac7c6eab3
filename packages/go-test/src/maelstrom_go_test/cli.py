"""``maelstrom-go-test``: options -> resolved config -> maelstrom-go-test's entry point."""

from __future__ import annotations

from collections.abc import Sequence

from maelstrom_core.cli import (
    maelstrom_command,
    run_cli,
    run_entry_point,
    runner_options,
    runner_params,
)
from maelstrom_core.config import GoTestConfig, TestRunnerOptions


@maelstrom_command(
    GoTestConfig,
    distribution="maelstrom-go-test",
    params=runner_params(["tests", "packages"]),
    make_options=runner_options,
)
def cli(config: GoTestConfig, options: TestRunnerOptions) -> int | None:
    """Build Go tests and run each test case in its own rootless container."""
    return run_entry_point("maelstrom_go_test._main", "maelstrom-go-test", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(cli, argv)
