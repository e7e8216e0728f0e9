"""Write status: the last step of a pass, and the pure bookkeeping around it (diff, keep transition
times, name and fold the Events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modeldeploy.desired.rollout import KubeEvent
from modeldeploy.k8s import ApiError

if TYPE_CHECKING:
    from modeldeploy.reconcile.core import Context

# Keys in status that belong to kopf's own bookkeeping, never compared or removed by us.
FOREIGN_STATUS_KEYS = frozenset({"kopf"})
WARNING_REASONS = frozenset(
    {
        "InvalidSpec", "SecretNotFound", "PVCNotFound", "CrashLoopBackOff", "OOMKilled", "ImagePullBackOff",
        "ErrImagePull", "ModelLoadFailed", "WarmupFailed", "ChecksumMismatch", "Error", "Failed",
        "ProgressDeadlineExceeded", "Aborted", "NameConflict", "ApplyRejected",
    }
)  # fmt: skip


class StaleBody(ApiError):
    """The ModelDeployment changed since the body a pass planned from (its status write met a
    resourceVersion conflict): nothing was written; the pass must read it again and plan anew."""


def _conditions_by_type(status: Mapping[str, Any] | None) -> dict[str, dict]:
    return {c.get("type"): dict(c) for c in (status or {}).get("conditions") or [] if c.get("type")}


def keep_transition_times(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A condition whose status did not flip keeps its lastTransitionTime (API conventions)."""
    before = _conditions_by_type(old)
    conditions = []
    for condition in new.get("conditions") or []:
        previous = before.get(condition.get("type"))
        if (
            previous
            and previous.get("status") == condition.get("status")
            and previous.get("lastTransitionTime")
        ):
            condition = {**condition, "lastTransitionTime": previous["lastTransitionTime"]}
        conditions.append(condition)
    if "conditions" in new:
        new = {**new, "conditions": conditions}
    return new


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `old` into `new`: nested keys that vanished are set to null,
    since the API server merges nested objects and would otherwise keep them."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            if before != value:
                patch[key] = merge_patch(before, value)
        elif before != value:
            patch[key] = value
    return patch


def status_merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns old into new (None when equal); kopf's bookkeeping is left alone."""
    old = {k: v for k, v in (old or {}).items() if k not in FOREIGN_STATUS_KEYS}
    new = {k: v for k, v in new.items() if k not in FOREIGN_STATUS_KEYS}
    return merge_patch(old, new) or None


async def write_status(
    ctx: Context,
    body: Mapping[str, Any],
    new_status: dict[str, Any],
    events: Sequence[KubeEvent] = (),
) -> dict | None:
    """Patch status through the subresource only when it changed; emit the change's Events."""
    meta = body["metadata"]
    old = body.get("status") or {}
    new_status = keep_transition_times(old, new_status)
    patch = status_merge_patch(old, new_status)
    if patch is not None:
        try:
            written = await ctx.kube.patch_status(
                meta["namespace"], meta["name"], patch, resource_version=meta.get("resourceVersion")
            )
        except ApiError as exc:
            if exc.conflict:
                raise StaleBody(exc.status, exc.message, exc.reason) from exc
            raise
        ctx.cache.bodies.remember(written)
    announced = list(events)
    if patch is not None:
        reasons = {reason for _, reason, _ in announced}
        flips = [event for event in transition_events(old, new_status) if event[1] not in reasons]
        announced = events_of_change(announced, flips)
    for type_, reason, message in announced:
        await ctx.kube.emit_event(_involved(body), reason=reason, message=message, type_=type_)
    return patch


def _involved(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body["metadata"]),
    }


def one_event(transitions: list[KubeEvent]) -> list[KubeEvent]:
    """The condition flips of one status change as a single Event (a first status flips three at once;
    one Event per change keeps a burst's requests down). A Warning leads."""
    if len(transitions) <= 1:
        return transitions
    ordered = sorted(transitions, key=lambda event: event[0] != "Warning")
    type_, reason, _ = ordered[0]
    return [KubeEvent(type_, reason, "; ".join(message for _, _, message in ordered))]


def events_of_change(planned: list[KubeEvent], flips: list[KubeEvent]) -> list[KubeEvent]:
    """The Events of one status change: the rollout's own (their reasons are what users and alerts look
    for), with the Normal condition flips told in the first Normal one's message instead of an Event of
    their own. Warnings keep theirs."""
    lead = next((i for i, (type_, _, _) in enumerate(planned) if type_ == "Normal"), None)
    normal = [flip for flip in flips if flip[0] == "Normal"]
    if lead is None or not normal:
        return planned + one_event(flips)
    type_, reason, message = planned[lead]
    folded = [
        *planned[:lead],
        KubeEvent(type_, reason, "; ".join([message, *(m for _, _, m in normal)])),
        *planned[lead + 1 :],
    ]
    return folded + one_event([flip for flip in flips if flip[0] != "Normal"])


def transition_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[KubeEvent]:
    """(type, reason, message) for every condition that flipped or changed reason, and phase changes."""
    events = []
    before = _conditions_by_type(old)
    for ctype, condition in _conditions_by_type(new).items():
        previous = before.get(ctype, {})
        if (previous.get("status"), previous.get("reason")) == (
            condition.get("status"),
            condition.get("reason"),
        ):
            continue
        reason = condition.get("reason") or ctype
        bad = (ctype == "Degraded" and condition.get("status") == "True") or reason in WARNING_REASONS
        message = f"{ctype}={condition.get('status')}: {condition.get('message') or reason}"
        events.append(KubeEvent("Warning" if bad else "Normal", reason, message))
    old_phase, new_phase = (old or {}).get("phase"), new.get("phase")
    if new_phase and new_phase != old_phase and not events:
        events.append(KubeEvent("Normal", f"Phase{new_phase}", f"phase {old_phase or 'none'} -> {new_phase}"))
    return events
