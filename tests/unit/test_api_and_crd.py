"""The pydantic models (defaults, aliases, CEL rules mirrored in Python) and the CRD generated from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modeldeploy.api import MAX_NAME_LENGTH, ModelDeploymentStatus, parse_spec
from modeldeploy.crdgen import CRD_NAME, build_crd, render_crd

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "modeldeployments.yaml"
ONNX = "https://models.example/iris/model.onnx"


def schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crd_is_generated_from_the_models():
    assert CRD_FILE.read_text() == render_crd(), (
        "run: python -m modeldeploy.crdgen > crds/modeldeployments.yaml"
    )


@pytest.mark.parametrize(("content", "code"), [(None, 0), ("stale: true\n", 1)])
def test_crdgen_check_exit_code(tmp_path, content, code):
    target = tmp_path / "crd.yaml"
    target.write_text(render_crd() if content is None else content)
    result = subprocess.run(
        [sys.executable, "-m", "modeldeploy.crdgen", "--check", str(target)], capture_output=True
    )
    assert result.returncode == code


def test_schema_is_structural_without_refs_titles_or_nulls():
    text = yaml.safe_dump(schema())
    for word in ("$ref", "title:", "type: null", "$defs", "anyOf: []"):
        assert word not in text
    for path, node in walk(schema()):
        if path in ("", ".metadata"):
            continue
        # Array items and map values are explained by their field's description.
        assert path.endswith(("[]", "{}")) or node.get("description"), (
            f"{path} has no description (kubectl explain is the manual)"
        )
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"


def test_metadata_schema_is_only_an_object():
    assert schema()["properties"]["metadata"] == {"type": "object"}


def test_subresources_names_and_columns():
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == CRD_NAME == "modeldeployments.modeldeploy.io"
    assert crd["spec"]["names"]["shortNames"] == ["md", "mdep"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Ready", "Phase", "Active revision", "Traffic", "Replicas", "URL", "Age"]


def test_cel_rules_sit_on_the_objects_they_check():
    rules = {path: [r["message"] for r in node["x-kubernetes-validations"]]
             for path, node in walk(schema()) if "x-kubernetes-validations" in node}  # fmt: skip
    assert any("at most 55 characters" in m for m in rules[""])
    assert any("sha256 is required" in m for m in rules[".spec.model"])
    assert any("strictly increasing" in m for m in rules[".spec.rollout"])
    assert any("maxReplicas" in m for m in rules[".spec.autoscaling"])
    assert len(rules[".spec.resources"]) == 4
    assert MAX_NAME_LENGTH == 55


def test_strings_checked_by_cel_have_a_length_bound():
    """The API server estimates CEL cost from maxLength/maxItems; unbounded ones blow the budget."""
    for path, node in walk(schema()):
        for rule in node.get("x-kubernetes-validations", []):
            if node.get("type") == "string":
                assert "maxLength" in node, path
            if node.get("type") == "array":
                assert "maxItems" in node, path
            assert rule["message"]


def test_defaults_live_in_the_schema():
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["server"]["default"] == {} and spec["server"]["properties"]["workers"]["default"] == 1
    assert spec["rollout"]["properties"]["strategy"] == {
        "default": "BlueGreen", "description": "Only BlueGreen.", "enum": ["BlueGreen"], "type": "string"
    }  # fmt: skip


def test_spec_parses_camel_case_and_fills_defaults():
    gateway = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
    spec = parse_spec({"model": {"uri": ONNX, "allowUnverifiedPickle": True},
                       "autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
                       "rollout": {"trafficRouting": gateway}})  # fmt: skip
    assert spec.model.allow_unverified_pickle is True
    assert (spec.autoscaling.min_replicas, spec.autoscaling.target_cpu_utilization_percentage) == (1, 60)
    assert spec.rollout.traffic_routing.gateway_api.parent_refs[0].name == "gw"
    assert spec.replicas == 1 and spec.server.timeout_seconds == 10 and spec.rollout.auto_promote
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["autoscaling"]["targetCPUUtilizationPercentage"] == 60
    assert parse_spec(dumped) == spec


DRIFT = {"referenceUri": "https://d.example/iris/reference.csv", "sha256": "ab" * 32}
MIRRORED = [
    ({"model": {"uri": "ftp://x/m.onnx"}}, "model.uri must be"),
    ({"model": {"uri": "azure://modelstore/m.onnx"}}, "azure://<account>/<container>/<blob>"),
    ({"model": {"uri": "azure://Model_Store/models/m.onnx"}}, "azure://<account>/<container>/<blob>"),
    ({"model": {"uri": "gs://ml-models/"}}, "model.uri must be"),
    ({"model": {"uri": "https://x/m.pkl"}}, "model.sha256 is required"),
    ({"model": {"uri": ONNX, "format": "sklearn"}}, "model.sha256 is required"),
    ({"model": {"uri": ONNX, "sha256": "ABC"}}, "64 lowercase hexadecimal"),
    ({"model": {"uri": "pvc://c/m.onnx", "schema": {"features": []}}}, "model.schema works only"),
    (
        {"model": {"uri": "pvc://c/m.onnx", "credentials": {"secretRef": {"name": "s"}}}},
        "model.credentials works",
    ),
    ({"model": {"uri": ONNX}, "serviceAccountName": "Not_A_Name"}, "String should match pattern"),
    ({"model": {"uri": ONNX}, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "maxReplicas"),
    ({"model": {"uri": ONNX}, "rollout": {"steps": [{"weight": 20}, {"weight": 20}]}}, "strictly increasing"),
    ({"model": {"uri": ONNX}, "rollout": {"steps": [{"weight": 0}]}}, "greater than or equal to 1"),
    ({"model": {"uri": ONNX}, "resources": {"limits": {"gpu": 1}}}, "'gpu' is not a resource name"),
    ({"model": {"uri": ONNX}, "resources": {"limits": {"kubernetes.io/gpu": 1}}}, "outside kubernetes.io"),
    ({"model": {"uri": ONNX}, "resources": {"limits": {"nvidia.com/gpu": "500m"}}}, "take whole numbers"),
    ({"model": {"uri": ONNX}, "resources": {"requests": {"nvidia.com/gpu": 1}}}, "must be in limits"),
    (
        {"model": {"uri": ONNX}, "monitoring": {"evaluation": {"metric": "accuracy", "threshold": 0.9}}},
        "datasetUri and labelColumn are required unless source is feedback",
    ),
    (
        {
            "model": {"uri": ONNX},
            "monitoring": {"evaluation": {"source": "feedback", "metric": "roc_auc", "threshold": 0.9}},
        },
        "with source feedback use accuracy, f1, rmse or mae",
    ),
    (
        {
            "model": {"uri": ONNX},
            "monitoring": {
                "evaluation": {
                    "datasetUri": "https://d/f.csv",
                    "labelColumn": "y",
                    "metric": "mae",
                    "threshold": 1,
                    "intervalSeconds": 10,
                }
            },
        },
        "intervalSeconds must be at least 60 with source dataset",
    ),
    (
        {
            "model": {"uri": ONNX},
            "resources": {"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 1}},
        },
        "with the same number",
    ),
    *(
        ({"model": {"uri": ONNX}, "monitoring": {"drift": {**DRIFT, **change}}}, message)
        for change, message in (
            ({"referenceUri": "file:///etc/passwd"}, "monitoring.drift.referenceUri must be https://"),
            ({"referenceUri": "pvc://claim/ref.csv"}, "monitoring.drift.referenceUri must be https://"),
            ({"sha256": "A" * 64}, "monitoring.drift.sha256 must be 64 lowercase hexadecimal"),
            ({"features": ["a", "a"]}, "monitoring.drift.features must not name a feature twice"),
            ({"features": [f"f{i}" for i in range(33)]}, "at most 32 items"),
            ({"features": ["a,b"]}, "String should match pattern"),
            ({"windowRows": 5}, "greater than or equal to 10"),
        )
    ),
]


@pytest.mark.parametrize(("spec", "message"), MIRRORED, ids=[m for _, m in MIRRORED])
def test_python_side_rejects_what_the_api_server_rejects(spec, message):
    with pytest.raises(ValidationError, match=message.replace("*", r"\*")):
        parse_spec(spec)


@pytest.mark.parametrize(
    ("resources", "extended"),
    [
        ({"limits": {"nvidia.com/gpu": 1}}, {"nvidia.com/gpu": "1"}),
        ({"requests": {"cpu": "1", "example.com/fpga": "2"}, "limits": {"example.com/fpga": 2}},
         {"example.com/fpga": "2"}),
        ({"requests": {"cpu": "250m", "memory": "1Gi"}}, {}),
    ],
    ids=["limit only", "request equal to limit", "no extended resource"],
)  # fmt: skip
def test_extended_resources_are_accepted_as_whole_numbers(resources, extended):
    spec = parse_spec({"model": {"uri": ONNX}, "resources": resources})
    assert spec.resources is not None and spec.resources.extended() == extended


@pytest.mark.parametrize(
    "uri",
    ["gs://ml-models/iris/v3/model.onnx", "gs://ml-models/iris/v3/MANIFEST",
     "azure://modelstore/models/iris/v3/model.onnx", "azure://modelstore/models/iris.tar.gz"],
)  # fmt: skip
def test_gs_and_azure_models_are_fetched_with_credentials_and_schema(uri):
    model = {"uri": uri, "credentials": {"secretRef": {"name": "store"}}, "schema": {"features": []}}
    assert parse_spec({"model": model}).model.uri == uri


def test_pickle_is_accepted_with_sha256_or_explicit_risk():
    parse_spec({"model": {"uri": "https://x/m.joblib", "sha256": "a" * 64}})
    parse_spec({"model": {"uri": "https://x/m.joblib", "allowUnverifiedPickle": True}})


def test_status_round_trips_through_camel_case():
    raw = {"observedGeneration": 3, "phase": "Progressing", "activeColor": "blue",
           "rollout": {"phase": "Stepping", "stepIndex": 1, "stepStartedAt": "2026-01-01T00:00:00Z"},
           "rolloutControl": {"action": "promoteFull", "requestId": "42"}}  # fmt: skip
    status = ModelDeploymentStatus.model_validate(raw)
    assert status.rollout.step_index == 1 and status.rollout_control.action.value == "promoteFull"
    out = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert out["rollout"]["stepStartedAt"] == "2026-01-01T00:00:00Z"
