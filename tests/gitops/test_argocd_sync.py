"""A real Argo CD syncs a ModelDeployment from a git repository into the local cluster and judges its
health with our Lua health check while the operator (a local process) rolls it out on kwok nodes; our resource
actions run through Argo CD's API server under the RBAC roles we document."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from harness.argocd import (
    NAMESPACE,
    OWNER,
    PROMOTER,
    ArgoCD,
    GitRepo,
    app_status,
    application,
    offline_actions,
    offline_health,
    repository_manifest,
    synced_revision,
    watch_health,
)
from harness.lua import ACTIONS, ARGOCD, lua_to_python, run_lua
from harness.operator import get_md, kubectl_apply, model_deployment, wait_for

pytestmark = [pytest.mark.gitops, pytest.mark.e2e]
APP = "iris-models"
# Short steps: kwok makes the pods Ready at once and there is no smoke test or analysis to wait for.
STEPPED = {"steps": [{"weight": 50, "pauseSeconds": 5}], "scaleDownDelaySeconds": 0}


def manifest(version: str, rollout: dict | None = None) -> str:
    """The ModelDeployment the repository holds: the documented example at a given model version."""
    body = model_deployment("iris", "unused")
    body["spec"]["model"].update(
        version=version, uri=f"https://models.example.internal/iris/v{version}/model.joblib"
    )
    if rollout:
        body["spec"]["rollout"] = rollout
    return repository_manifest(body)


def push(argocd: ArgoCD, git_repo: GitRepo, namespace: str, version: str, rollout: dict | None) -> str:
    """Commits a model version and asks Argo CD's API server for a refresh, as a git webhook would."""
    sha = git_repo.commit({f"apps/{namespace}/iris.yaml": manifest(version, rollout)}, f"iris v{version}")
    argocd.refresh(APP)
    return sha


def run_action(argocd: ArgoCD, user: str, action: str, namespace: str, check: bool = True) -> str:
    return argocd.run_action(APP, user, action, "iris", namespace, check=check)


def operation_phase(argocd: ArgoCD) -> str | None:
    """The finished sync operation's phase (Succeeded, Failed, Error), None while none has finished."""
    operation = (argocd.application(APP) or {}).get("status", {}).get("operationState") or {}
    return operation.get("phase") if operation.get("finishedAt") else None


def sync_count(argocd: ArgoCD) -> int:
    """How many syncs the Application has run (status.history gets one entry per sync)."""
    return len((argocd.application(APP) or {}).get("status", {}).get("history") or [])


def handled(cluster, namespace: str, action: str) -> bool:
    """The operator acted on the last rolloutControl request, and it was `action`."""
    status = get_md(cluster, namespace, "iris")["status"]
    control = status.get("rolloutControl") or {}
    return (
        control.get("action") == action and status["rollout"].get("handledRequestId") == control["requestId"]
    )


@pytest.fixture(scope="module")
def snapshots() -> list[tuple[str, dict]]:
    """(Application health, the live ModelDeployment) taken at each health change during the rollouts."""
    return []


def taking(snapshots: list, cluster, namespace: str):
    return lambda health: snapshots.append((health, get_md(cluster, namespace, "iris")))


@pytest.fixture(scope="module")
def synced(cluster, namespace, operator, argocd: ArgoCD, git_repo: GitRepo):
    """The ModelDeployment committed, its Application created and synced; prints the first sync's duration."""
    path = f"apps/{namespace}"
    git_repo.commit({f"{path}/iris.yaml": manifest("3")}, "iris v3")
    t0 = time.monotonic()
    kubectl_apply(cluster, application(APP, git_repo.url, path, namespace), NAMESPACE)
    try:
        # Argo CD may show Synced and Healthy while its sync still runs (PostSync hooks): wait for both.
        wait_for(
            lambda: app_status(argocd, APP) == ("Synced", "Healthy") and operation_phase(argocd) is not None,
            timeout=180,
            what=f"Application {APP} Synced and Healthy, its sync operation finished",
        )
    except BaseException:
        print(argocd.diagnose(APP))
        raise
    print(f"\nfirst sync: Synced+Healthy {time.monotonic() - t0:.1f}s after the Application was created")
    yield argocd.application(APP)
    cluster.kubectl("delete", "application", APP, "-n", NAMESPACE, "--wait=false", check=False)


def test_first_sync_reaches_synced_and_healthy_without_a_retry(cluster, namespace, synced):
    operation = synced["status"]["operationState"]
    assert operation["phase"] == "Succeeded"
    assert operation.get("retryCount", 0) == 0
    md = get_md(cluster, namespace, "iris")
    # Argo CD v3 tracks what it applied by annotation; the operator's status made the health Healthy.
    assert md["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].startswith(f"{APP}:")
    [resource] = synced["status"]["resources"]
    assert (resource["kind"], resource["status"], resource["health"]["status"]) == (
        "ModelDeployment",
        "Synced",
        "Healthy",
    )


def test_new_model_version_is_progressing_then_healthy(
    cluster, namespace, synced, argocd, git_repo, snapshots
):
    before = get_md(cluster, namespace, "iris")["status"]["activeRevision"]
    sha = push(argocd, git_repo, namespace, "4", STEPPED)
    seen = watch_health(
        argocd,
        APP,
        until=lambda seen: (
            seen[-1:] == ["Healthy"] and "Progressing" in seen and synced_revision(argocd, APP) == sha
        ),
        timeout=120,
        on_change=taking(snapshots, cluster, namespace),
    )
    # `app get --refresh` returns after the refresh, often once the sync began: a first Healthy is optional.
    assert seen[-2:] == ["Progressing", "Healthy"] and set(seen) == {"Progressing", "Healthy"}
    md = get_md(cluster, namespace, "iris")
    assert md["spec"]["model"]["version"] == "4"
    assert md["status"]["activeRevision"] != before
    assert app_status(argocd, APP) == ("Synced", "Healthy")


def test_rollout_waiting_for_promotion_is_suspended_and_a_promoter_may_promote_but_not_abort(
    cluster, namespace, synced, argocd, git_repo, snapshots
):
    before = get_md(cluster, namespace, "iris")["status"]["activeRevision"]
    sha = push(argocd, git_repo, namespace, "5", {**STEPPED, "autoPromote": False})
    seen = watch_health(
        argocd,
        APP,
        until=lambda seen: seen[-1:] == ["Suspended"],
        timeout=120,
        on_change=taking(snapshots, cluster, namespace),
    )
    assert seen[-2:] == ["Progressing", "Suspended"] and set(seen) <= {"Healthy", "Progressing", "Suspended"}
    assert synced_revision(argocd, APP) == sha
    refused = run_action(argocd, PROMOTER, "abort", namespace, check=False)
    assert "permission denied" in refused.lower()
    assert get_md(cluster, namespace, "iris")["status"]["rollout"]["phase"] == "Paused"

    run_action(argocd, PROMOTER, "promote", namespace)
    assert (
        watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Healthy"], timeout=120)[-1] == "Healthy"
    )
    md = get_md(cluster, namespace, "iris")
    assert md["status"]["rolloutControl"]["requestId"].startswith("argocd-promote-")
    assert handled(cluster, namespace, "promote")
    assert md["status"]["activeRevision"] != before


def test_an_owner_aborts_to_degraded_retries_and_promotes_fully(
    cluster, namespace, synced, argocd, git_repo, snapshots
):
    syncs = sync_count(argocd)
    sha = push(argocd, git_repo, namespace, "6", {**STEPPED, "autoPromote": False})
    take = taking(snapshots, cluster, namespace)
    watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Suspended"], timeout=120, on_change=take)
    assert synced_revision(argocd, APP) == sha

    run_action(argocd, OWNER, "abort", namespace)
    watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Degraded"], timeout=60, on_change=take)
    assert handled(cluster, namespace, "abort")
    [resource] = argocd.application(APP)["status"]["resources"]
    assert resource["health"]["message"]  # the operator's reason, through our health check

    run_action(argocd, OWNER, "retry", namespace)
    watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Suspended"], timeout=120, on_change=take)
    assert handled(cluster, namespace, "retry")

    run_action(argocd, OWNER, "promote-full", namespace)
    watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Healthy"], timeout=120, on_change=take)
    assert handled(cluster, namespace, "promoteFull")
    # One sync for the commit; the actions and the operator's status writes caused none.
    assert sync_count(argocd) == syncs + 1
    assert app_status(argocd, APP) == ("Synced", "Healthy")


def test_argocd_evaluator_and_our_lua_agree_on_objects_taken_during_the_rollouts(argocd, snapshots):
    assert {health for health, _ in snapshots} >= {"Progressing", "Suspended", "Degraded", "Healthy"}
    # One object per distinct verdict of our Lua: each call of Argo CD's evaluator costs about a second.
    judged = {}
    for _, obj in snapshots:
        ours = run_lua(ARGOCD / "health.lua", obj)
        judged[(ours["status"], ours["message"])] = obj
    for (status, message), obj in judged.items():
        assert offline_health(argocd.bin_dir, obj) == {"status": status, "message": message}
        discovered = lua_to_python(run_lua(ACTIONS / "discovery.lua", obj))
        expected = [{"name": name, "disabled": spec["disabled"]} for name, spec in discovered.items()]
        assert sorted(offline_actions(argocd.bin_dir, obj), key=str) == sorted(expected, key=str)


def reconciled_at(argocd: ArgoCD) -> str | None:
    return (argocd.application(APP) or {}).get("status", {}).get("reconciledAt")


@pytest.mark.parametrize("compare_options", ["", "ServerSideDiff=true"], ids=["client-side", "server-side"])
def test_no_drift_at_rest_with_client_and_server_side_diff(cluster, synced, argocd, compare_options):
    annotation = "argocd.argoproj.io/compare-options"
    cluster.kubectl("annotate", "--overwrite", "application", APP, "-n", NAMESPACE,
                    f"{annotation}={compare_options}" if compare_options else f"{annotation}-")  # fmt: skip
    argocd.refresh(APP)
    syncs, first = sync_count(argocd), reconciled_at(argocd)
    seen = set()
    # Two comparisons at least: the periodic reconciliation runs every 10 s.
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        seen.add(app_status(argocd, APP))
        time.sleep(0.5)
    assert seen == {("Synced", "Healthy")}
    assert reconciled_at(argocd) != first
    assert sync_count(argocd) == syncs


def test_removing_a_model_from_git_prunes_it_and_its_children(cluster, namespace, synced, argocd, git_repo):
    # Another object stays in the folder: a folder emptied in git is gone (git keeps no empty folders), and
    # Argo CD then reports a comparison error instead of pruning.
    keeper = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "models-owner"},
        "data": {"team": "ml"},
    }
    path = f"apps/{namespace}"
    git_repo.commit(
        {f"{path}/owner.yaml": yaml.safe_dump(keeper)}, "retire iris", remove=(f"{path}/iris.yaml",)
    )
    argocd.refresh(APP)
    wait_for(lambda: get_md(cluster, namespace, "iris") is None, timeout=60, what="ModelDeployment pruned")
    wait_for(
        lambda: (
            not cluster.get_json("deployments,services", "-n", namespace, "-l", "modeldeploy.io/name=iris")[
                "items"
            ]
        ),
        timeout=60,
        what="children deleted",
    )
    assert app_status(argocd, APP) == ("Synced", "Healthy")


def tracking(cluster, method: str) -> None:
    """Switches Argo CD's resource tracking (argocd-cm, read live by the controller)."""
    patch = json.dumps({"data": {"application.resourceTrackingMethod": method}})
    cluster.kubectl("patch", "configmap", "argocd-cm", "-n", NAMESPACE, "--type=merge", "-p", patch)


def test_label_tracking_adopts_a_new_model_and_leaves_its_children_alone(
    cluster, namespace, synced, argocd, git_repo
):
    # Last in the module: going back from label to annotation tracking, Argo CD did not re-add its annotation.
    instance = "app.kubernetes.io/instance"
    tracking(cluster, "label")
    try:
        push(argocd, git_repo, namespace, "7", None)
        wait_for(
            lambda: (
                ((get_md(cluster, namespace, "iris") or {}).get("metadata", {}).get("labels") or {}).get(
                    instance
                )
                == APP
            ),
            timeout=60,
            what="the ModelDeployment applied with Argo CD's tracking label",
        )
        wait_for(
            lambda: app_status(argocd, APP) == ("Synced", "Healthy"), timeout=60, what="Synced and Healthy"
        )
        first = reconciled_at(argocd)
        wait_for(lambda: reconciled_at(argocd) != first, timeout=30, what="a periodic comparison")
        assert app_status(argocd, APP) == ("Synced", "Healthy")
        tracked = sorted(r["kind"] for r in argocd.application(APP)["status"]["resources"])
        assert tracked == ["ConfigMap", "ModelDeployment"]
        children = cluster.get_json("deployments,services", "-n", namespace, "-l", "modeldeploy.io/name=iris")
        assert children["items"]
        assert not [c for c in children["items"] if instance in (c["metadata"].get("labels") or {})]
    finally:
        tracking(cluster, "annotation")
