"""The README's main command works: scripts/demo.py takes a model from v1 to v2 through a full rollout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_demo_rolls_a_model_from_v1_to_v2_with_real_servers_answering(cluster, namespace):
    env = {
        **cluster.env,
        "MODELDEPLOY_DEMO_NAMESPACE": namespace,
        "MODELDEPLOY_DEMO_RELEASE": "demo-e2e",
        "MODELDEPLOY_DEMO_RELEASE_NAMESPACE": f"{namespace}-system",
        "MODELDEPLOY_DEMO_CLEANUP": "1",
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    subprocess.run(["helm", "uninstall", "demo-e2e", "-n", f"{namespace}-system"], env=env, check=False)
    cluster.kubectl("delete", "namespace", f"{namespace}-system", "--wait=false", check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "rollout=QualityGate" in out
    assert '"blue": 50, "green": 50' in out  # the 50% step was applied
    assert "green=100" in out and '"outcome": "Promoted"' in out
    assert '"passed": true' in out
