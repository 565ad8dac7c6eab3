"""--watch: the change watcher on a real directory tree, and the app rerunning on a change."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import trio
from rich.console import Console

from maelstrom_core.config import GoTestConfig, TestRunnerOptions
from maelstrom_core.testrunner import ChangeWatcher, _watch, run_app, watch_excludes

from ._script_frontend import ScriptFrontend, make_project, script

QUIET = 0.5  # how long "nothing happened" is watched for


async def returns_within(watcher: ChangeWatcher, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await watcher.wait()
        return True
    return False


def tree(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "proj"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "deep" / "lib.txt").write_text("x")
    (root / "target" / "debug").mkdir(parents=True)
    (root / ".git").mkdir()
    return root, watch_excludes(root, [Path("target")])


def test_watch_excludes_are_absolute() -> None:
    root = Path("/p")
    assert watch_excludes(root, [Path("target"), Path("/elsewhere")]) == [
        Path("/p/.git"),
        Path("/p/maelstrom-container-tags.lock"),
        Path("/p/target"),
        Path("/elsewhere"),
    ]


async def test_a_change_deep_in_the_tree_counts(tmp_path: Path) -> None:
    root, excludes = tree(tmp_path)
    with ChangeWatcher(root, excludes) as watcher:
        assert watcher.uses_inotify
        (root / "src" / "deep" / "lib.txt").write_text("y")
        assert await returns_within(watcher, 10)


async def test_reads_and_excluded_paths_do_not_count(tmp_path: Path) -> None:
    root, excludes = tree(tmp_path)
    with ChangeWatcher(root, excludes) as watcher:
        (root / "src" / "deep" / "lib.txt").read_text()
        os.listdir(root / "src")
        (root / "target" / "debug" / "out.bin").write_bytes(b"built")
        (root / "target" / "new-dir").mkdir()
        (root / ".git" / "index").write_text("staged")
        (root / "maelstrom-container-tags.lock").write_text("locked")
        assert not await returns_within(watcher, QUIET)
        (root / "src" / "new.txt").write_text("now")
        assert await returns_within(watcher, 10)


async def test_new_directories_are_watched_and_bursts_are_one_change(tmp_path: Path) -> None:
    root, excludes = tree(tmp_path)
    with ChangeWatcher(root, excludes) as watcher:
        (root / "src" / "fresh").mkdir()
        assert await returns_within(watcher, 10)
        for n in range(20):
            (root / "src" / "fresh" / f"f{n}.txt").write_text(str(n))
        assert await returns_within(watcher, 10)
        # The burst was swallowed whole: nothing is left over for the next wait.
        assert not await returns_within(watcher, QUIET)


async def test_without_inotify_the_tree_is_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(_watch, "_inotify_init", unavailable)
    root, excludes = tree(tmp_path)
    with ChangeWatcher(root, excludes) as watcher:
        assert not watcher.uses_inotify
        (root / "target" / "ignored.bin").write_bytes(b"x")
        assert not await returns_within(watcher, 1.5)
        (root / "src" / "deep" / "lib.txt").write_text("changed size")
        assert await returns_within(watcher, 10)


@pytest.mark.requires_userns
async def test_watch_mode_reruns_from_scratch_after_a_change(tmp_path: Path) -> None:
    make_project(tmp_path, {"p": {"t": script({"a": "true", "b": "true"})}})
    frontend_made = 0

    async def make() -> ScriptFrontend:
        nonlocal frontend_made
        frontend_made += 1
        return ScriptFrontend(tmp_path)

    out = io.StringIO()
    config = GoTestConfig.resolve(cli={"slots": "2", "ui": "simple"}, env={}, config_file="-")

    async def waiting(count: int) -> None:
        while out.getvalue().count("waiting for changes...") < count:
            await trio.sleep(0.05)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_app(
                    make,
                    config,
                    TestRunnerOptions(watch=True),
                    console=Console(file=out, width=60, color_system=None),
                    err_console=Console(file=io.StringIO(), width=60, color_system=None),
                )
            )
            await waiting(1)
            assert out.getvalue().count("Successful Tests:         2") == 1
            # The build writes into build/ (excluded): no rerun from that alone.
            (tmp_path / "build" / "stray").write_text("x")
            await trio.sleep(QUIET)
            assert out.getvalue().count("waiting for changes...") == 1
            # Changing the spec file reruns, and the new spec applies.
            (tmp_path / "script-maelstrom.toml").write_text(
                ScriptFrontend(tmp_path).default_spec_toml
                + '[[directives]]\nfilter = "name.equals(b)"\nignore = true\n'
            )
            await waiting(2)
            second = out.getvalue().split("waiting for changes...")[1]
            assert "Successful Tests:         1" in second
            assert "p t b" in second.split("Ignored Tests")[1]
            assert frontend_made >= 2
            nursery.cancel_scope.cancel()
