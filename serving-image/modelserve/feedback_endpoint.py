"""POST /v2/models/{name}/feedback and /feedback: labels for earlier answers, scored into the live figures."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.types import Receive, Scope, Send

from .endpoints import (
    ServerState,
    authenticate,
    check_model,
    client_address,
    error_body,
    read_body,
    retry_after,
    send_json,
)
from .errors import BadRequest, ModelServeError
from .feedback import PredictionSigner, SeenLabels, read_labels
from .livefigures import LiveFigures, derived_exposition
from .protocols import parse_json
from .settings import Settings


class DuplicateLabel(BadRequest):
    """A row labelled before (remembered by this worker process)."""


@dataclass
class Feedback:
    """What one worker needs to mint ids and score labels."""

    signer: PredictionSigner
    classes: dict[str, Any] | None
    seen: SeenLabels
    figures: LiveFigures

    def mint(self, outputs: dict[str, np.ndarray], key_id: str | None) -> list[tuple[bytes, bytes]]:
        """The X-Prediction-ID header of one answer (none for answers with more rows than an id carries)."""
        predicted = outputs["predict"] if "predict" in outputs else next(iter(outputs.values()))
        token = self.signer.mint(predicted, key_id)
        return [] if token is None else [(b"x-prediction-id", token.encode())]

    def exposition_figures(self, families: list[Any]) -> bytes:
        return derived_exposition(families, self.classes is not None)


def signing_secret(path: str) -> bytes:
    """The deployment's signing key from its mounted file; a process-local random one when there is none
    (then ids verify only in the process that made them — one-worker local use)."""
    try:
        with open(path, "rb") as fh:
            secret = fh.read().strip()
    except OSError:
        secret = b""
    return secret or secrets.token_bytes(32)


def ensure_shared_signing_key(settings: Settings, runtime_dir: str) -> None:
    """Several workers without a mounted key: the parent writes one random key (0600) they all read."""
    if os.path.exists(settings.feedback_key_file):
        return
    path = os.path.join(runtime_dir, "signing-key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    settings.feedback_key_file = path


def build_feedback(settings: Settings, classes: list[Any] | None, registry: Any) -> Feedback:
    signer = PredictionSigner(
        signing_secret(settings.feedback_key_file),
        settings.model_revision,
        settings.feedback_ttl_seconds,
        settings.feedback_max_rows,
    )
    return Feedback(
        signer=signer,
        classes=None if classes is None else {str(c): c for c in classes},
        seen=SeenLabels(settings.feedback_seen_capacity),
        figures=LiveFigures(
            registry, settings.metric_labels, settings.feedback_window_rows, classes is not None
        ),
    )


class FeedbackEndpoint:
    """Authenticated and rate limited like inference; all items of a request are taken, or none."""

    def __init__(self, state: ServerState, feedback: Feedback, route: str) -> None:
        self.state = state
        self.feedback = feedback
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        extra: list[tuple[bytes, bytes]] = []
        try:
            scored = await self.take(scope, receive)
            status, body = 200, orjson.dumps({"scored": scored})
        except ModelServeError as err:
            self.feedback.figures.count("duplicate" if isinstance(err, DuplicateLabel) else "refused", 1)
            status, body, extra = err.status_code, error_body(err.message), retry_after(err)
        await send_json(send, status, body, [*self.state.identity, *extra])
        self.state.metrics.observe_request(self.route, status, time.perf_counter() - started)

    async def take(self, scope: Scope, receive: Receive) -> int:
        state, feedback = self.state, self.feedback
        headers = dict(scope["headers"])
        key_id = authenticate(state, scope, headers)
        if state.limiter.enabled:
            state.limiter.check(key_id or client_address(scope))
        check_model(state.settings, scope)
        body = await read_body(receive, headers, state.settings.max_body_bytes)
        labels = read_labels(parse_json(body), feedback.signer, feedback.classes, key_id)
        duplicate = feedback.seen.first_duplicate(labels)
        if duplicate is not None:
            raise DuplicateLabel(
                f"feedback[{duplicate.item}]: row {duplicate.row} of this prediction id already has a label"
            )
        feedback.seen.remember(labels)
        feedback.figures.score(labels)
        feedback.figures.count("scored", len(labels))
        return len(labels)
