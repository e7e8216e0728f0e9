"""The live rollout benchmark (benchmarks/rollout_live.py) in its quick mode, so it cannot rot: one release of
each kind on the real node, modeldeploy's with no failed request, and a table row for every kind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.cluster import REPO
from harness.realnode.pods import require_real_node

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

KINDS = ("modeldeploy blue/green", "modeldeploy 50% step + analysis", "Argo Rollouts blueGreen")


def table_rows(output: str) -> dict[str, list[str]]:
    """The benchmark's first table: release kind -> its cells (the cutover breakdown's table follows it)."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in KINDS:
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_quick_benchmark_releases_each_way_and_modeldeploy_fails_no_request(cluster):
    require_real_node()
    started = time.monotonic()
    done = subprocess.run(
        ["nice", "-n", "5", sys.executable, str(REPO / "benchmarks" / "rollout_live.py"), "--quick"],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=420,
    )
    print(f"\n{done.stdout}\nrollout_live --quick: {time.monotonic() - started:.0f}s")
    assert done.returncode == 0, done.stderr[-4000:]
    rows = table_rows(done.stdout)
    assert set(rows) == set(KINDS), done.stdout[-3000:]
    for kind in KINDS:
        runs, failed = rows[kind][0], rows[kind][1]
        assert runs == "1", rows[kind]
        if kind.startswith("modeldeploy"):
            assert failed.startswith("0 of "), (kind, rows[kind])
        assert rows[kind][2] != "- / -", (kind, "no cutover measured", rows[kind])
    # Where the cutover went: each controller's switch (last candidate pod Ready -> Service selector).
    stages = table_rows(done.stdout.split("Where the cutover went", 1)[-1])
    for kind in ("modeldeploy blue/green", "Argo Rollouts blueGreen"):
        assert stages[kind][3] != "-", (kind, "no switch measured", stages[kind])
