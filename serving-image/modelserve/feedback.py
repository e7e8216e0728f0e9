"""Late labels: signed prediction ids, the feedback request's validation, and the window they are scored in.

A prediction id is a token the server signs (HMAC-SHA256 with the ModelDeployment's signing key): it carries
what was predicted per row, the revision and the API key that made it, a nonce and an expiry. Any worker of
any pod holding the same key verifies it and scores a label without a shared store.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import itertools
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .errors import BadRequest, ModelServeError

TOKEN_PREFIX = "mp1"
MAC_BYTES = 16
MAX_TOKEN_CHARS = 16_384
MAX_ITEMS = 1000


class Forbidden(ModelServeError):
    status_code = 403


@dataclass(frozen=True)
class Prediction:
    """What a verified prediction id says."""

    revision: str
    key_id: str
    expires: int
    nonce: str
    predicted: list[Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def first_column(predicted: np.ndarray) -> np.ndarray:
    """Each row's first value, contiguous (orjson serialises only C-contiguous arrays; a column of a
    wider output, such as a SavedModel's scores, is a strided view)."""
    return np.ascontiguousarray(predicted.reshape(len(predicted), -1)[:, 0])


class PredictionSigner:
    """Mints and verifies prediction ids for one process (the nonce: a random prefix and a counter)."""

    def __init__(self, secret: bytes, revision: str, ttl_seconds: float, max_rows: int) -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self.revision = revision
        self.ttl_seconds = ttl_seconds
        self.max_rows = max_rows
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def _mac(self, payload: bytes) -> bytes:
        mac = self._keyed.copy()  # the key's two blocks are hashed once, not per answer
        mac.update(payload)
        return mac.digest()[:MAC_BYTES]

    def mint(self, predicted: np.ndarray, key_id: str | None, now: float | None = None) -> str | None:
        """The id of one answer; None past MODELSERVE_FEEDBACK_MAX_ROWS rows (an id carries every row)."""
        if len(predicted) > self.max_rows:
            return None
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        nonce = f"{self._prefix}{next(self._counter):x}"
        payload = orjson.dumps(
            [self.revision, key_id or "", expires, nonce, first_column(predicted)],
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        return f"{TOKEN_PREFIX}.{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: Any, where: str, now: float | None = None) -> Prediction:
        """The prediction a token names; BadRequest naming `where` when it is not one of ours or expired."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise BadRequest(f"{where}.id: must be a prediction id (the X-Prediction-ID of an answer)")
        prefix, _, rest = token.partition(".")
        body, _, mac = rest.partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            payload, given = b"", b""
        if prefix != TOKEN_PREFIX or not hmac.compare_digest(given, self._mac(payload)):
            raise BadRequest(f"{where}.id: unknown prediction id (not made by this model deployment)")
        revision, key_id, expires, nonce, predicted = orjson.loads(payload)
        if (time.time() if now is None else now) > expires:
            raise BadRequest(
                f"{where}.id: the prediction id has expired (ids are valid for "
                f"{self.ttl_seconds:g}s, MODELSERVE_FEEDBACK_TTL_SECONDS)"
            )
        return Prediction(revision, key_id, expires, nonce, predicted)


@dataclass(frozen=True)
class Label:
    """One label for one row of one verified prediction."""

    prediction: Prediction
    row: int
    label: Any
    item: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.prediction.nonce, self.row)


def feedback_items(doc: Any) -> list[dict[str, Any]]:
    """`{"feedback": [...]}`, a list, or one `{id, label}` object (pure)."""
    items = doc.get("feedback", doc) if isinstance(doc, dict) and "feedback" in doc else doc
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise BadRequest('feedback: expected {"id": ..., "label": ...} or a non-empty list of them')
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"feedback: {len(items)} items; at most {MAX_ITEMS} per request")
    return items


def check_label(value: Any, classes: dict[str, Any] | None, where: str) -> Any:
    """The label as the model predicts it: one of the classes, or a finite number for a regressor (pure)."""
    if classes is not None:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise BadRequest(f"{where}: a label must be a class name or number, not {type(value).__name__}")
        known = classes.get(str(value))
        if known is None:
            shown = list(classes)[:20]
            raise BadRequest(f"{where}: unknown class {str(value)[:64]!r}; the model's classes: {shown}")
        return known
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where}: a regression label must be a finite number, not {type(value).__name__}")
    return float(value)


def read_labels(
    doc: Any, signer: PredictionSigner, classes: dict[str, Any] | None, key_id: str | None
) -> list[Label]:
    """Every item verified (id, key, row, label) or a 400/403 naming the first bad one; nothing half-taken."""
    labels: list[Label] = []
    for i, item in enumerate(feedback_items(doc)):
        where = f"feedback[{i}]"
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequest(f"{where}: expected an object with 'id' and 'label' (or 'labels')")
        prediction = signer.verify(item["id"], where)
        if prediction.key_id != (key_id or ""):
            raise Forbidden(
                f"{where}.id: the prediction was made with another API key; send its label with "
                "the key that asked for it"
            )
        rows = len(prediction.predicted)
        if "labels" in item:
            given = item["labels"]
            if not isinstance(given, list) or len(given) != rows:
                raise BadRequest(f"{where}.labels: expected a list of {rows} labels, one per predicted row")
            pairs = list(enumerate(given))
        elif "label" in item:
            row = item.get("row", 0)
            if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < rows:
                raise BadRequest(f"{where}.row: must be an integer from 0 to {rows - 1}")
            pairs = [(row, item["label"])]
        else:
            raise BadRequest(f"{where}: expected 'label' (one row) or 'labels' (one per row)")
        for row, value in pairs:
            labels.append(Label(prediction, row, check_label(value, classes, f"{where}.label[{row}]"), i))
    return labels


class SeenLabels:
    """Labelled (id, row) pairs of this worker process, the oldest forgotten past `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    def first_duplicate(self, labels: Iterable[Label]) -> Label | None:
        batch: set[tuple[str, int]] = set()
        for label in labels:
            if label.key in self._seen or label.key in batch:
                return label
            batch.add(label.key)
        return None

    def remember(self, labels: Iterable[Label]) -> None:
        for label in labels:
            self._seen[label.key] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
