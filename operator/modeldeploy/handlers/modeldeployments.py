"""ModelDeployment handlers: thin; they pick the trigger and translate outcomes to kopf's language."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from modeldeploy import api, metrics
from modeldeploy.handlers.runtime import Key, indexed, runtime_of
from modeldeploy.k8s import ApiError
from modeldeploy.reconcile import InvalidSpec, WaitingFor, json_copy, reconcile, reconcile_by_key
from modeldeploy.settings import get_settings

log = logging.getLogger(__name__)
MD = (api.GROUP, api.VERSION, api.PLURAL)
ROLLOUT_PHASES = frozenset({"Pending", "Progressing", "Paused"})


def _key(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


async def _reconcile_handler(
    body: kopf.Body, memo: kopf.Memo, kwargs: Mapping[str, Any], trigger: str
) -> None:
    runtime = runtime_of(memo)
    key = _key(body)

    async def work() -> None:
        children, pods = indexed(kwargs, key)
        await reconcile(runtime.ctx, json_copy(body), children, pods, trigger=trigger)

    try:
        await runtime.serializer.run(key, work, coalesce=False)
    except InvalidSpec as exc:
        raise kopf.PermanentError(f"InvalidSpec: {exc}") from exc
    except WaitingFor as exc:
        raise kopf.TemporaryError(f"{exc.reason}: {exc.message}", delay=exc.delay) from exc
    except ApiError as exc:
        raise kopf.TemporaryError(f"API error: {exc}", delay=5) from exc


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

    async def work() -> None:
        children, pods = indexed(kwargs, key)
        await reconcile_by_key(runtime.ctx, key[0], key[1], children, pods, trigger=trigger)

    try:
        await runtime.serializer.run(key, work)
    except (InvalidSpec, WaitingFor) as exc:
        log.debug("%s/%s not reconciled on %s: %s", *key, trigger, exc)
    except ApiError as exc:
        log.warning("%s/%s reconcile on %s failed: %s", *key, trigger, exc)


def _rollout_moving(status: Mapping[str, Any], **_: Any) -> bool:
    return status.get("phase", "Pending") in ROLLOUT_PHASES


@kopf.timer(*MD, interval=get_settings().rollout_tick_seconds, when=_rollout_moving)
async def modeldeployment_rollout_tick(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await reconcile_in_background(memo, _key(body), kwargs, "rollout")


@kopf.timer(*MD, interval=get_settings().resync_seconds, initial_delay=get_settings().resync_seconds)
async def modeldeployment_resync(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await reconcile_in_background(memo, _key(body), kwargs, "resync")


@kopf.on.event(*MD)
async def modeldeployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keeps the by-phase gauge current (without a finalizer only events tell us about deletes)."""
    runtime = runtime_of(memo)
    key = _key(body)
    if type == "DELETED":
        runtime.phases.pop(key, None)
        runtime.serializer.forget(key)
    else:
        runtime.phases[key] = (body.get("status") or {}).get("phase") or "Pending"
    metrics.set_phase_counts(runtime.phases.values())
