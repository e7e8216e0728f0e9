"""A real Argo CD syncs a ModelDeployment from a git repository into the local cluster and judges its
health with our Lua health check while the operator (a local process) rolls it out on kwok nodes; our resource
actions run through Argo CD's API server under the RBAC roles we document."""

from __future__ import annotations

import time

import pytest
import yaml
from argocd_harness import (
    NAMESPACE,
    PROMOTER,
    ArgoCD,
    GitRepo,
    app_status,
    application,
    offline_actions,
    offline_health,
    synced_revision,
    watch_health,
)
from operator_fixtures import get_md, kubectl_apply, model_deployment, wait_for
from test_argocd_lua import ACTIONS, ARGOCD, lua_to_python, run_lua

pytestmark = [pytest.mark.gitops, pytest.mark.e2e]
APP = "iris-models"
# Short steps: kwok makes the pods Ready at once and there is no smoke test or analysis to wait for.
STEPPED = {"steps": [{"weight": 50, "pauseSeconds": 5}], "scaleDownDelaySeconds": 0}


def manifest(version: str, rollout: dict | None = None) -> str:
    """The ModelDeployment the repository holds: the documented example at a given model version."""
    body = model_deployment("iris", "unused")
    body["metadata"].pop("namespace")  # the Application's destination decides it, as in a users' repository
    body["spec"]["model"].update(
        version=version, uri=f"https://models.example.internal/iris/v{version}/model.joblib"
    )
    if rollout:
        body["spec"]["rollout"] = rollout
    return yaml.safe_dump(body, sort_keys=False)


def push(argocd: ArgoCD, git_repo: GitRepo, namespace: str, version: str, rollout: dict | None) -> str:
    """Commits a model version and asks Argo CD's API server for a refresh, as a git webhook would."""
    sha = git_repo.commit({f"apps/{namespace}/iris.yaml": manifest(version, rollout)}, f"iris v{version}")
    argocd.cli("app", "get", APP, "--refresh", config=argocd.admin_config)
    return sha


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
        wait_for(
            lambda: app_status(argocd, APP) == ("Synced", "Healthy"),
            timeout=180,
            what=f"Application {APP} Synced and Healthy",
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
    promoter = argocd.login(PROMOTER, argocd.password, argocd.workdir / "promoter.config")
    run = ("app", "actions", "run", APP)
    target = ("--kind", "ModelDeployment", "--resource-name", "iris", "--namespace", namespace)

    refused = argocd.cli(*run, "abort", *target, config=promoter, check=False)
    assert "permission denied" in refused.lower()
    assert get_md(cluster, namespace, "iris")["status"]["rollout"]["phase"] == "Paused"

    argocd.cli(*run, "promote", *target, config=promoter)
    assert (
        watch_health(argocd, APP, until=lambda seen: seen[-1:] == ["Healthy"], timeout=120)[-1] == "Healthy"
    )
    md = get_md(cluster, namespace, "iris")
    control = md["status"]["rolloutControl"]
    assert control["action"] == "promote"
    assert control["requestId"].startswith("argocd-rv")
    assert md["status"]["rollout"]["handledRequestId"] == control["requestId"]
    assert md["status"]["activeRevision"] != before


def test_argocd_evaluator_and_our_lua_agree_on_objects_taken_during_the_rollouts(argocd, snapshots):
    assert {health for health, _ in snapshots} >= {"Progressing", "Suspended", "Healthy"}
    for _, obj in snapshots:
        ours = run_lua(ARGOCD / "health.lua", obj)
        assert offline_health(argocd.bin_dir, obj) == {"status": ours["status"], "message": ours["message"]}
        discovered = lua_to_python(run_lua(ACTIONS / "discovery.lua", obj))
        expected = [{"name": name, "disabled": spec["disabled"]} for name, spec in discovered.items()]
        assert sorted(offline_actions(argocd.bin_dir, obj), key=str) == sorted(expected, key=str)
