"""The executor end to end: real layers in a real cache, real containers."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import trio

from maelstrom_core._job import (
    ArtifactType,
    ExitCode,
    JobCompleted,
    JobError,
    JobErrorKind,
    JobSpec,
    JobState,
    LayerRef,
)
from maelstrom_core._manifest import (
    Directory,
    FileByDigest,
    InlineFile,
    ManifestEntry,
    encode_manifest,
)
from maelstrom_core.errors import ArtifactError
from maelstrom_core.executor import Executor

T = 1_705_000_271
SHELL = shutil.which("dash") or "/bin/sh"


def _can_run_containers() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urmpf", "true"], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.requires_userns,
    pytest.mark.skipif(not _can_run_containers(), reason="needs unprivileged user namespaces"),
]


def shared_libraries(binary: str) -> list[str]:
    """The absolute paths ldd lists for ``binary`` (the interpreter included)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                paths.append(word)
    return sorted(set(paths))


class Source:
    """Artifacts by digest from a directory, counting fetches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.fetches: list[bytes] = []

    def add(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        (self.root / digest.hex()).write_bytes(data)
        return digest

    async def fetch(self, digest: bytes) -> Path:
        self.fetches.append(digest)
        await trio.sleep(0)
        path = self.root / digest.hex()
        if not path.exists():
            raise ArtifactError(f"artifact {digest.hex()} was never uploaded")
        return path


def libraries_tar(source: Source) -> LayerRef:
    """A tar layer with the shell's shared libraries, at their host paths."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for lib in shared_libraries(SHELL):
            data = Path(lib).read_bytes()  # follows symlinks: libc.so.6 -> the real file
            info = tarfile.TarInfo(lib.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o755, T
            tar.addfile(info, io.BytesIO(data))
    return LayerRef(source.add(out.getvalue()), ArtifactType.TAR)


def shell_manifest(source: Source, extra: list[ManifestEntry] = ()) -> LayerRef:  # type: ignore[assignment]
    shell = Path(SHELL).read_bytes()
    blob = source.add(shell)
    entries = [
        ManifestEntry("/bin", stat.S_IFDIR | 0o755, T, 0, Directory()),
        ManifestEntry("/bin/sh", stat.S_IFREG | 0o755, T, len(shell), FileByDigest(blob)),
        ManifestEntry("/greeting", stat.S_IFREG | 0o644, T, 6, InlineFile(b"hello\n")),
        ManifestEntry("/hidden", stat.S_IFREG | 0o644, T, 3, InlineFile(b"no\n")),
        *extra,
    ]
    return LayerRef(source.add(encode_manifest(entries)), ArtifactType.MANIFEST)


def whiteout_tar(source: Source, name: str) -> LayerRef:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(f".wh.{name}")
        tar.addfile(info, io.BytesIO(b""))
    return LayerRef(source.add(out.getvalue()), ArtifactType.TAR)


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path / "artifacts")


def shell_job(layers: tuple[LayerRef, ...], script: str) -> JobSpec:
    return JobSpec(program="/bin/sh", arguments=("-c", script), layers=layers)


async def test_job_from_tar_and_manifest_layers_runs_and_prints(
    privilege: str, tmp_path: Path, source: Source
) -> None:
    layers = (libraries_tar(source), shell_manifest(source), whiteout_tar(source, "hidden"))
    states: list[JobState] = []
    async with Executor(tmp_path / "cache", slots=2) as executor:
        outcome = await executor.run(
            # Builtins only: the root holds nothing but the shell and its libraries.
            shell_job(layers, "read line < /greeting; echo $line; echo /*; echo done >&2"),
            source,
            on_state=states.append,
        )
        assert isinstance(outcome, JobCompleted), outcome
        assert outcome.status == ExitCode(0)
        greeting, listing, _ = outcome.stdout.data.decode().split("\n")
        assert greeting == "hello"
        assert "/bin" in listing.split()
        assert "/greeting" in listing.split()
        assert "/hidden" not in listing.split()  # the top layer's whiteout hides it
        assert outcome.stderr.data == b"done\n"
        assert states == [
            JobState.WAITING_FOR_ARTIFACTS,
            JobState.PENDING,
            JobState.RUNNING,
            JobState.COMPLETE,
        ]
        stats = executor.cache.statistics()
        assert stats.in_use == 0  # every layer was released after the job
        assert stats.evictable == 4  # three layers and the shell's blob


async def test_concurrent_jobs_materialise_each_artifact_once(
    privilege: str, tmp_path: Path, source: Source
) -> None:
    layers = (libraries_tar(source), shell_manifest(source))
    outcomes = []
    async with Executor(tmp_path / "cache", slots=2) as executor:

        async def one(n: int) -> None:
            outcomes.append(await executor.run(shell_job(layers, f"echo {n}"), source))

        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(one, n)
    assert sorted(o.stdout.data for o in outcomes if isinstance(o, JobCompleted)) == [
        f"{n}\n".encode() for n in range(6)
    ]
    assert len(source.fetches) == len(set(source.fetches)) == 3  # tar, manifest, shell blob


async def test_missing_artifact_is_a_system_error_outcome(tmp_path: Path, source: Source) -> None:
    missing = LayerRef(hashlib.sha256(b"never uploaded").digest(), ArtifactType.TAR)
    layers = (libraries_tar(source), missing)
    states: list[JobState] = []
    async with Executor(tmp_path / "cache", slots=1) as executor:
        outcome = await executor.run(shell_job(layers, "true"), source, on_state=states.append)
        assert executor.cache.statistics().in_use == 0
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert missing.digest.hex() in outcome.message
    assert states == [JobState.WAITING_FOR_ARTIFACTS, JobState.COMPLETE]


async def test_corrupt_artifact_is_a_system_error_outcome(tmp_path: Path, source: Source) -> None:
    layer = libraries_tar(source)
    path = source.root / layer.digest.hex()
    path.write_bytes(path.read_bytes()[:-1024] + bytes(1024) + b"tail")
    async with Executor(tmp_path / "cache", slots=1) as executor:
        outcome = await executor.run(shell_job((layer,), "true"), source)
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.SYSTEM
    assert "SHA-256" in outcome.message


async def test_missing_program_is_an_execution_error(
    privilege: str, tmp_path: Path, source: Source
) -> None:
    layers = (libraries_tar(source), shell_manifest(source))
    async with Executor(tmp_path / "cache", slots=1) as executor:
        spec = JobSpec(program="/bin/nonexistent", layers=layers)
        outcome = await executor.run(spec, source)
    assert isinstance(outcome, JobError)
    assert outcome.kind is JobErrorKind.EXECUTION


async def test_job_without_layers_is_an_execution_error(tmp_path: Path, source: Source) -> None:
    async with Executor(tmp_path / "cache") as executor:
        outcome = await executor.run(JobSpec(program="/bin/sh", layers=()), source)
    assert outcome == JobError(
        JobErrorKind.EXECUTION, "the job has no layers, so no root file system"
    )


async def test_slots_bound_running_jobs(tmp_path: Path, source: Source) -> None:
    layers = (libraries_tar(source), shell_manifest(source))
    running = 0
    peak = 0

    def track(state: JobState) -> None:
        nonlocal running, peak
        if state is JobState.RUNNING:
            running += 1
            peak = max(peak, running)
        elif state is JobState.COMPLETE:
            running -= 1

    async with Executor(tmp_path / "cache", slots=1) as executor, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(
                lambda: executor.run(shell_job(layers, "true"), source, on_state=track)
            )
    assert peak == 1


async def test_cancelled_job_releases_its_layers_after_the_process_is_gone(
    privilege: str, tmp_path: Path, source: Source
) -> None:
    layers = (libraries_tar(source), shell_manifest(source))
    async with Executor(tmp_path / "cache", slots=1) as executor:
        with trio.move_on_after(1):
            await executor.run(shell_job(layers, "while :; do :; done"), source)
        assert executor.cache.statistics().in_use == 0
    assert not os.listdir(tmp_path / "cache" / "tmp")
