"""maelstrom-worker's entry point: preflight, the layer cache, and the broker connection."""

from __future__ import annotations

import logging
import signal

import trio

from maelstrom_core.config import NoOptions, WorkerConfig
from maelstrom_core.errors import UsageError
from maelstrom_core.executor import Executor
from maelstrom_core.preflight import check_host

from ._connection import BrokerShutDown, serve_broker

__all__ = ["main", "run_worker"]

log = logging.getLogger("maelstrom_worker")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(config: WorkerConfig, options: NoOptions) -> int:
    del options
    config.require_tcp()
    # Fail at once, with what to change, rather than turning every job into a system error.
    check_host()
    code: int = trio.run(run_worker, config)
    return code


async def run_worker(
    config: WorkerConfig, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> int:
    """Run jobs for the broker until it says to shut down or a stop signal arrives; then 0.

    SIGTERM, SIGINT and SIGHUP cancel every job (its container is killed and reaped) first.
    ``task_status.started()`` follows the first handshake with the broker.
    """
    broker = config.broker
    if broker is None:
        raise UsageError("broker must be set")
    async with Executor(
        config.cache_root,
        cache_size=config.cache_size,
        inline_limit=config.inline_limit,
        slots=config.slots,
    ) as executor:
        with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        log.info("%s: cancelling jobs and exiting", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

                async def serve(*, task_status: trio.TaskStatus[None]) -> None:
                    try:
                        await serve_broker(
                            broker.host,
                            broker.port,
                            config.slots,
                            executor,
                            task_status=task_status,
                        )
                    except BrokerShutDown:
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                await nursery.start(serve)
                task_status.started()
    return 0
