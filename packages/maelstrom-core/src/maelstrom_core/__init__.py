"""maelstrom-core: the library every maelstrom program is built on."""

from importlib.metadata import version as _version

__version__ = _version("maelstrom-core")
