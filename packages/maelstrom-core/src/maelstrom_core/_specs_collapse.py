"""Spec collapsing (maelstrom-features.md §2.2, maelstrom-internals.md §3.3).

A job's container names a parent, which names another, and so on, perhaps ending at an image.
Collapsing walks that chain once: scalar fields come from the nearest container that sets
them, vector fields are prepended ancestor by ancestor, and each link's ``use`` set narrows what
may come from further up. The walk stops as soon as nothing more can be inherited, so an
unknown container beyond that point is not an error (as in the original).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._job import Network, SysMount
from ._layer_spec import LayerSpec
from ._specs_env import evaluate_environment
from ._specs_model import (
    CollapsedJob,
    ContainerRef,
    ContainerSpec,
    ContainerUse,
    EnvironmentSpec,
    ImageConfig,
    ImageRef,
    ImageUse,
    JobSpec,
    MountSpec,
    printable,
    quoted,
)
from .errors import SpecError

__all__ = ["ContainerStore", "ImageConfigProvider"]

ImageConfigProvider = Callable[[str], ImageConfig]
"""Returns what an image (by its name as written) gives a job. Fetching is its business."""

_VECTOR_USES = frozenset({ContainerUse.LAYERS, ContainerUse.ENVIRONMENT, ContainerUse.MOUNTS})


class ContainerStore:
    """Named containers of one client, and the collapsing of jobs against them.

    Containers may be added in any order; parents are looked up only when a job is collapsed.
    Adding a name again replaces the earlier definition.
    """

    def __init__(
        self,
        *,
        client_environment: Mapping[str, str],
        image_config: ImageConfigProvider | None = None,
    ) -> None:
        self._containers: dict[str, ContainerSpec] = {}
        self._client_environment = dict(client_environment)
        self._image_config = image_config

    def add(self, name: str, spec: ContainerSpec) -> None:
        self._containers[name] = spec

    def add_all(self, containers: Mapping[str, ContainerSpec]) -> None:
        self._containers.update(containers)

    def get(self, name: str) -> ContainerSpec | None:
        return self._containers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._containers

    def __len__(self) -> int:
        return len(self._containers)

    def collapse(self, job: JobSpec, *, label: str | None = None) -> CollapsedJob:
        """Flatten ``job``'s parent chain, fetch image config if needed, evaluate the
        environment and check the result.

        Args:
            job: the job as parsed.
            label: prefixed to error messages (e.g. ``"jobs.json: job 3"``).

        Raises:
            SpecError: unknown parent, ancestor loop, image needed but no image provider,
                bad environment expansion, ``sys`` mount with ``local`` network, no layers.
        """
        try:
            return self._collapse(job)
        except SpecError as err:
            if label is None:
                raise
            raise SpecError(f"{label}: {err}") from None

    def _collapse(self, job: JobSpec) -> CollapsedJob:
        own = job.container
        layers: tuple[LayerSpec, ...] = own.all_layers
        environment: tuple[EnvironmentSpec, ...] = own.all_environment
        mounts: tuple[MountSpec, ...] = own.all_mounts
        scalars: dict[ContainerUse, object] = {
            ContainerUse.ENABLE_WRITABLE_FILE_SYSTEM: own.enable_writable_file_system,
            ContainerUse.WORKING_DIRECTORY: own.working_directory,
            ContainerUse.NETWORK: own.network,
            ContainerUse.USER: own.user,
            ContainerUse.GROUP: own.group,
        }
        # What may still be inherited: every vector, and each scalar not set yet.
        mask = set(_VECTOR_USES) | {use for use, value in scalars.items() if value is None}
        ancestors: list[str] = []
        image: ImageRef | None = None
        parent: ImageRef | ContainerRef | None = own.parent
        while parent is not None:
            if isinstance(parent, ImageRef):
                wanted = frozenset(u for u in parent.use if ContainerUse(u.value) in mask)
                if wanted:
                    image = ImageRef(parent.name, wanted, parent.use_explicit)
                break
            mask &= parent.use
            if not mask:
                break
            spec = self._containers.get(parent.name)
            if spec is None:
                raise SpecError(f"couldn't find parent container {quoted(parent.name)}")
            if parent.name in ancestors:
                raise SpecError(
                    "ancestor loop: " + " -> ".join(printable(n) for n in [*ancestors, parent.name])
                )
            ancestors.append(parent.name)
            if ContainerUse.LAYERS in mask:
                layers = spec.all_layers + layers
            if ContainerUse.ENVIRONMENT in mask:
                environment = spec.all_environment + environment
            if ContainerUse.MOUNTS in mask:
                mounts = spec.all_mounts + mounts
            for scalar in list(mask - _VECTOR_USES):
                value = getattr(spec, scalar.value)
                if value is not None:
                    scalars[scalar] = value
                    mask.discard(scalar)
            parent = spec.parent

        image_layers: tuple[LayerSpec, ...] = ()
        initial_environment: dict[str, str] = {}
        if image is not None:
            if self._image_config is None:
                raise SpecError(f"container images are not supported yet: {printable(image.name)}")
            config = self._image_config(image.name)
            if ImageUse.LAYERS in image.use:
                image_layers = config.layers
            if ImageUse.ENVIRONMENT in image.use:
                initial_environment = dict(config.environment)
            if ImageUse.WORKING_DIRECTORY in image.use:
                scalars[ContainerUse.WORKING_DIRECTORY] = config.working_directory

        network = scalars[ContainerUse.NETWORK]
        assert network is None or isinstance(network, Network)
        if network is Network.LOCAL and any(isinstance(m, SysMount) for m in mounts):
            raise SpecError(
                'A "sys" mount is not compatible with local networking. Check the '
                'documentation for the "network" field of "JobSpec".'
            )
        all_layers = image_layers + layers
        if not all_layers:
            raise SpecError(
                "At least one layer must be specified, or an image must be used that has at "
                "least one layer."
            )
        env = evaluate_environment(environment, self._client_environment, initial_environment)
        writable = scalars[ContainerUse.ENABLE_WRITABLE_FILE_SYSTEM]
        working_directory = scalars[ContainerUse.WORKING_DIRECTORY]
        user = scalars[ContainerUse.USER]
        group = scalars[ContainerUse.GROUP]
        assert writable is None or isinstance(writable, bool)
        assert working_directory is None or isinstance(working_directory, str)
        assert user is None or isinstance(user, int)
        assert group is None or isinstance(group, int)
        return CollapsedJob(
            program=job.program,
            layers=all_layers,
            arguments=job.arguments,
            environment=env,
            mounts=mounts,
            network=network or Network.DISABLED,
            enable_writable_file_system=bool(writable),
            working_directory=working_directory or "/",
            user=user or 0,
            group=group or 0,
            timeout=job.timeout or None,
            priority=job.priority,
            estimated_duration=job.estimated_duration,
            image=image.name if image is not None else None,
            uses_image_layers=image is not None and ImageUse.LAYERS in image.use,
        )
