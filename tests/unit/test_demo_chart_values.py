"""What the demo deploys on the real node (harness.demo_plan): chart values the chart's schema accepts,
pods that fit the node's CPU budget, specs the operator accepts, and CRDs adopted or left to their release."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from harness import demo_plan
from modeldeploy.api import parse_spec

REPO = Path(__file__).resolve().parents[2]

NODE, TAINT = "real-0", "modeldeploy.io/real-node"


def values(install_crds: bool = True) -> dict:
    return demo_plan.chart_values(
        operator_image="localhost/modeldeploy-operator:147a0ae69c2d",
        serving_image="localhost/modelserve:2c9478634b1d",
        namespace="demo",
        node=NODE,
        taint=TAINT,
        install_crds=install_crds,
    )


def cpu_milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_chart_values_pass_the_charts_schema():
    schema = json.loads((REPO / "charts" / "modeldeploy" / "values.schema.json").read_text())
    jsonschema.validate(values(), schema)


def test_operator_pod_runs_the_imported_image_on_the_real_node_watching_only_the_demo_namespace():
    got = values()
    assert got["image"] == {
        "repository": "localhost/modeldeploy-operator",
        "tag": "147a0ae69c2d",
        "pullPolicy": "Never",
    }
    assert got["watchNamespaces"] == ["demo"]
    assert got["nodeSelector"] == {"kubernetes.io/hostname": NODE}
    assert got["tolerations"] == [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]
    assert cpu_milli(got["resources"]["requests"]["cpu"]) <= 50


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("localhost/modelserve:abc", ("localhost/modelserve", "abc")),
        ("registry:5000/team/op:1.2", ("registry:5000/team/op", "1.2")),
    ],
)
def test_image_ref_splits_into_repository_and_tag(ref, expected):
    assert demo_plan.split_image(ref) == expected


@pytest.mark.parametrize("ref", ["localhost/modelserve", "registry:5000/team/op"])
def test_image_ref_without_a_tag_is_refused(ref):
    with pytest.raises(ValueError, match="explicit tag"):
        demo_plan.split_image(ref)


def test_model_store_serves_every_file_from_its_configmap_and_fits_the_cpu_budget():
    files = {"iris-v1.joblib": b"\x80\x04model", "holdout.csv": b"a,b\n1,2\n"}
    config_map, deployment, service = demo_plan.model_store_manifests(
        namespace="demo", files=files, image="localhost/modeldeploy-tools:local", node=NODE, taint=TAINT
    )
    assert {k: base64.b64decode(v) for k, v in config_map["binaryData"].items()} == files
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": NODE}
    assert all(cpu_milli(c["resources"]["requests"]["cpu"]) <= 50 for c in pod["containers"])
    assert service["metadata"]["name"] == "model-store"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_spec_pins_the_digest_of_the_model_fetched_from_the_store_and_is_accepted_by_the_operator():
    digest = hashlib.sha256(b"model").hexdigest()
    spec = demo_plan.spec_for(version="2", namespace="demo", sha256=digest, node=NODE, taint=TAINT)
    parsed = parse_spec(spec)
    assert parsed.model.uri == "http://model-store.demo.svc.cluster.local/iris-v2.joblib"
    assert parsed.model.sha256 == digest
    assert cpu_milli(spec["resources"]["requests"]["cpu"]) <= 50
    assert spec["server"]["imagePullPolicy"] == "Never"
    assert [s["weight"] for s in spec["rollout"]["steps"]] == [50]


@pytest.mark.parametrize(
    ("owners", "expected"),
    [
        ({}, ([], True)),  # a fresh cluster: the chart installs them
        ({"a.io": None, "b.io": "demo"}, (["a.io"], True)),  # applied outside Helm: adopted
        ({"a.io": "demo", "b.io": "demo"}, ([], True)),  # ours already: upgraded by the chart
        ({"a.io": "other", "b.io": None}, ([], False)),  # another release installs them: left to it
    ],
)
def test_existing_crds_are_adopted_unless_another_release_owns_them(owners, expected):
    assert demo_plan.crd_plan(owners, "demo") == expected


def test_adoption_marks_the_object_as_the_releases():
    patch = demo_plan.adoption_patch("demo", "demo-system")["metadata"]
    assert patch["labels"] == {"app.kubernetes.io/managed-by": "Helm"}
    assert patch["annotations"] == {
        "meta.helm.sh/release-name": "demo",
        "meta.helm.sh/release-namespace": "demo-system",
    }
