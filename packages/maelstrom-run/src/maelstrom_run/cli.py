"""``maelstrom-run``: options -> resolved config -> maelstrom-run's entry point."""

from __future__ import annotations

from collections.abc import Sequence

from maelstrom_core.cli import maelstrom_command, run_cli, run_entry_point, run_options, run_params
from maelstrom_core.config import RunConfig, RunOptions


@maelstrom_command(
    RunConfig,
    distribution="maelstrom-run",
    params=run_params(),
    make_options=run_options,
    # Everything after PROGRAM belongs to it: `maelstrom-run --one ls -l` must not read -l.
    context_settings={"allow_interspersed_args": False},
)
def cli(config: RunConfig, options: RunOptions) -> int | None:
    """Run jobs, read as a stream of JSON job specs, in rootless containers."""
    return run_entry_point("maelstrom_run._main", "maelstrom-run", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(cli, argv)
