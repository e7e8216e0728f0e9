"""Owned kinds and serving pods: indexed by parent (observing costs no API call) and watched, so an
edited or deleted child, or a pod changing state, reconciles its ModelDeployment within seconds."""

from __future__ import annotations

from typing import Any

import kopf

from modeldeploy.handlers.modeldeployments import reconcile_in_background
from modeldeploy.handlers.runtime import Key, runtime_of
from modeldeploy.reconcile import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    owner_name,
    packed_child,
    packed_pod,
    pod_parent_name,
)

OURS = {MANAGED_BY_LABEL: MANAGED_BY}
DEPLOYMENTS = ("apps", "v1", "deployments")
SERVICES = ("", "v1", "services")
HPAS = ("autoscaling", "v2", "horizontalpodautoscalers")
PDBS = ("policy", "v1", "poddisruptionbudgets")
PODS = ("", "v1", "pods")


def _child_entry(body: kopf.Body, api_version: str, kind: str) -> dict[Key, str] | None:
    parent = owner_name(body)
    if parent is None:
        return None
    # apiVersion and kind set here: list responses omit them.
    return {(body["metadata"]["namespace"], parent): packed_child(body, apiVersion=api_version, kind=kind)}


@kopf.index(*DEPLOYMENTS, labels=OURS)
def deployment_index(body: kopf.Body, **_: Any) -> dict[Key, str] | None:
    return _child_entry(body, "apps/v1", "Deployment")


@kopf.index(*SERVICES, labels=OURS)
def service_index(body: kopf.Body, **_: Any) -> dict[Key, str] | None:
    return _child_entry(body, "v1", "Service")


@kopf.index(*HPAS, labels=OURS)
def hpa_index(body: kopf.Body, **_: Any) -> dict[Key, str] | None:
    return _child_entry(body, "autoscaling/v2", "HorizontalPodAutoscaler")


@kopf.index(*PDBS, labels=OURS)
def pdb_index(body: kopf.Body, **_: Any) -> dict[Key, str] | None:
    return _child_entry(body, "policy/v1", "PodDisruptionBudget")


@kopf.index(*PODS, labels=OURS)
def pod_index(body: kopf.Body, **_: Any) -> dict[Key, str] | None:
    parent = pod_parent_name(body)
    return {(body["metadata"]["namespace"], parent): packed_pod(body)} if parent else None


async def _child_changed(
    type: str | None, body: kopf.Body, memo: Any, kwargs: dict[str, Any], parent: str | None
) -> None:
    # type None is the initial listing at startup: the resume handlers already cover it.
    if type is None or parent is None:
        return
    meta = body["metadata"]
    runtime = runtime_of(memo)
    own_write = type != "DELETED" and runtime.ctx.is_own_write(
        body["kind"], meta["namespace"], meta["name"], meta.get("resourceVersion")
    )
    if own_write or type == "DELETED":
        runtime.ctx.echoed(body["kind"], meta["namespace"], meta["name"], parent)
    if own_write:
        return  # the echo of our own apply: exactly what we wrote, nothing to reconcile
    key = (meta["namespace"], parent)
    trigger = body["kind"].lower()
    runtime.coalesce(
        key,
        runtime.ctx.settings.child_event_coalesce_seconds,
        lambda: reconcile_in_background(memo, key, kwargs, trigger),
    )


@kopf.on.event(*DEPLOYMENTS, labels=OURS)
async def deployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _child_changed(type, body, memo, kwargs, owner_name(body))


@kopf.on.event(*SERVICES, labels=OURS)
async def service_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _child_changed(type, body, memo, kwargs, owner_name(body))


@kopf.on.event(*HPAS, labels=OURS)
async def hpa_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _child_changed(type, body, memo, kwargs, owner_name(body))


@kopf.on.event(*PDBS, labels=OURS)
async def pdb_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _child_changed(type, body, memo, kwargs, owner_name(body))


@kopf.on.event(*PODS, labels=OURS)
async def pod_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _child_changed(type, body, memo, kwargs, pod_parent_name(body))
