"""Gateway API mode: the operator owns an HTTPRoute whose backendRefs carry the exact step weights to the
per-colour Services, with a header match that pins chosen users to the candidate during the steps."""

from __future__ import annotations

import pytest

from harness.operator import (
    REPO,
    get_obj,
    kubectl_apply,
    wait_for,
)
from harness.rollout import (
    EndpointWatcher,
    RouteWatcher,
    Traffic,
    body,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    v2_body,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

NAME = "routed"
ROLLOUT = {
    "steps": [{"weight": 25, "pauseSeconds": 4}, {"weight": 50, "pauseSeconds": 4}],
    "smoke": {"requests": [{"path": f"/v2/models/{NAME}/infer", "body": v2_body([5.1, 3.5, 1.4, 0.2])}]},
    "analysis": {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 1},
    "scaleDownDelaySeconds": 5,
    "trafficRouting": {
        "gatewayAPI": {
            "parentRefs": [{"name": "public-gateway"}],
            "hostnames": ["iris.example.internal"],
            "headerMatch": {"name": "x-canary", "value": "always"},
        }
    },
}


@pytest.fixture(scope="module")
def routed(cluster, namespace, tmp_path_factory):
    import subprocess

    subprocess.run(
        ["bash", str(REPO / "tests" / "cluster" / "cluster.sh"), "install-crds", "gateway-api"],
        check=True,
        capture_output=True,
        env=cluster.env,
    )
    cluster.wait_established("httproutes.gateway.networking.k8s.io")
    workdir = tmp_path_factory.mktemp("gateway")
    models = train_models(workdir / "models")
    pair = start_pair(
        workdir,
        NAME,
        rollout_spec("1", ROLLOUT),
        rollout_spec("2", ROLLOUT),
        models.good,
        models.good,
        models,
    )
    with serving_pairs({NAME: pair}) as pairs, rollout_operator(cluster, namespace, workdir, pairs):
        yield pair


def test_httproute_carries_exact_step_weights_and_the_header_match(cluster, namespace, routed):
    pair = routed
    kubectl_apply(cluster, body(NAME, namespace, pair.v1))
    wait_rollout(cluster, namespace, NAME, serving(revision(pair.v1)), what="v1 serving")
    route = get_obj(cluster, "httproute", namespace, NAME)
    assert [ref["name"] for ref in route["spec"]["parentRefs"]] == ["public-gateway"]
    assert route["spec"]["hostnames"] == ["iris.example.internal"]
    assert route["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    with (
        RouteWatcher(cluster, namespace, NAME) as routes,
        EndpointWatcher(cluster, namespace, NAME) as endpoints,
        Traffic(NAME, [pair.blue.url, pair.green.url]),
    ):
        kubectl_apply(cluster, body(NAME, namespace, pair.v2))
        md = wait_rollout(cluster, namespace, NAME, serving(revision(pair.v2)), timeout=120, what="promoted")
        wait_for(lambda: routes.weight_sequence()[-1] == (0, 100), timeout=20, what="route all on green")
    assert md["status"]["history"][0]["outcome"] == "Promoted"
    assert rollout_of(md)["smoke"]["passed"] is True
    sequence = routes.weight_sequence()
    assert sequence[0] == (100, 0) and sequence[-1] == (0, 100), sequence
    assert (75, 25) in sequence and (50, 50) in sequence, sequence
    assert sequence.index((75, 25)) < sequence.index((50, 50)), sequence
    stepping = [s for s in routes.samples if s.phase == "Stepping"]
    assert stepping and all(s.header_to == "green" for s in stepping if s.weights.get("green")), stepping[:3]
    before_traffic = [s for s in routes.samples if s.phase in ("WaitingForCandidate", "SmokeTesting")]
    assert all(s.weights.get("green", 0) == 0 for s in before_traffic), before_traffic[:3]
    # The stable Service is not used for splitting here: one colour at a time, never empty.
    assert endpoints.problems() == [], endpoints.problems()[:5]
    assert all(len(s.colors) == 1 for s in endpoints.samples if s.colors), "stable Service mixed colours"
