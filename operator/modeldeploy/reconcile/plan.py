"""Pure decisions: compare desired children with what exists and say create, update, unchanged or delete.

Two checks make "nothing to change writes nothing" hold without fighting the API server:
- the hash of the desired manifest, stored on the child, changes when *we* want something different
  (including a field we stopped setting, which a subset check cannot see);
- a subset check - every field we set has the value we set - catches someone else editing the child,
  while ignoring server-side defaults and fields others own (they are simply not in the desired manifest).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.k8s import parse_quantity

APPLIED_HASH_ANNOTATION = "modeldeploy.io/applied-hash"


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"


@dataclass(frozen=True)
class Step:
    action: Action
    kind: str
    name: str
    manifest: dict | None  # what to apply (None for unchanged/delete)
    why: str = ""


ChildKey = tuple[str, str]  # (kind, name)


def key_of(manifest: Mapping[str, Any]) -> ChildKey:
    return manifest["kind"], manifest["metadata"]["name"]


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A short, stable digest of a manifest (key order does not matter)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_applied_hash(manifest: dict) -> dict:
    """A copy of the manifest carrying its own hash, so the next compare knows what we last applied."""
    digest = manifest_hash(manifest)
    stamped = json.loads(json.dumps(manifest))
    stamped.setdefault("metadata", {}).setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest
    return stamped


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # The API server normalises quantities ("1000m" comes back as "1").
    want_q, have_q = parse_quantity(want), parse_quantity(have)
    return (
        want_q is not None
        and want_q == have_q
        and isinstance(want, str | int)
        and isinstance(have, str | int)
    )


def first_difference(want: Any, have: Any, path: str = "") -> str | None:
    """The path of the first field we set that the live object does not have as set, else None."""
    if have is None and want in ("", [], {}, False, 0):
        return None  # the API server omits empty values (omitempty): absent is what we asked for
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return path or "."
        for key, value in want.items():
            if value is None:
                continue
            found = first_difference(value, have.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return path
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            found = first_difference(w, h, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if _same_scalar(want, have) else path


def plan_child(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> Step:
    """One child: create when missing; update when we changed our mind or someone edited it; else nothing."""
    kind, name = key_of(desired)
    stamped = with_applied_hash(dict(desired))
    if live is None:
        return Step(Action.CREATE, kind, name, stamped, "missing")
    applied = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    if applied != stamped["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]:
        return Step(Action.UPDATE, kind, name, stamped, "desired state changed")
    drifted = first_difference(desired, live)
    if drifted:
        return Step(Action.UPDATE, kind, name, stamped, f"edited outside the operator at {drifted}")
    return Step(Action.UNCHANGED, kind, name, None)


def plan_children(
    desired: Iterable[Mapping[str, Any]], live: Mapping[ChildKey, Mapping[str, Any]]
) -> list[Step]:
    """Every desired child planned against the live ones; live children no longer desired are deleted."""
    steps = []
    wanted: set[ChildKey] = set()
    for manifest in desired:
        key = key_of(manifest)
        wanted.add(key)
        steps.append(plan_child(manifest, live.get(key)))
    for kind, name in sorted(set(live) - wanted):
        steps.append(Step(Action.DELETE, kind, name, None, "no longer desired"))
    return steps


OWNER_KIND = "ModelDeployment"
OWNER_API_GROUP = "modeldeploy.io/"


class Claim(enum.StrEnum):
    FREE = "free"  # no such object: ours to create
    OURS = "ours"  # controlled by this ModelDeployment
    ADOPT = "adopt"  # left by a deleted ModelDeployment of the same name: ours to take back
    CONFLICT = "conflict"  # someone else's: never written


def controller_ref(live: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with controller=true, if any."""
    for ref in (live.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return ref
    return None


def claim(live: Mapping[str, Any] | None, parent_uid: str, parent_name: str) -> Claim:
    """Whether this ModelDeployment may write a child over `live` (None: it does not exist)."""
    if live is None:
        return Claim.FREE
    ref = controller_ref(live)
    if ref is None:
        return Claim.CONFLICT
    if ref.get("kind") != OWNER_KIND or not str(ref.get("apiVersion", "")).startswith(OWNER_API_GROUP):
        return Claim.CONFLICT
    if ref.get("uid") == parent_uid:
        return Claim.OURS
    # Names are unique in a namespace: another uid under this parent's name is a deleted namesake.
    return Claim.ADOPT if ref.get("name") == parent_name else Claim.CONFLICT


def owner_text(live: Mapping[str, Any]) -> str:
    ref = controller_ref(live)
    if ref is None:
        return "no owner"
    return f"owner {ref.get('kind')} {ref.get('name')}"


def name_conflicts(
    steps: Iterable[Step], live: Mapping[ChildKey, Mapping[str, Any]], parent_uid: str, parent_name: str
) -> list[str]:
    """One line per object a write or delete step would take from someone else, naming it and its owner."""
    found = []
    for step in steps:
        if step.action == Action.UNCHANGED:
            continue
        existing = live.get((step.kind, step.name))
        if claim(existing, parent_uid, parent_name) == Claim.CONFLICT:
            assert existing is not None
            found.append(
                f"{step.kind} {step.name} exists and is not controlled by this ModelDeployment "
                f"({owner_text(existing)})"
            )
    return found


def conflict_message(conflicts: list[str]) -> str:
    return "; ".join(conflicts) + "; delete or rename it, or rename this ModelDeployment"
