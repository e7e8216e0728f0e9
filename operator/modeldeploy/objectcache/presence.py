"""Whether something that rarely changes exists (an optional CRD), known for a while at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

# An optional CRD installed or removed is seen within a minute, at one read a minute per CRD.
PRESENCE_SECONDS = 60.0


@dataclass
class Presence:
    _known: dict[str, tuple[bool, float]] = field(default_factory=dict)
    enabled: bool = True  # off: nothing is remembered, every pass looks up (to measure what it pays)

    def known(self, name: str, now: float) -> bool | None:
        """Whether `name` exists, or None when it was not looked up within PRESENCE_SECONDS."""
        seen = self._known.get(name)
        return seen[0] if seen is not None and seen[1] > now else None

    def record(self, name: str, present: bool, now: float) -> None:
        if not self.enabled:
            return
        self._known[name] = (present, now + PRESENCE_SECONDS)
