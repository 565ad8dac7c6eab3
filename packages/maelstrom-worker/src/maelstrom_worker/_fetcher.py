"""Artifacts from the broker into local files, each checked against its SHA-256 before use.

A ``Fetcher`` keeps a small pool of artifact-fetch connections to one broker (at most
``max_fetches`` transfers at once, each on a connection of its own, reused afterwards). A
``JobArtifacts`` is the ``ArtifactSource`` the executor gets for one job: the files it fetched
are deleted when the job is done with them, since by then the cache has its own copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Final

import trio

from maelstrom_core.digest import Sha256
from maelstrom_core.errors import (
    ArtifactError,
    ConnectionClosed,
    DigestMismatch,
    MaelstromError,
    PeerBroken,
    ProtocolError,
)
from maelstrom_core.net import MessageStream, open_message_stream
from maelstrom_core.proto import FetchRequest, FetchResponse, Hello, Role

__all__ = ["DEFAULT_MAX_FETCHES", "Fetcher", "JobArtifacts"]

log = logging.getLogger(__name__)

# The original fetches one artifact at a time; a few in parallel hide per-transfer latency
# without letting one worker hog the broker's disk.
DEFAULT_MAX_FETCHES: Final = 4


class _HashingWriter:
    """A file that hashes what is written to it (the network layer writes from a thread)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.hasher = Sha256()
        self.name = getattr(file, "name", "artifact file")

    def write(self, data: bytes | bytearray) -> int:
        self.hasher.update(bytes(data))
        return self._file.write(data)


class Fetcher:
    """Fetches artifacts from the broker at ``host:port`` into ``directory``.

    Use as ``async with Fetcher(...) as fetcher:``; leaving closes the pooled connections.
    """

    def __init__(
        self, host: str, port: int, directory: Path, *, max_fetches: int = DEFAULT_MAX_FETCHES
    ) -> None:
        self._host = host
        self._port = port
        self._directory = directory
        self._limiter = trio.CapacityLimiter(max_fetches)
        self._idle: list[MessageStream] = []
        self.fetched_bytes = 0
        self.fetches = 0

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        idle, self._idle = self._idle, []
        for stream in idle:
            await trio.aclose_forcefully(stream)

    async def fetch_into(self, digest: bytes, path: Path) -> None:
        """Fetch ``digest`` into a new file at ``path``, verified; ``path`` is gone on error.

        Raises:
            DigestMismatch: the bytes the broker sent do not hash to ``digest``.
            ArtifactError: the broker does not have it, the connection failed during the
                transfer, or the file could not be written.
        """
        name = digest.hex()
        async with self._limiter:
            stream = self._idle.pop() if self._idle else None
            try:
                if stream is None:
                    stream = await open_message_stream(
                        self._host, self._port, Hello(Role.ARTIFACT_FETCH)
                    )
                size = await self._request(stream, digest)
                actual = await self._receive(stream, size, path)
            except BaseException as error:
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                if isinstance(error, (PeerBroken, ProtocolError, ConnectionClosed)):
                    raise ArtifactError(f"cannot fetch artifact {name}: {error}") from error
                if isinstance(error, OSError):
                    raise ArtifactError(
                        f"cannot write artifact {name} to {path}: {error.strerror or error}"
                    ) from error
                raise
            self._idle.append(stream)
        if actual != digest:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise DigestMismatch(
                f"artifact {name} from broker at {self._host}:{self._port} has SHA-256 "
                f"{actual.hex()}; refusing to use it"
            )
        self.fetches += 1
        self.fetched_bytes += size

    async def _request(self, stream: MessageStream, digest: bytes) -> int:
        await stream.send(FetchRequest(digest))
        reply = await stream.receive()
        if not isinstance(reply, FetchResponse):  # the stream's direction allows nothing else
            raise ProtocolError(f"{stream.peer} answered a fetch with {type(reply).__name__}")
        if reply.error is not None or reply.size is None:
            raise _BrokerRefused(f"broker cannot send artifact {digest.hex()}: {reply.error}")
        return reply.size

    async def _receive(self, stream: MessageStream, size: int, path: Path) -> bytes:
        # Opening and closing are quick, but ASYNC rules keep even those off the event loop.
        file = await trio.to_thread.run_sync(_open_new, path)
        try:
            writer = _HashingWriter(file)
            await stream.receive_bytes_into_file(size, writer)  # type: ignore[arg-type]
        finally:
            await trio.to_thread.run_sync(file.close)
        return writer.hasher.digest()


class _BrokerRefused(ArtifactError):
    """The broker answered with an error (and closes the connection)."""


def _open_new(path: Path) -> BinaryIO:
    return open(path, "xb")


class JobArtifacts:
    """One job's ``ArtifactSource``: fetched files live until ``cleanup``."""

    def __init__(self, fetcher: Fetcher, directory: Path) -> None:
        self._fetcher = fetcher
        self._directory = directory
        self._files: list[Path] = []

    async def fetch(self, digest: bytes) -> Path:
        path = self._directory / f"fetch-{uuid.uuid4().hex}"
        self._files.append(path)
        try:
            await self._fetcher.fetch_into(digest, path)
        except MaelstromError as error:
            log.warning("%s", error)
            raise
        return path

    def cleanup(self) -> None:
        """Delete what this job fetched; the cache copied or extracted it already."""
        files, self._files = self._files, []
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
