"""The framework bypass: where modelserve goes around uvicorn, Starlette and prometheus_client for speed.

- `dispatch.ExactPathDispatcher`: the hot paths are known exactly at start-up (this server's model name and
  version filled in), so one dict lookup hands a request to its endpoint; everything else (the docs, the
  OpenAPI document, other names and versions, 404/405) goes to the plain Starlette app.
- `transport.CoalescingHttpToolsProtocol`: uvicorn's httptools protocol (an internal class) with one socket
  write per response instead of two.
- `observers.fast_add` / `fast_observe`: metric updates through prometheus_client's private value objects,
  without its per-call checks.

Guards: upper version bounds on uvicorn and prometheus-client (serving-image/pyproject.toml), tests that
pin each piece against the public behaviour (tests/unit/test_modelserve_units.py), and one switch,
`MODELSERVE_FRAMEWORK_BYPASS=false`, that serves everything through the libraries' public paths instead.
"""

from __future__ import annotations

from .dispatch import ExactPathDispatcher, ExactRoute, exact_routes
from .observers import fast_add, fast_observe

__all__ = ["ExactPathDispatcher", "ExactRoute", "exact_routes", "fast_add", "fast_observe"]
