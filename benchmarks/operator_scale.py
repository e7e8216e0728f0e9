"""Operator at scale on the local control plane: time to all-Ready vs a floor, apply->Deployment latency,
memory, and writes while idle.

    .venv/bin/python benchmarks/operator_scale.py [--count 200] [--memory-count 1000] [--quiet 30]
    .venv/bin/python benchmarks/operator_scale.py --ablate all [--count 100] [--memory-count 300]

Floor: the same children (Deployments, Services...) created directly with the client, concurrently, in
the same run, just before each operator phase (every phase starts on a cluster with nothing left to delete);
then the operator creates them from ModelDeployments, twice: from one `kubectl apply -f` of
all the manifests (kubectl sends them one at a time) and from a burst of 8 client threads (harsher than
any kubectl). Prints figures and ratios (targets: time <= 2x floor, p50 apply->Deployment < 1 s, RSS
< 250 MB at 1,000, zero writes when idle).

--ablate: what each piece of the burst machinery pays. The baseline operator, then one operator with each
piece turned off (settings.disable, or the piece's own setting at 0), then the baseline again, each through
the timed phase (one `kubectl apply -f`, or the burst with --creator burst) and the memory phase; one table
with every figure and its ratio to the baseline (the mean of the two baseline runs) of the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from harness.cluster import Cluster, start_private_cluster
from harness.operator import (
    OperatorProcess,
    audit_timestamp,
    audit_writes,
    create_operator_identity,
    create_peering,
    install_crds,
    is_ready,
    model_deployment,
)
from modeldeploy import desired
from modeldeploy.desired.params import BuildParams
from modeldeploy.k8s import Kube, load_api_client
from modeldeploy.reconcile.core import parse_spec
from modeldeploy.reconcile.observe import Observed
from modeldeploy.settings import BurstPiece

IMAGE = "registry.example.internal/modelserve:e2e"
# Each piece of the burst machinery, and the operator setting that turns it off.
ABLATIONS: dict[str, dict[str, str]] = {
    **{piece: {"MODELDEPLOY_DISABLE": piece} for piece in typing.get_args(BurstPiece)},
    "child_event_coalesce": {"MODELDEPLOY_CHILD_EVENT_COALESCE_SECONDS": "0"},
    "heap_trim": {"MODELDEPLOY_HEAP_TRIM_SECONDS": "0"},
}


def new_namespace(cluster: Cluster, stem: str) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def floor_manifests(namespace: str, count: int) -> list[dict]:
    """The children the operator would create for `count` ModelDeployments, without owner references."""
    manifests = []
    for i in range(count):
        body = model_deployment(f"m{i}", namespace, replicas=1)
        body["metadata"].update(uid=str(uuid.uuid4()), generation=1)
        spec = parse_spec(body)
        children = desired.rollout_pass(body, spec, Observed(), BuildParams(default_image=IMAGE)).children
        for child in children:
            child["metadata"].pop("ownerReferences", None)  # no owner: GC would delete them
            manifests.append(child)
    return manifests


def count_ready_deployments(apps: client.AppsV1Api, namespace: str) -> int:
    items = apps.list_namespaced_deployment(namespace).items
    return sum(
        1 for d in items if (d.spec.replicas or 0) > 0 and (d.status.ready_replicas or 0) >= d.spec.replicas
    )


def measure_floor(cluster: Cluster, count: int) -> float:
    """Seconds until every child Deployment is Ready when the children are applied directly."""
    namespace = new_namespace(cluster, "bench-floor")
    manifests = floor_manifests(namespace, count)
    apps = client.AppsV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))

    async def apply_all() -> None:
        api = load_api_client(config_file=cluster.kubeconfig)
        kube = Kube(api, field_manager="bench-floor", workers=16, reserved=0)  # all 16 for any kind
        gate = asyncio.Semaphore(16)

        async def one(manifest: dict) -> None:
            async with gate:
                await kube.apply(manifest)

        await asyncio.gather(*(one(m) for m in manifests))
        kube.close()

    started = time.monotonic()
    asyncio.run(apply_all())
    wait_until(
        lambda: count_ready_deployments(apps, namespace) >= count, 600 + count, "floor Deployments Ready"
    )
    elapsed = time.monotonic() - started
    delete_namespace(cluster, namespace)
    return elapsed


def delete_namespace(cluster: Cluster, namespace: str) -> None:
    """Delete a phase's namespace and wait until it is gone: the next phase must not be timed while the
    garbage collector is still deleting hundreds of this one's objects on the same two cores."""
    started = time.monotonic()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    gone = lambda: cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0  # noqa: E731
    wait_until(gone, 900, f"namespace {namespace} deleted")
    print(f"namespace {namespace} deleted in {time.monotonic() - started:.0f} s (before the next phase)")


def watch_deployment_creations(
    cluster: Cluster, namespace: str, seen: dict[str, float], stop: threading.Event
):
    apps = client.AppsV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))
    stream = watch.Watch()
    try:
        for event in stream.stream(apps.list_namespaced_deployment, namespace, timeout_seconds=3600):
            if event["type"] == "ADDED":
                seen.setdefault(event["object"].metadata.name, time.monotonic())
            if stop.is_set():
                stream.stop()
    except Exception:  # the cluster goes away at the end of the run
        return


def create_model_deployments(cluster: Cluster, namespace: str, count: int, replicas: int) -> dict[str, float]:
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=cluster.kubeconfig))
    created: dict[str, float] = {}

    def create(i: int) -> None:
        body = model_deployment(f"m{i}", namespace, replicas=replicas)
        custom.create_namespaced_custom_object(
            "modeldeploy.io", "v1alpha1", namespace, "modeldeployments", body
        )
        created[f"m{i}"] = time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    return created


def apply_with_kubectl(cluster: Cluster, namespace: str, count: int, replicas: int) -> dict[str, float]:
    """`kubectl apply -f` of one file with every manifest, as a user sends them: kubectl applies
    them one after the other and prints each as it is created; that line is the object's create time."""
    manifests = (model_deployment(f"m{i}", namespace, replicas=replicas) for i in range(count))
    docs = "\n---\n".join(json.dumps(manifest) for manifest in manifests)
    process = subprocess.Popen(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "apply", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cluster.env,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(docs)
    process.stdin.close()
    created: dict[str, float] = {}
    for line in process.stdout:  # "modeldeployment.modeldeploy.io/m7 created"
        if line.rstrip().endswith(" created"):
            created[line.split()[0].rsplit("/", 1)[1]] = time.monotonic()
    if process.wait() != 0 or len(created) != count:
        raise RuntimeError(f"kubectl apply created {len(created)} of {count} (exit {process.returncode})")
    return created


CREATORS = {"kubectl": apply_with_kubectl, "burst": create_model_deployments}


def all_ready(cluster: Cluster, namespace: str, count: int) -> bool:
    items = cluster.get_json("modeldeployments", "-n", namespace)["items"]
    return len(items) == count and all(is_ready(i) for i in items)


def all_observed(cluster: Cluster, namespace: str, count: int) -> bool:
    """With 0 replicas nothing gets Ready: done when every status is written and every child exists."""
    items = cluster.get_json("modeldeployments", "-n", namespace)["items"]
    observed = sum(
        1 for i in items if (i.get("status") or {}).get("observedGeneration") == i["metadata"]["generation"]
    )
    services = len(cluster.get_json("services", "-n", namespace)["items"])
    return observed == count and services == 4 * count


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def wait_quiescent(
    cluster: Cluster, username: str, namespace: str, calm: float = 10, limit: float = 180
) -> float:
    """Seconds after all-Ready until the operator's last trailing write (kopf bookkeeping, final status
    patches of a backlog) is `calm` seconds old; the idle window starts after that."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        now = audit_timestamp()
        recent = audit_writes(cluster.audit_log, username, namespace, now - dt.timedelta(seconds=calm), now)
        if not recent:
            return time.monotonic() - started
        time.sleep(2)
    return time.monotonic() - started


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or its peak so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dump_heap(pid: int, target: Path) -> None:
    """The operator's heap report (see modeldeploy.memory.dump_heap_on_signal), copied to target."""
    report = Path(tempfile.gettempdir()) / f"modeldeploy-heap-{pid}.txt"
    report.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    wait_until(report.exists, 120, "the operator's heap report")
    time.sleep(1)  # written in one call, but give it a moment
    target.write_text(report.read_text())
    print(f"heap report: {target}")


CHILDREN = frozenset({"deployments", "services", "horizontalpodautoscalers", "poddisruptionbudgets"})


def audit_requests(audit_log: Path | None, username: str, since: dt.datetime, until: dt.datetime) -> dict:
    """Every request `username` made in [since, until], by "verb resource[/subresource]", and how many
    the API server answered 429 (throttled). Counts, unlike timings, are not noisy."""
    by_call: collections.Counter[str] = collections.Counter()
    throttled = 0
    if audit_log is None:
        return {"by_call": by_call, "total": 0, "throttled": 0}
    with audit_log.open() as lines:
        for line in lines:
            if username not in line or '"ResponseComplete"' not in line:
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") != username or event.get("stage") != "ResponseComplete":
                continue
            at = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if not since <= at <= until:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", event.get("requestURI", "?"))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            code = (event.get("responseStatus") or {}).get("code")
            # An apply answered 201 created the child; 200 rewrote an existing one (or changed nothing).
            outcome = (
                {201: " (created)", 200: " (existing)"}.get(code, "")
                if resource in CHILDREN and event.get("verb") == "patch"
                else ""
            )
            by_call[f"{event.get('verb')} {resource}{outcome}"] += 1
            throttled += code == 429
    return {"by_call": by_call, "total": sum(by_call.values()), "throttled": throttled}


def print_requests(requests: dict, count: int, title: str) -> None:
    print(
        f"{title}: {requests['total']} operator API requests = {requests['total'] / count:.1f} per "
        f"ModelDeployment; 429s: {requests['throttled']}"
    )
    for call, n in requests["by_call"].most_common(12):
        print(f"    {n / count:6.2f}/MD  {n:6d}  {call}")


def run_operator_phase(
    cluster: Cluster,
    count: int,
    replicas: int,
    workdir: Path,
    quiet: float,
    log_level: str = "WARNING",
    trace_memory: bool = False,
    operator_env: dict[str, str] | None = None,
    creator: str = "burst",
    timeout: float | None = None,
) -> dict:
    namespace = new_namespace(cluster, "bench-op")
    create_peering(cluster, namespace)
    identity = create_operator_identity(cluster, namespace, workdir)
    env = {"MODELDEPLOY_SERVING_IMAGE": IMAGE, "MODELDEPLOY_LOG_LEVEL": log_level, **(operator_env or {})}
    if trace_memory:
        env["MODELDEPLOY_TRACEMALLOC_FRAMES"] = "6"
    operator = OperatorProcess(identity, namespace, workdir / f"operator-{count}.log", extra_env=env)
    seen: dict[str, float] = {}
    stop = threading.Event()
    try:
        operator.start()  # inside the try: an operator that never got healthy is stopped too
        threading.Thread(
            target=watch_deployment_creations, args=(cluster, namespace, seen, stop), daemon=True
        ).start()
        time.sleep(1)
        burst_started = audit_timestamp()
        cpu_before = cpu_seconds(operator.process.pid)
        started = time.monotonic()
        created = CREATORS[creator](cluster, namespace, count, replicas)
        finished = all_ready if replicas else all_observed
        limit = 600 + count if timeout is None else timeout
        wait_until(lambda: finished(cluster, namespace, count), limit, f"{count} ModelDeployments done")
        elapsed = time.monotonic() - started
        create_seconds = max(created.values()) - started
        burst_cpu = cpu_seconds(operator.process.pid) - cpu_before
        burst_done = audit_timestamp()
        latencies = [seen[f"{n}-blue"] - t for n, t in created.items() if f"{n}-blue" in seen]
        settle_seconds = wait_quiescent(cluster, identity.username, namespace)
        settled = audit_timestamp()
        since = audit_timestamp()
        time.sleep(quiet)
        until = audit_timestamp()
        time.sleep(2)
        dump_heap(operator.process.pid, workdir / f"heap-{count}.txt")
        writes = (
            audit_writes(cluster.audit_log, identity.username, namespace, since, until)
            if cluster.audit_log
            else []
        )
        return {
            "namespace": namespace,
            "seconds": elapsed,
            "create_seconds": create_seconds,
            "cpu_seconds": burst_cpu,
            "latencies": latencies,
            "rss_mb": rss_mb(operator.process.pid),
            "peak_rss_mb": rss_mb(operator.process.pid, "VmHWM"),
            "burst_requests": audit_requests(cluster.audit_log, identity.username, burst_started, burst_done),
            "settle_requests": audit_requests(cluster.audit_log, identity.username, burst_done, settled),
            "idle_writes": len(writes),
            "settle_seconds": settle_seconds,
        }
    finally:
        stop.set()
        stop_operator(operator)
        delete_namespace(cluster, namespace)


def stop_operator(operator: OperatorProcess) -> None:
    """SIGTERM; a slow shutdown is reported, never allowed to lose the figures already measured."""
    stopping = time.monotonic()
    try:
        operator.stop(timeout=120)
    except BaseException as exc:  # pytest.fail raises an OutcomeException (a BaseException)
        print(f"operator did not stop cleanly ({type(exc).__name__}); killed", file=sys.stderr)
        operator.kill()
    else:
        print(f"operator stopped {time.monotonic() - stopping:.1f} s after SIGTERM")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--memory-count", type=int, default=1000)
    parser.add_argument("--quiet", type=float, default=30.0, help="idle window for the audit-log write count")
    parser.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc in the operator (slow): allocations by line"
    )
    parser.add_argument(
        "--operator-env", action="append", default=[], metavar="KEY=VALUE", help="extra operator setting"
    )
    parser.add_argument(
        "--creator",
        action="append",
        choices=sorted(CREATORS),
        help="how the timed ModelDeployments are created (repeatable; default both, one phase each; --ablate "
        "uses the first, default kubectl): one "
        "`kubectl apply -f` of them all (kubectl sends them one at a time), or a burst from 8 client threads "
        "(the memory phase is always a burst)",
    )
    parser.add_argument(
        "--ablate",
        metavar="PIECES",
        help=f"burst-machinery pieces to turn off one at a time (comma list, or all): {', '.join(ABLATIONS)}",
    )
    parser.add_argument("--log-level", default="WARNING", help="the operator's log level (DEBUG shows kopf)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (operator logs, audit log) for a look"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    cluster, delete_cluster = start_private_cluster(f"modeldeploy-bench-{uuid.uuid4().hex[:4]}", workdir)
    try:
        run(cluster, workdir, args)
    finally:
        if args.keep:
            audit = workdir / "audit.log"
            if cluster.audit_log and cluster.audit_log.exists():
                audit.write_bytes(cluster.audit_log.read_bytes())
            print(f"kept {workdir} (operator logs, audit.log)")
        delete_cluster()


def run(cluster: Cluster, workdir: Path, args: argparse.Namespace) -> None:
    config.load_kube_config(config_file=cluster.kubeconfig)
    install_crds(cluster)

    if args.ablate:
        run_ablation(cluster, workdir, args)
        return
    if args.count:
        run_timing(cluster, workdir, args)
    if args.memory_count:
        big = run_operator_phase(
            cluster,
            args.memory_count,
            0,
            workdir,
            min(args.quiet, 10),
            args.log_level,
            args.trace_memory,
            dict(e.split("=", 1) for e in args.operator_env),
        )
        print(
            f"operator RSS at {args.memory_count} ModelDeployments (0 replicas): {big['rss_mb']:.0f} MB "
            f"(peak {big['peak_rss_mb']:.0f} MB)"
        )
        print(f"  all children and statuses in {big['seconds']:.1f} s; idle writes {big['idle_writes']}")
        print(f"  operator CPU during the burst: {big['cpu_seconds']:.1f} s")
        print_requests(big["burst_requests"], args.memory_count, "  burst")


def run_timing(cluster: Cluster, workdir: Path, args: argparse.Namespace) -> None:
    for creator in args.creator or ["kubectl", "burst"]:
        # A floor next to each phase: the machine's speed drifts over minutes, and a ratio needs both
        # sides measured under the same weather.
        floor = measure_floor(cluster, args.count)
        print(f"floor (children applied directly, 16 concurrent): {floor:.1f} s to all Deployments Ready")
        result = run_operator_phase(
            cluster,
            args.count,
            1,
            workdir,
            args.quiet,
            args.log_level,
            args.trace_memory,
            dict(e.split("=", 1) for e in args.operator_env),
            creator,
        )
        print_timing(args, creator, floor, result)


def print_timing(args: argparse.Namespace, creator: str, floor: float, result: dict) -> None:
    lat = sorted(result["latencies"])
    p50 = statistics.median(lat) if lat else float("nan")
    p95 = lat[int(len(lat) * 0.95) - 1] if lat else float("nan")
    how = {"kubectl": "one `kubectl apply -f`", "burst": "a burst from 8 threads"}[creator]
    print(f"== {args.count} ModelDeployments (1 replica each) created by {how}")
    print(f"creates took {result['create_seconds']:.1f} s")
    ratio = result["seconds"] / floor
    print(f"operator: {result['seconds']:.1f} s to all ModelDeployments Ready  ratio {ratio:.2f}x the floor")
    print(f"apply -> Deployment created: p50 {p50 * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  (n={len(lat)})")
    cpu = result["cpu_seconds"]
    print(f"operator CPU during the burst: {cpu:.1f} s ({cpu / args.count * 1000:.0f} ms/ModelDeployment)")
    print(f"operator RSS after {args.count}: {result['rss_mb']:.0f} MB (peak {result['peak_rss_mb']:.0f} MB)")
    print_requests(result["burst_requests"], args.count, "burst (create -> all Ready)")
    print_requests(result["settle_requests"], args.count, "after all-Ready until writes stop")
    print(
        f"operator writes while idle ({args.quiet:.0f} s, audit log): {result['idle_writes']} "
        f"(window opened {result['settle_seconds']:.0f} s after all-Ready, once writes had stopped)"
    )
    print(
        json.dumps(
            {"creator": creator, "floor_s": floor, "operator_s": result["seconds"], "p50_ms": p50 * 1000}
        )
    )


def run_ablation(cluster: Cluster, workdir: Path, args: argparse.Namespace) -> None:
    """Baseline, each piece off, baseline again; a floor at the start and at the end."""
    pieces = list(ABLATIONS) if args.ablate == "all" else args.ablate.split(",")
    unknown = [piece for piece in pieces if piece not in ABLATIONS]
    if unknown:
        raise SystemExit(f"--ablate: unknown pieces {unknown}; known: {', '.join(ABLATIONS)}")
    common = dict(e.split("=", 1) for e in args.operator_env)
    started = time.monotonic()
    floors = [measure_floor(cluster, args.count)]
    rows: list[tuple[str, dict]] = []
    failed: dict[str, str] = {}
    timeout: float | None = None  # a variant that never finishes is given up after 3x the first baseline
    for name in ["baseline", *pieces, "baseline"]:
        env = {**common, **ABLATIONS.get(name, {})}
        try:
            rows.append((name, measure_variant(cluster, workdir, args, env, timeout)))
        except (SystemExit, Exception) as exc:  # wait_until gives up with SystemExit
            failed[name] = str(exc)
            print(f"{name}: FAILED {exc}", flush=True)
            continue
        timeout = timeout or max(120.0, 3 * rows[0][1]["seconds"])
        print(f"{name}: {json.dumps(rows[-1][1])}  ({time.monotonic() - started:.0f} s so far)", flush=True)
    floors.append(measure_floor(cluster, args.count))
    print_ablation(args, rows, floors, time.monotonic() - started)
    for name, reason in failed.items():
        print(f"{name}: did not finish ({reason})")


def measure_variant(
    cluster: Cluster, workdir: Path, args: argparse.Namespace, env: dict[str, str], timeout: float | None
) -> dict:
    """One operator through the kubectl phase (1 replica each) and the memory phase (0 replicas)."""
    timed = run_operator_phase(
        cluster,
        args.count,
        1,
        workdir,
        args.quiet,
        args.log_level,
        operator_env=env,
        creator=(args.creator or ["kubectl"])[0],
        timeout=timeout,
    )
    lat = sorted(timed["latencies"])
    row = {
        "seconds": timed["seconds"],
        "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p95_ms": lat[int(len(lat) * 0.95) - 1] * 1000 if lat else float("nan"),
        "requests_per_md": timed["burst_requests"]["total"] / args.count,
        "idle_writes": timed["idle_writes"],
        "rss_mb": timed["rss_mb"],
    }
    if args.memory_count:
        big = run_operator_phase(
            cluster, args.memory_count, 0, workdir, min(args.quiet, 10), args.log_level, operator_env=env
        )
        row.update(
            memory_seconds=big["seconds"],
            memory_rss_mb=big["rss_mb"],
            memory_requests_per_md=big["burst_requests"]["total"] / args.memory_count,
        )
        row["idle_writes"] += big["idle_writes"]
    return row


def print_ablation(
    args: argparse.Namespace, rows: list[tuple[str, dict]], floors: list[float], elapsed: float
) -> None:
    floor = statistics.mean(floors)
    base = {k: statistics.mean(r[k] for name, r in rows if name == "baseline") for k in rows[0][1]}
    memory = f", memory phase {args.memory_count} (0 replicas)" if args.memory_count else ""
    print(
        f"== ablation: {args.count} ModelDeployments by {(args.creator or ['kubectl'])[0]}{memory}; floor "
        f"{' / '.join(f'{f:.1f}' for f in floors)} s (start / end); {elapsed / 60:.0f} min"
    )
    columns = ["seconds", "p50_ms", "p95_ms", "requests_per_md", "rss_mb"]
    if args.memory_count:
        columns += ["memory_seconds", "memory_rss_mb", "memory_requests_per_md"]
    header = ["piece off", "x floor", *columns, "idle_writes"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, row in rows:
        cells = [name, f"{row['seconds'] / floor:.2f}"]
        for key in columns:
            ratio = "" if name == "baseline" else f" ({row[key] / base[key]:.2f}x)"
            cells.append(f"{row[key]:.1f}{ratio}" if key.endswith("per_md") else f"{row[key]:.0f}{ratio}")
        cells.append(str(row["idle_writes"]))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
