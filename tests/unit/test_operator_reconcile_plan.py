"""The reconcile layer's pure decisions: compare desired children with live ones, status diffs, Events."""

from __future__ import annotations

import asyncio
import copy

import pytest

from modeldeploy.api import parse_spec
from modeldeploy.desired import unwanted_optional_children
from modeldeploy.reconcile.observe import (
    crd_preserves_status_field,
    observed_for,
    owner_name,
    pod_parent_name,
    spec_unobserved,
)
from modeldeploy.reconcile.plan import (
    APPLIED_HASH_ANNOTATION,
    Action,
    first_difference,
    parse_quantity,
    plan_child,
    plan_children,
    with_applied_hash,
)
from modeldeploy.reconcile.status import keep_transition_times, status_merge_patch, transition_events
from modeldeploy.settings import OperatorSettings
from modeldeploy.workqueue import KeyedSerializer

DESIRED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "iris-blue",
        "namespace": "ml",
        "labels": {"app.kubernetes.io/managed-by": "modeldeploy"},
    },
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "modelserve",
                        "image": "modelserve:1",
                        "resources": {"limits": {"cpu": "1000m", "memory": "1Gi"}},
                        "ports": [{"containerPort": 8080, "name": "http"}],
                    }
                ]
            }
        },
    },
}


def live_of(desired: dict) -> dict:
    """What the API server returns after our apply: our hash, defaults filled in, quantities normalised."""
    live = with_applied_hash(copy.deepcopy(desired))
    live["metadata"].update(uid="u1", resourceVersion="7", generation=1)
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = "1"
    container["ports"][0]["protocol"] = "TCP"
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    live["spec"].update(strategy={"type": "RollingUpdate"}, progressDeadlineSeconds=600)
    live["status"] = {"readyReplicas": 2}
    return live


def edited(live: dict, path: list, value) -> dict:
    out = copy.deepcopy(live)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def changed_desired(path: list, value) -> dict:
    return edited(DESIRED, path, value)


CONTAINER = ["spec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(
    ("desired", "live", "action"),
    [
        (DESIRED, None, Action.CREATE),
        (DESIRED, live_of(DESIRED), Action.UNCHANGED),
        (changed_desired(["spec", "replicas"], 3), live_of(DESIRED), Action.UPDATE),
        (DESIRED, edited(live_of(DESIRED), [*CONTAINER, "image"], "evil:1"), Action.UPDATE),
        (DESIRED, edited(live_of(DESIRED), ["spec", "template", "spec", "containers"], []), Action.UPDATE),
        (DESIRED, edited(live_of(DESIRED), ["metadata", "annotations"], {}), Action.UPDATE),
        (DESIRED, edited(live_of(DESIRED), ["metadata", "labels", "team"], "ml"), Action.UNCHANGED),
        (DESIRED, edited(live_of(DESIRED), ["status", "readyReplicas"], 0), Action.UNCHANGED),
    ],
    ids=[
        "missing -> create",
        "exists with defaults and normalised quantities -> unchanged",
        "desired changed -> update",
        "someone edited a field we own -> update",
        "someone removed a list item -> update",
        "our hash annotation removed -> update",
        "someone added a label we do not own -> unchanged",
        "status differs -> unchanged",
    ],
)
def test_plan_child(desired, live, action):
    step = plan_child(desired, live)
    assert step.action == action
    if action in (Action.CREATE, Action.UPDATE):
        assert APPLIED_HASH_ANNOTATION in step.manifest["metadata"]["annotations"]
    else:
        assert step.manifest is None


def test_dropping_a_field_we_used_to_set_is_an_update_although_live_still_has_it():
    without_limits = copy.deepcopy(DESIRED)
    del without_limits["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert plan_child(without_limits, live_of(DESIRED)).action == Action.UPDATE


def test_children_no_longer_desired_are_deleted_and_others_planned():
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "iris"}}
    live = {("Deployment", "iris-blue"): live_of(DESIRED), ("PodDisruptionBudget", "iris"): pdb}
    steps = plan_children([DESIRED], live)
    assert [(s.action, s.kind, s.name) for s in steps] == [
        (Action.UNCHANGED, "Deployment", "iris-blue"),
        (Action.DELETE, "PodDisruptionBudget", "iris"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("1000m", 1),
        ("250m", 0.25),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1e3", 1000),
        (2, 2),
        ("x", None),
    ],
)
def test_parse_quantity(text, value):
    parsed = parse_quantity(text)
    assert (parsed is None) if value is None else (parsed == pytest.approx(value))


@pytest.mark.parametrize(
    ("want", "have", "where"),
    [
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, None),
        ({"a": {"b": 1}}, {"a": {"b": 2}}, ".a.b"),
        ({"a": [1, 2]}, {"a": [1]}, ".a"),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 0}]}, None),
        ({"cpu": "500m"}, {"cpu": "0.5"}, None),
        ({"a": None}, {}, None),
    ],
)
def test_first_difference_ignores_what_we_do_not_set(want, have, where):
    assert first_difference(want, have) == where


COND_TIME = "2026-01-01T00:00:00Z"


def status(ready: str, reason: str, phase: str = "Healthy", **extra) -> dict:
    return {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason, "lastTransitionTime": COND_TIME}],
        **extra,
    }


def test_status_patch_is_none_when_only_kopf_bookkeeping_differs():
    old = {**status("True", "AllReplicasReady"), "kopf": {"progress": {}}}
    assert status_merge_patch(old, status("True", "AllReplicasReady")) is None


def test_status_patch_sets_changed_keys_and_nulls_dropped_ones():
    old = status("True", "AllReplicasReady", candidateRevision="abc")
    new = status("False", "ReplicasNotReady", phase="Progressing")
    patch = status_merge_patch(old, new)
    assert patch == {"phase": "Progressing", "conditions": new["conditions"], "candidateRevision": None}


def test_status_patch_nulls_nested_keys_that_vanished():
    """A retried rollout drops the old verdict: the API server would keep it under a shallow patch."""
    old = status(
        "True", "AllReplicasReady", rollout={"phase": "Stepping", "analysis": {"passed": False, "at": "t1"}}
    )
    new = status("True", "AllReplicasReady", rollout={"phase": "Stepping", "analysis": {"at": "t2"}})
    assert status_merge_patch(old, new) == {"rollout": {"analysis": {"passed": None, "at": "t2"}}}


def test_unflipped_conditions_keep_their_transition_time():
    old = status("True", "AllReplicasReady")
    new = status("True", "AllReplicasReady")
    new["conditions"][0]["lastTransitionTime"] = "2026-06-01T00:00:00Z"
    assert keep_transition_times(old, new)["conditions"][0]["lastTransitionTime"] == COND_TIME
    flipped = status("False", "ReplicasNotReady")
    flipped["conditions"][0]["lastTransitionTime"] = "2026-06-01T00:00:00Z"
    assert (
        keep_transition_times(old, flipped)["conditions"][0]["lastTransitionTime"] == "2026-06-01T00:00:00Z"
    )


@pytest.mark.parametrize(
    ("old", "new", "events"),
    [
        (status("True", "AllReplicasReady"), status("True", "AllReplicasReady"), []),
        (None, status("True", "AllReplicasReady"), [("Normal", "AllReplicasReady")]),
        (
            status("True", "AllReplicasReady"),
            status("False", "InvalidSpec", "Failed"),
            [("Warning", "InvalidSpec")],
        ),
        (status("True", "A"), status("True", "A", "Degraded"), [("Normal", "PhaseDegraded")]),
    ],
    ids=["no transition -> no event", "first status", "invalid spec -> warning", "phase only"],
)
def test_transition_events(old, new, events):
    assert [(t, r) for t, r, _ in transition_events(old, new)] == events


def owned(kind: str, name: str, parent: str = "iris", uid: str = "u1") -> dict:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "modeldeploy.io/v1alpha1",
                    "kind": "ModelDeployment",
                    "name": parent,
                    "uid": uid,
                }
            ],
        },
    }


def test_owner_and_pod_parent_are_found_from_references_and_labels():
    assert owner_name(owned("Service", "iris")) == "iris"
    assert owner_name({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "x"}]}}) is None
    pod = {
        "metadata": {"labels": {"app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.io/name": "iris"}}
    }
    assert pod_parent_name(pod) == "iris"
    assert pod_parent_name({"metadata": {"labels": {"modeldeploy.io/name": "iris"}}}) is None


def test_observed_ignores_children_of_an_earlier_namesake_and_terminating_pods():
    children = [owned("Service", "iris"), owned("Service", "iris-preview", uid="old")]
    pods = [{"metadata": {"name": "p1"}}, {"metadata": {"name": "p2", "deletionTimestamp": "now"}}]
    observed = observed_for("u1", children, pods)
    assert list(observed.children) == [("Service", "iris")]
    assert [p["metadata"]["name"] for p in observed.pods] == ["p1"]


PRESERVED = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


@pytest.mark.parametrize(
    ("status_schema", "kept"),
    [
        ({"type": "object", "properties": {"kopf": PRESERVED}}, True),
        ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, True),
        ({"type": "object", "properties": {"phase": {"type": "string"}}}, False),
    ],
)  # fmt: skip
def test_crd_preserves_status_field(status_schema, kept):
    crd = {
        "spec": {
            "versions": [
                {"storage": True, "schema": {"openAPIV3Schema": {"properties": {"status": status_schema}}}}
            ]
        }
    }
    assert crd_preserves_status_field(crd, "kopf") is kept


def _crd(status_schema: dict) -> dict:
    schema = {"openAPIV3Schema": {"properties": {"status": status_schema}}}
    return {"spec": {"versions": [{"storage": True, "schema": schema}]}}


@pytest.mark.parametrize(
    ("crd", "says"),
    [
        (_crd({"type": "object", "properties": {"kopf": PRESERVED}}), None),
        (_crd({"type": "object", "properties": {"phase": {"type": "string"}}}), "has no status.kopf field"),
        (None, "is not installed"),
    ],
    ids=["status.kopf kept: runs", "no status.kopf: refuses", "no CRD: refuses"],
)
def test_the_operator_runs_only_on_a_crd_that_keeps_its_retry_state_in_status(crd, says):
    """Without status.kopf kopf would keep its state in annotations: a patch of the user's object."""
    from modeldeploy.handlers.startup import bookkeeping_refusal

    refusal = bookkeeping_refusal(crd)
    assert refusal is None if says is None else says in (refusal or "")
    if refusal:
        assert "modeldeployments.modeldeploy.io" in refusal and "install" in refusal


def test_serializer_runs_one_at_a_time_and_coalesces_a_burst_into_one_rerun():
    runs: list[int] = []

    async def scenario():
        serializer = KeyedSerializer()
        gate = asyncio.Event()

        async def work():
            runs.append(len(runs))
            await gate.wait()

        first = asyncio.create_task(serializer.run("k", work))
        await asyncio.sleep(0)
        burst = [asyncio.create_task(serializer.run("k", work)) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *burst)

    asyncio.run(scenario())
    assert runs == [0, 1]


@pytest.mark.parametrize(
    ("env", "namespaces", "clusterwide"),
    [({}, [], True), ({"MODELDEPLOY_NAMESPACES": "a, b"}, ["a", "b"], False),
     ({"MODELDEPLOY_NAMESPACES": '["ml"]'}, ["ml"], False)],
)  # fmt: skip
def test_settings_namespaces_from_environment(monkeypatch, env, namespaces, clusterwide):
    monkeypatch.delenv("MODELDEPLOY_NAMESPACES", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = OperatorSettings()
    assert settings.namespaces == namespaces
    assert settings.clusterwide is clusterwide


def test_invalid_spec_message_names_each_field_and_rule():
    from modeldeploy.reconcile.core import parse_spec

    with pytest.raises(ValueError) as raised:
        parse_spec({"spec": {"model": {"uri": "https://h/m.onnx"}, "replicas": -1, "server": {"workers": 0}}})
    message = str(raised.value)
    assert "spec.replicas:" in message and "spec.server.workers:" in message
    assert "Traceback" not in message


def test_indexed_children_are_packed_and_unpacked_unchanged():
    from modeldeploy.reconcile.observe import packed_child

    live = live_of(DESIRED)
    live["metadata"]["ownerReferences"] = owned("Deployment", "iris-blue")["metadata"]["ownerReferences"]
    live["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    packed = packed_child(live)
    assert isinstance(packed, str) and "managedFields" not in packed  # one compact string per child
    observed = observed_for("u1", [packed], [])
    child = observed.children[("Deployment", "iris-blue")]
    assert child["spec"] == live["spec"] and "managedFields" not in child["metadata"]
    assert plan_child(DESIRED, child).action == Action.UNCHANGED


@pytest.mark.parametrize(
    ("rollout", "monitoring", "unwanted"),
    [
        ({}, {}, [("HTTPRoute", "iris"), ("ServiceMonitor", "iris")]),
        (
            {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}},
            {},
            [("ServiceMonitor", "iris")],
        ),
        ({}, {"serviceMonitor": {"enabled": True}}, [("HTTPRoute", "iris")]),
        ({}, {"serviceMonitor": {"enabled": False}}, [("HTTPRoute", "iris"), ("ServiceMonitor", "iris")]),
    ],
)
def test_the_route_and_service_monitor_a_spec_does_not_ask_for_are_looked_for_under_their_names(
    rollout, monitoring, unwanted
):
    spec = parse_spec(
        {"model": {"uri": "https://m.example/model.onnx"}, "rollout": rollout, "monitoring": monitoring}
    )
    body = {"metadata": {"name": "iris", "namespace": "ml", "uid": "u-1"}}
    assert unwanted_optional_children(body, spec) == unwanted


@pytest.mark.parametrize(
    ("status", "generation", "look"),
    [
        (None, 1, False),  # new: nothing of an earlier spec can be left
        ({"observedGeneration": 1}, 1, False),  # handled: looked already
        ({"observedGeneration": 1}, 2, True),  # the spec changed: what it dropped may be left
    ],
)
def test_a_pass_looks_for_left_over_children_only_after_a_spec_change(status, generation, look):
    body = {"metadata": {"generation": generation}, **({"status": status} if status else {})}
    assert spec_unobserved(body) is look
