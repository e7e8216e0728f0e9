"""One JSON line per prediction on stdout: sampled, with configurable field redaction.

Lines are gathered in memory and written as whole lines in chunks of at most PIPE_BUF bytes: one write per
~10 lines instead of one per line, and a pipe write of at most PIPE_BUF bytes is atomic, so several worker
processes never interleave within a line. The buffer is written out when a chunk is full, on a short timer
(FLUSH_SECONDS, so `kubectl logs` stays near-live), before every lifecycle event, on shutdown and at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import select
import time
from typing import Any

import numpy as np
import orjson

REDACTED = "[REDACTED]"
FLUSH_SECONDS = 0.1
CHUNK_BYTES = select.PIPE_BUF  # 4096 on Linux: the size up to which a pipe write is atomic


def redact(records: list[dict[str, Any]], fields: frozenset[str]) -> list[dict[str, Any]]:
    """Replace the values of the named fields (pure)."""
    if not fields:
        return records
    return [{k: (REDACTED if k in fields else v) for k, v in rec.items()} for rec in records]


def rows_as_records(rows: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]] | list[Any]:
    if rows.ndim == 2 and names and rows.shape[1] == len(names):
        return [dict(zip(names, row)) for row in rows.tolist()]  # noqa: B905 - widths checked above
    return rows.tolist()


def _json_ready(array: np.ndarray) -> Any:
    """orjson writes contiguous numeric arrays itself (the same digits as the response); others as lists."""
    if array.dtype.kind in "fiub" and array.dtype.isnative and array.flags.c_contiguous:
        return array
    return array.tolist()


def outputs_as_json(outputs: dict[str, np.ndarray], fields: frozenset[str]) -> dict[str, Any]:
    if not fields:
        return {k: _json_ready(v) for k, v in outputs.items()}
    return {k: (REDACTED if k in fields else _json_ready(v)) for k, v in outputs.items()}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LineBuffer:
    """Whole lines kept in memory, written in chunks of at most CHUNK_BYTES (a longer line goes alone)."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lines: list[bytes] = []
        self._size = 0

    def add(self, line: bytes) -> None:
        if self._size + len(line) > CHUNK_BYTES:
            self.flush()
        self._lines.append(line)
        self._size += len(line)

    def flush(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        with contextlib.suppress(OSError):  # a closed stdout must never fail a prediction
            _write_all(self.fd, data)

    @property
    def pending(self) -> int:
        return len(self._lines)


LINES = LineBuffer(1)  # stdout of this process (each worker process has its own)
atexit.register(LINES.flush)


class RequestLogger:
    def __init__(
        self,
        sample_rate: float,
        redact_fields: frozenset[str],
        labels: dict[str, str],
        lines: LineBuffer = LINES,
        payloads: bool = False,
    ):
        self.sample_rate = sample_rate
        self.payloads = payloads  # inputs and outputs are logged only when asked for
        self.redact_fields = redact_fields
        self.lines = lines
        # The fields every line shares, serialised once: each line is this prefix plus its own fields.
        constant = {
            "event": "prediction",
            "model": labels["model"],
            "version": labels["version"],
            "revision": labels["revision"],
            "color": labels["color"],
            "pid": os.getpid(),
        }
        self._prefix = orjson.dumps(constant)[:-1] + b","

    def sampled(self, status: int) -> bool:
        """Errors are always logged; successes at the configured rate."""
        return status >= 400 or self.sample_rate >= 1.0 or random.random() < self.sample_rate

    def log(
        self,
        request_id: str,
        route: str,
        status: int,
        latency_s: float,
        inputs: np.ndarray | None,
        feature_names: tuple[str, ...],
        outputs: dict[str, np.ndarray] | None,
        error: str | None,
        key_id: str | None,
        protocol: str = "http",
    ) -> None:
        record: dict[str, Any] = {
            "ts": time.time(),
            "level": "info" if status < 500 else "error",
            "request_id": request_id,
            "route": route,
            "status": status,
            "latency_ms": round(latency_s * 1000, 3),
        }
        if protocol != "http":
            record["protocol"] = protocol  # gRPC calls log the route of their REST equivalent
        if key_id:
            record["api_key"] = key_id
        if inputs is not None:
            record["rows"] = len(inputs)
        if not self.payloads:
            inputs = outputs = None
        if inputs is not None:
            as_records = rows_as_records(inputs, feature_names)
            if self.redact_fields and as_records and isinstance(as_records[0], dict):
                as_records = redact(as_records, self.redact_fields)  # type: ignore[arg-type]
            record["inputs"] = as_records
        if outputs is not None:
            record["outputs"] = outputs_as_json(outputs, self.redact_fields)
        if error:
            record["error"] = error
        try:
            body = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a dtype orjson does not write natively: plain lists, as a fallback
            if outputs is not None:
                fields = self.redact_fields
                record["outputs"] = {k: REDACTED if k in fields else v.tolist() for k, v in outputs.items()}
            try:
                body = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE, default=str)
            except TypeError:  # a log line must never fail a prediction
                return
        self.lines.add(self._prefix + body[1:])


def log_event(event: str, **fields: Any) -> None:
    """Server lifecycle events (start, ready, draining) in the same JSON shape, written at once."""
    record = {"ts": time.time(), "level": fields.pop("level", "info"), "event": event, **fields}
    LINES.add(orjson.dumps(record, default=str) + b"\n")
    LINES.flush()


async def flush_periodically(lines: LineBuffer = LINES, every: float = FLUSH_SECONDS) -> None:
    """Buffered lines reach stdout within `every` seconds even when traffic is too light to fill a chunk."""
    import asyncio

    while True:
        await asyncio.sleep(every)
        lines.flush()
