"""A multi-file iris model (sklearn model, its schema file, a nested extra file, the MANIFEST) as a directory,
a .tar.gz and a .zip, and the check that a real modelserve serves what a fetch brought, whatever the store."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from harness.serving import start_server
from modelserve.manifest import build_manifest

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SCHEMA = {"features": [{"name": n, "dtype": "float", "min": 0, "max": 10} for n in NAMES]}
RECORD = dict(zip(NAMES, [5.1, 3.5, 1.4, 0.2], strict=True))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_model_dir(root: Path, iris_joblib: Path) -> Path:
    """The directory a data scientist uploads: model, schema file, a nested extra file, and the MANIFEST."""
    (root / "model.joblib").write_bytes(iris_joblib.read_bytes())
    (root / "model.joblib.schema.json").write_text(json.dumps(SCHEMA))
    (root / "notes").mkdir()
    (root / "notes" / "training run.txt").write_text("trained on iris\n")
    (root / "MANIFEST").write_bytes(build_manifest(root))
    return root


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tar_gz(model_dir: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(model_dir / "model.joblib", arcname="iris/model.joblib")
        tar.add(model_dir / "model.joblib.schema.json", arcname="iris/model.joblib.schema.json")
    return out.getvalue()


def zip_bytes(model_dir: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(model_dir / "model.joblib", "model.joblib")
        zf.write(model_dir / "model.joblib.schema.json", "model.joblib.schema.json")
    return out.getvalue()


def serves_named_records(tmp_path: Path, model_path: Path, digest: str) -> None:
    server = start_server(
        tmp_path, {"MODELSERVE_MODEL_PATH": str(model_path), "MODELSERVE_MODEL_SHA256": digest}
    )
    try:
        doc = server.client.get("/v2/models/model").json()
        assert [
            f["name"] for f in doc["parameters"]["schema"]["features"]
        ] == NAMES  # the schema file was used
        resp = server.client.post("/predict", json=[RECORD])
        assert resp.status_code == 200 and resp.json()["predictions"] == [0]
    finally:
        server.stop()
