"""``maelstrom-admin``: options -> resolved config -> the admin's entry point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from maelstrom_core.cli import HeadedArgument, maelstrom_command, run_cli, run_entry_point
from maelstrom_core.config import AdminConfig

from ._admin import COMMANDS, AdminOptions


def _options(values: dict[str, Any]) -> AdminOptions:
    return AdminOptions(COMMANDS[values["command"]])


@maelstrom_command(
    AdminConfig,
    distribution="maelstrom-broker",
    make_options=_options,
    params=[
        HeadedArgument(
            ["command"],
            type=click.Choice(list(COMMANDS)),
            metavar="COMMAND",
            help=(
                "status (or stats, stat): print the number of workers and clients; "
                "stop (or shut-down, shutdown): stop the broker and its workers."
            ),
            heading="Commands",
        )
    ],
)
def cli(config: AdminConfig, options: AdminOptions) -> int | None:
    """Administer a maelstrom cluster's broker."""
    return run_entry_point("maelstrom_broker._admin", "maelstrom-admin", config, options)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(cli, argv)
