"""cargo-maelstrom."""

from importlib.metadata import version as _version

__version__ = _version("cargo-maelstrom")
