"""Argo CD's Lua (health checks, resource actions) run as Argo CD runs them, Lua 5.1 in its sandbox, and
the test cases in Argo CD's format beside them (argocd/health_test.yaml, argocd/actions/action_test.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
ACTIONS = ARGOCD / "actions"
HEALTH_TESTS = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
ACTION_TESTS = yaml.safe_load((ACTIONS / "action_test.yaml").read_text())


def load(directory: Path, relative: str) -> dict:
    return yaml.safe_load((directory / relative).read_text())


# Argo CD's sandbox (util/lua/lua.go, runLua): only the package, base and table libraries, and a safe os
# module with time and date reached only through require("os") -- OpenSafeOs registers them under `table`,
# so the global `os` is nil, which the real Argo CD showed (tests/gitops/test_argocd_sync.py).
SANDBOX = """
local time, date = os.time, os.date
package.loaded["os"] = nil
package.preload["os"] = function() return {time = time, date = date} end
os, io, debug, string, math, coroutine = nil, nil, nil, nil, nil, nil
"""


def run_lua(path: Path, obj: dict):
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(SANDBOX)
    lua.globals()["obj"] = lua.table_from(obj, recursive=True)
    return lua.execute(path.read_text())


def lua_to_python(value: Any, like: Any = None) -> Any:
    """A Lua table as JSON-like Python; an empty table becomes [] where the input had a list (as Argo CD's
    cleanReturnedObj does: Lua cannot tell an empty array from an empty object)."""
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if not items:
        return [] if isinstance(like, list) else {}
    if all(isinstance(k, int) for k in items):
        keys = sorted(items)
        return [lua_to_python(items[k], like[i] if isinstance(like, list) and i < len(like) else None)
                for i, k in enumerate(keys)]  # fmt: skip
    like = like if isinstance(like, dict) else {}
    return {k: lua_to_python(v, like.get(k)) for k, v in items.items()}
