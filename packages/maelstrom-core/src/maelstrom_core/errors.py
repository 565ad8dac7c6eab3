"""The one error hierarchy of maelstrom, and the one place that maps errors to exit codes.

Library code raises these and never calls ``sys.exit``; the CLI layer (``maelstrom_core.cli``)
prints ``str(error)`` on one line and exits with ``error.exit_code``. The classes say whose
fault a failure is: the user's input (``UsageError``, ``ConfigError``, ``SpecError``), the peer
on the other end of a connection (``ProtocolError``), the job itself (``ExecutionError``), or
maelstrom and its host (``SystemError_``, ``InternalError``).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ArtifactError",
    "ConfigError",
    "ConnectionClosed",
    "DigestMismatch",
    "ExecutionError",
    "ExtensionMissing",
    "FilterError",
    "HostUnsupported",
    "InternalError",
    "LaunchError",
    "MaelstromError",
    "PeerBroken",
    "ProtocolError",
    "SpecError",
    "SystemError_",
    "UsageError",
    "VersionMismatch",
    "exception_leaves",
]


class MaelstromError(Exception):
    """Base of every error maelstrom reports to a user. ``str(err)`` is one line."""

    exit_code: ClassVar[int] = 1


class UsageError(MaelstromError):
    """A bad command line: unknown flag, conflicting options, missing argument."""

    exit_code = 2


class ConfigError(UsageError):
    """A bad configuration value; the message names the key and where the value came from."""


class SpecError(MaelstromError):
    """A bad job, container or layer spec; the message names the file, line and field."""


class FilterError(UsageError):
    """A test filter pattern (``--include``/``--exclude``/directive) that does not parse.

    ``pattern`` is the text and ``position`` the 0-based offset the message's column names.
    """

    def __init__(self, message: str, *, pattern: str = "", position: int = 0) -> None:
        super().__init__(message)
        self.pattern = pattern
        self.position = position


class ProtocolError(MaelstromError):
    """The peer sent something that is not a valid message: garbage, truncated or oversized."""


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version or plays an unexpected role."""


class PeerBroken(MaelstromError):
    """The other side closed or broke the connection."""


class ConnectionClosed(MaelstromError):
    """We closed the connection ourselves and then tried to use it."""


class ArtifactError(MaelstromError):
    """An artifact could not be read, stored, extracted or found."""


class DigestMismatch(ArtifactError):
    """An artifact's bytes do not hash to the digest it was named by."""


class ExecutionError(MaelstromError):
    """The job could not be started, and it is the job's own fault (bad program, bad cwd)."""


class SystemError_(MaelstromError):
    """The job could not be run, and it is maelstrom's or the host's fault."""


class LaunchError(MaelstromError):
    """A step of the container launch script failed with an errno.

    ``job_fault`` is true when the job's spec is to blame (missing program, bad working
    directory, missing mount point, bad bind source): an execution error, not a system error.
    """

    def __init__(self, step: str, errno: int, message: str, *, job_fault: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.errno = errno
        self.job_fault = job_fault


class HostUnsupported(SystemError_):
    """The host cannot run rootless containers (no user namespaces, no overlayfs, ...)."""


class ExtensionMissing(MaelstromError):
    """A compiled extension of maelstrom-core is not importable."""


class InternalError(MaelstromError):
    """A bug in maelstrom. Please report it."""

    exit_code = 70


def exception_leaves(error: BaseException) -> list[BaseException]:
    """The plain exceptions inside ``error``, in order: itself unless it is a group.

    Errors of tasks in nurseries arrive grouped; callers that report one error look here.
    """
    if not isinstance(error, BaseExceptionGroup):
        return [error]
    return [leaf for inner in error.exceptions for leaf in exception_leaves(inner)]
