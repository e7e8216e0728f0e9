"""Shadow copies: the active colour copies a sampled share of the requests it answered to the candidate
colour, after answering, and counts how often the candidate's answer agrees with its own.

Public: ``ShadowConfig``, ``parse_config(text)``, ``rows_agreeing(own, theirs, classifier, rtol, atol)``,
``answer_arrays(protocol, body)``, ``ShadowCopier``, ``SHADOW_HEADER``.

The operator writes the settings into a ConfigMap mounted into every pod of both colours
(``MODELSERVE_SHADOW_CONFIG_FILE``); each worker re-reads the file when its mtime changes (checked at most
once a second, off the request path), so turning the copy on or off never restarts a pod. The live answer
never waits for a copy: ``offer`` is called after the response was sent, is O(1), and drops the copy (counted)
when the bounded queue is full. A request marked with ``SHADOW_HEADER`` and the file's token is a copy:
the receiving server leaves it out of its request metrics and rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter

SHADOW_HEADER = b"x-modelserve-shadow"
RECHECK_SECONDS = 1.0
# kubelet refreshes a mounted ConfigMap on each pod at its own time: copies of a phase that this pod already
# saw end are still recognised for this long.
TOKEN_GRACE_SECONDS = 180.0
# Headers of the original request the copy keeps: how the body is framed and who the client is (the
# candidate checks the same key, so its auth and logging rules apply to the copy).
_FORWARDED = (b"content-type", b"inference-header-content-length", b"authorization", b"x-api-key")


@dataclass(frozen=True)
class ShadowConfig:
    """What the operator asks for; ``id`` names one shadow phase (the metrics' ``shadow`` label)."""

    id: str
    url: str  # the candidate colour's Service, e.g. http://iris-green.ml.svc:80
    percent: float
    token: str
    relative_tolerance: float = 0.0
    absolute_tolerance: float = 0.0
    timeout_seconds: float = 5.0


def parse_config(text: str) -> ShadowConfig | None:
    """The settings in the mounted file; None when copying is off or the file is not usable (pure)."""
    try:
        doc = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not doc.get("enabled"):
        return None
    try:
        config = ShadowConfig(
            id=str(doc["id"])[:64],
            url=str(doc["url"]).rstrip("/"),
            percent=float(doc["percent"]),
            token=str(doc["token"]),
            relative_tolerance=float(doc.get("relativeTolerance", 0.0)),
            absolute_tolerance=float(doc.get("absoluteTolerance", 0.0)),
            timeout_seconds=float(doc.get("timeoutSeconds", 5.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if (
        not config.url.startswith(("http://", "https://"))
        or not 0 < config.percent <= 100
        or not config.token
    ):
        return None
    return config


def answer_arrays(protocol: str, body: bytes) -> dict[str, np.ndarray]:
    """Output name -> array from a 200 answer body of `protocol` (records/v1 give the first output as
    ``predict``)."""
    doc = orjson.loads(body)
    if protocol == "v2":
        return {
            str(t["name"]): np.asarray(t["data"]).reshape(t["shape"])
            for t in doc.get("outputs", ())
            if isinstance(t, dict) and "name" in t
        }
    return {"predict": np.asarray(doc["predictions"])}


def rows_agreeing(
    own: Mapping[str, np.ndarray],
    theirs: Mapping[str, np.ndarray],
    classifier: bool,
    rtol: float,
    atol: float,
) -> tuple[int, int]:
    """(rows compared, rows that agree): classifiers on the predicted label, everything else within the
    tolerances (|a - b| <= atol + rtol * |a|, every value of the row). Raises ValueError when the answers
    cannot be compared (no common output, other shapes)."""
    name = (
        "predict" if "predict" in own and "predict" in theirs else next((n for n in own if n in theirs), None)
    )
    if name is None:
        raise ValueError("no output in common")
    mine, other = np.asarray(own[name]), np.asarray(theirs[name])
    if mine.shape[:1] != other.shape[:1]:
        raise ValueError(f"{mine.shape[0]} rows answered, the candidate answered {other.shape[0]}")
    rows = mine.shape[0] if mine.ndim else 1
    if rows == 0:
        return 0, 0
    if (classifier and name == "predict") or mine.dtype.kind in "OUSb" or other.dtype.kind in "OUSb":
        same = np.asarray(mine.astype(str) == other.astype(str)).reshape(rows, -1).all(axis=1)
    else:
        a = mine.astype(float).reshape(rows, -1)
        b = other.astype(float).reshape(rows, -1)
        same = (np.abs(a - b) <= atol + rtol * np.abs(a)).all(axis=1)
    return rows, int(same.sum())


@dataclass(frozen=True)
class _Copy:
    config: ShadowConfig
    path: str
    protocol: str
    body: bytes
    headers: dict[str, str]
    own: dict[str, np.ndarray]


class ShadowCopier:
    """One per worker process: the live config, the bounded queue and the senders."""

    def __init__(
        self,
        path: str,
        classifier: bool,
        labels: Mapping[str, str],
        registry: CollectorRegistry,
        queue_size: int = 64,
        senders: int = 4,
    ) -> None:
        self.path = path
        self.classifier = classifier
        self.queue_size = queue_size
        self.senders = senders
        self.config: ShadowConfig | None = None
        self.tokens: tuple[
            bytes, ...
        ] = ()  # tokens a copy may carry: the current one, and the last for a while
        self._last_token: bytes | None = None
        self._last_until = 0.0
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._queue: asyncio.Queue[_Copy] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._random = random.random
        base = list(labels)
        self._values = [labels[k] for k in base]
        self._copies = Counter(
            "modelserve_shadow_copies",
            "Shadow copies of answered requests by outcome: sent (answered by the candidate), dropped "
            "(queue full), error (no usable answer).",
            [*base, "shadow", "outcome"],
            registry=registry,
        )
        self._rows = Counter(
            "modelserve_shadow_rows",
            "Rows compared with the candidate's answer, by outcome (agreed, disagreed).",
            [*base, "shadow", "outcome"],
            registry=registry,
        )
        self._served = Counter(
            "modelserve_shadow_served",
            "Shadow copies this server answered (left out of modelserve_requests and the rate limit).",
            base,
            registry=registry,
        ).labels(*self._values)
        self.reload(force=True)

    # ------------------------------------------------------------------ config

    def reload(self, force: bool = False) -> None:
        """Re-reads the file when its mtime or size changed (kubelet swaps the ..data symlink)."""
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp = None
            self._use(None, now)
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and not force:
            self._use(self.config, now)  # lets an expired grace token go
            return
        self._stamp = stamp
        try:
            with open(self.path, encoding="utf-8") as f:
                config = parse_config(f.read(65536))
        except OSError:
            config = None
        self._use(config, now)

    def _use(self, config: ShadowConfig | None, now: float) -> None:
        old = self.config
        if old is not None and (config is None or config.token != old.token):
            self._last_token, self._last_until = old.token.encode(), now + TOKEN_GRACE_SECONDS
        self.config = config
        tokens = [config.token.encode()] if config else []
        if self._last_token is not None and now < self._last_until:
            tokens.append(self._last_token)
        self.tokens = tuple(tokens)

    def is_copy(self, headers: Mapping[bytes, bytes]) -> bool:
        """A request carrying the current token is a shadow copy (counted apart, not rate limited)."""
        mark = headers.get(SHADOW_HEADER)
        return bool(mark) and any(hmac.compare_digest(mark, token) for token in self.tokens)

    def served_copy(self) -> None:
        self._served.inc()

    # ------------------------------------------------------------------ hot path

    def offer(
        self,
        path: str,
        protocol: str,
        body: bytes,
        headers: Mapping[bytes, bytes],
        own: dict[str, np.ndarray],
        request_id: str,
    ) -> None:
        """After the live answer was sent: maybe queue a copy; never blocks, never raises."""
        config, queue = self.config, self._queue
        if config is None or queue is None or self._random() * 100 >= config.percent:
            return
        if queue.full():
            self._copies.labels(*self._values, config.id, "dropped").inc()
            return
        forwarded = {k.decode(): v.decode("latin-1") for k in _FORWARDED if (v := headers.get(k)) is not None}
        forwarded["x-request-id"] = request_id
        forwarded[SHADOW_HEADER.decode()] = config.token
        queue.put_nowait(_Copy(config, path, protocol, body, forwarded, own))

    # ------------------------------------------------------------------ background

    def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch())]
        self._tasks += [loop.create_task(self._send_forever()) for _ in range(self.senders)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            self.reload()

    async def _send_forever(self) -> None:
        assert self._queue is not None
        connection = KeepAlive()  # one connection per sender: no pool to manage
        try:
            while True:
                copy = await self._queue.get()
                try:
                    await self._send(connection, copy)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a copy must never take the sender down; counted as an error
                    connection.close()
                    self._copies.labels(*self._values, copy.config.id, "error").inc()
        finally:
            connection.close()

    async def _send(self, connection: KeepAlive, copy: _Copy) -> None:
        config = copy.config
        try:
            status, content = await asyncio.wait_for(
                connection.post(config.url, copy.path, copy.headers, copy.body), config.timeout_seconds
            )
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            connection.close()
            self._copies.labels(*self._values, config.id, "error").inc()
            return
        if status != 200:
            self._copies.labels(*self._values, config.id, "error").inc()
            return
        try:
            theirs = answer_arrays(copy.protocol, content)
            rows, agreed = rows_agreeing(
                copy.own, theirs, self.classifier, config.relative_tolerance, config.absolute_tolerance
            )
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            self._copies.labels(*self._values, config.id, "error").inc()
            return
        self._copies.labels(*self._values, config.id, "sent").inc()
        if agreed:
            self._rows.labels(*self._values, config.id, "agreed").inc(agreed)
        if rows - agreed:
            self._rows.labels(*self._values, config.id, "disagreed").inc(rows - agreed)


class KeepAlive:
    """A minimal HTTP/1.1 client on one kept-alive connection: a copy is a small POST to a modelserve that
    answers with a content-length; a general client costs several times the CPU on the active pod."""

    MAX_ANSWER_BYTES = 16 * 1024 * 1024

    def __init__(self) -> None:
        self._origin: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._origin = self._reader = self._writer = None

    async def _connect(self, origin: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._origin != origin or self._writer is None or self._writer.is_closing():
            self.close()
            if not origin.startswith("http://"):
                raise ValueError("only http:// candidates")
            host, _, port = origin[len("http://") :].partition(":")
            self._reader, self._writer = await asyncio.open_connection(host, int(port or 80))
            self._origin = origin
        assert self._reader is not None and self._writer is not None
        return self._reader, self._writer

    async def post(
        self, origin: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes]:
        reader, writer = await self._connect(origin)
        host = origin.split("://", 1)[-1]
        head = [f"POST {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError("not an HTTP/1.x answer")
        length, keep = None, True
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length is None or length > self.MAX_ANSWER_BYTES:
            raise ValueError("answer without a usable content-length")
        content = await reader.readexactly(length)
        if not keep:
            self.close()
        return int(parts[1]), content


def describe(config: ShadowConfig | None) -> dict[str, Any]:
    """For the ready log line: where copies go (never the token)."""
    if config is None:
        return {"shadow": "off"}
    return {"shadow": config.id, "shadow_url": config.url, "shadow_percent": config.percent}
