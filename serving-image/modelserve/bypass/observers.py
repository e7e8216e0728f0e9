"""prometheus_client updates without its per-call checks (its private value objects; public fallbacks)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

Add = Callable[[float], None]


def fast_add(child: Any) -> Add:
    """A counter or gauge child's own value increment, without prometheus_client's per-call checks.

    Same value object (and lock, or mmap file with several workers) as `inc`; falls back to the public
    `inc` if the library's internals ever differ.
    """
    value: Any = getattr(child, "_value", None)
    return value.inc if callable(getattr(value, "inc", None)) else child.inc


def fast_observe(child: Any) -> Add:
    """A histogram child's observe as one bisect and two increments (the public one scans every bucket)."""
    bounds: Any = getattr(child, "_upper_bounds", None)
    buckets: Any = getattr(child, "_buckets", None)
    total: Any = getattr(child, "_sum", None)
    usable = bool(bounds) and bool(buckets) and total is not None
    if not usable or len(bounds) != len(buckets) or bounds[-1] != float("inf"):
        return child.observe
    add_sum = total.inc
    bucket_adds = [bucket.inc for bucket in buckets]
    search = bisect.bisect_left

    def observe(amount: float) -> None:
        add_sum(amount)
        bucket_adds[search(bounds, amount)](1)  # the first bound >= amount, as prometheus_client picks

    return observe
