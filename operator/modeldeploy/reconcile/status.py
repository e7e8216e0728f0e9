"""Pure status bookkeeping around the computed status: diff, keep transition times, name the Events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keys in status that belong to kopf's own bookkeeping, never compared or removed by us.
FOREIGN_STATUS_KEYS = frozenset({"kopf"})
WARNING_REASONS = frozenset(
    {
        "InvalidSpec", "SecretNotFound", "PVCNotFound", "CrashLoopBackOff", "OOMKilled", "ImagePullBackOff",
        "ErrImagePull", "ModelLoadFailed", "ChecksumMismatch", "Error", "Failed", "ProgressDeadlineExceeded",
        "Aborted",
    }
)  # fmt: skip


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


def transition_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
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
        events.append(("Warning" if bad else "Normal", reason, message))
    old_phase, new_phase = (old or {}).get("phase"), new.get("phase")
    if new_phase and new_phase != old_phase and not events:
        events.append(("Normal", f"Phase{new_phase}", f"phase {old_phase or 'none'} -> {new_phase}"))
    return events
