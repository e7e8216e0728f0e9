"""A real Argo CD against the local cluster: redis, a git daemon holding the repository the tests commit
to, and argocd-repo-server, argocd-application-controller and argocd-server (plaintext, loopback) as local
processes.

The Go binary comes from tests/cluster/build-argocd.sh (pinned in versions.env). Argo CD normally runs in the
cluster; here ARGOCD_FAKE_IN_CLUSTER makes its in-cluster destination (https://kubernetes.default.svc) use
KUBECONFIG, and the settings it reads from the `argocd` namespace are the documented ConfigMaps from argocd/.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.net import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_ARGOCD = REPO / "tests" / "cluster" / "build-argocd.sh"
ARGOCD_CM = REPO / "argocd" / "argocd-cm.yaml"
ARGOCD_RBAC_CM = REPO / "argocd" / "argocd-rbac-cm.yaml"
NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
RECONCILIATION = "10s"
# Test accounts: local users bound to our two documented roles (the admin is Argo CD's built-in one).
PROMOTER = "promoter"
OWNER = "owner"
ROLES = {PROMOTER: "role:model-promoter", OWNER: "role:model-owner"}


def wait_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Waits until something listens on 127.0.0.1:port; fails with the log's tail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{log.stem} not listening on {port} within {timeout}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def build_argocd() -> Path:
    """The cached Argo CD folder (build-argocd.sh builds it on a cold cache: ~30 minutes of CPU)."""
    out = subprocess.run(
        ["bash", str(BUILD_ARGOCD)], check=True, capture_output=True, text=True, timeout=3600
    )
    return Path(out.stdout.strip().splitlines()[-1])


def offline(bin_dir: Path, verb: str, obj: dict, *args: str) -> str:
    """`argocd admin settings resource-overrides VERB` over one object with our argocd-cm: Argo CD's own Lua
    evaluator, offline (health, list-actions, run-action)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(obj, file)
        file.flush()
        return subprocess.run(
            [str(bin_dir / "argocd"), "admin", "settings", "resource-overrides", verb, file.name, *args,
             "--argocd-cm-path", str(ARGOCD_CM)],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip


def offline_health(bin_dir: Path, obj: dict) -> dict:
    """{"status", "message"} as Argo CD's evaluator prints them."""
    fields = dict(
        line.split(": ", 1) for line in offline(bin_dir, "health", obj).splitlines() if ": " in line
    )
    return {"status": fields.get("STATUS"), "message": fields.get("MESSAGE", "")}


def offline_actions(bin_dir: Path, obj: dict) -> list[dict]:
    """[{"name", "disabled"}] as Argo CD's discovery lists them."""
    rows = [line.split() for line in offline(bin_dir, "list-actions", obj).splitlines()[1:] if line.strip()]
    return [{"name": name, "disabled": disabled == "true"} for name, disabled in rows]


def offline_action_changes(bin_dir: Path, obj: dict, action: str) -> tuple[list[str], list[str]]:
    """(added, removed) YAML lines, stripped, of the diff Argo CD prints for an action's result."""
    diff = offline(bin_dir, "run-action", obj, action).splitlines()
    return [d[2:].strip() for d in diff if d.startswith("> ")], [
        d[2:].strip() for d in diff if d.startswith("< ")
    ]


# -- the settings Argo CD reads from its namespace ----------------------------------------------------------


def argocd_cm() -> dict:
    """Our documented argocd-cm, plus what the lane needs: a short reconciliation and the test users."""
    config_map = yaml.safe_load(ARGOCD_CM.read_text())
    config_map["data"].update(
        {"timeout.reconciliation": RECONCILIATION, "timeout.reconciliation.jitter": "0s"}
    )
    config_map["data"].update({f"accounts.{user}": "login" for user in ROLES})
    return config_map


def argocd_rbac_cm() -> dict:
    """Our documented argocd-rbac-cm, with the test users bound to our roles (and admin to role:admin)."""
    config_map = yaml.safe_load(ARGOCD_RBAC_CM.read_text())
    bindings = [f"g, {user}, {role}" for user, role in ROLES.items()] + ["g, admin, role:admin"]
    config_map["data"]["policy.csv"] += "\n".join(bindings) + "\n"
    return config_map


def argocd_secret(bcrypt_hash: str) -> dict:
    """argocd-secret as an install creates it: the server's signing key and the accounts' passwords."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "argocd-secret",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "argocd-secret", "app.kubernetes.io/part-of": "argocd"},
        },
        "stringData": {
            "server.secretkey": secrets.token_urlsafe(32),
            "admin.password": bcrypt_hash,
            "admin.passwordMtime": now,
            **{f"accounts.{user}.password": bcrypt_hash for user in ROLES},
            **{f"accounts.{user}.passwordMtime": now for user in ROLES},
        },
    }


def application(name: str, repo_url: str, path: str, namespace: str, *, self_heal: bool = True) -> dict:
    """The Application the tests sync: a directory of ModelDeployments, applied server-side, automated."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": path},
            "destination": {"server": IN_CLUSTER, "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": self_heal},
                "syncOptions": ["ServerSideApply=true"],
            },
        },
    }


# -- the git server --------------------------------------------------------------------------------------


@dataclass
class GitRepo:
    """A bare repository served by `git daemon` on loopback, and a checkout the tests commit and push from."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}/deploy.git"

    @property
    def checkout(self) -> Path:
        return self.root / "checkout"

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "modeldeploy tests",
            "GIT_AUTHOR_EMAIL": "tests@modeldeploy.invalid",
            "GIT_COMMITTER_NAME": "modeldeploy tests",
            "GIT_COMMITTER_EMAIL": "tests@modeldeploy.invalid",
        }
        return subprocess.run(
            ["git", *args], cwd=cwd or self.checkout, env=env, check=True, capture_output=True, text=True
        ).stdout

    def start(self) -> GitRepo:
        served = self.root / "served"
        served.mkdir(parents=True)
        self.git("init", "--bare", "--initial-branch=main", str(served / "deploy.git"), cwd=self.root)
        self.git("clone", str(served / "deploy.git"), str(self.checkout), cwd=self.root)
        self.git("checkout", "-b", "main")
        self.commit({"README.md": "Manifests synced by the GitOps tests.\n"}, "initial commit")
        log = self.root / "git-daemon.log"
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--informative-errors", "--listen=127.0.0.1",
             f"--port={self.port}", f"--base-path={served}", str(served)],
            stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_port(self.port, self.process, log)
        return self

    def commit(self, files: dict[str, str], message: str, remove: tuple[str, ...] = ()) -> str:
        """Writes files (path -> text, relative to the repository), removes `remove`, and pushes one commit;
        returns its sha."""
        for relative in remove:
            (self.checkout / relative).unlink()
        for relative, text in files.items():
            path = self.checkout / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", message)
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# -- Argo CD ---------------------------------------------------------------------------------------------


@dataclass
class ArgoCD:
    """redis, repo-server, server and application-controller, each a child process logging to workdir."""

    cluster: Any  # harness.cluster.Cluster
    bin_dir: Path
    workdir: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def admin_config(self) -> Path:
        return self.workdir / "admin.config"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.ports['server']}"

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _env(self) -> dict[str, str]:
        return {
            **self.cluster.env,
            "KUBECONFIG": self.cluster.kubeconfig,
            # The in-cluster destination uses KUBECONFIG instead of the pod's service account.
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            # Resync period and jitter (an install maps argocd-cm's timeout.reconciliation[.jitter] to them).
            "ARGOCD_RECONCILIATION_TIMEOUT": RECONCILIATION,
            "ARGOCD_RECONCILIATION_JITTER": "0s",
            "ARGOCD_GPG_ENABLED": "false",
            "GOMAXPROCS": "1",
            "TMPDIR": str(self.workdir / "tmp"),
            "PATH": f"{self.bin_dir}:{self.cluster.env.get('PATH', os.environ['PATH'])}",
        }

    def _spawn(self, name: str, argv: list[str], port: int) -> None:
        process = subprocess.Popen(
            argv,
            env=self._env(),
            stdout=self.log(name).open("ab"),
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        self.processes[name] = process
        wait_port(port, process, self.log(name))

    def install(self) -> None:
        """The namespace, Argo CD's CRDs from its module and the settings objects."""
        cluster = self.cluster
        if cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
            cluster.kubectl("create", "namespace", NAMESPACE)
        for crd in sorted((self.bin_dir / "crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        for crd in ("applications", "appprojects"):
            cluster.wait_established(f"{crd}.argoproj.io")
        bcrypt_hash = self.cli("account", "bcrypt", "--password", self.password).strip()
        objects = [argocd_cm(), argocd_rbac_cm(), argocd_secret(bcrypt_hash)]
        cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-",
            input="\n---\n".join(json.dumps(o) for o in objects),
        )  # fmt: skip

    def start(self) -> ArgoCD:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        (self.workdir / "static").mkdir(exist_ok=True)
        self.install()
        t0 = time.monotonic()
        names = ("redis", "repo-server", "server", "repo-metrics", "server-metrics", "app-metrics")
        p = self.ports = {name: free_port() for name in names}
        redis = f"127.0.0.1:{p['redis']}"
        repo_server = ["--repo-server", f"127.0.0.1:{p['repo-server']}", "--repo-server-plaintext"]
        loopback = "127.0.0.1"
        self._spawn(
            "redis",
            [
                "redis-server",
                "--bind",
                loopback,
                "--port",
                str(p["redis"]),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            p["redis"],
        )
        self._spawn(
            "repo-server",
            [str(self.bin_dir / "argocd-repo-server"), "--address", loopback, "--port", str(p["repo-server"]),
             "--disable-tls", "--redis", redis, "--parallelismlimit", "2",
             "--metrics-address", loopback, "--metrics-port", str(p["repo-metrics"])],
            p["repo-server"],
        )  # fmt: skip
        self._spawn(
            "server",
            [str(self.bin_dir / "argocd-server"), "--insecure", "--address", loopback,
             "--port", str(p["server"]), "--namespace", NAMESPACE, "--redis", redis, *repo_server,
             "--staticassets", str(self.workdir / "static"),
             "--metrics-address", loopback, "--metrics-port", str(p["server-metrics"])],
            p["server"],
        )  # fmt: skip
        self._spawn(
            "controller",
            [str(self.bin_dir / "argocd-application-controller"), "--namespace", NAMESPACE, "--redis", redis,
             *repo_server, "--metrics-port", str(p["app-metrics"]), "--persist-resource-health",
             "--status-processors", "2", "--operation-processors", "2", "--kubectl-parallelism-limit", "2"],
            p["app-metrics"],
        )  # fmt: skip
        self.started_seconds = time.monotonic() - t0
        self.login("admin", self.password, self.admin_config)
        return self

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def cli(self, *args: str, config: Path | None = None, check: bool = True) -> str:
        """The argocd CLI (against the API server when config names a login); stdout, or the error."""
        argv = [str(self.bin_dir / "argocd"), *args]
        if config is not None:
            argv += ["--config", str(config), "--server", self.server, "--plaintext"]
        result = subprocess.run(argv, env=self._env(), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"argocd {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout if result.returncode == 0 else result.stderr

    def login(self, user: str, password: str, config: Path) -> Path:
        self.cli("login", self.server, "--plaintext", "--username", user, "--password", password,
                 "--config", str(config))  # fmt: skip
        return config

    def refresh(self, app: str) -> None:
        """Asks the API server for a refresh of `app`, as a git webhook would after a push."""
        self.cli("app", "get", app, "--refresh", config=self.admin_config)

    def run_action(
        self, app: str, user: str, action: str, name: str, namespace: str, check: bool = True
    ) -> str:
        """`argocd app actions run` on ModelDeployment `name` through the API server, logged in as `user`."""
        target = ("--kind", "ModelDeployment", "--resource-name", name, "--namespace", namespace)
        return self.cli("app", "actions", "run", app, action, *target, config=self.account(user), check=check)

    def account(self, user: str) -> Path:
        """The CLI config of a logged-in test user (logging in on first use)."""
        config = self.workdir / f"{user}.config"
        if not config.exists():
            self.login(user, self.password, config)
        return config

    def application(self, name: str) -> dict | None:
        found = self.cluster.kubectl("get", "application", name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(found.stdout) if found.returncode == 0 else None

    def diagnose(self, name: str) -> str:
        """What to read when a sync does not finish: the Application's conditions, operation and the logs."""
        app = self.application(name) or {}
        status = app.get("status", {})
        parts = [
            f"sync={status.get('sync')} health={status.get('health')}",
            f"conditions={status.get('conditions')}",
            f"operationState={status.get('operationState')}",
        ]
        parts += [f"--- {n} log ---\n{tail(self.log(n), 15)}" for n in ("controller", "repo-server")]
        return "\n".join(parts)


def synced_revision(argocd: ArgoCD, name: str) -> str | None:
    return (argocd.application(name) or {}).get("status", {}).get("sync", {}).get("revision")


def resource_health(argocd: ArgoCD, app: str, kind: str, name: str) -> dict:
    """{"status", "message"} Argo CD shows for one of the Application's resources ({} if not listed)."""
    resources = (argocd.application(app) or {}).get("status", {}).get("resources") or []
    found = [r for r in resources if (r["kind"], r["name"]) == (kind, name)]
    return found[0].get("health") or {} if found else {}


def sync_count(argocd: ArgoCD, name: str) -> int:
    """How many syncs an Application has run (status.history gets one entry per sync)."""
    return len((argocd.application(name) or {}).get("status", {}).get("history") or [])


def operation_finished(argocd: ArgoCD, name: str) -> bool:
    operation = (argocd.application(name) or {}).get("status", {}).get("operationState") or {}
    return bool(operation.get("finishedAt"))


def synced_application(
    argocd: ArgoCD,
    git_repo: GitRepo,
    name: str,
    path: str,
    namespace: str,
    files: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict:
    """Commits `files`, creates an automated Application of `path` (see `application`) and waits until it is
    Synced and Healthy with its sync operation finished; returns the Application."""
    git_repo.commit(files, f"{name}: first commit")
    app = application(name, git_repo.url, path, namespace)
    app["metadata"]["annotations"] = annotations or {}
    argocd.cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", NAMESPACE, "-f", "-", input=json.dumps(app)
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if app_status(argocd, name) == ("Synced", "Healthy") and operation_finished(argocd, name):
            return argocd.application(name) or {}
        time.sleep(0.5)
    raise TimeoutError(f"Application {name} not Synced and Healthy within 180s\n{argocd.diagnose(name)}")


def repository_manifest(body: dict) -> str:
    """An object as a users' repository holds it: no namespace (the Application's destination decides)."""
    body = {**body, "metadata": {k: v for k, v in body["metadata"].items() if k != "namespace"}}
    return yaml.safe_dump(body, sort_keys=False)


def app_status(argocd: ArgoCD, name: str) -> tuple[str | None, str | None]:
    """(sync status, health status) of an Application as the controller wrote them."""
    status = (argocd.application(name) or {}).get("status", {})
    return status.get("sync", {}).get("status"), status.get("health", {}).get("status")


def watch_health(
    argocd: ArgoCD,
    name: str,
    until: Callable[[list[str]], bool],
    timeout: float,
    on_change: Callable[[str], None] | None = None,
) -> list[str]:
    """The Application's distinct health statuses in the order seen, polled until `until(seen)` holds;
    on_change(health) runs at each change."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = app_status(argocd, name)[1]
        if health and (not seen or seen[-1] != health):
            seen.append(health)
            if on_change is not None:
                on_change(health)
        if until(seen):
            return seen
        time.sleep(0.5)
    raise TimeoutError(f"health sequence {seen} not complete within {timeout}s\n{argocd.diagnose(name)}")


@contextlib.contextmanager
def running_argocd(cluster: Any, bin_dir: Path, workdir: Path) -> Iterator[tuple[ArgoCD, GitRepo]]:
    if shutil.which("redis-server") is None or shutil.which("git") is None:
        raise RuntimeError("the GitOps lane needs redis-server and git (apt-get install redis-server git)")
    repo = GitRepo(workdir / "git").start()
    argocd = ArgoCD(cluster, bin_dir, workdir / "argocd")
    try:
        argocd.start()
        yield argocd, repo
    finally:
        argocd.stop()
        repo.stop()
