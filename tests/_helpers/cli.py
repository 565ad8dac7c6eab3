"""Run an installed console script as a subprocess, the way a user runs it.

The scripts are looked up next to ``sys.executable`` (the venv the tests run in), so the tests
exercise the installed entry points, not an import of ``cli.py``. The child's environment is
the parent's minus every ``MAELSTROM_*``, ``CARGO_MAELSTROM_*`` and ``XDG_*`` variable, so a
developer's own configuration cannot leak into a test; ``env`` adds what the test wants.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from maelstrom_core.config import ConfigBase

_SCRUBBED = ("MAELSTROM_", "CARGO_MAELSTROM_", "XDG_")


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    stdout: str
    stderr: str


def script_path(name: str) -> Path:
    """The console script ``name`` installed beside the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise FileNotFoundError(f"console script {name} is not installed beside {sys.executable}")
    return path


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with ``HOME`` set and XDG/maelstrom variables only from ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env["HOME"] = str(home)
    env["COLUMNS"] = "100"
    env.update(extra)
    return env


def run_script(
    name: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    input: str | None = None,
) -> ScriptResult:
    """Run console script ``name`` with ``args``; return its exit code, stdout and stderr."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    proc = subprocess.run(
        [str(script_path(name)), *args],
        env=dict(env),
        cwd=cwd,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ScriptResult(proc.returncode, proc.stdout, proc.stderr)


def printed_config(stdout: str) -> dict[str, tuple[str, str]]:
    """Parse ``--print-config`` output into ``{key: (value text, source text)}``."""
    values: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"([a-z0-9-]+) = (.*?)  # (.*)", line)
        if match:
            values[match.group(1)] = (match.group(2), match.group(3))
    return values


def help_text_flat(text: str) -> str:
    """Help text with its line wrapping undone, so phrases can be searched for."""
    return " ".join(text.split())


def check_help_lists_every_key(script: str, config_cls: type[ConfigBase], home: Path) -> str:
    """Run ``script --help``; check every visible key shows with both env names and its default.

    Returns the flattened help text for further checks.
    """
    env = clean_env(home)
    result = run_script(script, "--help", env=env)
    assert result.exit_code == 0, result.stderr
    flat = help_text_flat(result.stdout)
    for k in config_cls.config_keys():
        prog_env, generic_env = k.env_names(config_cls.env_prefix)
        if k.hidden:
            assert k.flag not in flat, k.name
            assert prog_env not in flat, k.name
            continue
        assert (f"-- {k.metavar}..." if k.var_arg else k.flag) in flat, k.name
        assert f"[env: {prog_env} or {generic_env}]" in flat, k.name
        assert f"[default: {k.describe_default(env)}]" in flat, k.name
    for heading in ("Print-and-Exit Options:", "Config File Options:", "Config Values:"):
        assert heading in result.stdout
    compact = "".join(result.stdout.split())
    for path in config_cls.search_path(env):
        assert str(path) in compact
    return flat
