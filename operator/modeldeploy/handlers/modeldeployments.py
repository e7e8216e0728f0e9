"""ModelDeployment handlers: thin; they pick the trigger and translate outcomes to kopf's language."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from modeldeploy import api, metrics
from modeldeploy.handlers.runtime import Key, indexed, runtime_of
from modeldeploy.k8s import ApiError
from modeldeploy.reconcile import InvalidSpec, Outcome, WaitingFor, json_copy, reconcile, reconcile_by_key

log = logging.getLogger(__name__)
MD = (api.GROUP, api.VERSION, api.PLURAL)
ROLLOUT_PHASES = frozenset({"Pending", "Progressing", "Paused"})  # phases that move with time


def _key(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


async def _reconcile_handler(
    body: kopf.Body, memo: kopf.Memo, kwargs: Mapping[str, Any], trigger: str
) -> None:
    runtime = runtime_of(memo)
    key = _key(body)

    async def work() -> Outcome:
        children, pods = indexed(kwargs, key)
        return await reconcile(runtime.ctx, json_copy(body), children, pods, trigger=trigger)

    try:
        _requeue_if_asked(memo, key, kwargs, await runtime.serializer.run(key, work, coalesce=False))
    except InvalidSpec as exc:
        raise kopf.PermanentError(f"InvalidSpec: {exc}") from exc
    except WaitingFor as exc:
        raise kopf.TemporaryError(f"{exc.reason}: {exc.message}", delay=exc.delay) from exc
    except ApiError as exc:
        raise kopf.TemporaryError(f"API error: {exc}", delay=5) from exc


def _requeue_if_asked(memo: Any, key: Key, kwargs: Mapping[str, Any], outcome: Outcome | None) -> None:
    """Look again later when the pass asked (a pause, a scale-down delay, an evaluation interval) or a
    rollout is moving (a safety tick; pod and Deployment events usually come first)."""
    if outcome is None:
        return
    delay = outcome.requeue_after
    if outcome.phase in ROLLOUT_PHASES:
        tick = runtime_of(memo).ctx.settings.rollout_tick_seconds
        delay = tick if delay is None else min(delay, tick)
    if delay is not None:
        runtime_of(memo).requeue(key, delay, lambda: reconcile_in_background(memo, key, kwargs, "requeue"))


@kopf.on.create(*MD)
async def modeldeployment_create(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _reconcile_handler(body, memo, kwargs, "create")


@kopf.on.update(*MD)
async def modeldeployment_update(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _reconcile_handler(body, memo, kwargs, "update")


@kopf.on.resume(*MD)
async def modeldeployment_resume(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _reconcile_handler(body, memo, kwargs, "resume")


async def reconcile_in_background(memo: Any, key: Key, kwargs: Mapping[str, Any], trigger: str) -> None:
    """For triggers that are not the ModelDeployment's own handlers: coalesced, errors logged not raised
    (the next event, the rollout timer or the resync retries)."""
    runtime = runtime_of(memo)

    async def work() -> Outcome | None:
        children, pods = indexed(kwargs, key)
        return await reconcile_by_key(runtime.ctx, key[0], key[1], children, pods, trigger=trigger)

    try:
        _requeue_if_asked(memo, key, kwargs, await runtime.serializer.run(key, work))
    except (InvalidSpec, WaitingFor) as exc:
        log.debug("%s/%s not reconciled on %s: %s", *key, trigger, exc)
    except ApiError as exc:
        log.warning("%s/%s reconcile on %s failed: %s", *key, trigger, exc)


async def resync_forever(memo: Any, indexes: Mapping[str, Any]) -> None:
    """Every resync interval, reconcile each known ModelDeployment (spread out): the drift safety net.
    A plain task rather than a kopf timer, because kopf timers put a finalizer on every object, and a
    finalizer makes `kubectl delete` hang whenever the operator is down."""
    runtime = runtime_of(memo)
    interval = runtime.ctx.settings.resync_seconds
    while True:
        await asyncio.sleep(interval)
        keys = list(runtime.phases)
        for key in keys:
            await reconcile_in_background(memo, key, indexes, "resync")
            await asyncio.sleep(min(1.0, interval / max(len(keys), 1)))


@kopf.on.event(*MD)
async def modeldeployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keeps the by-phase gauge current (without a finalizer only events tell us about deletes)."""
    runtime = runtime_of(memo)
    key = _key(body)
    if type == "DELETED":
        runtime.forget(key)
    else:
        runtime.phases[key] = (body.get("status") or {}).get("phase") or "Pending"
    metrics.set_phase_counts(runtime.phases.values())
