"""The client: turns user job specs into resolved jobs and runs them, locally or on a cluster.

Every front end (maelstrom-run, the test runners) talks to one ``Client``. It owns the named
containers, the layer builder (one build per distinct layer spec, memoised for the client's
life) and the digest → file map of everything it built. Jobs go to a ``JobRunner``: the
embedded local worker (standalone mode, and local-only jobs in cluster mode) or a broker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from ._broker_client import UploadProgress, open_broker_runner
from ._config import BrokerAddress
from ._job import JobOutcome, JobSpec, JobState, LayerRef, TtySpec, WindowSize
from ._layer_spec import LayerSpec
from .errors import ArtifactError, MaelstromError
from .executor import DEFAULT_CACHE_SIZE, DEFAULT_INLINE_LIMIT, Executor
from .layers import BuiltLayer, LayerBuilder
from .preflight import check_host
from .specs import CollapsedJob, ContainerSpec, ContainerStore
from .specs import JobSpec as UserJobSpec

__all__ = ["Client", "ClientSettings", "JobRunner", "open_client"]

log = logging.getLogger(__name__)

StateCallback = Callable[[JobState], None]


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where a client works and how its local worker is sized.

    Args:
        project_dir: relative layer paths and bind mount sources are relative to this.
        cache_dir: the client cache: manifests, file digests, library listings and, under
            ``local-worker/``, the local worker's layer cache.
        environment: what ``$env{...}`` in job environments reads (the client's own).
        template_vars: values of ``<name>`` in layer paths (cargo: ``build-dir``).
    """

    project_dir: Path
    cache_dir: Path
    slots: int = field(default_factory=lambda: os.cpu_count() or 1)
    cache_size: int = DEFAULT_CACHE_SIZE
    inline_limit: int = DEFAULT_INLINE_LIMIT
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    template_vars: Mapping[str, str] = field(default_factory=dict)


class JobRunner(Protocol):
    """Where resolved jobs run: the local worker, or a cluster through a broker."""

    async def run(
        self,
        spec: JobSpec,
        artifacts: Mapping[bytes, Path],
        on_state: StateCallback,
        tty_fd: int | None = None,
    ) -> JobOutcome: ...


class _LocalArtifacts:
    """The local worker reads artifacts straight from the client's files; nothing is copied."""

    def __init__(self, paths: Mapping[bytes, Path]) -> None:
        self._paths = paths

    async def fetch(self, digest: bytes) -> Path:
        try:
            return self._paths[digest]
        except KeyError:
            raise ArtifactError(f"artifact {digest.hex()} is not known to this client") from None


class _LocalRunner:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def run(
        self,
        spec: JobSpec,
        artifacts: Mapping[bytes, Path],
        on_state: StateCallback,
        tty_fd: int | None = None,
    ) -> JobOutcome:
        return await self._executor.run(
            spec, _LocalArtifacts(artifacts), on_state=on_state, tty_fd=tty_fd
        )


class Client:
    """Submit jobs with ``run_job``; call it from as many tasks as you like.

    Open one with ``async with open_client(settings) as client:``.
    """

    def __init__(
        self,
        settings: ClientSettings,
        local: JobRunner,
        remote: JobRunner | None,
        *,
        uploads: UploadProgress | None = None,
    ) -> None:
        self._settings = settings
        self._local = local
        self._remote = remote
        self._uploads = uploads
        self._store = ContainerStore(client_environment=settings.environment)
        self._builder = LayerBuilder(
            settings.project_dir, settings.cache_dir, settings.template_vars
        )
        # The builder is not thread-safe; one build at a time, each in a worker thread.
        self._build_lock = trio.Lock()
        self._built: dict[LayerSpec, BuiltLayer | MaelstromError] = {}
        self._building: dict[LayerSpec, trio.Event] = {}
        self._artifacts: dict[bytes, Path] = {}

    @property
    def settings(self) -> ClientSettings:
        return self._settings

    @property
    def uploads(self) -> UploadProgress | None:
        """Artifact uploads to the broker, for progress displays; ``None`` when standalone."""
        return self._uploads

    def add_containers(self, containers: Mapping[str, ContainerSpec]) -> None:
        """Name containers for later jobs; a name given again replaces the earlier one."""
        self._store.add_all(containers)

    def collapse(self, job: UserJobSpec, *, label: str | None = None) -> CollapsedJob:
        """Resolve a job's parents and environment; raises ``SpecError`` naming ``label``."""
        return self._store.collapse(job, label=label)

    async def run_job(
        self,
        job: UserJobSpec | CollapsedJob,
        *,
        label: str | None = None,
        on_state: StateCallback | None = None,
        tty: tuple[int, WindowSize] | None = None,
    ) -> JobOutcome:
        """Build the job's layers, run it, and return its outcome.

        ``tty`` gives the job a terminal: a pty slave fd and its initial size. Such a job runs
        on the local worker, whatever the mode, and its output is not captured.

        Raises:
            SpecError: the job or one of its layers is invalid (``label`` names the job).
            ArtifactError: a layer could not be built from the client's files.
        Problems of the job itself (a bad program, a timeout) are outcomes, not exceptions.
        """
        collapsed = job if isinstance(job, CollapsedJob) else self.collapse(job, label=label)
        report = on_state or _ignore
        report(JobState.WAITING_FOR_ARTIFACTS)
        layers = []
        for layer_spec in collapsed.layers:
            layers.append(await self._build(layer_spec, label))
        spec = collapsed.to_job_spec(
            tuple(layer.layer for layer in layers), project_dir=str(self._settings.project_dir)
        )
        if tty is not None:
            spec = dataclasses.replace(spec, allocate_tty=TtySpec(tty[1]))
        runner = self._local if self._remote is None or spec.must_run_locally else self._remote
        return await runner.run(spec, self._artifacts, report, None if tty is None else tty[0])

    async def build_layer(self, layer_spec: LayerSpec) -> LayerRef:
        """Build one layer (memoised); front ends use it to prepare shared layers early."""
        return (await self._build(layer_spec, None)).layer

    async def _build(self, layer_spec: LayerSpec, label: str | None) -> BuiltLayer:
        while True:
            done = self._built.get(layer_spec)
            if isinstance(done, BuiltLayer):
                return done
            if isinstance(done, MaelstromError):
                raise _labelled(done, label)
            pending = self._building.get(layer_spec)
            if pending is None:
                break
            await pending.wait()
        event = self._building[layer_spec] = trio.Event()
        try:
            async with self._build_lock:
                built = await trio.to_thread.run_sync(self._builder.build, layer_spec)
        except MaelstromError as err:
            # A bad layer stays bad for this client's life: report it for every job using it.
            self._built[layer_spec] = err
            raise _labelled(err, label) from None
        finally:
            del self._building[layer_spec]
            event.set()
        self._artifacts.update(built.artifacts)
        self._built[layer_spec] = built
        return built


def _labelled(err: MaelstromError, label: str | None) -> MaelstromError:
    if label is None:
        return err
    return type(err)(f"{label}: {err}")


def _ignore(state: JobState) -> None:
    return None


@asynccontextmanager
async def open_client(
    settings: ClientSettings, *, broker: BrokerAddress | None = None
) -> AsyncIterator[Client]:
    """A client: in cluster mode when ``broker`` is given, else standalone.

    Standalone, every job runs on the embedded local worker. In cluster mode jobs go to the
    broker, except local-only ones (bind mounts, network ``local``, a TTY), which still run on
    the local worker.

    Raises:
        HostUnsupported: standalone, and this host cannot run rootless containers.
        PeerBroken: the broker cannot be reached.
        VersionMismatch: the broker speaks another protocol version.
    """
    if broker is None:
        # Say once, up front, why containers cannot run here, instead of failing every job.
        check_host()
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    async with Executor(
        settings.cache_dir / "local-worker",
        cache_size=settings.cache_size,
        inline_limit=settings.inline_limit,
        slots=settings.slots,
    ) as executor:
        local = _LocalRunner(executor)
        if broker is None:
            yield Client(settings, local, None)
            return
        async with open_broker_runner(broker.host, broker.port) as remote:
            yield Client(settings, local, remote, uploads=remote.uploads)
