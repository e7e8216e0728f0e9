"""Kubernetes resource quantities ('500m', '1Gi') as numbers, through the client library's own parser."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import quantity


def parse_quantity(value: Any) -> Decimal | None:
    """A quantity ('500m', '1Gi', 2) as a number, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        parsed = quantity.parse_quantity(value)
    except (ValueError, ArithmeticError):
        return None
    return parsed if parsed.is_finite() else None  # Decimal also reads "NaN" and "Infinity"
