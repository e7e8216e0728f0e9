"""No takeover: a child is written only when its name is free or the object is controlled by this
ModelDeployment (or was left by a deleted one of the same name); otherwise NameConflict, nothing written."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.test_reconcile_pass import URI, OthersWaiting, RecordingApiServer, _body

from modeldeploy.reconcile import Context, WaitingFor, reconcile
from modeldeploy.reconcile.plan import Action, Claim, Step, claim, name_conflicts
from modeldeploy.settings import OperatorSettings


def _owned(kind: str = "ModelDeployment", name: str = "iris", uid: str = "u-1", **extra: object) -> dict:
    ref = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": kind, "name": name, "uid": uid, **extra}
    return {"metadata": {"name": "iris", "ownerReferences": [ref]}}


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        (None, Claim.FREE),
        ({"metadata": {"name": "iris"}}, Claim.CONFLICT),  # no owner: someone made it by hand
        (_owned(controller=True), Claim.OURS),
        (_owned(uid="u-old", controller=True), Claim.ADOPT),  # a deleted namesake's orphan
        (_owned(name="other", uid="u-2", controller=True), Claim.CONFLICT),  # a neighbour's
        (_owned(), Claim.CONFLICT),  # our uid but not as controller: not controlled by us
        (_owned(controller=False), Claim.CONFLICT),
        (_owned(kind="Deployment", name="iris", uid="u-1", controller=True), Claim.CONFLICT),
        (
            {
                "metadata": {
                    "ownerReferences": [
                        {
                            "apiVersion": "other.io/v1",
                            "kind": "ModelDeployment",
                            "name": "iris",
                            "uid": "u-1",
                            "controller": True,
                        }
                    ]
                }
            },
            Claim.CONFLICT,
        ),
    ],
    ids=[
        "absent",
        "no owner",
        "ours",
        "namesake",
        "neighbour",
        "not controller",
        "controller false",
        "other kind",
        "other group",
    ],
)
def test_who_may_write_over_an_object(live, expected):
    assert claim(live, "u-1", "iris") == expected


def test_conflicts_name_the_object_and_its_owner_and_skip_unchanged():
    steps = [
        Step(Action.CREATE, "Service", "iris", {}),
        Step(Action.UPDATE, "HorizontalPodAutoscaler", "iris", {}),
        Step(Action.UNCHANGED, "PodDisruptionBudget", "iris", None),
        Step(Action.CREATE, "Deployment", "iris-blue", {}),
    ]
    live = {
        ("Service", "iris"): {"metadata": {"name": "iris"}},
        ("HorizontalPodAutoscaler", "iris"): _owned(name="web", uid="u-9", controller=True),
        ("PodDisruptionBudget", "iris"): {"metadata": {"name": "iris"}},
    }
    assert name_conflicts(steps, live, "u-1", "iris") == [
        "Service iris exists and is not controlled by this ModelDeployment (no owner)",
        "HorizontalPodAutoscaler iris exists and is not controlled by this ModelDeployment "
        "(owner ModelDeployment web)",
    ]


SPEC = {"model": {"uri": URI, "version": "3"}, "replicas": 1}
FOREIGN_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "iris", "namespace": "ml", "resourceVersion": "5"},
    "spec": {"selector": {"app": "frontend"}},
}


def test_a_taken_name_writes_no_child_and_reports_name_conflict_with_an_event():
    kube = RecordingApiServer(_body(SPEC), {("Service", "iris"): FOREIGN_SERVICE})
    ctx = Context(kube=kube, settings=OperatorSettings())  # type: ignore[arg-type]
    with pytest.raises(WaitingFor) as waiting:
        asyncio.run(reconcile(ctx, kube.body, [], [], trigger="create"))
    assert waiting.value.reason == "NameConflict"
    assert kube.targets("apply") == [] and kube.targets("delete") == []
    ready = {c["type"]: c for c in kube.body["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert "Service iris" in ready["message"] and "no owner" in ready["message"]
    assert kube.targets("event") == ["iris"]

    # The next pass finds the same conflict: no second status write, no second Event.
    before = len(kube.requests)
    with pytest.raises(WaitingFor):
        asyncio.run(reconcile(ctx, ctx.cache.bodies.get("ml", "iris") or {}, [], [], trigger="requeue"))
    assert [m for m, _ in kube.requests[before:] if m != "get"] == []


def test_an_orphan_of_a_deleted_namesake_is_adopted_by_a_forced_update():
    orphan = {**FOREIGN_SERVICE, "metadata": {**_owned(uid="u-old", controller=True)["metadata"]}}
    kube = RecordingApiServer(_body(SPEC), {("Service", "iris"): orphan})
    forced: dict[str, bool] = {}
    plain_apply = kube.apply

    async def apply(manifest: dict, *, force: bool = True) -> dict:
        forced[f"{manifest['kind']}/{manifest['metadata']['name']}"] = force
        return await plain_apply(manifest, force=force)

    kube.apply = apply  # type: ignore[method-assign]
    ctx = Context(kube=kube, settings=OperatorSettings())  # type: ignore[arg-type]
    outcome = asyncio.run(reconcile(ctx, kube.body, [], [], trigger="create"))
    assert outcome.result == "changed"
    assert forced["Service/iris"] is True  # over an object we control: forced
    assert forced["Deployment/iris-blue"] is False  # a create never forces over a namesake


def test_the_pass_finishing_a_partial_pass_reads_no_name_again_and_reads_urgently_for_a_deployment():
    kube = RecordingApiServer(_body(SPEC))
    waiting = [True]
    ctx = Context(kube=kube, settings=OperatorSettings(), queue=OthersWaiting(waiting))  # type: ignore[arg-type]
    first = asyncio.run(reconcile(ctx, kube.body, [], [], trigger="create"))
    assert first.result == "partial" and kube.targets("apply") == ["Deployment/iris-blue"]
    read_first = kube.targets("get")
    assert "Service/iris" in read_first and "Deployment/iris-blue" in read_first
    assert kube.urgent_gets == read_first  # the serving Deployment's apply waits for every one of them

    waiting[0] = False
    second = asyncio.run(reconcile(ctx, kube.body, [], [], trigger="requeue"))
    assert second.result == "changed" and "Service/iris" in kube.targets("apply")
    assert kube.targets("get") == read_first  # the names were read once, by the first pass
