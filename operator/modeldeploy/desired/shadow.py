"""The shadow phase, pure: the gate's decision on the figures the active colour counted, and the
ConfigMap that tells modelserve where to copy requests.

Public: ``judge_shadow(wanted, figures, elapsed_seconds)``, ``ShadowDecision``, ``Verdict``,
``shadow_id(state)``, ``build_shadow_config(md, spec, status)``,
``shadow_config_child(md, spec, status, observed_children)``, ``shadow_config_name(name)``,
``SHADOW_CONFIG_KEY``, ``SHADOW_CHECK_INTERVAL_SECONDS``.

Why a ConfigMap: it is mounted (optional) into every pod of both colours from the start, and modelserve
re-reads the file when it changes, so switching the copy on, off or to the other colour is a write to one
object the ModelDeployment owns -- never a change of a pod template (no restart, no new revision), and it
reaches every worker of every pod (an admin request would reach one worker of one pod, and be lost on a
restart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modeldeploy.api import ModelDeploymentSpec, ModelDeploymentStatus, RolloutPhase, RolloutState, Shadow
from modeldeploy.api import ShadowFigures as Figures
from modeldeploy.desired.children import SERVICE_PORT
from modeldeploy.desired.naming import object_meta, service_names

SHADOW_CONFIG_KEY = "shadow.json"
SHADOW_CHECK_INTERVAL_SECONDS = 5.0
SHADOW_COPY_TIMEOUT_SECONDS = 5.0


class Verdict(StrEnum):
    wait = "wait"  # keep copying
    passed = "passed"  # enough rows, enough agreement: on to the traffic steps
    failed = "failed"  # enough rows, too little agreement: abort
    hold = "hold"  # inconclusive after maxSeconds: a person decides


@dataclass(frozen=True)
class ShadowDecision:
    verdict: Verdict
    message: str


def _figures_text(figures: Figures) -> str:
    share = f" ({figures.agreement:.1%})" if figures.agreement is not None else ""
    return (
        f"{figures.agreed}/{figures.compared} rows agreed{share}; {figures.dropped} copies dropped, "
        f"{figures.errors} without a usable answer"
    )


def judge_shadow(wanted: Shadow, figures: Figures, elapsed_seconds: float) -> ShadowDecision:
    """The gate on what the active pods counted so far (pure). Held stays held: a person decides."""
    text = _figures_text(figures)
    if not figures.held and figures.compared >= wanted.min_requests:
        agreement = figures.agreed / figures.compared
        if agreement < wanted.min_agreement:
            return ShadowDecision(
                Verdict.failed, f"shadow disagreement: {text}, below minAgreement {wanted.min_agreement:.1%}"
            )
        return ShadowDecision(
            Verdict.passed, f"shadow agreement: {text} (minAgreement {wanted.min_agreement:.1%})"
        )
    if figures.held or elapsed_seconds >= wanted.max_seconds:
        return ShadowDecision(
            Verdict.hold,
            f"shadow inconclusive after {wanted.max_seconds}s: {text}, minRequests is {wanted.min_requests}; "
            "promote to go on to the steps or abort",
        )
    return ShadowDecision(Verdict.wait, f"shadowing {wanted.percent:g}% of requests: {text}")


def with_agreement(figures: Figures) -> Figures:
    agreement = figures.agreed / figures.compared if figures.compared else None
    return figures.model_copy(update={"agreement": agreement})


def shadow_id(state: RolloutState) -> str:
    """Names one shadow phase (colour, revision, start): the metrics of an earlier phase never count."""
    started = int(state.phase_started_at.timestamp()) if state.phase_started_at else 0
    color = state.color.value if state.color else ""
    return f"{color}-{state.revision or ''}-{started:x}"


def shadow_config_name(name: str) -> str:
    return f"{name}-shadow"


def _token(md: Mapping[str, Any], phase_id: str) -> str:
    # Marks copies for the candidate; model clients know neither the object's uid nor the phase id.
    uid = (md.get("metadata") or {}).get("uid") or ""
    return hashlib.sha256(f"{uid}/{phase_id}".encode()).hexdigest()[:32]


def shadow_settings(
    md: Mapping[str, Any], spec: ModelDeploymentSpec, status: ModelDeploymentStatus
) -> dict[str, Any]:
    """What modelserve reads: enabled only while the rollout is in its shadow phase."""
    state = status.rollout
    wanted = spec.rollout.shadow
    if wanted is None or state is None or state.phase != RolloutPhase.Shadowing or state.color is None:
        return {"enabled": False}
    meta = md["metadata"]
    phase_id = shadow_id(state)
    service = service_names(meta["name"])[state.color.value]
    return {
        "enabled": True,
        "id": phase_id,
        "url": f"http://{service}.{meta['namespace']}.svc:{SERVICE_PORT}",
        "percent": wanted.percent,
        "token": _token(md, phase_id),
        "relativeTolerance": wanted.relative_tolerance,
        "absoluteTolerance": wanted.absolute_tolerance,
        "timeoutSeconds": SHADOW_COPY_TIMEOUT_SECONDS,
    }


def build_shadow_config(
    md: Mapping[str, Any], spec: ModelDeploymentSpec, status: ModelDeploymentStatus
) -> dict[str, Any]:
    """The ConfigMap mounted into every serving pod (both colours) at modelserve's shadow path."""
    name = shadow_config_name(md["metadata"]["name"])
    settings = shadow_settings(md, spec, status)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(md, name, "shadow"),
        "data": {SHADOW_CONFIG_KEY: json.dumps(settings, sort_keys=True, separators=(",", ":"))},
    }


def shadow_config_child(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed_children: Mapping[tuple[str, str], Any],
) -> dict[str, Any] | None:
    """The ConfigMap when the spec wants a shadow phase, or one exists (then it is switched off, so a
    spec that dropped the shadow phase mid-way stops the copies)."""
    name = shadow_config_name(md["metadata"]["name"])
    if spec.rollout.shadow is None and ("ConfigMap", name) not in observed_children:
        return None
    return build_shadow_config(md, spec, status)
