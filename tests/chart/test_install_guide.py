"""docs/install.md, followed as far as this machine allows (no Docker, no kind): its commands are read from
its fenced blocks and checked against what they would meet. The buildah scripts it names run for real, with a
stand-in that records every buildah call, so each `docker build` must use the scripts' Dockerfile, context and
tag; every archive saved or pushed is the one `kind load` reads; every `helm install` (here and in the README)
renders, with real helm, the operator and serving images the guide built and loaded. The `image` test builds
both images with buildah and runs the guide's push commands into docker archives. Also: the licence that the
images, the chart and the packages declare is the LICENSE file's."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.chart import CHART, KUBE_VERSION, REPO, find

GUIDE = REPO / "docs" / "install.md"
SCRIPTS = {
    "tests/image/build-serving-image.sh": "serving-image/Dockerfile",
    "tests/chart/build-operator-image.sh": "operator/Dockerfile",
}
# The Apache License 2.0 as apache.org publishes it (also /usr/share/common-licenses/Apache-2.0 on Debian).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


@dataclass(frozen=True)
class Command:
    env: dict[str, str]
    argv: list[str]


def fenced_commands(path: Path) -> list[Command]:
    """The shell commands of a Markdown file's ```bash blocks: continuation lines joined, comments dropped,
    leading VAR=value assignments split off."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            if words:
                commands.append(Command(env, words))
    return commands


def option(argv: list[str], *names: str) -> str:
    """The value after the first of these options."""
    for i, word in enumerate(argv):
        if word in names:
            return argv[i + 1]
    raise AssertionError(f"none of {names} in {shlex.join(argv)}")


def positional(argv: list[str], with_values: set[str]) -> list[str]:
    """The words that are neither options nor option values."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in with_values
        else:
            words.append(word)
    return words


def runs(commands: list[Command], *prefix: str) -> list[Command]:
    return [c for c in commands if c.argv[: len(prefix)] == list(prefix)]


@pytest.fixture(scope="module")
def guide() -> list[Command]:
    return fenced_commands(GUIDE)


@dataclass(frozen=True)
class ScriptBuild:
    """What one build script asked buildah to do."""

    dockerfile: str
    context: str
    tags: list[str]
    base: str


STAND_IN_BUILDAH = """#!/usr/bin/env bash
# Records each call; knows no image, so every build is a fresh one.
{ printf '%s\037' "$@"; echo; } >> "$BUILDAH_CALLS"
[ "$1" = inspect ] && exit 1
exit 0
"""


@pytest.fixture(scope="module")
def script_builds(guide, tmp_path_factory) -> dict[str, ScriptBuild]:
    """Runs the guide's buildah script commands, as written, in a copy of the repository whose buildah.sh is a
    recorder; the scripts and buildah-build.sh are the real ones. Keyed by script."""
    root = tmp_path_factory.mktemp("repo")
    for name in ("serving-image", "operator"):
        (root / name).symlink_to(REPO / name)
    for name in ("pyproject.toml", "README.md", *SCRIPTS, "tests/image/buildah-build.sh"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    stand_in = root / "tests" / "image" / "buildah.sh"
    stand_in.write_text(STAND_IN_BUILDAH)
    stand_in.chmod(0o755)
    builds = {}
    for command in guide:
        script = next((word for word in command.argv if word in SCRIPTS), None)
        if script is None:
            continue
        calls = root / f"{Path(script).stem}.calls"
        done = subprocess.run(
            command.argv,
            cwd=root,
            env={**os.environ, **command.env, "BUILDAH_CALLS": str(calls)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        recorded = [line.split("\x1f")[:-1] for line in calls.read_text().splitlines()]
        bud = [argv for argv in recorded if argv[0] == "bud"]
        assert len(bud) == 1, calls.read_text()
        argv = bud[0]
        build_args = [argv[i + 1] for i, word in enumerate(argv) if word == "--build-arg"]
        builds[script] = ScriptBuild(
            dockerfile=os.path.relpath(option(argv, "--file", "-f"), root),
            context=os.path.relpath(argv[-1], root),
            tags=[argv[i + 1] for i, word in enumerate(argv) if word in ("--tag", "-t")],
            base=next(a.partition("=")[2] for a in build_args if a.startswith("BASE_IMAGE=")),
        )
        # The script prints the image it built: its hash tag.
        assert done.stdout.strip().splitlines()[-1] == builds[script].tags[0]
    return builds


def built_by_docker(guide: list[Command]) -> dict[str, str]:
    """Dockerfile -> the tag its `docker build` gives."""
    built = {}
    for command in runs(guide, "docker", "build"):
        argv = command.argv
        dockerfile = option(argv, "-f", "--file")
        (context,) = positional(argv[2:], {"-f", "--file", "-t", "--tag", "--build-arg"})
        assert (REPO / dockerfile).is_file(), dockerfile
        assert (REPO / context).is_dir(), context
        built[os.path.normpath(dockerfile)] = option(argv, "-t", "--tag")
    return built


def dockerfile_base(dockerfile: str) -> str:
    return re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / dockerfile).read_text(), re.MULTILINE).group(1)


def test_guide_builds_both_images_with_docker_as_the_scripts_do(guide, script_builds):
    docker = built_by_docker(guide)
    assert set(docker) == set(SCRIPTS.values())
    assert set(script_builds) == set(SCRIPTS), "the guide runs both buildah scripts"
    for script, dockerfile in SCRIPTS.items():
        build = script_builds[script]
        (command,) = [c for c in runs(guide, "docker", "build") if option(c.argv, "-f") == dockerfile]
        context = positional(command.argv[2:], {"-f", "--file", "-t", "--tag", "--build-arg"})[0]
        assert build.dockerfile == dockerfile
        assert os.path.normpath(context) == os.path.normpath(build.context), dockerfile
        # Same name whichever way it was built: the script's stable tag is the one Docker gives.
        assert docker[dockerfile] in build.tags, (docker[dockerfile], build.tags)


def test_both_ways_start_from_the_dockerfiles_default_base(script_builds):
    for script, dockerfile in SCRIPTS.items():
        default = dockerfile_base(dockerfile)
        assert ":" in default, "the base is pinned to a version"
        # buildah resolves no short names without a registries.conf: the guide spells Docker Hub out.
        assert script_builds[script].base == f"docker.io/library/{default}"


def test_every_archive_loaded_into_kind_holds_a_built_image(guide, script_builds):
    built = set(built_by_docker(guide).values())
    saved = {}
    for command in runs(guide, "docker", "save"):
        (image,) = positional(command.argv[2:], {"-o", "--output"})
        assert image in built, image
        saved[option(command.argv, "-o", "--output")] = image
    pushed = {}
    for command in guide:
        if Path(command.argv[0]).name == "buildah.sh" and command.argv[1] == "push":
            image, destination = command.argv[2:4]
            assert any(image in build.tags for build in script_builds.values()), image
            transport, archive, tag = destination.split(":", 2)
            assert (transport, tag) == ("docker-archive", image), destination
            pushed[archive] = image
    assert saved == pushed, "Docker and buildah leave the same archives with the same images"
    assert set(saved.values()) == built, "both images are saved"
    (created,) = runs(guide, "kind", "create", "cluster")
    loads = runs(guide, "kind", "load", "image-archive")
    assert {c.argv[3] for c in loads} == set(saved)
    assert {option(c.argv, "--name") for c in loads} == {option(created.argv, "--name")}


@pytest.fixture(scope="module")
def helm_binary() -> str:
    """The helm of the local toolchain (`bash scripts/setup.sh` builds it); no cluster needed to render."""
    exports = subprocess.run(
        ["bash", str(REPO / "tests" / "cluster" / "cluster.sh"), "env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bin_dir = re.search(r'^export MODELDEPLOY_BIN_DIR="(.*)"$', exports, re.MULTILINE).group(1)
    found = Path(bin_dir) / "helm"
    assert found.is_file(), f"{found} missing: run bash scripts/setup.sh"
    return str(found)


def helm_installs() -> list:
    """Every `helm install` a user reads, in the guide and in the README."""
    return [
        pytest.param(command, id=f"{path.name}-{i}")
        for path in (GUIDE, REPO / "README.md")
        for i, command in enumerate(runs(fenced_commands(path), "helm", "install"), 1)
    ]


@pytest.mark.chart
@pytest.mark.parametrize("command", helm_installs())
def test_helm_install_renders_the_images_the_guide_built_and_loaded(guide, helm_binary, command):
    argv = command.argv
    assert positional(argv[2:], {"-n", "--namespace", "--set", "-f", "--values"})[1] == "charts/modeldeploy"
    rendered = subprocess.run(
        [helm_binary, "template", *argv[2:], "--kube-version", KUBE_VERSION],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    (statefulset,) = find(docs, "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    built = built_by_docker(guide)
    assert container["image"] == built["operator/Dockerfile"]
    assert env["MODELDEPLOY_SERVING_IMAGE"] == built["serving-image/Dockerfile"]
    # Loaded, not pulled: a node that has the tag uses it.
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert not container["image"].endswith(":latest")


def test_chart_defaults_are_the_unpublished_names_the_guide_warns_about():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = GUIDE.read_text()
    assert f"`{values['image']['repository']}`" in text
    assert f"`{values['operator']['servingImage'].rsplit(':', 1)[0]}`" in text


def test_licence_is_apache_2_everywhere_it_is_declared():
    assert hashlib.sha256((REPO / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    for pyproject in (REPO / "pyproject.toml", REPO / "serving-image" / "pyproject.toml"):
        assert tomllib.loads(pyproject.read_text())["project"]["license"] == {"text": "Apache-2.0"}, pyproject
    for dockerfile in SCRIPTS.values():
        final_stage = (REPO / dockerfile).read_text().rsplit("\nFROM ", 1)[1]
        assert 'org.opencontainers.image.licenses="Apache-2.0"' in final_stage, dockerfile


def archive_manifest(path: Path) -> tuple[list[str], dict]:
    """A docker archive's image tags and image config, as `kind load image-archive` reads them."""
    with tarfile.open(path) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
        config = json.load(tar.extractfile(entry["Config"]))
    return entry["RepoTags"], config["config"]


@pytest.mark.image
@pytest.mark.timeout(1800)
def test_buildah_path_leaves_archives_kind_can_load(guide, tmp_path):
    """The guide's buildah commands for real, on the local stand-in base (nothing is pulled from a registry
    here), up to the archive `kind load image-archive` takes. One archive is written (each is ~600 MB and the
    two push commands differ only in the name); both built images are inspected."""
    assert os.geteuid() == 0 and shutil.which("buildah"), "buildah (as root) builds the images"
    for script in SCRIPTS:
        done = subprocess.run(["bash", str(REPO / script)], capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
    pushes = [c for c in guide if Path(c.argv[0]).name == "buildah.sh" and c.argv[1] == "push"]
    assert len(pushes) == 2
    for command in pushes:
        inspected = subprocess.run(
            [str(REPO / command.argv[0]), "inspect", "--type", "image", command.argv[2]],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        labels = json.loads(inspected.stdout)["Docker"]["config"]["Labels"]
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    (command,) = [c for c in pushes if c.argv[2].startswith("localhost/modelserve:")]
    image, destination = command.argv[2:4]
    _, archive, tag = destination.split(":", 2)
    done = subprocess.run(
        [str(REPO / command.argv[0]), "push", "--quiet", image, f"docker-archive:{tmp_path / archive}:{tag}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    tags, config = archive_manifest(tmp_path / archive)
    assert tags == [image]
    assert config["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
