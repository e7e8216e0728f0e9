"""The seam between reconcile and the pure `desired` layer: parse, build children, compute status.

Uses `modeldeploy.desired`'s builders; a minimal local fallback (`fallback.py`) stands in for any
builder not there yet, so the I/O side can be exercised end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modeldeploy import api, desired
from modeldeploy.reconcile import fallback
from modeldeploy.reconcile.observe import Observed
from modeldeploy.settings import OperatorSettings


def build_params(settings: OperatorSettings) -> Any:
    from modeldeploy.desired.params import BuildParams

    return BuildParams(default_image=settings.serving_image)


def _field_path(loc: tuple) -> str:
    return ".".join(["spec", *(str(part) for part in loc)])


def parse_spec(body: Mapping[str, Any]) -> api.ModelDeploymentSpec:
    """The spec as pydantic, or ValueError whose message names each failing field and its rule."""
    try:
        return api.parse_spec(dict(body.get("spec") or {}))
    except ValidationError as exc:
        problems = [f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ValueError("; ".join(problems)) from None


def referenced_objects(spec: api.ModelDeploymentSpec) -> list[tuple[str, str, str]]:
    """(kind, name, reason-if-missing) of namespaced objects the pods need."""
    refs = []
    security = spec.security
    if security is not None and security.api_key_secret_ref is not None:
        refs.append(("Secret", security.api_key_secret_ref.name, "SecretNotFound"))
    uri = spec.model.uri
    if uri.startswith("pvc://"):
        claim = uri[len("pvc://") :].split("/", 1)[0]
        refs.append(("PersistentVolumeClaim", claim, "PVCNotFound"))
    return refs


def desired_children(
    body: Mapping[str, Any], spec: api.ModelDeploymentSpec, observed: Observed, settings: OperatorSettings
) -> list[dict[str, Any]]:
    build = getattr(desired, "build_children", None)
    if build is not None:
        return build(body, spec, observed, build_params(settings))
    return fallback.build_children(body, spec, observed, build_params(settings))


def computed_status(
    body: Mapping[str, Any], spec: api.ModelDeploymentSpec, observed: Observed
) -> dict[str, Any]:
    compute = getattr(desired, "compute_status", None)
    if compute is not None:
        return compute(body, spec, observed)
    return fallback.compute_status(body, spec, observed)
