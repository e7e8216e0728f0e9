"""Owned kinds and serving pods: indexed by parent (observing costs no API call) and watched, so an
edited or deleted child, or a pod changing state, reconciles its ModelDeployment within seconds.

One index and one event handler per watched kind, registered from the kind table (k8s.WATCHED_KINDS)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from modeldeploy.handlers.modeldeployments import reconcile_in_background
from modeldeploy.handlers.runtime import Key, index_id, indexed, packs_indexes, runtime_of
from modeldeploy.k8s import POD, WATCHED_KINDS, Kind
from modeldeploy.reconcile import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    json_copy,
    owner_name,
    packed_child,
    packed_pod,
    pod_completes_candidate,
    pod_parent_name,
)

OURS = {MANAGED_BY_LABEL: MANAGED_BY}


async def _child_changed(
    type: str | None, body: kopf.Body, memo: Any, kwargs: dict[str, Any], parent: str | None
) -> None:
    # type None is the initial listing at startup: the resume handlers already cover it.
    if type is None or parent is None:
        return
    meta = body["metadata"]
    runtime = runtime_of(memo)
    echoes = runtime.ctx.cache.echoes
    own_write = type != "DELETED" and echoes.is_own_write(
        body["kind"], meta["namespace"], meta["name"], meta.get("resourceVersion")
    )
    if own_write or type == "DELETED":
        echoes.echoed((meta["namespace"], parent), body["kind"], meta["name"])
    if own_write:
        return  # the echo of our own apply: exactly what we wrote, nothing to reconcile
    key = (meta["namespace"], parent)
    trigger = body["kind"].lower()
    if trigger == "pod" and _completes_candidate(runtime, key, body, kwargs):
        # The rollout waits for just this: switch now, not after the window.
        runtime.queue.add_now(key, lambda: reconcile_in_background(memo, key, kwargs, trigger, urgent=True))
        return
    runtime.queue.add_debounced(
        key,
        runtime.ctx.settings.child_event_coalesce_seconds,
        lambda: reconcile_in_background(memo, key, kwargs, trigger),
    )


def _completes_candidate(runtime: Any, key: Key, pod: Mapping[str, Any], kwargs: dict[str, Any]) -> bool:
    md = runtime.ctx.cache.bodies.get(*key)
    if md is None:
        return False
    return pod_completes_candidate(md, pod, indexed(kwargs, key)[1])


def parent_of(kind: Kind) -> Callable[[Mapping[str, Any]], str | None]:
    """Which ModelDeployment an object of `kind` belongs to."""
    # Pods are owned by ReplicaSets: their labels name the ModelDeployment.
    return pod_parent_name if kind == POD else owner_name


def index_entry(kind: Kind, body: Mapping[str, Any], *, packed: bool = True) -> str | dict[str, Any]:
    """What the index keeps of an object: its slim form packed, or (unpacked, to measure what packing
    pays) the whole body as a dict."""
    if kind == POD:
        return packed_pod(body) if packed else json_copy(body)
    # apiVersion and kind set here: list responses omit them.
    if packed:
        return packed_child(body, apiVersion=kind.api_version, kind=kind.kind)
    return {**json_copy(body), "apiVersion": kind.api_version, "kind": kind.kind}


def _watch(kind: Kind) -> None:
    """Register the index (kwarg `index_id(kind)` of every handler) and the event handler of one kind."""
    parent_of_body = parent_of(kind)
    resource = (kind.group, kind.version, kind.plural)

    def index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[Key, str | dict[str, Any]] | None:
        parent = parent_of_body(body)
        if not parent:
            return None
        packed = packs_indexes(runtime_of(memo).ctx.settings)
        return {(body["metadata"]["namespace"], parent): index_entry(kind, body, packed=packed)}

    async def changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        await _child_changed(type, body, memo, kwargs, parent_of_body(body))

    kopf.index(*resource, labels=OURS, id=index_id(kind))(index)
    kopf.on.event(*resource, labels=OURS, id=f"{kind.kind.lower()}_event")(changed)


for _kind in WATCHED_KINDS:
    _watch(_kind)
