"""The broker's trio shell: the listener, one task pair per connection, and the scheduler's I/O.

Every connection starts with ``Hello``; its role picks the handler. Clients and workers get a
reader (messages into the scheduler) and a writer (the connection's outbox, unbounded, so the
scheduler never waits on a slow peer). Monitors, artifact pushers and fetchers are served
request by request. Whatever one peer does (garbage, a truncated or oversized frame, a reset),
only its connection ends, with one logged line; the scheduler then forgets it (a client's jobs
are cancelled, a worker's requeued).

Shutdown (a ``StopRequest``, or ``RunningBroker.request_stop``): stop accepting, tell every
client why (and every worker ``ShutDown`` when an admin asked), let those go out for a short
grace, then cancel.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from maelstrom_core.errors import (
    ArtifactError,
    DigestMismatch,
    InternalError,
    MaelstromError,
    ProtocolError,
)
from maelstrom_core.net import HELLO_TIMEOUT, MessageStream, accept_hello
from maelstrom_core.proto import (
    DEFAULT_MAX_FRAME_SIZE,
    BrokerStatistics,
    FetchRequest,
    FetchResponse,
    GeneralError,
    Message,
    PushRequest,
    PushResponse,
    Role,
    StatisticsRequest,
    StatisticsResponse,
    StopRequest,
)

from ._artifacts import ArtifactStore, open_artifact_store, read_manifest_blobs
from ._scheduler import Disconnect, Effect, Evict, ReadManifest, Scheduler, Send

__all__ = [
    "MAX_MANIFEST_READS",
    "SAMPLE_INTERVAL",
    "BrokerSettings",
    "RunningBroker",
    "serve_broker",
]

log = logging.getLogger("maelstrom_broker")

SAMPLE_INTERVAL: Final = 0.5  # seconds between statistics samples
MAX_MANIFEST_READS: Final = 16
SHUTDOWN_GRACE: Final = 2.0  # seconds for ShutDown and GeneralError to reach peers
_BACKLOG: Final = 1024
_BATCH: Final = 512  # most messages written to one peer at once


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What ``serve_broker`` needs.

    Args:
        cache_root: the artifact store's directory.
        cache_size: its soft byte target.
        port: 0 lets the OS pick.
        host: the address to listen on; ``None`` is every address (``[::]`` dual-stack when
            the host has IPv6, else ``0.0.0.0``).
    """

    cache_root: Path
    cache_size: int
    port: int = 0
    host: str | None = None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    hello_timeout: float = HELLO_TIMEOUT


class RunningBroker:
    """What ``serve_broker`` reports once it listens."""

    def __init__(
        self, host: str, port: int, scheduler: Scheduler, stop: Callable[[str, bool], None]
    ):
        self.host = host
        self.port = port
        self.scheduler = scheduler  # read it, never drive it: the server owns it
        self._stop = stop

    @property
    def address(self) -> str:
        """``host:port`` as the startup log line shows it (IPv6 hosts in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def statistics(self) -> BrokerStatistics:
        return self.scheduler.statistics()

    def request_stop(self, reason: str, *, stop_workers: bool = False) -> None:
        """Begin a clean shutdown; ``serve_broker`` returns when it is done.

        With ``stop_workers`` the workers are told to exit; otherwise they reconnect to the
        next broker on this address.
        """
        self._stop(reason, stop_workers)


class _Broker:
    """The connection registry and the scheduler's executor. Owns no tasks."""

    def __init__(
        self,
        scheduler: Scheduler,
        store: ArtifactStore,
        settings: BrokerSettings,
        manifest_requests: trio.MemorySendChannel[ReadManifest],
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.settings = settings
        self._manifest_requests = manifest_requests
        self._ids = itertools.count()
        self._outboxes: dict[int, trio.MemorySendChannel[Message]] = {}
        self._side_scopes: dict[int, trio.CancelScope] = {}  # monitors, pushers, fetchers
        self.stopping = trio.Event()
        self.stop_reason = ""
        self.stop_workers = False

    def request_stop(self, reason: str, stop_workers: bool) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stop_workers = stop_workers
            self.stopping.set()

    def begin_shutdown(self) -> None:
        self.apply(self.scheduler.shut_down(self.stop_reason, stop_workers=self.stop_workers))
        for scope in self._side_scopes.values():
            scope.cancel()

    # --- carrying out the scheduler's effects ------------------------------------------------

    def apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if type(effect) is Send:
                outbox = self._outboxes.get(effect.dest)
                if isinstance(effect.message, GeneralError):
                    log.warning("client %d: %s", effect.dest, effect.message.message)
                if outbox is not None:
                    try:
                        outbox.send_nowait(effect.message)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # that connection is ending; the scheduler hears of it soon
            elif type(effect) is Disconnect:
                outbox = self._outboxes.get(effect.dest)
                if outbox is not None:
                    outbox.close()  # its writer sends what is queued, then ends the connection
            elif type(effect) is ReadManifest:
                self._manifest_requests.send_nowait(effect)
            elif type(effect) is Evict:
                try:
                    self.store.evict(effect.digest)
                except OSError as err:
                    log.error("cannot evict artifact %s: %s", effect.digest.hex(), err)  # noqa: TRY400

    # --- background services --------------------------------------------------------------

    async def sample_statistics(self) -> None:
        while True:
            self.scheduler.sample_statistics(time.time())
            await trio.sleep(SAMPLE_INTERVAL)

    async def read_manifests(self, requests: trio.MemoryReceiveChannel[ReadManifest]) -> None:
        limiter = trio.CapacityLimiter(MAX_MANIFEST_READS)
        async with trio.open_nursery() as nursery:
            async for request in requests:
                nursery.start_soon(self._read_manifest, request, limiter)

    async def _read_manifest(self, request: ReadManifest, limiter: trio.CapacityLimiter) -> None:
        blobs: tuple[bytes, ...] | None = None
        error: str | None = None
        async with limiter:
            path = self.store.path(request.digest)
            try:
                blobs = await trio.to_thread.run_sync(read_manifest_blobs, path)
            except ArtifactError as err:
                error = str(err)
                log.error("manifest %s: %s", request.digest.hex(), error)  # noqa: TRY400
        self.apply(self.scheduler.manifest_read(request.digest, request.generation, blobs, error))

    # --- connections ----------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        conn_id = next(self._ids)
        try:
            messages, hello = await accept_hello(
                stream,
                Role,
                peer_id=conn_id,
                max_frame_size=self.settings.max_frame_size,
                timeout=self.settings.hello_timeout,
            )
        except MaelstromError as err:
            # One line per broken peer: a traceback would bury the log under other people's bugs.
            log.error("connection %d refused: %s", conn_id, err)  # noqa: TRY400
            return
        what = f"{hello.role.value} {conn_id} at {messages.peer}"
        log.info("%s connected", what)
        try:
            if hello.role is Role.CLIENT:
                await self._serve_client(messages, conn_id)
            elif hello.role is Role.WORKER:
                await self._serve_worker(messages, conn_id, hello.slots or 1)
            else:
                with trio.CancelScope() as scope:
                    self._side_scopes[conn_id] = scope
                    if self.stopping.is_set():
                        scope.cancel()
                    await self._serve_side(hello.role, messages, conn_id)
        except ProtocolError as err:
            log.error("%s: %s; closing the connection", what, err)  # noqa: TRY400
        except InternalError as err:
            log.error("%s: internal error: %s", what, err, exc_info=True)
        except MaelstromError as err:
            log.warning("%s: %s", what, err)
        except Exception as err:  # a bug: it costs this connection, never the broker
            log.error("%s: internal error: %s", what, err, exc_info=True)
        else:
            log.info("%s disconnected", what)
        finally:
            self._side_scopes.pop(conn_id, None)
            await trio.aclose_forcefully(messages)

    async def _serve_side(self, role: Role, messages: MessageStream, conn_id: int) -> None:
        if role is Role.MONITOR:
            await self._serve_monitor(messages, conn_id)
        elif role is Role.ARTIFACT_PUSH:
            await self._serve_pusher(messages)
        else:
            await self._serve_fetcher(messages)

    async def _serve_client(self, messages: MessageStream, cid: int) -> None:
        self.apply(self.scheduler.add_client(cid))
        try:
            await self._pump(messages, cid, self.scheduler.client_message)
        finally:
            self._outboxes.pop(cid, None)
            self._forget(self.scheduler.remove_client, cid)

    async def _serve_worker(self, messages: MessageStream, wid: int, slots: int) -> None:
        send, receive = trio.open_memory_channel[Message](math.inf)
        self._outboxes[wid] = send
        self.apply(self.scheduler.add_worker(wid, slots))
        try:
            await self._pump(messages, wid, self.scheduler.worker_message, (send, receive))
        finally:
            self._outboxes.pop(wid, None)
            self._forget(self.scheduler.remove_worker, wid)

    def _forget(self, remove: Callable[[int], list[Effect]], conn_id: int) -> None:
        # Runs in a finally: a bug here must cost a log line, not the whole broker.
        try:
            self.apply(remove(conn_id))
        except Exception as err:
            log.error("forgetting connection %d: internal error: %s", conn_id, err, exc_info=True)

    async def _pump(
        self,
        messages: MessageStream,
        conn_id: int,
        on_message: Callable[[int, Message], list[Effect]],
        channel: tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]]
        | None = None,
    ) -> None:
        """Feed received messages to the scheduler and send the connection's outbox, until
        the peer leaves, the connection breaks, or the scheduler disconnects it."""
        if channel is None:
            channel = trio.open_memory_channel[Message](math.inf)
            self._outboxes[conn_id] = channel[0]
        outbox = channel[1]
        failures: list[MaelstromError] = []

        async def write(cancel_scope: trio.CancelScope) -> None:
            try:
                async with outbox:
                    async for message in outbox:
                        # Everything queued meanwhile goes out in the same write.
                        batch = [message]
                        while len(batch) < _BATCH:
                            try:
                                batch.append(outbox.receive_nowait())
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                        await messages.send_many(batch)
            except MaelstromError as err:
                failures.append(err)
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, nursery.cancel_scope)
            try:
                async for message in messages:
                    self.apply(on_message(conn_id, message))
            except MaelstromError as err:
                failures.append(err)
            nursery.cancel_scope.cancel()
        if failures:
            raise failures[0]

    async def _serve_monitor(self, messages: MessageStream, conn_id: int) -> None:
        async for message in messages:
            if isinstance(message, StatisticsRequest):
                await messages.send(StatisticsResponse(self.scheduler.statistics()))
            elif isinstance(message, StopRequest):
                log.info("monitor %d asked the broker to stop", conn_id)
                self.request_stop(f"monitor {conn_id} asked the broker to stop", True)
                return

    async def _serve_pusher(self, messages: MessageStream) -> None:
        async for message in messages:
            assert isinstance(message, PushRequest)  # the stream's receive direction
            digest, size = message.digest, message.size
            try:
                tmp = await self.store.receive_upload(messages, digest, size)
            except DigestMismatch as err:
                await _try_send(messages, PushResponse(str(err)))
                raise
            if self.scheduler.is_stored(digest):
                self.store.discard(tmp)  # pushed twice at once: the first one won
            else:
                try:
                    self.store.commit(tmp, digest)
                except OSError as err:
                    self.store.discard(tmp)
                    error = ArtifactError(f"cannot store artifact {digest.hex()}: {err}")
                    await _try_send(messages, PushResponse(str(error)))
                    raise error from err
                # Registered before the acknowledgement: the client's ArtifactTransferred,
                # sent after it, must find the artifact stored.
                self.apply(self.scheduler.artifact_arrived(digest, size))
            await messages.send(PushResponse(None))

    async def _serve_fetcher(self, messages: MessageStream) -> None:
        async for message in messages:
            assert isinstance(message, FetchRequest)  # the stream's receive direction
            digest = message.digest
            if not self.scheduler.acquire_for_fetch(digest):
                error = ArtifactError(f"artifact {digest.hex()} is not held by any job")
                await _try_send(messages, FetchResponse(error=str(error)))
                raise error
            try:
                try:
                    file, size = await trio.to_thread.run_sync(self.store.open_for_fetch, digest)
                except ArtifactError as err:
                    await _try_send(messages, FetchResponse(error=str(err)))
                    raise
                with file:
                    await messages.send(FetchResponse(size=size))
                    await messages.send_bytes_from_file(file, size)
            finally:
                self.apply(self.scheduler.release_after_fetch(digest))


async def _try_send(messages: MessageStream, message: Message) -> None:
    """Tell a peer why we hang up, if it still listens; the reason is logged either way."""
    with trio.move_on_after(SHUTDOWN_GRACE):
        try:
            await messages.send(message)
        except MaelstromError:
            pass


def _listen(host: str | None, port: int) -> trio.SocketListener:
    if host is None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address: tuple[str, int] = ("0.0.0.0", port)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            address = ("::", port)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        address = (host, port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as err:
        sock.close()
        raise MaelstromError(
            f"cannot listen on {address[0]} port {port}: {err.strerror or err}"
        ) from err
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


async def serve_broker(
    settings: BrokerSettings,
    *,
    task_status: trio.TaskStatus[RunningBroker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a broker until it is asked to stop. Start it with ``nursery.start``, which gives
    the ``RunningBroker`` once it listens.

    Raises:
        ArtifactError: the artifact store cannot be opened (another broker holds it, ...).
        MaelstromError: the port cannot be listened on.

    Cancellation: cancelling it drops every connection at once; ``request_stop`` is the clean
    way, telling clients why first.
    """
    async with open_artifact_store(settings.cache_root) as store:
        scheduler = Scheduler(settings.cache_size, store.stored)
        send, receive = trio.open_memory_channel[ReadManifest](math.inf)
        broker = _Broker(scheduler, store, settings, send)
        broker.apply(scheduler.initial_evictions())
        listener = _listen(settings.host, settings.port)
        host, port = listener.socket.getsockname()[:2]
        running = RunningBroker(host, port, scheduler, broker.request_stop)
        handle: Callable[[trio.SocketStream], Awaitable[None]] = broker.handle
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as services:
                services.start_soon(broker.sample_statistics)
                services.start_soon(broker.read_manifests, receive)
                await services.start(
                    functools.partial(
                        trio.serve_listeners, handle, [listener], handler_nursery=handlers
                    )
                )
                task_status.started(running)
                await broker.stopping.wait()
                services.cancel_scope.cancel()
            log.info("shutting down: %s", broker.stop_reason)
            broker.begin_shutdown()
            handlers.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE
