"""One JSON line per prediction on stdout: sampled, with configurable field redaction.

Lines go out with a single os.write so several worker processes never interleave within a line.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any

import numpy as np
import orjson

REDACTED = "[REDACTED]"


def redact(records: list[dict[str, Any]], fields: frozenset[str]) -> list[dict[str, Any]]:
    """Replace the values of the named fields (pure)."""
    if not fields:
        return records
    return [{k: (REDACTED if k in fields else v) for k, v in rec.items()} for rec in records]


def rows_as_records(rows: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]] | list[Any]:
    if rows.ndim == 2 and names and rows.shape[1] == len(names):
        return [dict(zip(names, row, strict=True)) for row in rows.tolist()]
    return rows.tolist()


def outputs_as_json(outputs: dict[str, np.ndarray], fields: frozenset[str]) -> dict[str, Any]:
    return {k: (REDACTED if k in fields else v.tolist()) for k, v in outputs.items()}


class RequestLogger:
    def __init__(
        self, sample_rate: float, redact_fields: frozenset[str], labels: dict[str, str], fd: int = 1
    ):
        self.sample_rate = sample_rate
        self.redact_fields = redact_fields
        self.labels = labels
        self.fd = fd
        self.pid = os.getpid()

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
    ) -> None:
        record: dict[str, Any] = {
            "ts": time.time(),
            "level": "info" if status < 500 else "error",
            "event": "prediction",
            "request_id": request_id,
            "model": self.labels["model"],
            "version": self.labels["version"],
            "revision": self.labels["revision"],
            "color": self.labels["color"],
            "route": route,
            "status": status,
            "latency_ms": round(latency_s * 1000, 3),
            "pid": self.pid,
        }
        if key_id:
            record["api_key"] = key_id
        if inputs is not None:
            as_records = rows_as_records(inputs, feature_names)
            if as_records and isinstance(as_records[0], dict):
                as_records = redact(as_records, self.redact_fields)  # type: ignore[arg-type]
            record["inputs"] = as_records
        if outputs is not None:
            record["outputs"] = outputs_as_json(outputs, self.redact_fields)
        if error:
            record["error"] = error
        with contextlib.suppress(OSError, TypeError):  # a log line must never fail a prediction
            os.write(self.fd, orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def log_event(event: str, **fields: Any) -> None:
    """Server lifecycle events (start, ready, draining) in the same JSON shape."""
    record = {"ts": time.time(), "level": fields.pop("level", "info"), "event": event, **fields}
    os.write(1, orjson.dumps(record, default=str) + b"\n")
