"""maelstrom-go-test's entry point: the Go front end driven by core's test-runner framework."""

from __future__ import annotations

from maelstrom_core.config import GoTestConfig, TestRunnerOptions
from maelstrom_core.testrunner import run_app

from ._frontend import GoFrontend


async def main(config: GoTestConfig, options: TestRunnerOptions) -> int:
    """Run (or list) the tests of the Go module containing the current directory."""

    async def make_frontend() -> GoFrontend:
        # Fresh each run: watch mode re-reads the packages and rebuilds from scratch.
        return await GoFrontend.open(config)

    return await run_app(make_frontend, config, options)
