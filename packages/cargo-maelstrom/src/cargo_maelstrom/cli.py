"""``cargo-maelstrom``: options -> resolved config -> cargo-maelstrom's entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from maelstrom_core.cli import (
    maelstrom_command,
    run_cli,
    run_entry_point,
    runner_options,
    runner_params,
)
from maelstrom_core.config import CargoConfig, TestRunnerOptions


@maelstrom_command(
    CargoConfig,
    distribution="cargo-maelstrom",
    params=runner_params(["tests", "binaries", "packages"]),
    make_options=runner_options,
)
def cli(config: CargoConfig, options: TestRunnerOptions) -> int | None:
    """Build Rust tests with cargo and run each test case in its own rootless container."""
    return run_entry_point("cargo_maelstrom._main", "cargo-maelstrom", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # `cargo maelstrom ...` runs `cargo-maelstrom maelstrom ...`: drop cargo's subcommand name.
    if args[:1] == ["maelstrom"]:
        args = args[1:]
    run_cli(cli, args)
