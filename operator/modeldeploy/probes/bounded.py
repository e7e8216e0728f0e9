"""Every HTTP answer the operator reads has a byte cap and a deadline, and no redirect is followed: a
hostile model server (or data set host) answering with an endless, trickling or redirecting body costs at
most the cap and the deadline, and the check gets a clear reason.

Public: ``ReadLimitExceeded`` (an ``httpx.HTTPError``, so probes already turn it into an inconclusive or
failed result), ``BoundedResponse``, ``BoundedHttp(http, deadline_seconds)`` with ``get``, ``post`` and
``request``; caps ``METRICS_MAX_BYTES``, ``SMOKE_MAX_BYTES``, ``METADATA_MAX_BYTES``, ``INFER_MAX_BYTES``,
``PROMETHEUS_MAX_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

METRICS_MAX_BYTES = 4 * 1024 * 1024  # a modelserve /metrics page is a few KiB
SMOKE_MAX_BYTES = 1024 * 1024
METADATA_MAX_BYTES = 1024 * 1024
INFER_MAX_BYTES = 16 * 1024 * 1024  # 256 rows with class probabilities fit many times over
PROMETHEUS_MAX_BYTES = 8 * 1024 * 1024
# No compression: the cap then counts what the server sent, and no small body inflates in memory.
_IDENTITY = {"Accept-Encoding": "identity"}


class ReadLimitExceeded(httpx.HTTPError):
    """An answer was larger than its cap, or did not arrive whole before its deadline."""


@dataclass(frozen=True)
class BoundedResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400


@dataclass(frozen=True)
class BoundedHttp:
    """An ``httpx.AsyncClient`` seen through caps: each call reads at most `max_bytes`, whole within
    `deadline_seconds`."""

    http: httpx.AsyncClient
    deadline_seconds: float = 10.0

    async def get(self, url: str, *, max_bytes: int, **kwargs: Any) -> BoundedResponse:
        return await self.request("GET", url, max_bytes=max_bytes, **kwargs)

    async def post(self, url: str, *, max_bytes: int, **kwargs: Any) -> BoundedResponse:
        return await self.request("POST", url, max_bytes=max_bytes, **kwargs)

    async def request(
        self, method: str, url: str, *, max_bytes: int, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> BoundedResponse:
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await self._read(method, url, max_bytes, {**_IDENTITY, **(headers or {})}, kwargs)
        except TimeoutError:
            raise ReadLimitExceeded(f"no complete answer within {self.deadline_seconds:g}s") from None

    async def _read(
        self, method: str, url: str, max_bytes: int, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> BoundedResponse:
        async with self.http.stream(
            method, url, headers=headers, follow_redirects=False, **kwargs
        ) as response:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise ReadLimitExceeded(f"the answer is larger than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ReadLimitExceeded(f"the answer is larger than {max_bytes} bytes")
            return BoundedResponse(response.status_code, response.headers, bytes(body))
