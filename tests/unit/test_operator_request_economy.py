"""What keeps the operator's API requests per ModelDeployment low in a burst: the body cache (no GET per
pass), one Event per status change, children written in two concurrent groups, coalesced child triggers,
children we wrote laid over a lagging index (no rewrite of what was just written), and requests let in
by priority (a new Deployment before older Services, Events last)."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from tests.unit.test_reconcile_pass import OthersWaiting

from modeldeploy.handlers.handled import HandledSpecs
from modeldeploy.handlers.modeldeployments import first_sight_trigger
from modeldeploy.handlers.runtime import Runtime
from modeldeploy.objectcache import BodyCache
from modeldeploy.reconcile import Context
from modeldeploy.reconcile.apply import apply_groups
from modeldeploy.reconcile.core import reconcile, with_unechoed
from modeldeploy.reconcile.observe import observed_for, packed_child
from modeldeploy.reconcile.plan import Action, Step
from modeldeploy.reconcile.status import events_of_change, one_event
from modeldeploy.settings import OperatorSettings
from modeldeploy.workqueue import BEST_EFFORT, NORMAL, URGENT, PriorityGate, WorkQueue


def md(version: str, phase: str = "Pending") -> dict:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml", "resourceVersion": version,
                     "managedFields": [{"manager": "kubectl"}]},
        "status": {"phase": phase},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("arrivals", "kept_phase"),
    [
        ([md("5", "Pending"), md("7", "Ready")], "Ready"),
        ([md("7", "Ready"), md("5", "Pending")], "Ready"),  # a late watch event never rolls back
        ([md("7", "Ready"), md("7", "Ready")], "Ready"),
        ([md("7", "Pending"), md("x", "Ready")], "Ready"),  # not an etcd version: the latest arrival wins
    ],
    ids=["newer replaces", "older ignored", "same kept", "opaque version -> latest"],
)
def test_body_cache_keeps_the_newest_version(arrivals, kept_phase):
    cache = BodyCache()
    for body in arrivals:
        cache.remember(body)
    cached = cache.get("ml", "iris")
    assert cached is not None and cached["status"]["phase"] == kept_phase
    assert "managedFields" not in cached["metadata"]


def test_body_cache_forgets_and_misses():
    cache = BodyCache()
    cache.remember(md("5"))
    cache.forget("ml", "iris")
    assert cache.get("ml", "iris") is None and len(cache) == 0


def test_body_cache_returns_a_copy_a_pass_may_change():
    cache = BodyCache()
    cache.remember(md("5"))
    first = cache.get("ml", "iris")
    assert first is not None
    first["status"]["phase"] = "Changed"
    assert cache.get("ml", "iris")["status"]["phase"] == "Pending"  # type: ignore[index]


@pytest.mark.parametrize(
    ("transitions", "expected_type", "expected_reason", "parts"),
    [
        ([], None, None, 0),
        ([("Normal", "AllReplicasReady", "Ready=True: all ready")], "Normal", "AllReplicasReady", 1),
        (
            [("Normal", "PodsStarting", "Ready=False: 0/1"), ("Normal", "NewRevision", "Progressing=True: x"),
             ("Normal", "AsExpected", "Degraded=False: ok")],
            "Normal", "PodsStarting", 3,
        ),
        (
            [("Normal", "PodsNotReady", "Ready=False: 0/1"),
             ("Warning", "CrashLoopBackOff", "Degraded=True: back-off")],
            "Warning", "CrashLoopBackOff", 2,
        ),
    ],
    ids=["nothing", "one flip", "first status -> one Event", "a warning leads"],
)  # fmt: skip
def test_condition_flips_of_one_change_become_one_event(transitions, expected_type, expected_reason, parts):
    folded = one_event(transitions)
    if not transitions:
        assert folded == []
        return
    assert len(folded) == 1
    type_, reason, message = folded[0]
    assert (type_, reason) == (expected_type, expected_reason)
    assert len(message.split("; ")) == parts
    for _, _, text in transitions:
        assert text in message


def step(kind: str, name: str, replicas: int | None = None) -> Step:
    spec = {} if replicas is None else {"replicas": replicas}
    return Step(Action.CREATE, kind, name, {"kind": kind, "spec": spec}, "missing")


@pytest.mark.parametrize(
    ("writes", "groups"),
    [
        (
            [step("Service", "iris"), step("Deployment", "iris-blue", 1), step("PodDisruptionBudget", "iris"),
             step("Deployment", "iris-green", 0)],
            [["Deployment/iris-blue"], ["Service/iris", "PodDisruptionBudget/iris"],
             ["Deployment/iris-green"]],
        ),
        (  # no replicas field: an HPA sets them, so the Deployment serves
            [step("Service", "iris"), step("Deployment", "iris-blue")],
            [["Deployment/iris-blue"], ["Service/iris"]],
        ),
        (  # promotion: the candidate scaled up first, the old colour scaled down after the Service moved
            [step("Deployment", "iris-blue", 0), step("Service", "iris"),
             step("Deployment", "iris-green", 2)],
            [["Deployment/iris-green"], ["Service/iris"], ["Deployment/iris-blue"]],
        ),
        ([step("Service", "iris")], [["Service/iris"]]),
        ([], []),
    ],
    ids=["new", "autoscaled", "promotion", "only a Service", "nothing"],
)  # fmt: skip
def test_serving_deployments_first_then_other_children_then_scale_downs(writes, groups):
    assert [[f"{s.kind}/{s.name}" for s in g] for g in apply_groups(writes)] == groups


def test_a_burst_of_child_triggers_runs_one_pass_after_the_window():
    runs: list[float] = []

    async def scenario() -> None:
        runtime = Runtime(ctx=Context(kube=None, settings=OperatorSettings()))  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def work() -> None:
            runs.append(loop.time() - started)

        for _ in range(5):
            runtime.queue.add_debounced(("ml", "iris"), 0.2, work)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.4)
        runtime.queue.add_debounced(("ml", "iris"), 0.05, work)  # after the window: a new pass
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert len(runs) == 2
    assert 0.15 < runs[0] < 0.35  # from the first trigger, not pushed back by the later ones


def child(kind: str, name: str, version: str, owner_uid: str = "u1") -> dict:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ml", "resourceVersion": version,
                     "ownerReferences": [{"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
                                          "name": "iris", "uid": owner_uid}]},
        "spec": {"selector": {"app": "iris"}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("indexed", "written", "seen_version", "caught_up"),
    [
        (None, child("Service", "iris", "9"), "9", []),  # the index has not seen it yet: ours counts
        (child("Service", "iris", "5"), child("Service", "iris", "9"), "9", []),  # index older: ours
        (child("Service", "iris", "9"), child("Service", "iris", "9"), "9", [("Service", "iris")]),
        (child("Service", "iris", "12"), child("Service", "iris", "9"), "12", [("Service", "iris")]),
        (None, child("Service", "iris", "9", owner_uid="old"), None, [("Service", "iris")]),  # namesake
    ],
    ids=["missing from index", "index behind", "index caught up", "index newer", "earlier namesake"],
)
def test_children_we_wrote_cover_a_lagging_index(indexed, written, seen_version, caught_up):
    observed = observed_for("u1", [packed_child(indexed)] if indexed else [], [])
    unechoed = {("Service", "iris"): packed_child(written)}
    assert with_unechoed(observed, unechoed, "u1") == caught_up
    seen = observed.children.get(("Service", "iris"))
    assert (seen or {}).get("metadata", {}).get("resourceVersion") == seen_version
    if seen is not None:
        assert seen["spec"] == {"selector": {"app": "iris"}}  # unpacked, as a pass compares it


def test_priority_gate_lets_the_urgent_in_first_then_in_arrival_order():
    order: list[str] = []

    async def scenario() -> None:
        gate = PriorityGate(1)
        await gate.acquire(NORMAL)  # the one connection is busy

        async def request(name: str, priority: int) -> None:
            await gate.acquire(priority)
            order.append(name)
            gate.release()

        waiting = [
            asyncio.create_task(request(name, priority))
            for name, priority in [("event", BEST_EFFORT), ("service-1", NORMAL), ("deployment", URGENT),
                                   ("service-2", NORMAL)]
        ]  # fmt: skip
        await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*waiting)

    asyncio.run(scenario())
    assert order == ["deployment", "service-1", "service-2", "event"]


def test_priority_gate_keeps_reserved_slots_for_urgent_requests():
    async def scenario() -> list[str]:
        gate = PriorityGate(3, reserved=1)
        entered: list[str] = []

        async def request(name: str, priority: int) -> None:
            await gate.acquire(priority)
            entered.append(name)

        tasks = [asyncio.create_task(request(f"service-{i}", NORMAL)) for i in range(3)]
        await asyncio.sleep(0)
        assert entered == ["service-0", "service-1"]  # the third slot is kept for URGENT
        tasks.append(asyncio.create_task(request("deployment", URGENT)))
        await asyncio.sleep(0)
        assert entered[-1] == "deployment"  # in at once, past the waiting Service
        gate.release()  # the Deployment done: its slot is a reserved one again
        await asyncio.sleep(0)
        assert "service-2" not in entered
        gate.release()  # a Service done: the waiting one takes its slot
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        return entered

    assert asyncio.run(scenario()) == ["service-0", "service-1", "deployment", "service-2"]


def test_priority_gate_survives_a_cancelled_waiter():
    async def scenario() -> bool:
        gate = PriorityGate(1)
        await gate.acquire(NORMAL)
        cancelled = asyncio.create_task(gate.acquire(URGENT))
        later = asyncio.create_task(gate.acquire(NORMAL))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        gate.release()
        await asyncio.wait_for(later, 1)  # the turn passed on to the next waiter
        gate.release()
        await asyncio.wait_for(gate.acquire(NORMAL), 1)  # and the slot came back
        return True

    assert asyncio.run(scenario())


class AnsweringKube:
    """The API server's answers a pass needs, recorded: an apply returns the object with a new
    resourceVersion, a status patch the merged body, an Event nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._version = 100

    async def apply(self, manifest: dict, *, force: bool = True) -> dict:
        self._version += 1
        self.calls.append((manifest["kind"], manifest["metadata"]["name"]))
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": str(self._version)}}

    async def get(self, kind: object, namespace: str, name: str, **_: object) -> dict | None:
        return None  # the names a new ModelDeployment claims are free

    async def patch_status(self, namespace: str, name: str, patch: dict, **_: object) -> dict:
        self.calls.append(("status", name))
        return {**BURST_BODY, "status": patch}

    async def emit_event(self, involved: dict, **_: object) -> None:
        self.calls.append(("Event", involved["metadata"]["name"]))


BURST_BODY = {
    "apiVersion": "modeldeploy.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "u-1", "generation": 1, "resourceVersion": "7"},
    "spec": {"model": {"uri": "https://models.example/iris/model.onnx", "version": "3"}, "replicas": 1},
}


@pytest.mark.parametrize(
    ("passes_waiting", "first_result", "first_writes"),
    [
        (True, "partial", {"Deployment"}),  # a burst: the serving Deployment now, the rest after the others
        (False, "changed", {"Deployment", "Service", "status", "Event"}),  # no one waits: all in one pass
    ],
    ids=["others waiting", "alone"],
)
def test_in_a_burst_a_pass_writes_its_deployments_then_hands_its_slot_over(
    passes_waiting, first_result, first_writes
):
    kube = AnsweringKube()
    waiting = [passes_waiting]
    ctx = Context(kube=kube, settings=OperatorSettings(), queue=OthersWaiting(waiting))  # type: ignore[arg-type]

    first = asyncio.run(reconcile(ctx, BURST_BODY, [], [], trigger="create"))
    assert first.result == first_result
    assert {kind for kind, _ in kube.calls} == first_writes
    assert (first.requeue_after == 0.0) is passes_waiting  # the handler queues the rest at once
    if passes_waiting:
        assert kube.calls == [("Deployment", "iris-blue")]  # the idle green slot waits with the Services

    written = len(kube.calls)
    waiting[0] = False
    second = asyncio.run(
        reconcile(ctx, ctx.cache.bodies.get("ml", "iris") or BURST_BODY, [], [], trigger="requeue")
    )
    later = {kind for kind, _ in kube.calls[written:]}
    # The later pass writes what the first left, never the same Deployment again (it sees what was written).
    assert ("Deployment", "iris-blue") not in kube.calls[written:]
    assert ("Service" in later) is passes_waiting
    assert "status" in later  # the first status (written later) / the one that sees the children
    assert second.result == "changed"


def test_a_new_model_deployments_first_pass_finds_a_place_while_older_passes_queue():
    async def scenario() -> tuple[bool, bool]:
        runtime = Runtime(ctx=Context(kube=None, settings=OperatorSettings()), queue=WorkQueue(4))  # type: ignore[arg-type]
        release = asyncio.Event()
        entered: list[str] = []

        async def pass_(name: str, trigger: str) -> None:
            async def work() -> None:
                entered.append(name)
                await release.wait()

            await runtime.queue.run(("ml", name), work, urgent=trigger == "create")

        tasks = [asyncio.create_task(pass_(f"resync-{i}", "resync")) for i in range(4)]
        await asyncio.sleep(0)
        queued = runtime.ctx.queue.waiting()  # three in, one waits: passes in flight hand over early
        tasks.append(asyncio.create_task(pass_("new", "create")))
        await asyncio.sleep(0)
        first_pass_in = "new" in entered
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        return queued, first_pass_in

    assert asyncio.run(scenario()) == (True, True)


DEPLOYED = ("Normal", "Deployed", "revision r1 is Ready on blue")
READY = ("Normal", "AllReplicasReady", "Ready=True: 1/1 replicas Ready")
SERVING = ("Normal", "RolloutComplete", "Progressing=False: r1 is serving")
CRASHING = ("Warning", "CrashLoopBackOff", "Degraded=True: back-off")
ABORTED = ("Warning", "AnalysisFailed", "error rate 0.4 > 0.1")


@pytest.mark.parametrize(
    ("planned", "flips", "expected"),
    [
        ([], [], []),
        ([DEPLOYED], [], [DEPLOYED]),
        ([], [READY, SERVING], one_event([READY, SERVING])),
        ([DEPLOYED], [READY, SERVING], [("Normal", "Deployed", f"{DEPLOYED[2]}; {READY[2]}; {SERVING[2]}")]),
        ([DEPLOYED], [READY, CRASHING], [("Normal", "Deployed", f"{DEPLOYED[2]}; {READY[2]}"), CRASHING]),
        ([ABORTED], [READY], [ABORTED, READY]),
        ([ABORTED, DEPLOYED], [READY], [ABORTED, ("Normal", "Deployed", f"{DEPLOYED[2]}; {READY[2]}")]),
    ],
    ids=["nothing", "planned only", "flips only", "ready: one Event", "a warning flip keeps its own",
         "a planned warning does not carry normal flips", "the first normal planned one carries them"],
)  # fmt: skip
def test_a_status_change_tells_its_condition_flips_inside_the_rollouts_own_event(planned, flips, expected):
    assert events_of_change(planned, flips) == expected


def kopf_body(uid: str, *, labels: dict | None = None, status: dict | None = None) -> kopf.Body:
    raw = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml", "uid": uid, "labels": labels or {"team": "a"}},
        "spec": {"replicas": 2},
        "status": status or {"phase": "Healthy", "observedGeneration": 1},
    }
    return kopf.Body(raw)


def test_kopf_last_handled_spec_is_kept_in_memory_and_written_nowhere():
    handled = HandledSpecs()
    body = kopf_body("u1")
    essence = handled.build(body=body)
    assert "status" not in essence and essence["spec"] == {"replicas": 2}
    assert essence["metadata"]["labels"] == {"team": "a"}
    assert handled.fetch(body=body) is None  # never handled: kopf calls the create handler
    patch = kopf.Patch()
    handled.store(body=body, patch=patch, essence=essence)
    assert not patch  # no status or annotation patch: no API request
    assert handled.fetch(body=kopf_body("u1", status={"phase": "Pending"})) == essence
    assert handled.fetch(body=kopf_body("u2")) is None  # a recreated namesake is new again
    handled.forget(("ml", "iris"))
    assert handled.fetch(body=body) is None and len(handled) == 0


@pytest.mark.parametrize(
    ("status", "trigger"),
    [
        (None, "create"),
        ({}, "create"),
        ({"kopf": {"progress": {}}}, "create"),  # kopf's retry state alone: never reconciled yet
        ({"observedGeneration": 3, "phase": "Healthy"}, "resume"),  # seen by an earlier operator
    ],
)
def test_a_model_deployment_new_to_kopf_is_resumed_when_it_already_has_a_status(status, trigger):
    body: dict = {"metadata": {"name": "iris", "namespace": "ml"}}
    if status is not None:
        body["status"] = status
    assert first_sight_trigger(body) == trigger
