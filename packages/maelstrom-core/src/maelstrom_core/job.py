"""The resolved job model: specs with layers as digests, mounts, outcomes and states."""

from ._job import *  # noqa: F403 - this module is the public face of _job
from ._job import __all__ as __all__
