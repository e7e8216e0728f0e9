"""Names, labels, selectors and owner references shared by every child object.

Public: ``child_name(name, suffix)``, ``deployment_name(name, color)``, ``service_names(name)``,
``labels(md, component, color=None, revision=None, version=None)``, ``selector(name, color=None)``,
``owner_reference(md)``, ``object_meta(md, name, component, ...)``, ``inherited_labels(md)``;
label keys ``LABEL_NAME`` (modeldeploy.io/name), ``LABEL_COLOR``, ``LABEL_REVISION``.

Children never carry ``app.kubernetes.io/instance`` nor any ``argocd.argoproj.io/*`` key: Argo CD tracks
applications through those, and a child carrying them would look like a stray resource of some Application
(and be pruned). Our own selector label is ``modeldeploy.io/name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.api import API_VERSION, KIND

LABEL_NAME = "modeldeploy.io/name"
LABEL_COLOR = "modeldeploy.io/color"
LABEL_REVISION = "modeldeploy.io/revision"
ANNOTATION_REVISION = "modeldeploy.io/revision"
MANAGED_BY = "modeldeploy"
# Keys a GitOps tool uses to track its own objects: never copied from the parent.
_TRACKING_PREFIXES = ("argocd.argoproj.io/", "app.kubernetes.io/instance", "kapp.k14s.io/", "fluxcd.io/")
_TRACKING_KEYS = {"kubectl.kubernetes.io/last-applied-configuration"}


def child_name(name: str, suffix: str = "") -> str:
    return f"{name}-{suffix}" if suffix else name


def deployment_name(name: str, color: str) -> str:
    return child_name(name, str(color))


def service_names(name: str) -> dict[str, str]:
    """Role -> Service name: stable, preview, blue, green."""
    return {"stable": name, "preview": f"{name}-preview", "blue": f"{name}-blue", "green": f"{name}-green"}


def _is_tracking(key: str) -> bool:
    return key in _TRACKING_KEYS or key.startswith(_TRACKING_PREFIXES)


def inherited_labels(md: Mapping[str, Any]) -> dict[str, str]:
    """The parent's labels that children may carry (team, cost centre...), tracking labels removed."""
    parent = (md.get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in parent.items() if not _is_tracking(k) and not k.startswith("app.kubernetes.io/")}


def selector(name: str, color: str | None = None) -> dict[str, str]:
    sel = {LABEL_NAME: name}
    if color:
        sel[LABEL_COLOR] = str(color)
    return sel


def _label_value(value: str) -> str:
    # Label values: at most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends.
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return cleaned.strip("-_.")


def labels(
    md: Mapping[str, Any],
    component: str,
    color: str | None = None,
    revision: str | None = None,
    version: str | None = None,
    inherit: bool = True,
) -> dict[str, str]:
    """`inherit=False` for pod templates: relabelling the parent must never restart serving pods."""
    name = md["metadata"]["name"]
    out = {
        **(inherited_labels(md) if inherit else {}),
        "app.kubernetes.io/name": "modelserve",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": _label_value(name),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector(name, color),
    }
    if version:
        out["app.kubernetes.io/version"] = _label_value(version)
    if revision:
        out[LABEL_REVISION] = revision
    return out


def owner_reference(md: Mapping[str, Any]) -> dict[str, Any]:
    meta = md["metadata"]
    return {
        "apiVersion": md.get("apiVersion", API_VERSION),
        "kind": md.get("kind", KIND),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    md: Mapping[str, Any],
    name: str,
    component: str,
    *,
    color: str | None = None,
    revision: str | None = None,
    version: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": md["metadata"]["namespace"],
        "labels": labels(md, component, color=color, revision=revision, version=version),
        "ownerReferences": [owner_reference(md)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
