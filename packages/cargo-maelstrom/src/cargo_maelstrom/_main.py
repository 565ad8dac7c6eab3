"""cargo maelstrom's entry point: the cargo front end driven by the shared runner."""

from __future__ import annotations

from maelstrom_core.config import CargoConfig, TestRunnerOptions
from maelstrom_core.testrunner import run_app

from ._frontend import CargoFrontend

__all__ = ["main"]


async def main(config: CargoConfig, options: TestRunnerOptions) -> int:
    """Run (or list) the workspace's tests; returns the process exit code."""

    async def make_frontend() -> CargoFrontend:
        # Fresh for every run, so --watch re-reads cargo metadata after each change.
        return await CargoFrontend.open(config)

    return await run_app(make_frontend, config, options)
