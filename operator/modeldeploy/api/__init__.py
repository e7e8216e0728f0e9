"""modeldeploy.api: pydantic models of ModelDeployment (modeldeploy.io/v1alpha1) -- the single source of truth
for the CRD (``python -m modeldeploy.crdgen``). Imports nothing of ours except itself; no I/O libraries.

Public: constants ``GROUP``, ``VERSION``, ``API_VERSION``, ``KIND``, ``PLURAL``, ``SINGULAR``,
``SHORT_NAMES``, ``CRD_NAME``; ``ModelDeployment`` (apiVersion/kind/metadata/spec/status) and
``parse_spec(dict)``; everything from ``modeldeploy.api.spec`` (``ModelDeploymentSpec`` ...) and
``modeldeploy.api.status`` (``ModelDeploymentStatus``, ``RolloutState``, ``RolloutControl``, ``Color``,
``Phase``, ``RolloutPhase`` ...).
Parse with ``ModelDeploymentSpec.model_validate(body["spec"])``; dump with
``model_dump(by_alias=True, exclude_none=True, mode="json")``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeploy.api.cel import rule, validations
from modeldeploy.api.spec import *  # noqa: F403
from modeldeploy.api.spec import MAX_NAME_LENGTH, ApiModel, ModelDeploymentSpec
from modeldeploy.api.status import *  # noqa: F403
from modeldeploy.api.status import ModelDeploymentStatus

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md", "mdep"]
CRD_NAME = f"{PLURAL}.{GROUP}"


class ModelDeployment(ApiModel):
    """A model served on Kubernetes: a hardened modelserve Deployment per colour, Services, autoscaling,
    metrics and blue/green rollouts with analysis, a quality gate and rollback."""

    model_config = {
        "json_schema_extra": validations(
            rule(
                f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters so that every child name "
                "(<name>-preview, <name>-green, <name>-blue) fits the 63-character limit",
                reason="FieldValueInvalid",
            ),
            rule(
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "metadata.name must start with a letter and contain only lowercase letters, digits and '-' "
                "(it names Services, which are DNS-1035 labels)",
                reason="FieldValueInvalid",
            ),
        )
    }

    api_version: str = Field(default=API_VERSION, alias="apiVersion", description="modeldeploy.io/v1alpha1.")
    kind: str = Field(default=KIND, description="ModelDeployment.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="What to serve and how to roll it out.")
    status: ModelDeploymentStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )


def parse_spec(spec: dict[str, Any]) -> ModelDeploymentSpec:
    """Parse a spec dict (camelCase, as stored) into the model; raises pydantic.ValidationError."""
    return ModelDeploymentSpec.model_validate(spec)
