"""Releases measured on real pods, side by side with Argo Rollouts' blue/green, from what the clients felt.

    nice -n 5 .venv/bin/python benchmarks/rollout_live.py [--repeat 5] [--quick] [--rate 30]

On the real node `real-0` of the default local cluster (tests/cluster/cluster.sh up, as root), in one run and
one namespace, iris goes from model v1 to v2 (2 replicas each) these ways, each repeated `--repeat` times:

- modeldeploy, plain blue/green: no steps, no checks (ModelDeployment `iris`);
- modeldeploy, one 50% step of 10 s judged by analysis (ModelDeployment `iris-step`);
- Argo Rollouts `strategy.blueGreen` (Rollout `iris-argo`) with an active and a preview Service and
  `autoPromotionEnabled`, its pod template copied from the Deployment the operator generated for `iris` (only
  labels differ), the same `scaleDownDelaySeconds`. Its controller is built from the pinned Go module on first
  use (benchmarks/argo_rollouts/build.sh, cached) and runs here as a local process watching the namespace.

For each release the load client (tests/loadclient/loadclient.py, a local process: a new connection per
request, no retries, 2 s timeout) sends `--rate` predictions per second to the Service clients use (the stable
Service; the Rollout's active Service) from LEAD seconds before `kubectl apply` until the old pods are gone.
Who answered is read from each answer's `X-Model-Revision` header; the pods' timeline from a watch. Recorded
per release: failed requests (the client's rule: connect error, reset, timeout, 5xx, 429), the cutover (the
candidate's first Ready pod -> from then on at least 99 of every 100 consecutive answers from the candidate),
p50/p99 latency before `kubectl apply`, during the switch (first Ready pod to cutover + 5 s) and after, and
`kubectl apply` -> the old pods gone. The table gives medians and maxima and the ratios of ours to Argo
Rollouts'.

Failure rows (full mode; `--failure-only` runs only them): iris goes from v1 to a v2 answering 500 to
BAD_SHARE of the predictions (harness.faulty_models.flaky_iris), each repeated `--repeat` times:

- modeldeploy, the 50% step judged by analysis (`iris-step`): its analysis aborts the candidate;
- Argo Rollouts blueGreen with `prePromotionAnalysis` (judging the preview Service before the switch) and with
  `postPromotionAnalysis` (judging the active Service after it), both an AnalysisTemplate with Argo's Job
  provider: a Job in the serving image, placed and confined like the serving pods, sends CHECK_REQUESTS
  predictions and fails if more than CHECK_MAX_SHARE failed. `abortScaleDownDelaySeconds` is
  `scaleDownDelaySeconds`.

Recorded per release, from who answered (the revision header): failed requests from the first to the last
answer of the bad version, and `kubectl apply` -> the last answer of the bad version (every answer from v1
again; 0 when no client saw it), beside `kubectl apply` -> the controller reporting the abort. A second table
gives medians and maxima and the ratios of ours to each Argo Rollouts configuration.

`--quick` is one repetition of the success rows (the test lane runs it:
tests/e2e/realnode/test_realnode_rollout_live.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import REPO, Cluster, start_cluster
from harness.faulty_models import flaky_iris
from harness.models import IRIS_ROWS, demo_files
from harness.poll import wait_for
from harness.realnode import argo_rollouts as argo
from harness.realnode.change_watch import ChangeWatch
from harness.realnode.host_load import start_host_load
from harness.realnode.pod_watch import PodWatch
from harness.realnode.release_stack import (
    Stack,
    aborted_and_back,
    apply_md,
    md_status,
    operator_stack,
    stable_url,
)
from harness.release_figures import (
    FailureFigures,
    ReleaseFigures,
    failure_figures,
    failure_table,
    old_revision,
    release_figures,
    table,
)

RATE = 30  # requests/s: the servers, both controllers and the client share the node's two cores
LEAD = 5.0  # seconds of steady load before `kubectl apply`
TAIL = 2.0  # seconds of load kept after the old pods are gone
RELEASE_CAP = 240.0  # seconds of load at most per release
REPLICAS = 2
SCALE_DOWN_DELAY = 5  # seconds, the same for both controllers
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROWS[0]}]}
IMAGE_VARIABLES = ("MODELDEPLOY_SERVING_IMAGE", "MODELDEPLOY_OPERATOR_IMAGE")
ARGO_NAME, ARGO_LABELS = "iris-argo", {"app.kubernetes.io/name": "iris-argo"}
PLAIN, STEP, ARGO = "modeldeploy blue/green", "modeldeploy 50% step + analysis", "Argo Rollouts blueGreen"
BAD, BAD_SHARE = "bad", 0.1  # the failure rows' v2: 500 on 10% of the predictions
CHECK_TEMPLATE, CHECK_REQUESTS = "predict-check", 200  # 200 draws: a 10% failure share passes 5% rarely
CHECK_MAX_SHARE = 0.05  # the same rule as ours' analysis (maxErrorRate 0.05)
ARGO_PRE = "Argo Rollouts blueGreen + prePromotionAnalysis"
ARGO_POST = "Argo Rollouts blueGreen + postPromotionAnalysis"
ABORT_TAIL = 3.0  # seconds of load kept after the abort is reported: kube-proxy moves the ClusterIP back


@dataclass
class Target:
    """One way of releasing: how to apply a model version, when its controller is done, and who answers."""

    kind: str
    labels: dict[str, str]  # the labels of its serving pods
    url: str
    apply: Callable[[str], float]  # version -> wall clock after `kubectl apply`
    settled: Callable[[str], bool]  # version -> the controller says the release is over
    reset: Callable[[str], float]  # back to a version between repetitions, with no load to judge it
    service: str = ""  # the Service clients use: its selector switching is the controller's cutover
    aborted: Callable[[], bool] = lambda: False  # the controller reports the release aborted


def ours_spec(stack: Stack, version: str, *, step: bool) -> dict:
    """iris from the store: plain blue/green (no steps, no checks) or the demo's 50% step with analysis."""
    spec = stack.spec(version, scaleDownDelaySeconds=SCALE_DOWN_DELAY)
    spec["replicas"] = REPLICAS
    rollout = spec["rollout"]
    del rollout["qualityGate"]
    if not step:
        rollout["steps"] = []
        del rollout["analysis"]
    return spec


def ours(cluster: Cluster, stack: Stack, kind: str, name: str, *, step: bool) -> Target:
    def settled(version: str) -> bool:
        md = cluster.get_json("md", name, "-n", stack.namespace)
        status = md.get("status", {})
        return (
            status.get("observedGeneration") == md["metadata"]["generation"]
            and status.get("phase") == "Healthy"
            and status.get("modelVersion") == version
        )

    def apply(version: str, *, step: bool = step) -> float:
        return apply_md(cluster, stack.namespace, ours_spec(stack, version, step=step), name=name)

    # No load runs between repetitions: analysis would find no requests and pause, so the way back is plain.
    def aborted() -> bool:
        return aborted_and_back(cluster.get_json("md", name, "-n", stack.namespace).get("status", {}))

    labels = {"modeldeploy.io/name": name}
    return Target(kind, labels, "", apply, settled, lambda v: apply(v, step=False), name, aborted)


def active_template(cluster: Cluster, namespace: str, name: str) -> dict:
    """The pod template of the Deployment serving a ModelDeployment's stable traffic."""
    color = md_status(cluster, namespace, name)["activeColor"]
    return cluster.get_json("deployment", f"{name}-{color}", "-n", namespace)["spec"]["template"]


def generated_template(cluster: Cluster, namespace: str, name: str) -> dict:
    """The pod template of the first Deployment the operator generates for a new ModelDeployment."""
    selector = f"modeldeploy.io/name={name}"
    found = wait_for(
        lambda: cluster.get_json("deployments", "-n", namespace, "-l", selector)["items"],
        timeout=120,
        what=f"the Deployment generated for {name}",
    )
    return found[0]["spec"]["template"]


def stable_ports(cluster: Cluster, namespace: str, name: str) -> list[dict]:
    """The ports of a ModelDeployment's stable Service, once the operator created it."""

    def service() -> dict | None:
        found = cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(found.stdout) if found.returncode == 0 else None

    return wait_for(service, timeout=60, what=f"the stable Service of {name}")["spec"]["ports"]


def argo_target(
    cluster: Cluster, namespace: str, templates: dict[str, dict], kind: str = ARGO, analysis: str = ""
) -> Target:
    """The Rollout `iris-argo`; `analysis` "pre" or "post" judges each release by the predict-check Job
    against the preview or the active Service (the way back to a version is never judged)."""
    name, labels = ARGO_NAME, ARGO_LABELS

    def apply(version: str, *, analysis: str = analysis) -> float:
        rollout = argo.blue_green_rollout(
            name,
            templates[version],
            replicas=REPLICAS,
            scale_down_delay_seconds=SCALE_DOWN_DELAY,
            labels=labels,
        )
        if analysis:
            role = "preview" if analysis == "pre" else "active"
            ip = cluster.get_json("service", f"{name}-{role}", "-n", namespace)["spec"]["clusterIP"]
            rollout = argo.with_analysis(
                rollout, analysis, CHECK_TEMPLATE, f"http://{ip}/v2/models/iris/infer",
                abort_scale_down_delay=SCALE_DOWN_DELAY,
            )  # fmt: skip
        argo.apply(cluster, namespace, [rollout])
        return time.time()

    def aborted() -> bool:
        status = cluster.get_json("rollout", name, "-n", namespace).get("status", {})
        return bool(status.get("abort"))

    def settled(version: str) -> bool:
        rollout = cluster.get_json("rollout", name, "-n", namespace)
        status = rollout.get("status", {})
        return (
            status.get("observedGeneration") == str(rollout["metadata"]["generation"])
            and status.get("phase") == "Healthy"
            and status.get("stableRS") == status.get("currentPodHash")
        )

    return Target(
        kind, labels, "", apply, settled, lambda v: apply(v, analysis=""), f"{name}-active", aborted
    )


def bad_template(template: dict, digests: dict[str, str]) -> dict:
    """v1's generated pod template serving the bad model instead: its file, digest, version and revision."""
    text = json.dumps(template).replace("iris-v1.joblib", f"iris-v{BAD}.joblib")
    bad = json.loads(text.replace(digests["1"], digests[BAD]))
    for container in bad["spec"]["containers"]:
        for env in container.get("env", []):
            if env["name"] in ("MODELSERVE_MODEL_REVISION", "MODELSERVE_MODEL_VERSION"):
                env["value"] = f"{BAD}-{digests[BAD][:10]}"
    return bad


def _selector(body: dict) -> str | None:
    """The Service's selector, as one comparable string (ours selects a colour, Argo a pod-template hash)."""
    selector = (body.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or None


def _rollout_phase(body: dict) -> str | None:
    return ((body.get("status") or {}).get("rollout") or {}).get("phase")


def ensure_images(cluster: Cluster) -> None:
    """Our images on the real node (built and imported once, cached by their inputs)."""
    if all(k in os.environ for k in IMAGE_VARIABLES):
        cluster.env.update({k: os.environ[k] for k in IMAGE_VARIABLES})
        return
    out = subprocess.run(
        ["bash", str(REPO / "tests" / "image" / "node-app-images.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    for line in out.split():
        key, _, value = line.partition("=")
        os.environ[key] = cluster.env[key] = value


def wait_settled(watch: PodWatch, targets: list[Target], version: str, timeout: float = 300) -> None:
    """Every target on `version` with only its REPLICAS pods left."""
    wait_for(
        lambda: all(t.settled(version) and len(watch.existing(t.labels)) == REPLICAS for t in targets),
        timeout=timeout,
        interval=1,
        what=f"{', '.join(t.kind for t in targets)} settled on v{version}",
    )


@dataclass
class Watches:
    pods: PodWatch
    services: ChangeWatch  # the selectors of the Services clients use
    phases: ChangeWatch  # the ModelDeployments' status.rollout.phase


STAGES = (
    ("first -> last Ready", "first_ready", "last_ready"),
    ("last Ready -> Promoting", "last_ready", "promoting"),
    ("Promoting -> selector", "promoting", "selector"),
    ("last Ready -> selector", "last_ready", "selector"),
    ("selector -> first new answer", "selector", "first_answer"),
    ("first new answer -> cutover", "first_answer", "cutover"),
)


def breakdown(stamps: dict[str, float | None]) -> dict[str, float | None]:
    """Seconds spent in each stage of the cutover (None where a stamp is missing)."""
    return {
        stage: None if stamps.get(a) is None or stamps.get(b) is None else stamps[b] - stamps[a]  # type: ignore[operator]
        for stage, a, b in STAGES
    }


def _fmt_breakdown(stages: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in stages.items())


def release(
    watches: Watches, target: Target, version: str, workdir: Path, rate: float, run: str
) -> tuple[ReleaseFigures, dict[str, float | None]]:
    """One release under load, from LEAD seconds before `kubectl apply` to TAIL after the old pods went."""
    files = re.sub(r"\W+", "-", f"{run} {target.kind}")
    load = start_host_load(target.url, BODY, rate=rate, duration=RELEASE_CAP, workdir=workdir, name=files)
    try:
        time.sleep(LEAD)
        watch = watches.pods
        old, known = watch.existing(target.labels), watch.known()
        selector_before = watches.services.last_value(target.service)
        applied = target.apply(version)
        wait_for(
            lambda: watch.all_gone(old) and target.settled(version),
            timeout=RELEASE_CAP - LEAD - TAIL - 5,
            interval=0.5,
            what=f"{target.kind}: v{version} released and the old pods gone",
        )
        time.sleep(TAIL)
    finally:
        summary, records = load.finish()
    figures = release_figures(
        records,
        summary,
        applied_at=applied,
        first_ready=watch.first_ready(target.labels, besides=known),  # pods of this release only
        old_gone=watch.all_gone(old),
    )
    print(f"{run}: {target.kind}: {json.dumps(figures.__dict__)} reasons {summary['reasons']}", flush=True)
    first_ready = watch.first_ready(target.labels, besides=known)
    old_answer = old_revision(records, applied)
    name = target.labels.get("modeldeploy.io/name", "")
    stamps = {
        "first_ready": first_ready,
        "last_ready": watch.last_ready(target.labels, besides=known),
        "promoting": watches.phases.first(name, "Promoting", applied) if name else None,
        "selector": watches.services.first_change(target.service, selector_before, applied),
        "first_answer": min(
            (r["sent_at"] for r in records if r["sent_at"] >= applied and r["status"] is not None
             and r["revision"] != old_answer),
            default=None,
        ),
        "cutover": None if figures.cutover_s is None or first_ready is None
        else first_ready + figures.cutover_s,
    }  # fmt: skip
    stages = breakdown(stamps)
    print(f"{run}: {target.kind}: cutover breakdown s: {_fmt_breakdown(stages)}", flush=True)
    return figures, stages


def failed_release(target: Target, workdir: Path, rate: float, run: str) -> FailureFigures:
    """One release of the bad version under load, until the controller reports the abort (or completes the
    release of the bad version: nothing caught it), and ABORT_TAIL."""
    files = re.sub(r"\W+", "-", f"{run} {target.kind} bad")
    load = start_host_load(target.url, BODY, rate=rate, duration=RELEASE_CAP, workdir=workdir, name=files)
    rejected = None
    try:
        time.sleep(LEAD)
        applied = target.apply(BAD)
        wait_for(lambda: target.aborted() or target.settled(BAD), timeout=RELEASE_CAP - LEAD - ABORT_TAIL - 5,
                 interval=0.5, what=f"{target.kind}: the bad v2 aborted or released")  # fmt: skip
        rejected = time.time() if target.aborted() else None
        time.sleep(ABORT_TAIL)
    finally:
        summary, records = load.finish()
    figures = failure_figures(records, applied_at=applied, rejected_at=rejected)
    print(f"{run}: {target.kind}: {json.dumps(figures.__dict__)} reasons {summary['reasons']}", flush=True)
    return figures


def breakdown_table(stages: dict[str, list[dict[str, float | None]]]) -> str:
    """Median seconds per stage of the cutover, one row per release kind."""
    lines = [
        "| release | " + " | ".join(stage for stage, _, _ in STAGES) + " |",
        "|---|" + "---:|" * len(STAGES),
    ]
    for kind, runs in stages.items():
        cells = []
        for stage, _, _ in STAGES:
            known = [r[stage] for r in runs if r[stage] is not None]
            cells.append(f"{statistics.median(known):.2f}" if known else "-")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="releases of each kind (default 5)")
    p.add_argument("--quick", action="store_true", help="one repetition of the success rows")
    p.add_argument("--failure-only", action="store_true", help="only the failure rows (a bad v2 aborted)")
    p.add_argument("--rate", type=float, default=RATE, help="requests per second during a release")
    p.add_argument("--keep-files", action="store_true", help="keep the requests and logs (printed path)")
    args = p.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    if not 1 <= repeat <= 20 or not 0 < args.rate <= 200:
        p.error("--repeat must be in [1, 20] and --rate in (0, 200]")
    if args.quick and args.failure_only:
        p.error("--quick runs the success rows only; --failure-only the failure rows only")
    success_rows, failure_rows = not args.failure_only, not args.quick
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still cleans up after itself
    started = time.monotonic()
    cluster = start_cluster(quiet=True)
    if not cluster.env.get("MODELDEPLOY_REAL_NODE_NAME"):
        p.error("the default cluster's real node is not up (tests/cluster/cluster.sh up, as root)")
    ensure_images(cluster)
    cache = argo.build()
    namespace = f"rollout-live-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="rollout-live-"))
    had_argo_crds = cluster.kubectl("get", "crd", "rollouts.argoproj.io", check=False).returncode == 0
    cluster.kubectl("create", "namespace", namespace)
    print(
        f"namespace {namespace}, Argo Rollouts {argo.version()} from {cache}, files in {workdir}", flush=True
    )
    watch = PodWatch(cluster.kubeconfig, namespace).start()
    watches = Watches(
        watch,
        ChangeWatch(cluster.kubeconfig, namespace, "services", _selector).start(),
        ChangeWatch(
            cluster.kubeconfig, namespace, "modeldeployments", _rollout_phase, group="modeldeploy.io",
            version="v1alpha1",
        ).start(),
    )  # fmt: skip
    rows: dict[str, list[ReleaseFigures]] = {PLAIN: [], STEP: [], ARGO: []}
    failures: dict[str, list[FailureFigures]] = {STEP: [], ARGO_PRE: [], ARGO_POST: []}
    files = demo_files() | {f"iris-v{BAD}.joblib": flaky_iris(BAD_SHARE)}
    stages: dict[str, list[dict[str, float | None]]] = {PLAIN: [], STEP: [], ARGO: []}
    try:
        argo.install_crds(cluster, cache)
        with (
            operator_stack(cluster, namespace, "rollout-live", files, operators=1) as stack,
            argo.controller(cluster, cache, namespace, workdir / "rollouts-controller.log"),
        ):
            plain = ours(cluster, stack, PLAIN, "iris", step=False)
            step = ours(cluster, stack, STEP, "iris-step", step=True)
            for target in (plain, step):
                target.apply("1")
            templates = {"1": generated_template(cluster, namespace, "iris")}
            ports = stable_ports(cluster, namespace, "iris")
            argo.apply(cluster, namespace, argo.services(ARGO_NAME, ARGO_LABELS, ports))
            rollout = argo_target(cluster, namespace, templates)
            rollout.apply("1")
            targets = [plain, step, rollout]
            wait_settled(watch, targets, "1")
            plain.url = stable_url(cluster, namespace, "iris")
            step.url = stable_url(cluster, namespace, "iris-step")
            ip = cluster.get_json("service", f"{ARGO_NAME}-active", "-n", namespace)["spec"]["clusterIP"]
            rollout.url = f"http://{ip}/v2/models/iris/infer"  # the copied template serves it as `iris`
            print(f"set up in {time.monotonic() - started:.0f}s", flush=True)
            for n in range(repeat if success_rows else 0):
                if n:
                    for target in targets:
                        target.reset("1")
                    wait_settled(watch, targets, "1")
                for target in targets:
                    figures, stage = release(watches, target, "2", workdir, args.rate, f"run {n + 1}")
                    rows[target.kind].append(figures)
                    stages[target.kind].append(stage)
                    templates.setdefault("2", active_template(cluster, namespace, "iris"))
            if failure_rows:
                templates[BAD] = bad_template(templates["1"], stack.digests)
                check = argo.predict_check_template(
                    CHECK_TEMPLATE, templates["1"], count=CHECK_REQUESTS, max_share=CHECK_MAX_SHARE
                )
                argo.apply(cluster, namespace, [check])
                judged = [step] + [
                    argo_target(cluster, namespace, templates, kind, when)
                    for kind, when in ((ARGO_PRE, "pre"), (ARGO_POST, "post"))
                ]
                for target in judged[1:]:
                    target.url = rollout.url
            for n in range(repeat if failure_rows else 0):
                for target in judged:
                    wait_settled(watch, targets, "1")
                    figures = failed_release(target, workdir, args.rate, f"bad run {n + 1}")
                    failures[target.kind].append(figures)
                    target.reset("1")  # unjudged, like the way back between success rows
            cluster.kubectl("delete", "rollout", "--all", "-n", namespace, "--wait=false", check=False)
    finally:
        for each in (watch, watches.services, watches.phases):
            each.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        if not args.keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
        if not had_argo_crds:
            for crd in argo.CRDS:
                cluster.kubectl("delete", "crd", f"{crd}.argoproj.io", "--wait=false", check=False)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{now}, {repeat} run(s) of each at {args.rate:g} requests/s, Argo Rollouts {argo.version()}, "
          f"{time.monotonic() - started:.0f}s in all; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    if success_rows:
        print(table(rows, baseline=ARGO), flush=True)
        print(
            "\nWhere the cutover went (medians, seconds; pod watch, Service and status watches, answers):\n"
        )
        print(breakdown_table(stages), flush=True)
    if failure_rows:
        print(
            f"\nA v2 failing {BAD_SHARE:.0%} of predictions with 500 (who answered: the revision header):\n"
        )
        print(failure_table(failures, ours=STEP), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
