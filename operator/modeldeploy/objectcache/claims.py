"""Who held each name a partial pass had yet to create, for the pass that finishes its writes."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

Holders = dict[tuple[str, str], dict[str, Any] | None]  # (kind, name) -> the live object, None when free

# How long the reads of a pass that handed its place over stand for the pass that finishes its writes: it
# comes at once, behind the passes waiting then; past this it reads again.
CARRIED_CLAIM_SECONDS = 15.0


@dataclass
class CarriedClaims:
    """Per ModelDeployment: the pass that finishes a partial pass's writes uses these instead of reading
    every name again (which doubled the reads per ModelDeployment in a burst)."""

    _kept: dict[Hashable, tuple[float, Holders]] = field(default_factory=dict)
    enabled: bool = True  # off: nothing is carried, the finishing pass reads again (to measure what it pays)

    def keep(self, key: Hashable, holders: Holders, now: float) -> None:
        if not self.enabled:
            return
        self._kept[key] = (now + CARRIED_CLAIM_SECONDS, holders)

    def take(self, key: Hashable, now: float) -> Holders:
        """The holders kept for `key` (each set is used once), or none when they are too old."""
        until, holders = self._kept.pop(key, (0.0, {}))
        return holders if now < until else {}

    def clear(self, key: Hashable) -> None:
        self._kept.pop(key, None)
