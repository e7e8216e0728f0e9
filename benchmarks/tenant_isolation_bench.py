"""Slow checks of some tenants do not delay the others: N ModelDeployments whose live-evaluation data sets
trickle (a real local HTTP server sending a byte at a time, never finishing within the read deadline), and
one unrelated ModelDeployment whose spec changes; prints how long each change takes to reach its Deployment.

    .venv/bin/python benchmarks/tenant_isolation_bench.py [--tenants 30] [--rounds 5]
        [--operator-env MODELDEPLOY_MAX_CONCURRENT_RECONCILES=8]

Target: every change applied within 10 s while all the tenants' checks are reading (the figure goes in the
notes; no test asserts on time). A smaller MODELDEPLOY_MAX_CONCURRENT_RECONCILES than the number of tenants
shows the worst case: a pass waiting on a data set must not hold a place other passes need.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.cluster import start_private_cluster
from harness.operator import (
    OperatorProcess,
    create_operator_identity,
    create_peering,
    install_crds,
    is_ready,
    model_deployment,
)

TRICKLE_INTERVAL = 0.5  # seconds between bytes: the read deadline (30 s) ends each check, not the data


class TrickleHandler(BaseHTTPRequestHandler):
    """A CSV that never finishes: headers at once, then one byte every TRICKLE_INTERVAL."""

    started = 0

    def do_GET(self) -> None:
        type(self).started += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.end_headers()
        try:
            self.wfile.write(b"a,b,y\n")
            while True:
                self.wfile.write(b"1")
                self.wfile.flush()
                time.sleep(TRICKLE_INTERVAL)
        except OSError:
            return  # the operator gave up (its deadline): fine

    def log_message(self, *_: object) -> None:
        pass


def start_trickle_server() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def tenant(name: str, namespace: str, dataset_url: str) -> dict:
    evaluation = {
        "datasetUri": f"{dataset_url}/{name}.csv",
        "labelColumn": "y",
        "metric": "accuracy",
        "threshold": 0.5,
        "intervalSeconds": 60,
    }
    return model_deployment(name, namespace, replicas=1, monitoring={"evaluation": evaluation})


def get(cluster, *args: str) -> dict | None:
    found = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def wait_until(done, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if done():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--operator-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tenant-bench-"))
    cluster, delete_cluster = start_private_cluster(f"modeldeploy-tenants-{uuid.uuid4().hex[:4]}", workdir)
    server, dataset_url = start_trickle_server()
    try:
        run(cluster, workdir, args, dataset_url)
    finally:
        server.shutdown()
        delete_cluster()


def run(cluster, workdir: Path, args: argparse.Namespace, dataset_url: str) -> None:
    namespace = f"tenants-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    install_crds(cluster)
    create_peering(cluster, namespace)
    identity = create_operator_identity(cluster, namespace, workdir)
    names = [f"tenant-{i}" for i in range(args.tenants)]
    # The probes reach the tenants' "pods" at the trickling server; being a configured address, the same
    # host may also serve their data sets (the operator's own test address map is trusted).
    addresses = {f"{namespace}/{name}": {"blue": [dataset_url], "green": [dataset_url]} for name in names}
    env = {
        "MODELDEPLOY_PROBE_ADDRESSES": json.dumps(addresses),
        "MODELDEPLOY_LOG_LEVEL": "WARNING",
        **dict(e.split("=", 1) for e in args.operator_env),
    }
    operator = OperatorProcess(identity, namespace, workdir / "operator.log", extra_env=env).start()
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            tenant(name, namespace, dataset_url) for name in names] + [
            model_deployment("unrelated", namespace, replicas=1)]}))  # fmt: skip
        # Passes that hold their place while they read let only some tenants start: measure anyway.
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: TrickleHandler.started >= args.tenants, 120, "every tenant's evaluation reading"
            )
        print(
            f"{TrickleHandler.started} of {args.tenants} tenants' evaluations are reading trickling data sets"
        )
        wait_until(lambda: is_ready(get(cluster, "md", "unrelated", "-n", namespace)), 60, "unrelated Ready")
        took = []
        for round_ in range(1, args.rounds + 1):
            replicas = 1 + round_ % 2 + 1  # 3, 2, 3, ...: a change every round
            changed = model_deployment("unrelated", namespace, replicas=replicas)
            cluster.kubectl("apply", "-f", "-", input=json.dumps(changed))
            seconds = wait_until(
                lambda r=replicas: (
                    (get(cluster, "deployment", "unrelated-blue", "-n", namespace) or {})
                    .get("spec", {})
                    .get("replicas")
                    == r
                ),
                120,
                "the unrelated change applied",
            )
            took.append(seconds)
            print(f"round {round_}: unrelated spec change applied to its Deployment in {seconds:.2f} s")
        print(
            f"apply -> Deployment with {args.tenants} trickling tenants: "
            f"median {statistics.median(took):.2f} s, max {max(took):.2f} s (target < 10 s); "
            f"data-set reads started: {TrickleHandler.started}"
        )
    finally:
        operator.stop()


if __name__ == "__main__":
    main()
