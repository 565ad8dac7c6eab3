"""``maelstrom-broker``'s entry point: serve until stopped by a monitor, SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal

import trio

from maelstrom_core.config import BrokerConfig, NoOptions

from ._server import BrokerSettings, RunningBroker, serve_broker

__all__ = ["main"]

log = logging.getLogger("maelstrom_broker")


async def main(config: BrokerConfig, options: NoOptions) -> int:
    """Run the broker; returns 0 after a clean shutdown.

    The startup line carries ``addr: <host>:<port>,``: scripts parse the port from it.
    """
    config.require_tcp()
    if config.http_port:
        log.warning("http-port %d ignored: this broker has no web UI", config.http_port)
    settings = BrokerSettings(
        cache_root=config.cache_root, cache_size=config.cache_size, port=config.port
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            running: RunningBroker = await nursery.start(_serve, settings, nursery.cancel_scope)
            log.info("started, addr: %s, pid: %d", running.address, os.getpid())
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info("received %s", name)
                running.request_stop(f"received {name}")
                break
    return 0


async def _serve(
    settings: BrokerSettings,
    done: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[RunningBroker] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_broker(settings, task_status=task_status)
    done.cancel()  # stopped by a monitor: stop waiting for signals too
    log.info("stopped")
