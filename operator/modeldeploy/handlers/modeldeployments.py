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
from modeldeploy.reconcile import InvalidSpec, PassOutcome, WaitingFor, json_copy, reconcile, reconcile_by_key

log = logging.getLogger(__name__)
MD = (api.GROUP, api.VERSION, api.PLURAL)
# Phases where time alone moves things (steps, pauses, deadlines): a safety tick while in them. Pending is
# not one: it waits for pods, whose events trigger reconciles (and 0 replicas would tick forever).
ROLLOUT_PHASES = frozenset({"Progressing", "Paused"})


def _key(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


async def _reconcile_handler(
    body: kopf.Body, memo: kopf.Memo, kwargs: Mapping[str, Any], trigger: str
) -> None:
    runtime = runtime_of(memo)
    key = _key(body)

    async def work() -> PassOutcome:
        children, pods = indexed(kwargs, key)
        return await reconcile(runtime.ctx, json_copy(body), children, pods, trigger=trigger)

    try:
        # A new ModelDeployment's first pass goes ahead of the rest.
        outcome = await runtime.queue.run(key, work, urgent=trigger == "create", coalesce=False)
        _requeue_if_asked(memo, key, kwargs, outcome)
    except InvalidSpec as exc:
        raise kopf.PermanentError(f"InvalidSpec: {exc}") from exc
    except WaitingFor as exc:
        raise kopf.TemporaryError(f"{exc.reason}: {exc.message}", delay=exc.delay) from exc
    except ApiError as exc:
        raise kopf.TemporaryError(f"API error: {exc}", delay=5) from exc


def _requeue_if_asked(memo: Any, key: Key, kwargs: Mapping[str, Any], outcome: PassOutcome | None) -> None:
    """Look again later when the pass asked (a pause, a scale-down delay, an evaluation interval) or a
    rollout is moving (a safety tick; pod and Deployment events usually come first)."""
    if outcome is None:
        return
    delay = outcome.requeue_after
    if outcome.phase in ROLLOUT_PHASES:
        tick = runtime_of(memo).ctx.settings.rollout_tick_seconds
        delay = tick if delay is None else min(delay, tick)
    if delay is not None:
        runtime_of(memo).queue.add_after(
            key, delay, lambda: reconcile_in_background(memo, key, kwargs, "requeue")
        )


def first_sight_trigger(body: Mapping[str, Any]) -> str:
    """kopf remembers what it handled in memory only (handled.py): after a restart or a failover every
    ModelDeployment is new to it. One we already gave a status is resumed, not created."""
    return "resume" if (body.get("status") or {}).get("observedGeneration") is not None else "create"


@kopf.on.create(*MD)
async def modeldeployment_create(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _reconcile_handler(body, memo, kwargs, first_sight_trigger(body))


@kopf.on.update(*MD)
async def modeldeployment_update(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _reconcile_handler(body, memo, kwargs, "update")


async def reconcile_in_background(
    memo: Any, key: Key, kwargs: Mapping[str, Any], trigger: str, *, urgent: bool = False
) -> None:
    """For triggers that are not the ModelDeployment's own handlers: coalesced, errors logged not raised
    (the next event, the rollout timer or the resync retries). `urgent` passes go ahead of the others."""
    runtime = runtime_of(memo)

    async def work() -> PassOutcome | None:
        children, pods = indexed(kwargs, key)
        return await reconcile_by_key(runtime.ctx, key[0], key[1], children, pods, trigger=trigger)

    try:
        _requeue_if_asked(memo, key, kwargs, await runtime.queue.run(key, work, urgent=urgent))
    except (InvalidSpec, WaitingFor) as exc:
        log.debug("%s/%s not reconciled on %s: %s", *key, trigger, exc)
    except ApiError as exc:
        log.warning("%s/%s reconcile on %s failed: %s", *key, trigger, exc)
    except Exception:  # one object's failure never stops the loop that called (resync, requeue, control)
        metrics.ERRORS.labels(error="BackgroundPass").inc()
        log.exception("%s/%s reconcile on %s failed", *key, trigger)


async def resync_forever(memo: Any, indexes: Mapping[str, Any]) -> None:
    """Every resync interval, reconcile each known ModelDeployment (spread out): the drift safety net.
    A plain task rather than a kopf timer, because kopf timers put a finalizer on every object, and a
    finalizer makes `kubectl delete` hang whenever the operator is down."""
    interval = runtime_of(memo).ctx.settings.resync_seconds
    while True:
        await asyncio.sleep(interval)
        await resync_round(memo, indexes, interval)


async def resync_round(memo: Any, indexes: Mapping[str, Any], interval: float) -> int:
    """Reconcile every known ModelDeployment once, spread over `interval`; returns how many failed. A
    failure is logged and counted for its key and the round goes on: one bad object never ends the
    drift repair of the others."""
    keys = list(runtime_of(memo).phases)
    failed = 0
    for key in keys:
        try:
            await reconcile_in_background(memo, key, indexes, "resync")
        except Exception:
            failed += 1
            metrics.ERRORS.labels(error="ResyncPass").inc()
            log.exception("%s/%s: resync pass failed", *key)
        await asyncio.sleep(min(1.0, interval / max(len(keys), 1)))
    return failed


def control_pending(status: Mapping[str, Any]) -> bool:
    """A promote/abort/retry written to status.rolloutControl that the rollout has not handled yet."""
    request = (status.get("rolloutControl") or {}).get("requestId")
    return bool(request) and request != (status.get("rollout") or {}).get("handledRequestId")


@kopf.on.event(*MD)
async def modeldeployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Keeps the by-phase gauge current (without a finalizer only events tell us about deletes) and the
    body cache fresh (passes triggered by children read it, not the API), and acts on rollout control
    requests at once (they are status writes, which kopf's update handlers ignore)."""
    runtime = runtime_of(memo)
    key = _key(body)
    status = body.get("status") or {}
    if type == "DELETED":
        runtime.forget(key)
        metrics.set_phase_counts(runtime.phases.values())
        return
    runtime.ctx.cache.bodies.remember(body)
    phase = status.get("phase") or "Pending"
    if runtime.phases.get(key) != phase:
        runtime.phases[key] = phase
        metrics.set_phase_counts(runtime.phases.values())
    if type is not None and control_pending(status):
        await reconcile_in_background(memo, key, kwargs, "control")
