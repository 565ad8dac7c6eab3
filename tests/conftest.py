"""Root fixtures and options shared by every package's tests."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-extensions",
        action="store_true",
        help="skip tests parametrised over core's compiled extensions",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-extensions"):
        return
    skip = pytest.mark.skip(reason="--no-extensions given")
    for item in items:
        if "c_extension" in item.keywords:
            item.add_marker(skip)
