"""Connection guard: deadlines for a request's headers and body, and a cap on open connections.

uvicorn has neither: its keep-alive timer is reset by every byte and only runs between requests, so a
client that trickles a header or a body byte now and then holds a connection (and its buffer) forever.
The guard is a mixin over uvicorn's httptools protocol. Each connection only notes its phase and when the
phase began (no timer per request on the hot path); one sweep per process, a few times a second, answers
408 and closes what is past its deadline. Past the connection cap, a new connection closes the one that
has been idle longest (else the oldest still sending its request; else the new one itself).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .bypass.transport import CoalescingHttpToolsProtocol

# Phases of a connection. IDLE: between requests (uvicorn's keep-alive timeout applies). CONNECTED: open,
# no byte of a request yet. HEADERS / BODY: receiving them (deadlines apply). ANSWERING: the app has it.
IDLE, CONNECTED, HEADERS, BODY, ANSWERING = "idle", "connected", "headers", "body", "answering"


@dataclass(frozen=True)
class GuardLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024

    @property
    def tick(self) -> float:
        """How often the sweep runs: a quarter of the shortest deadline, at most once a second."""
        return min(1.0, self.header_timeout / 4, self.body_timeout / 4)


def overdue(phase: str, since: float, now: float, limits: GuardLimits) -> str | None:
    """Which deadline a connection in `phase` since `since` has missed at `now`, if any (pure)."""
    if phase in (CONNECTED, HEADERS) and now - since > limits.header_timeout:
        return (
            f"request headers not received within {limits.header_timeout:g}s "
            "(MODELSERVE_HEADER_TIMEOUT_SECONDS)"
        )
    if phase == BODY and now - since > limits.body_timeout:
        return f"request body not received within {limits.body_timeout:g}s (MODELSERVE_BODY_TIMEOUT_SECONDS)"
    return None


def eviction_candidate(connections: Iterable[tuple[str, float]]) -> int | None:
    """Index of the connection to close for a newcomer: idle longest, else the oldest still sending its
    request; never one the app is answering (pure)."""
    best: tuple[int, float, int] | None = None
    for index, (phase, since) in enumerate(connections):
        if phase == ANSWERING:
            continue
        rank = 0 if phase == IDLE else 1
        if best is None or (rank, since) < best[:2]:
            best = (rank, since, index)
    return None if best is None else best[2]


def timeout_response(message: str) -> bytes:
    body = orjson.dumps({"error": message})
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


class Sweeper:
    """One per server (process): closes connections past a deadline, a few times a second."""

    def __init__(self, connections: set[Any], limits: GuardLimits, loop: asyncio.AbstractEventLoop) -> None:
        self.connections = connections
        self.limits = limits
        self.task = loop.create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.limits.tick)
            now = loop.time()
            for conn in list(self.connections):
                phase = getattr(conn, "guard_phase", None)
                if phase is None:
                    continue
                reason = overdue(phase, conn.guard_since, now, self.limits)
                if reason is not None:
                    conn.guard_timeout(reason)


_sweepers: weakref.WeakKeyDictionary[Any, Sweeper] = weakref.WeakKeyDictionary()


class GuardMixin:
    """Put before an HttpToolsProtocol subclass; `limits` comes as a keyword argument (functools.partial)."""

    guard_phase: str
    guard_since: float

    def __init__(self, *args: Any, limits: GuardLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard_limits = limits

    def _enter(self, phase: str) -> None:
        self.guard_phase = phase
        self.guard_since = self.loop.time()  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._enter(CONNECTED)
        super().connection_made(transport)  # type: ignore[misc]
        state = self.server_state  # type: ignore[attr-defined]
        if state not in _sweepers:
            _sweepers[state] = Sweeper(self.connections, self.guard_limits, self.loop)  # type: ignore[attr-defined]
        if len(self.connections) > self.guard_limits.max_connections:  # type: ignore[attr-defined]
            self._make_room()

    def _make_room(self) -> None:
        others = [c for c in self.connections if c is not self and hasattr(c, "guard_phase")]  # type: ignore[attr-defined]
        index = eviction_candidate((c.guard_phase, c.guard_since) for c in others)
        victim = self if index is None else others[index]
        victim.guard_phase = ANSWERING  # closed now: the sweep leaves it alone
        victim.transport.close()

    def on_message_begin(self) -> None:
        self._enter(HEADERS)
        super().on_message_begin()  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        self._enter(BODY)
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        self.guard_phase = ANSWERING
        super().on_message_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        if self.guard_phase == ANSWERING:
            self.guard_phase = IDLE
        elif (
            self.guard_phase == HEADERS
        ):  # pipelined behind this answer (reading paused): its clock starts now
            self._enter(HEADERS)
        super().on_response_complete()  # type: ignore[misc]

    def guard_timeout(self, reason: str) -> None:
        """408 unless nothing was sent at all or a response has begun; then close."""
        transport = self.transport  # type: ignore[attr-defined]
        cycle = self.cycle  # type: ignore[attr-defined]
        phase = self.guard_phase
        if phase == HEADERS and cycle is not None and not cycle.response_complete:
            return  # pipelined behind an answer still being written: the wait is ours, not the client's
        self.guard_phase = ANSWERING
        if transport.is_closing():
            return
        # In BODY, `cycle` is this request's: its app may have answered early (413, 401) and stopped reading.
        answered = phase == BODY and cycle is not None and cycle.response_started
        if phase != CONNECTED and not answered:
            transport.write(timeout_response(reason))
        if cycle is not None:
            cycle.keep_alive = False
            cycle.disconnected = True  # whatever the app still sends for this request goes nowhere
        transport.close()


class GuardedHttpToolsProtocol(GuardMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol under the guard (MODELSERVE_FRAMEWORK_BYPASS=false)."""


class GuardedCoalescingProtocol(GuardMixin, CoalescingHttpToolsProtocol):
    """The coalescing protocol of the framework bypass under the guard."""


def guarded_protocol(framework_bypass: bool, limits: GuardLimits) -> Any:
    """The `http` option for uvicorn: a protocol factory that pickles (multi-worker mode spawns)."""
    base = GuardedCoalescingProtocol if framework_bypass else GuardedHttpToolsProtocol
    return functools.partial(base, limits=limits)
