"""Rollouts with checks under a real Argo CD: a candidate stopped by the quality gate, an action pressed
twice, and no drift through a rollout and two minutes after it.

Each behaviour has its own Application (a folder of the git repository): one Degraded ModelDeployment would
make every Application holding it Degraded. The gated ModelDeployment's colours are real modelserve
processes on loopback (the operator reaches them through MODELDEPLOY_PROBE_ADDRESSES, as in
tests/e2e/rollouts); the others run no checks, so kwok's pods are all they need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from harness.argocd import (
    OWNER,
    ArgoCD,
    GitRepo,
    app_status,
    repository_manifest,
    resource_health,
    sync_count,
    synced_application,
    synced_revision,
    watch_health,
)
from harness.operator import OperatorProcess, condition, get_md
from harness.poll import wait_for
from harness.probes import file_server
from harness.rollout import (
    Pair,
    body,
    events,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    wait_rollout,
)

pytestmark = [pytest.mark.gitops, pytest.mark.e2e]
# Steps without pauseSeconds hold until promote: two of them tell one promote from two.
HELD = {"steps": [{"weight": 25}, {"weight": 50}], "scaleDownDelaySeconds": 0}
REASONS = ("ResourceActionRan", "PromoteRequested")  # events of Argo CD's action and of the operator
QUICK = {"steps": [{"weight": 50, "pauseSeconds": 5}], "scaleDownDelaySeconds": 0}


def gated_rollout(dataset_url: str) -> dict:
    return {
        "steps": [{"weight": 50, "pauseSeconds": 2}],
        "qualityGate": {
            "datasetUri": f"{dataset_url}/holdout.csv",
            "labelColumn": "species",
            "metric": "accuracy",
            "threshold": 0.8,
            "maxRegression": 0.05,
        },
        "scaleDownDelaySeconds": 0,
    }


@dataclass
class Env:
    cluster: object
    namespace: str
    gated: Pair
    operator: OperatorProcess


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    """The operator probing the gated ModelDeployment's colours: v1 a good model, v2 shuffled labels'."""
    workdir = tmp_path_factory.mktemp("gitops-rollouts")
    models = train_models(workdir / "models")
    with file_server(models.holdout_dir) as dataset_url:
        rollout = gated_rollout(dataset_url)
        v1, v2 = rollout_spec("1", rollout), rollout_spec("2", rollout)
        pairs = {"gated": start_pair(workdir, "gated", v1, v2, models.good, models.bad, models)}
        with serving_pairs(pairs), rollout_operator(cluster, namespace, workdir, pairs) as operator:
            yield Env(cluster, namespace, pairs["gated"], operator)


def files(namespace: str, folder: str, name: str, spec: dict) -> dict[str, str]:
    return {f"apps/{namespace}/{folder}/{name}.yaml": repository_manifest(body(name, namespace, spec))}


def push(argocd: ArgoCD, git_repo: GitRepo, apps: list[str], changed: dict[str, str]) -> str:
    """Commits `changed` and asks for a refresh of `apps`, as a git webhook would; returns the commit."""
    sha = git_repo.commit(changed, f"{', '.join(apps)}: new model version")
    for app in apps:
        argocd.refresh(app)
    return sha


def test_candidate_failing_the_quality_gate_makes_the_application_degraded_with_our_message(
    env, argocd, git_repo
):
    app, ns, pair = "gated-models", env.namespace, env.gated
    synced_application(argocd, git_repo, app, f"apps/{ns}/gated", ns, files(ns, "gated", "gated", pair.v1))
    wait_rollout(env.cluster, ns, "gated", serving(revision(pair.v1)), what="v1 serving")

    sha = push(argocd, git_repo, [app], files(ns, "gated", "gated", pair.v2))
    watch_health(argocd, app, until=lambda seen: seen[-1:] == ["Degraded"], timeout=150)
    md = get_md(env.cluster, ns, "gated")
    gate = rollout_of(md)["qualityGate"]
    assert gate["passed"] is False and gate["score"] < 0.8 <= gate["activeScore"], gate
    health = resource_health(argocd, app, "ModelDeployment", "gated")
    # Our health check's message: the operator's Degraded condition, naming the gate and its score.
    assert health["status"] == "Degraded"
    assert "quality gate failed" in health["message"]
    assert health["message"] == condition(md, "Degraded")["message"]
    # Git still says v2 and the cluster holds v2's spec: Synced, while v1 goes on serving.
    assert app_status(argocd, app) == ("Synced", "Degraded") and synced_revision(argocd, app) == sha
    assert md["status"]["activeRevision"] == revision(pair.v1)


def test_promote_pressed_twice_before_the_operator_acts_takes_effect_once(env, argocd, git_repo):
    app, ns = "held-models", env.namespace
    synced_application(
        argocd, git_repo, app, f"apps/{ns}/held", ns, files(ns, "held", "held", rollout_spec("1", HELD))
    )
    push(argocd, git_repo, [app], files(ns, "held", "held", rollout_spec("2", HELD)))
    watch_health(argocd, app, until=lambda seen: seen[-1:] == ["Suspended"], timeout=120)
    assert rollout_of(get_md(env.cluster, ns, "held"))["stepIndex"] == 0

    # Argo CD's API server lands two presses about a second apart here, and the operator acts on a promote
    # within that second: stopped, it cannot move on between them, as in a press landing mid-pass.
    env.operator.stop()
    try:
        controls = []
        for _ in range(2):
            argocd.run_action(app, OWNER, "promote", "held", ns)
            controls.append(get_md(env.cluster, ns, "held")["status"]["rolloutControl"])
    finally:
        env.operator.start()
    # The first press's status write made a new object version; the second press still names the same request.
    assert controls[0] == controls[1] and controls[0]["action"] == "promote", controls

    def handled() -> bool:
        status = get_md(env.cluster, ns, "held")["status"]
        return status["rollout"].get("handledRequestId") == status["rolloutControl"]["requestId"]

    wait_for(handled, timeout=60, what="the promote request handled")
    time.sleep(3)  # a second request, had there been one, would be handled by now
    md = get_md(env.cluster, ns, "held")
    assert (rollout_of(md)["phase"], rollout_of(md)["stepIndex"]) == ("Paused", 1), rollout_of(md)
    ran = {
        r: sum(e.get("count", 1) for e in events(env.cluster, ns, "held") if e["reason"] == r)
        for r in REASONS
    }
    assert ran == {"ResourceActionRan": 2, "PromoteRequested": 1}  # Argo CD ran both presses; one took effect


def test_no_drift_through_a_rollout_and_two_minutes_after_with_client_and_server_side_diff(
    env, argocd, git_repo
):
    ns = env.namespace
    apps = {
        "drift-client-side": {},
        "drift-server-side": {"argocd.argoproj.io/compare-options": "ServerSideDiff=true"},
    }
    for app, compare_options in apps.items():
        synced_application(
            argocd,
            git_repo,
            app,
            f"apps/{ns}/{app}",
            ns,
            files(ns, app, app, rollout_spec("1", QUICK)),
            compare_options,
        )
    syncs = {app: sync_count(argocd, app) for app in apps}
    changed = {}
    for app in apps:
        changed.update(files(ns, app, app, rollout_spec("2", QUICK)))
    sha = push(argocd, git_repo, list(apps), changed)
    wait_for(
        lambda: all(
            synced_revision(argocd, app) == sha and app_status(argocd, app)[0] == "Synced" for app in apps
        ),
        timeout=60,
        what="both Applications synced to the commit",
    )
    seen = {app: set() for app in apps}
    reconciled = {app: set() for app in apps}
    completed = None
    while completed is None or time.monotonic() < completed + 120:
        for app in apps:
            seen[app].add(app_status(argocd, app)[0])
            reconciled[app].add(argocd.application(app)["status"].get("reconciledAt"))
        if completed is None and all(
            serving(revision(rollout_spec("2", QUICK)))(get_md(env.cluster, ns, app)) for app in apps
        ):
            completed = time.monotonic()
        time.sleep(1)
    for app in apps:
        assert seen[app] == {"Synced"}, (app, seen[app])
        assert sync_count(argocd, app) == syncs[app] + 1, app  # the commit's sync; no self-heal sync
        assert len(reconciled[app]) >= 10, app  # a comparison every 10 s at least
        assert app_status(argocd, app) == ("Synced", "Healthy")
        md = get_md(env.cluster, ns, app)
        assert md["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].startswith(f"{app}:")
        tracked = [(r["kind"], r["name"]) for r in argocd.application(app)["status"]["resources"]]
        assert tracked == [("ModelDeployment", app)]
        children = env.cluster.get_json("deployments,services", "-n", ns, "-l", f"modeldeploy.io/name={app}")
        assert children["items"]
        assert not [
            c
            for c in children["items"]
            if "argocd.argoproj.io/tracking-id" in (c["metadata"].get("annotations") or {})
        ]
