"""``maelstrom-admin``'s entry point: broker statistics, or a stop request, as a monitor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import click
import trio

from maelstrom_core.config import AdminConfig
from maelstrom_core.errors import ConfigError, PeerBroken, ProtocolError
from maelstrom_core.net import MessageStream, open_message_stream
from maelstrom_core.proto import Hello, Role, StatisticsRequest, StatisticsResponse, StopRequest

__all__ = ["COMMANDS", "AdminOptions", "main"]

Command = Literal["status", "stop"]

# Every name a command answers to, as the original's aliases.
COMMANDS: Final[dict[str, Command]] = {
    "status": "status",
    "stats": "status",
    "stat": "status",
    "stop": "stop",
    "shut-down": "stop",
    "shutdown": "stop",
}

TIMEOUT: Final = 30.0  # seconds to wait for the broker's answer


@dataclass(frozen=True, slots=True)
class AdminOptions:
    command: Command


async def main(config: AdminConfig, options: AdminOptions) -> int:
    config.require_tcp()
    if config.broker is None:
        raise ConfigError("maelstrom-admin needs the broker's address: --broker HOST:PORT")
    host, port = config.broker.host, config.broker.port
    with trio.fail_after(TIMEOUT):
        try:
            stream = await open_message_stream(host, port, Hello(Role.MONITOR))
        except trio.TooSlowError:
            raise PeerBroken(f"broker at {host}:{port} did not answer in {TIMEOUT:g} s") from None
    async with stream:
        try:
            with trio.fail_after(TIMEOUT):
                if options.command == "status":
                    await _status(stream)
                else:
                    await _stop(stream)
        except trio.TooSlowError:
            raise PeerBroken(f"{stream.peer} did not answer in {TIMEOUT:g} s") from None
    return 0


async def _status(stream: MessageStream) -> None:
    await stream.send(StatisticsRequest())
    reply = await stream.receive()
    if not isinstance(reply, StatisticsResponse):  # the stream's direction allows only this
        raise ProtocolError(f"{stream.peer} answered {type(reply).__name__}")
    statistics = reply.statistics
    click.echo(f"Number of workers: {len(statistics.worker_slots)}")
    click.echo(f"Number of clients: {statistics.num_clients}")


async def _stop(stream: MessageStream) -> None:
    await stream.send(StopRequest())
    try:
        reply = await stream.receive()
    except PeerBroken:
        return  # it hung up: it is stopping
    raise ProtocolError(
        f"{stream.peer} answered {type(reply).__name__} to a stop request instead of disconnecting"
    )
