"""``maelstrom-worker``: options -> resolved config -> the worker's entry point."""

from __future__ import annotations

from collections.abc import Sequence

from maelstrom_core.cli import maelstrom_command, run_cli, run_entry_point
from maelstrom_core.config import NoOptions, WorkerConfig


@maelstrom_command(
    WorkerConfig, distribution="maelstrom-worker", make_options=lambda values: NoOptions()
)
def cli(config: WorkerConfig, options: NoOptions) -> int | None:
    """The maelstrom cluster worker: runs jobs in rootless containers for a broker.

    If the connection to the broker ends, the worker cancels its jobs and reconnects, with
    backoff, until the broker is back (the original Maelstrom worker exits instead). It exits
    0 when the broker tells it to shut down, or on SIGTERM, SIGINT or SIGHUP.
    """
    return run_entry_point("maelstrom_worker._main", "the worker", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(cli, argv)
