"""The resolved job model: what a client sends, a broker schedules and a worker runs.

These are plain values (frozen, slotted dataclasses) with no I/O. The user-facing container and
job specs (with parents, images and layer specs) resolve to a ``JobSpec`` whose layers are
artifact digests; the wire protocol encodes exactly these types, and the executor runs them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "ArtifactType",
    "BindMount",
    "Device",
    "DevicesMount",
    "DevptsMount",
    "ExitCode",
    "ExitStatus",
    "JobCompleted",
    "JobError",
    "JobErrorKind",
    "JobMount",
    "JobOutcome",
    "JobSpec",
    "JobState",
    "JobTimedOut",
    "LayerRef",
    "MqueueMount",
    "Network",
    "Output",
    "ProcMount",
    "Signaled",
    "SysMount",
    "TmpMount",
    "TtySpec",
    "WindowSize",
]


class ArtifactType(enum.Enum):
    """How an artifact's bytes are to be read."""

    TAR = "tar"
    MANIFEST = "manifest"


@dataclass(frozen=True, slots=True)
class LayerRef:
    """One layer of a job's root file system: an artifact named by the SHA-256 of its bytes."""

    digest: bytes  # 32 raw bytes
    type: ArtifactType


class Network(enum.Enum):
    DISABLED = "disabled"  # own network namespace, no interface up (not even lo)
    LOOPBACK = "loopback"  # own network namespace, lo up
    LOCAL = "local"  # the host's network namespace; makes the job local-only


class Device(enum.Enum):
    """Host devices a job may bind-mount at ``/dev/<name>`` (``shm`` is ``/dev/shm``)."""

    FULL = "full"
    FUSE = "fuse"
    NULL = "null"
    RANDOM = "random"
    SHM = "shm"
    TTY = "tty"
    URANDOM = "urandom"
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path (absolute, resolved by the client) mounted into the container. Local-only."""

    mount_point: str
    local_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class DevicesMount:
    devices: frozenset[Device]


@dataclass(frozen=True, slots=True)
class DevptsMount:
    mount_point: str


@dataclass(frozen=True, slots=True)
class MqueueMount:
    mount_point: str


@dataclass(frozen=True, slots=True)
class ProcMount:
    mount_point: str


@dataclass(frozen=True, slots=True)
class SysMount:
    mount_point: str


@dataclass(frozen=True, slots=True)
class TmpMount:
    mount_point: str


JobMount = BindMount | DevicesMount | DevptsMount | MqueueMount | ProcMount | SysMount | TmpMount


@dataclass(frozen=True, slots=True)
class WindowSize:
    rows: int
    columns: int


@dataclass(frozen=True, slots=True)
class TtySpec:
    """Give the job a pseudo-terminal. Local-only; the client owns the other end."""

    window_size: WindowSize


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A fully resolved job. ``environment`` is exactly the job's environment, as ``NAME=value``."""

    program: str
    layers: tuple[LayerRef, ...]
    arguments: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    mounts: tuple[JobMount, ...] = ()
    network: Network = Network.DISABLED
    enable_writable_file_system: bool = False
    working_directory: str = "/"
    user: int = 0
    group: int = 0
    timeout: int | None = None  # whole seconds; None (or 0 from users) means no timeout
    estimated_duration: float | None = None  # seconds, from the test DB; for LPT scheduling
    priority: int = 0  # -128..127, higher first
    allocate_tty: TtySpec | None = None

    @property
    def must_run_locally(self) -> bool:
        """Jobs that touch the client's machine never leave it, even in cluster mode."""
        return (
            self.network is Network.LOCAL
            or self.allocate_tty is not None
            or any(isinstance(mount, BindMount) for mount in self.mounts)
        )


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """Captured bytes of one stream, up to the inline limit, and how many bytes were dropped."""

    data: bytes = b""
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class ExitCode:
    code: int


@dataclass(frozen=True, slots=True)
class Signaled:
    signal: int


ExitStatus = ExitCode | Signaled


@dataclass(frozen=True, slots=True)
class JobCompleted:
    status: ExitStatus
    stdout: Output = field(default_factory=Output)
    stderr: Output = field(default_factory=Output)
    duration: float = 0.0  # seconds of wall time the program ran


@dataclass(frozen=True, slots=True)
class JobTimedOut:
    stdout: Output = field(default_factory=Output)
    stderr: Output = field(default_factory=Output)
    duration: float = 0.0


class JobErrorKind(enum.Enum):
    EXECUTION = "execution"  # the job's fault: missing program, bad working directory, ...
    SYSTEM = "system"  # ours or the host's: cache full, mount failed, worker lost twice, ...


@dataclass(frozen=True, slots=True)
class JobError:
    kind: JobErrorKind
    message: str


JobOutcome = JobCompleted | JobTimedOut | JobError


class JobState(enum.Enum):
    """Where a job is, for progress displays. Ordered as a job moves through them."""

    WAITING_FOR_ARTIFACTS = "waiting-for-artifacts"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
