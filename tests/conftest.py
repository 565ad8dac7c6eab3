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


# --- container tests: run as root and again as an unprivileged user -------------------------
# A test that takes ``privilege`` runs twice. As root, the ``unprivileged`` variant re-runs just
# that test id in a subprocess as tests._helpers.unprivileged.USER_NAME; not as root, only the
# ``unprivileged`` variant runs (in-process). See tests/_helpers/unprivileged.py.


@pytest.fixture(params=["root", "unprivileged"])
def privilege(request: pytest.FixtureRequest) -> str:
    import os

    from tests._helpers import unprivileged

    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("the root variant needs root")
    if request.param == "unprivileged" and os.geteuid() == 0 and unprivileged.ensure_user() is None:
        pytest.skip(f"no unprivileged user {unprivileged.USER_NAME!r} could be made")
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    import contextlib
    import os

    callspec = getattr(pyfuncitem, "callspec", None)
    if callspec is None or callspec.params.get("privilege") != "unprivileged":
        return None
    if os.geteuid() != 0:
        return None
    from tests._helpers import unprivileged

    user = unprivileged.ensure_user()
    assert user is not None  # the privilege fixture skipped otherwise
    config = pyfuncitem.config
    if not hasattr(config, "_maelstrom_traverse"):
        stack = contextlib.ExitStack()
        stack.enter_context(unprivileged.grant_traverse())
        config._maelstrom_traverse = stack  # type: ignore[attr-defined]
        config.add_cleanup(stack.close)
    result = unprivileged.run_test_as_user(pyfuncitem.nodeid, user)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode == 0 and "passed" not in summary and "skipped" in summary:
        pytest.skip(f"as {user.pw_name}: {summary}")
    if result.returncode != 0:
        pytest.fail(
            f"as {user.pw_name} (exit {result.returncode}):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return True
