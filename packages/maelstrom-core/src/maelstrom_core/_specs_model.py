"""The user-level container and job spec model (maelstrom-features.md §2.1-§2.3).

These are what the spec parsers produce and the collapser consumes: a container may name a
parent (an image or a named container) and pick which of its fields to inherit with ``use``.
They are plain frozen values with no I/O. ``collapse`` turns a ``JobSpec`` into a
``CollapsedJob``, which holds layer specs still to be built; once built, ``to_job_spec`` gives
the resolved ``maelstrom_core._job.JobSpec`` the rest of the system runs.
"""

from __future__ import annotations

import enum
import os.path
from collections.abc import Mapping
from dataclasses import dataclass

from ._job import (
    BindMount,
    DevicesMount,
    DevptsMount,
    JobMount,
    LayerRef,
    MqueueMount,
    Network,
    ProcMount,
    SysMount,
    TmpMount,
)
from ._job import (
    JobSpec as ResolvedJobSpec,
)
from ._layer_spec import LayerSpec
from .errors import InternalError

__all__ = [
    "BindMountSpec",
    "CollapsedJob",
    "ContainerRef",
    "ContainerSpec",
    "ContainerUse",
    "EnvironmentSpec",
    "ImageConfig",
    "ImageRef",
    "ImageUse",
    "JobSpec",
    "MountSpec",
]


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped, so that a message
    quoting user input stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def quoted(text: str) -> str:
    """``text`` in double quotes with escapes, as the original's Rust ``{:?}`` shows names."""
    return '"' + printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class ContainerUse(enum.StrEnum):
    """What a job may inherit from a named parent container."""

    LAYERS = "layers"
    ENABLE_WRITABLE_FILE_SYSTEM = "enable_writable_file_system"
    ENVIRONMENT = "environment"
    WORKING_DIRECTORY = "working_directory"
    MOUNTS = "mounts"
    NETWORK = "network"
    USER = "user"
    GROUP = "group"


class ImageUse(enum.StrEnum):
    """What a job may inherit from a container image: an image has nothing else to give."""

    LAYERS = "layers"
    ENVIRONMENT = "environment"
    WORKING_DIRECTORY = "working_directory"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """``image = ...``: inherit from a container image.

    ``use`` is the effective set: fields the spec sets itself were already taken out of an
    implicit ``use``. ``use_explicit`` says whether the user wrote ``use``.
    """

    name: str
    use: frozenset[ImageUse] = frozenset(ImageUse)
    use_explicit: bool = False


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """``parent = ...``: inherit from a named container. ``use`` as for ``ImageRef``."""

    name: str
    use: frozenset[ContainerUse] = frozenset(ContainerUse)
    use_explicit: bool = False


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """One step of environment evaluation: ``vars`` overlay the running map when ``extend``,
    or replace it. ``vars`` is sorted by name; values may hold ``$env{}``/``$prev{}``."""

    vars: tuple[tuple[str, str], ...]
    extend: bool = True

    @classmethod
    def of(cls, vars: Mapping[str, str], *, extend: bool = True) -> EnvironmentSpec:
        return cls(tuple(sorted(vars.items())), extend)


@dataclass(frozen=True, slots=True)
class BindMountSpec:
    """A bind mount as users write it: ``local_path`` is still relative to the project dir."""

    mount_point: str
    local_path: str
    read_only: bool = False

    def resolve(self, project_dir: str) -> BindMount:
        local = os.path.normpath(os.path.join(project_dir, self.local_path))
        return BindMount(self.mount_point, local, self.read_only)


MountSpec = (
    BindMountSpec | DevicesMount | DevptsMount | MqueueMount | ProcMount | SysMount | TmpMount
)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """A container as written: ``None`` means "not given", which differs from empty.

    ``X`` and ``added_X`` stay apart because test-runner directives treat them differently
    (replace versus append). When collapsing, a spec contributes ``X`` followed by
    ``added_X``; the validation rules guarantee at most one of them came from one table.
    """

    parent: ImageRef | ContainerRef | None = None
    layers: tuple[LayerSpec, ...] | None = None
    added_layers: tuple[LayerSpec, ...] | None = None
    environment: tuple[EnvironmentSpec, ...] | None = None
    added_environment: tuple[EnvironmentSpec, ...] | None = None
    mounts: tuple[MountSpec, ...] | None = None
    added_mounts: tuple[MountSpec, ...] | None = None
    network: Network | None = None
    enable_writable_file_system: bool | None = None
    working_directory: str | None = None
    user: int | None = None
    group: int | None = None

    @property
    def all_layers(self) -> tuple[LayerSpec, ...]:
        return (self.layers or ()) + (self.added_layers or ())

    @property
    def all_environment(self) -> tuple[EnvironmentSpec, ...]:
        return (self.environment or ()) + (self.added_environment or ())

    @property
    def all_mounts(self) -> tuple[MountSpec, ...]:
        return (self.mounts or ()) + (self.added_mounts or ())


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as users write it: a container plus what to run.

    ``timeout`` is ``None`` for no timeout (users write 0 for that); ``priority`` is an i8.
    """

    program: str
    container: ContainerSpec = ContainerSpec()
    arguments: tuple[str, ...] = ()
    timeout: int | None = None
    priority: int = 0
    estimated_duration: float | None = None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What a fetched image can give a job: layer specs, ``Env`` and ``WorkingDir``."""

    layers: tuple[LayerSpec, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    working_directory: str | None = None


@dataclass(frozen=True, slots=True)
class CollapsedJob:
    """A job with its parent chain flattened and its environment evaluated.

    Its layers are still specs: the client builds them into artifacts, then calls
    ``to_job_spec`` with the resulting ``LayerRef``s, in the same order.
    """

    program: str
    layers: tuple[LayerSpec, ...]
    arguments: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    network: Network = Network.DISABLED
    enable_writable_file_system: bool = False
    working_directory: str = "/"
    user: int = 0
    group: int = 0
    timeout: int | None = None
    priority: int = 0
    estimated_duration: float | None = None
    image: str | None = None  # the image the chain ends in, if any field came from it
    uses_image_layers: bool = False  # whether image layers reached the job

    def to_job_spec(self, layers: tuple[LayerRef, ...], *, project_dir: str) -> ResolvedJobSpec:
        """Pair the built layers with this job; bind mounts resolve against ``project_dir``."""
        if len(layers) != len(self.layers):
            raise InternalError(
                f"job {self.program!r}: got {len(layers)} built layers for "
                f"{len(self.layers)} layer specs"
            )
        mounts: list[JobMount] = [
            m.resolve(project_dir) if isinstance(m, BindMountSpec) else m for m in self.mounts
        ]
        return ResolvedJobSpec(
            program=self.program,
            layers=layers,
            arguments=self.arguments,
            environment=self.environment,
            mounts=tuple(mounts),
            network=self.network,
            enable_writable_file_system=self.enable_writable_file_system,
            working_directory=self.working_directory,
            user=self.user,
            group=self.group,
            timeout=self.timeout,
            estimated_duration=self.estimated_duration,
            priority=self.priority,
        )
