"""API keys from a mounted file (reloaded when it changes) and a per-key token bucket."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from dataclasses import dataclass

from .errors import RateLimited, Unauthorized


def parse_key_file(text: str) -> list[str]:
    """One key per line; blank lines and '#' comments ignored; surrounding whitespace stripped (pure)."""
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


def key_id(key: str) -> str:
    """A loggable, non-secret name for a key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def extract_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class ApiKeys:
    """A missing file means auth is off; once seen, a vanished file keeps the last keys (fail closed)."""

    RECHECK_SECONDS = 1.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._digests: dict[bytes, str] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.enabled = False
        self.reload_if_changed(force=True)

    def reload_if_changed(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.RECHECK_SECONDS:
            return
        self._checked = now
        try:
            st = os.stat(self.path)  # follows the ..data symlink Kubernetes swaps on Secret updates
        except OSError:
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as fh:
                keys = parse_key_file(fh.read())
        except OSError:
            return
        self._stamp = stamp
        self._digests = {hashlib.sha256(k.encode()).digest(): key_id(k) for k in keys}
        self.enabled = True

    def authenticate(self, presented: str | None) -> str | None:
        """Returns the key id, None when auth is off; raises Unauthorized otherwise."""
        self.reload_if_changed()
        if not self.enabled:
            return None
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, kid in self._digests.items():  # compare against every key: no early exit
            if hmac.compare_digest(known, digest):
                found = kid
        if found is None:
            raise Unauthorized("invalid API key")
        return found


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when allowed, else seconds until a token is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Per-key (or per-client when auth is off) token buckets, per worker process."""

    MAX_BUCKETS = 10_000

    def __init__(self, rps: float, burst: int, refusal: str = "rate limit exceeded") -> None:
        self.rps = rps
        self.burst = float(burst or max(1, math.ceil(rps)))
        self.refusal = refusal
        self._buckets: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rps > 0

    def check(self, who: str) -> None:
        now = time.monotonic()
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[who] = TokenBucket(self.rps, self.burst, self.burst, now)
        wait = bucket.take(now)
        if wait:
            retry = max(1, math.ceil(wait))
            raise RateLimited(f"{self.refusal} ({self.rps:g} requests/s, burst {self.burst:g})", retry)


def auth_failure_limiter(rps: float, burst: int) -> RateLimiter:
    """Failed key attempts per client address: a valid key is checked first, so it is never refused here."""
    return RateLimiter(rps, burst, "too many failed API-key attempts from this address")
