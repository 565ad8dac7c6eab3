"""Manifests: a layer's file metadata, with file data inline or named by digest."""

from ._manifest import *  # noqa: F403 - this module is the public face of _manifest
from ._manifest import __all__ as __all__
