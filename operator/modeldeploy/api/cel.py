"""CEL validation rules declared next to the pydantic fields they check.

Public: ``rule(expression, message, *, field_path=None, reason=None)`` -> one ``x-kubernetes-validations``
entry; ``validations(*rules)`` -> a ``json_schema_extra`` dict carrying them (crdgen copies it into the CRD).
"""

from __future__ import annotations

from typing import Any

VALIDATIONS_KEY = "x-kubernetes-validations"


def rule(
    expression: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """One CEL rule; `message` is what `kubectl apply` prints, so it names the field and the fix."""
    entry: dict[str, Any] = {"rule": expression, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """`json_schema_extra` for a model or field: the rules plus any other schema keys."""
    return {VALIDATIONS_KEY: list(rules), **extra}
