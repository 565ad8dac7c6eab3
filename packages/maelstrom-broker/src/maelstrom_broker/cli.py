"""``maelstrom-broker``: options -> resolved config -> the broker's entry point."""

from __future__ import annotations

from collections.abc import Sequence

from maelstrom_core.cli import maelstrom_command, run_cli, run_entry_point
from maelstrom_core.config import BrokerConfig, NoOptions


@maelstrom_command(
    BrokerConfig, distribution="maelstrom-broker", make_options=lambda values: NoOptions()
)
def cli(config: BrokerConfig, options: NoOptions) -> int | None:
    """The maelstrom cluster broker: schedules jobs onto workers and stores artifacts."""
    return run_entry_point("maelstrom_broker._main", "the broker", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(cli, argv)
