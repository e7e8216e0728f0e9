"""The seam between reconcile and the pure `desired` layer: parse the spec, run one pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modeldeploy import api, desired
from modeldeploy.desired.params import BuildParams
from modeldeploy.reconcile.observe import Observed
from modeldeploy.settings import OperatorSettings


def build_params(settings: OperatorSettings) -> BuildParams:
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


@dataclass
class PassResult:
    """One pure pass: the children to apply, the status to write, Events, and when to look again."""

    children: list[dict[str, Any]]
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None
    check: Any = None


def run_pass(
    body: Mapping[str, Any],
    spec: api.ModelDeploymentSpec,
    observed: Observed,
    settings: OperatorSettings,
    results: Mapping[Any, Any] | None = None,
) -> PassResult:
    """`results`: outcomes of the check the previous call asked for (smoke, quality gate, analysis)."""
    result = desired.rollout_pass(body, spec, observed, build_params(settings), results=results)
    return PassResult(
        children=result.children,
        status=result.status,
        events=[(e.type, e.reason, e.message) for e in result.events],
        requeue_after=result.requeue_after,
        check=result.check,
    )
