"""One reconcile pass, end to end against a recording API server: it goes observe -> plan -> apply ->
write status, once each. A check waits until the children match the plan; the pass that runs it writes
status once (verdict, analysis windows, A/B view together) and applies nothing, and the next pass applies
what the check decided."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.api import CheckResult, Color, ColorStats, parse_spec
from modeldeploy.desired import CheckReport
from modeldeploy.desired.revision import revision_of
from modeldeploy.desired.rollout import Check
from modeldeploy.k8s import ApiError, Kind
from modeldeploy.reconcile import Context, WaitingFor, reconcile
from modeldeploy.reconcile import core as reconcile_core
from modeldeploy.settings import OperatorSettings

URI = "https://models.example/iris/model.onnx"
# Which step of a pass a module belongs to.
STAGES = {
    "modeldeploy.reconcile.observe": "observe",
    "modeldeploy.desired": "plan",
    "modeldeploy.reconcile.plan": "plan",
    "modeldeploy.reconcile.checks": "check",
    "modeldeploy.reconcile.apply": "apply",
    "modeldeploy.reconcile.status": "write status",
}
# The stand-ins of this module: the API server's requests by what they do, the check runner as a check.
REQUESTS = {
    "RecordingApiServer.get": "observe",
    "RecordingApiServer.get_crd": "observe",
    "RecordingApiServer.apply": "apply",
    "RecordingApiServer.delete": "apply",
    "RecordingApiServer.patch_status": "write status",
    "RecordingApiServer.emit_event": "write status",
    "SmokeRunner.__call__": "check",
}


def _stage_of(frame: Any) -> str | None:
    module = frame.f_globals.get("__name__", "")
    if module == __name__:
        return REQUESTS.get(frame.f_code.co_qualname)
    for prefix, stage in STAGES.items():
        if module == prefix or module.startswith(prefix + "."):
            return stage
    return None


@contextmanager
def traced_pass() -> Iterator[list[str]]:
    """Records the step (by the callee's module) of every call made from reconcile/core.py, the pass's
    driver; repeated calls into the same step in a row count once."""
    stages: list[str] = []

    def profile(frame: Any, event: str, _: Any) -> None:
        caller = frame.f_back
        if event != "call" or caller is None or caller.f_code.co_filename != reconcile_core.__file__:
            return
        if caller.f_code.co_qualname.startswith("Context."):  # the cache's bookkeeping, not a step
            return
        stage = _stage_of(frame)
        if stage is not None and (not stages or stages[-1] != stage):
            stages.append(stage)

    sys.setprofile(profile)
    try:
        yield stages
    finally:
        sys.setprofile(None)


def _merged(old: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386) applied, as the API server does."""
    if not isinstance(patch, Mapping) or not isinstance(old, Mapping):
        return copy.deepcopy(patch)
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(out.get(key), value)
    return out


class RecordingApiServer:
    """The API server's answers a pass needs (objects it holds, applies, status patches merged into the
    ModelDeployment), with every request recorded in order."""

    def __init__(self, body: dict, objects: Mapping[tuple[str, str], dict] = (), fail_applies: bool = False):
        self.body = copy.deepcopy(body)
        self.objects = dict(objects)
        self.fail_applies = fail_applies
        self.refuse_applies: Exception | None = None  # what the API server answers every apply with
        self.requests: list[tuple[str, str]] = []
        self.urgent_gets: list[str] = []  # reads a Deployment's apply waits for
        self._version = 100

    async def get(self, kind: Kind, namespace: str, name: str, *, urgent: bool = False) -> dict | None:
        self.requests.append(("get", f"{kind.kind}/{name}"))
        if urgent:
            self.urgent_gets.append(f"{kind.kind}/{name}")
        if kind.kind == "ModelDeployment" and name == self.body["metadata"]["name"]:
            return copy.deepcopy(self.body)
        return copy.deepcopy(self.objects.get((kind.kind, name)))

    def written_by_another(self, status: dict) -> None:
        """Another writer (a second operator replica) changes status behind this operator's back."""
        self._version += 1
        self.body["status"] = copy.deepcopy(status)
        self.body["metadata"]["resourceVersion"] = str(self._version)

    async def get_crd(self, name: str) -> dict | None:
        self.requests.append(("get", f"CustomResourceDefinition/{name}"))
        return None

    async def apply(self, manifest: dict, *, force: bool = True) -> dict:
        self.requests.append(("apply", f"{manifest['kind']}/{manifest['metadata']['name']}"))
        if isinstance(self.refuse_applies, Exception):
            raise self.refuse_applies
        if self.fail_applies:
            raise RuntimeError("the API server refused the write")
        self._version += 1
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": str(self._version)}}

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        self.requests.append(("delete", f"{kind.kind}/{name}"))
        return True

    async def patch_status(
        self, namespace: str, name: str, patch: dict, *, resource_version: str | None = None, **_: object
    ) -> dict:
        self.requests.append(("status", name))
        if resource_version is not None and resource_version != self.body["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified", "Conflict")
        self._version += 1
        self.body["status"] = _merged(self.body.get("status") or {}, patch)
        self.body["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(self.body)

    async def emit_event(self, involved: dict, **_: object) -> None:
        self.requests.append(("event", involved["metadata"]["name"]))

    def targets(self, request: str) -> list[str]:
        return [target for method, target in self.requests if method == request]


class OthersWaiting:
    """The work queue as a pass sees it, with other passes waiting for a place while `now[0]` is true."""

    def __init__(self, now: list[bool]) -> None:
        self.now = now

    def waiting(self) -> bool:
        return self.now[0]

    def place_handed_back(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


def _body(spec: dict, status: dict | None = None) -> dict:
    body = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "uid": "u-1",
            "generation": 1,
            "resourceVersion": "7",
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def test_a_pass_goes_observe_plan_apply_write_status_once_each():
    spec = {
        "model": {"uri": URI, "version": "3"},
        "replicas": 1,
        "security": {"apiKeySecretRef": {"name": "keys"}},
        "monitoring": {"serviceMonitor": {"enabled": True}},
    }
    keys = {"metadata": {"labels": {"modeldeploy.io/usage": "api-keys"}}, "data": {"api-keys": "aw=="}}
    kube = RecordingApiServer(_body(spec), {("Secret", "keys"): keys})
    ctx = Context(kube=kube, settings=OperatorSettings())  # type: ignore[arg-type]
    with traced_pass() as stages:
        outcome = asyncio.run(reconcile(ctx, kube.body, [], [], trigger="create"))
    assert stages == ["observe", "plan", "apply", "write status"]
    assert outcome.result == "changed"
    # The reads come first (the names it creates too: taken by no one), the writes after, the status last.
    methods = [method for method, _ in kube.requests]
    first_write = methods.index("apply")
    assert set(methods[:first_write]) == {"get"} and set(methods[first_write:-2]) == {"apply"}, kube.requests
    assert methods[-2:] == ["status", "event"]
    # No ServiceMonitor CRD here: the ServiceMonitor is neither read nor written.
    assert not any(target.startswith("ServiceMonitor/") for _, target in kube.requests)


SMOKE_SPEC = {
    "model": {"uri": URI, "version": "4"},
    "replicas": 1,
    "rollout": {"smoke": {"requests": [{"body": [1]}]}, "steps": [{"weight": 50, "pauseSeconds": 60}]},
}
NEW = revision_of(parse_spec(SMOKE_SPEC))
SMOKE_TESTING = {
    "activeColor": "blue",
    "activeRevision": "old",
    "candidateRevision": NEW,
    "rollout": {"phase": "SmokeTesting", "revision": NEW, "color": "green"},
}
# The candidate's one pod, Ready (the index holds pods as the watch delivers them).
CANDIDATE_POD = {
    "metadata": {
        "name": "iris-green-1",
        "labels": {
            "modeldeploy.io/name": "iris",
            "modeldeploy.io/color": "green",
            "modeldeploy.io/revision": NEW,
        },
    },
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}
AT = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
REPORT = CheckReport(
    results={Check.smoke: CheckResult(passed=True, message="1/1 requests answered", at=AT)},
    baselines={"green": {"takenAt": "2026-01-01T12:00:04Z", "pods": {}}},
    color_stats=[ColorStats(color=Color.green, revision=NEW, requests=3, error_rate=0.0)],
)


class SmokeRunner:
    """Stands for the probes: answers the check the pass asks for with REPORT, and counts the asks."""

    def __init__(self) -> None:
        self.asked: list[Check] = []

    async def __call__(self, body: Mapping[str, Any], spec: Any, check: Check, observed: Any) -> CheckReport:
        self.asked.append(check)
        return REPORT


def _next_pass(ctx: Context, trigger: str = "requeue") -> Any:
    """A pass from the newest body the operator saw (as a requeue runs it)."""
    return asyncio.run(
        reconcile(ctx, ctx.cache.bodies.get("ml", "iris") or {}, [], [CANDIDATE_POD], trigger=trigger)
    )


def test_a_check_waits_for_the_writes_then_writes_its_findings_once_and_the_next_pass_applies():
    kube = RecordingApiServer(_body(SMOKE_SPEC, SMOKE_TESTING))
    runner = SmokeRunner()
    ctx = Context(kube=kube, settings=OperatorSettings(), check_runner=runner)  # type: ignore[arg-type]

    # The children do not match the plan yet: they are written first, the check waits for the next pass.
    first = asyncio.run(reconcile(ctx, kube.body, [], [CANDIDATE_POD], trigger="update"))
    assert runner.asked == [] and "Deployment/iris-green" in kube.targets("apply")
    assert first.requeue_after == 0.0

    written = len(kube.requests)
    with traced_pass() as stages:
        checked = _next_pass(ctx)
    assert stages == ["observe", "plan", "check", "plan", "write status"]
    assert runner.asked == [Check.smoke]
    during = kube.requests[written:]
    assert [method for method, _ in during if method in ("apply", "delete", "status")] == ["status"]
    assert (checked.result, checked.requeue_after) == ("partial", 0.0)  # the handler looks again at once
    rollout = kube.body["status"]["rollout"]
    assert rollout["smoke"]["passed"] is True and rollout["phase"] == "Stepping"
    assert rollout["analysisBaselines"] == {"green": {"takenAt": "2026-01-01T12:00:04Z", "pods": {}}}
    assert kube.body["status"]["colors"] == [
        {"color": "green", "revision": NEW, "requests": 3, "errorRate": 0.0}
    ]

    written = len(kube.requests)
    following = _next_pass(ctx)
    assert runner.asked == [Check.smoke]  # the finding is in status: no second check
    assert ("apply", "Service/iris") in kube.requests[written:]  # step 1: the stable Service takes green in
    assert following.result == "changed"


def test_a_check_result_is_kept_when_the_apply_after_it_fails():
    kube = RecordingApiServer(_body(SMOKE_SPEC, SMOKE_TESTING))
    ctx = Context(kube=kube, settings=OperatorSettings(), check_runner=SmokeRunner())  # type: ignore[arg-type]
    asyncio.run(reconcile(ctx, kube.body, [], [CANDIDATE_POD], trigger="update"))
    _next_pass(ctx)  # the check pass
    kube.fail_applies = True
    with pytest.raises(RuntimeError):
        _next_pass(ctx)
    assert kube.targets("apply")[-1] == "Service/iris", "the pass after the check tried to apply"
    assert kube.body["status"]["rollout"]["smoke"]["at"] == "2026-01-01T12:00:05Z"


def test_a_pass_planned_from_an_older_body_never_writes_its_older_phase_back_and_plans_again():
    kube = RecordingApiServer(_body(SMOKE_SPEC, SMOKE_TESTING))
    runner = SmokeRunner()
    ctx = Context(kube=kube, settings=OperatorSettings(), check_runner=runner)  # type: ignore[arg-type]
    asyncio.run(reconcile(ctx, kube.body, [], [CANDIDATE_POD], trigger="update"))  # children written
    stale = ctx.cache.bodies.get("ml", "iris")  # what this replica read, before the other one aborted
    assert stale is not None and stale["status"]["rollout"]["phase"] == "SmokeTesting"
    aborted = copy.deepcopy(stale["status"])
    aborted["rollout"]["phase"] = "Aborted"
    kube.written_by_another(aborted)
    reads = kube.requests.count(("get", "ModelDeployment/iris"))

    asyncio.run(reconcile(ctx, stale, [], [CANDIDATE_POD], trigger="requeue"))
    assert runner.asked == [Check.smoke]  # from the stale body the smoke test passed: it would say Stepping
    assert kube.requests.count(("get", "ModelDeployment/iris")) == reads + 1  # read again after the conflict
    assert kube.body["status"]["rollout"]["phase"] == "Aborted", "the older replica's phase was written back"
    cached = ctx.cache.bodies.get("ml", "iris")
    assert cached is not None and cached["status"]["rollout"]["phase"] == "Aborted"


def test_a_status_write_from_the_current_body_carries_its_version_and_succeeds_first_time():
    kube = RecordingApiServer(_body(SMOKE_SPEC, SMOKE_TESTING))
    ctx = Context(kube=kube, settings=OperatorSettings(), check_runner=SmokeRunner())  # type: ignore[arg-type]
    asyncio.run(reconcile(ctx, kube.body, [], [CANDIDATE_POD], trigger="update"))
    assert ("get", "ModelDeployment/iris") not in kube.requests


def test_a_write_the_api_server_refuses_is_reported_and_retried_with_backoff_not_at_every_trigger():
    spec = {"model": {"uri": URI, "version": "3"}, "replicas": 1}
    kube = RecordingApiServer(_body(spec))
    kube.refuse_applies = ApiError(
        403, 'deployments.apps "iris-blue" is forbidden: exceeded quota', "Forbidden"
    )
    ctx = Context(kube=kube, settings=OperatorSettings())  # type: ignore[arg-type]
    with pytest.raises(WaitingFor) as first:
        asyncio.run(reconcile(ctx, kube.body, [], [], trigger="create"))
    assert (first.value.reason, first.value.delay) == ("ApplyRejected", 5.0)
    ready = next(c for c in kube.body["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ApplyRejected")
    assert "Deployment iris-blue" in ready["message"] and "exceeded quota" in ready["message"]
    assert kube.body["status"]["phase"] == "Failed"  # nothing served yet
    assert ("event", "iris") in kube.requests

    applies = len(kube.targets("apply"))
    with pytest.raises(WaitingFor) as again:
        asyncio.run(reconcile(ctx, ctx.cache.bodies.get("ml", "iris") or {}, [], [], trigger="pod"))
    assert len(kube.targets("apply")) == applies, "retried before the backoff ran out"
    assert 0 < again.value.delay <= 5.0

    kube.refuse_applies = None
    changed = ctx.cache.bodies.get("ml", "iris") or {}
    changed["metadata"]["generation"] = 2  # a fixed spec is tried at once
    outcome = asyncio.run(reconcile(ctx, changed, [], [], trigger="update"))
    assert outcome.result in ("changed", "partial") and len(kube.targets("apply")) > applies
