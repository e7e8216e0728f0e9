"""Exact-path dispatch in front of a Starlette app: a dict lookup instead of a walk through its routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class ExactRoute:
    methods: frozenset[str]
    path_params: Mapping[str, str]
    endpoint: ASGIApp


def exact_routes(routes: Iterable[Route], params: Mapping[str, str]) -> dict[str, ExactRoute]:
    """Each route's path template with `params` (this server's model name and version) filled in."""
    table: dict[str, ExactRoute] = {}
    for route in routes:
        names = [name for name in params if "{" + name + "}" in route.path]
        path = route.path
        for name in names:
            path = path.replace("{" + name + "}", params[name])
        table[path] = ExactRoute(
            frozenset(route.methods or ()), {name: params[name] for name in names}, route.endpoint
        )
    return table


class ExactPathDispatcher:
    """HTTP requests for an exact path and method go straight to the endpoint; all else to `fallback`."""

    def __init__(self, routes: dict[str, ExactRoute], fallback: ASGIApp) -> None:
        self.routes = routes
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get(scope["path"])
            if route is not None and scope["method"] in route.methods:
                scope["path_params"] = route.path_params
                await route.endpoint(scope, receive, send)
                return
        await self.fallback(scope, receive, send)
