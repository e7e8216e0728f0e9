"""The operator in tests: CRDs, an RBAC-limited identity, the operator as a real subprocess,
kwok fault Stages, and the audit log reader.

The operator runs as its own ServiceAccount (token in a kubeconfig of its own) bound to the chart's own RBAC
(rendered by helm), so the audit log tells its writes apart from the tests' and the chart's grants are what
every e2e test exercises; it is restricted to the test module's namespace, so
modules (and other suites running operators) never fight over objects.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.net import free_port
from harness.poll import wait_for
from modeldeploy.k8s import CHILD_KINDS, MODEL_DEPLOYMENT

REPO = Path(__file__).resolve().parents[2]
# MODELDEPLOY_E2E_CRD: try a CRD build other than the checked-in one.
CRD_FILE = Path(os.environ.get("MODELDEPLOY_E2E_CRD") or REPO / "crds" / "modeldeployments.yaml")
PEERING_NAME = "modeldeploy"
# kwok fault Stages pick pods by their modelserve image (pods carry no label the test could set).
FAULT_IMAGE = "registry.example.internal/modelserve:e2e-fault-{fault}"
_MODELSERVE_IMAGE_KEY = '.spec.containers.[] | select( .name == "modelserve" ) | .image'
# The operator's writes that must not happen at steady state (peering objects aside).
OWNED_RESOURCES = frozenset({MODEL_DEPLOYMENT.plural, *(kind.plural for kind in CHILD_KINDS)})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


CHART = REPO / "charts" / "modeldeploy"
# kopf's peering CRDs as the chart installs them.
PEERING_CRDS = [
    doc for doc in yaml.safe_load_all((CHART / "files" / "crds" / "kopf-peerings.yaml").read_text()) if doc
]
KUBE_VERSION = "1.34.4"  # helm built from Go modules reports v1.20 without a cluster; render for ours
OPERATOR_SA = "modeldeploy-operator"


def chart_rbac(cluster, namespace: str, sa: str = OPERATOR_SA, *, cluster_wide: bool = False) -> list[dict]:
    """The chart's own RBAC for an operator watching `namespace` (a ClusterRole for the cluster-scoped
    reads, a Role there; with cluster_wide, one ClusterRole for all namespaces), bound to ServiceAccount
    `sa` of that namespace: e2e operators run with exactly what an installation grants."""
    scope = [] if cluster_wide else ["--set", f"watchNamespaces={{{namespace}}}"]
    out = subprocess.run(
        ["helm", "template", "md", str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION,
         "--show-only", "templates/rbac.yaml", *scope,
         "--set", f"fullnameOverride=modeldeploy-operator-{namespace}", "--set", f"serviceAccount.name={sa}"],
        capture_output=True, text=True, check=True, env=cluster.env, timeout=120,
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def rbac_grants(docs: list[dict]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule in the Roles and ClusterRoles among `docs`."""
    return {
        (group, resource, verb)
        for doc in docs
        if doc["kind"] in ("ClusterRole", "Role")
        for rule in doc["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _stage(name: str, fault: str, phase: str, ready_selector: dict, template: str) -> dict:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": f"modeldeploy-e2e-{name}"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {
                        "key": _MODELSERVE_IMAGE_KEY,
                        "operator": "In",
                        "values": [FAULT_IMAGE.format(fault=fault)],
                    },
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": [phase]},
                    ready_selector,
                ]
            },
            # Far above kwok's own pod stages (weight 0/1), so a faulty pod takes this path.
            "weight": 100000,
            "delay": {"durationMilliseconds": 300},
            "next": {"statusTemplate": template},
        },
    }


# No `Now` in the templates: re-applying them is then a no-op, so kwok settles instead of looping.
# One container that is not ready: its restarts and state (and last state) filled in per fault.
_NOT_READY = """
conditions:
- {type: Initialized, status: "True"}
- {type: Ready, status: "False", reason: ContainersNotReady}
- {type: ContainersReady, status: "False", reason: ContainersNotReady}
- {type: PodScheduled, status: "True"}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: %(restarts)s
  state:
%(state)s
{{ end }}
phase: %(phase)s
"""
_CRASHED = _NOT_READY % {
    "restarts": 4,
    "phase": "Running",
    "state": """    waiting: {reason: CrashLoopBackOff, message: "back-off 1m20s restarting failed container"}
  lastState:
    terminated: {exitCode: %(code)s, reason: %(reason)s, message: %(message)s}""",
}
_IMAGE_PULL = _NOT_READY % {
    "restarts": 0,
    "phase": "Pending",
    "state": """    waiting:
      reason: ImagePullBackOff
      message: {{ printf "Back-off pulling image %q: not found" .image | Quote }}""",
}
READY_TRUE = {
    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
    "operator": "In",
    "values": ["True"],
}
ANY_READY = {"key": ".metadata.name", "operator": "Exists"}
MODEL_LOAD_MESSAGE = "cannot load /models/model.joblib: unsupported pickle protocol 9"
WARMUP_MESSAGE = "model warm-up failed: prediction on a sample row raised ValueError: X has 3 features"
FAULT_STAGES = [
    _stage("crashloop", "crashloop", "Running", READY_TRUE,
           _CRASHED % {"code": 1, "reason": "Error", "message": json.dumps(MODEL_LOAD_MESSAGE)}),
    _stage("warmup", "warmup", "Running", READY_TRUE,
           _CRASHED % {"code": 5, "reason": "Error", "message": json.dumps(WARMUP_MESSAGE)}),
    _stage("oomkilled", "oom", "Running", READY_TRUE,
           _CRASHED % {"code": 137, "reason": "OOMKilled", "message": '""'}),
    _stage("imagepull", "imagepull", "Pending", ANY_READY, _IMAGE_PULL),
]  # fmt: skip


# What the kubelet leaves on a pod whose optional drift-reference fetch failed: the init container exited 0
# with its failure line as the termination message, and the pod runs and is Ready (it serves without drift).
_DRIFT_FETCH_KEY = '.spec.initContainers.[] | select( .name == "fetch-drift-reference" ) | .command.[2]'
_READY_WITH_INIT_MESSAGE = """
{{ $now := Now }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, restartCount: 0,
   state: {running: {startedAt: {{ $now | Quote }}}}}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      {{ if eq .name "fetch-drift-reference" }}message: %(message)s{{ end }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName false ( or .metadata.uid "" ) ( or .metadata.name "" )
   ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""


def drift_reference_fetch_failed_stage(uri: str, message: str) -> dict:
    """A kwok Stage for pods whose drift reference is `uri`: Ready, with `message` in the termination
    message of their fetch-drift-reference init container (as `modelserve fetch --optional` leaves it)."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "modeldeploy-e2e-drift-reference-fetch-failed"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": _DRIFT_FETCH_KEY, "operator": "In", "values": [uri]},
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                ]
            },
            "weight": 100000,  # far above kwok's own pod-ready stage
            "next": {"statusTemplate": _READY_WITH_INIT_MESSAGE % {"message": json.dumps(message)}},
        },
    }


def kubectl_apply(cluster, objects: list[dict] | dict, namespace: str | None = None) -> None:
    docs = objects if isinstance(objects, list) else [objects]
    args = ["apply", "--server-side", "--force-conflicts", "-f", "-"]
    if namespace:
        args[1:1] = ["-n", namespace]
    cluster.kubectl(*args, input="\n---\n".join(json.dumps(d) for d in docs))


def install_crds(cluster) -> None:
    """The generated ModelDeployment CRD, kopf's peering CRDs and the fault Stages; idempotent."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kubectl_apply(cluster, PEERING_CRDS)
    for crd in ("modeldeployments.modeldeploy.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    kubectl_apply(cluster, FAULT_STAGES)


def install_optional_crds(cluster, *names: str) -> None:
    """Third-party CRDs of optional children (`gateway-api`, `prometheus-operator`), pinned; idempotent."""
    for name in names:
        subprocess.run(
            ["bash", str(REPO / "tests" / "cluster" / "cluster.sh"), "install-crds", name],
            check=True, capture_output=True, env=cluster.env, timeout=120,
        )  # fmt: skip
    crds = {"gateway-api": "httproutes.gateway.networking.k8s.io",
            "prometheus-operator": "servicemonitors.monitoring.coreos.com"}  # fmt: skip
    for name in names:
        cluster.wait_established(crds[name])


@dataclass
class OperatorIdentity:
    username: str
    kubeconfig: Path


def create_operator_identity(cluster, namespace: str, workdir: Path) -> OperatorIdentity:
    """A ServiceAccount bound to the chart's RBAC for this namespace, and a kubeconfig carrying its token."""
    sa = OPERATOR_SA
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": sa, "namespace": namespace},
    }
    kubectl_apply(cluster, [service_account, *chart_rbac(cluster, namespace, sa)])
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=4h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": server["cluster"]}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": sa, "namespace": namespace}}],
        "current-context": "operator",
    }
    path = workdir / f"operator-{namespace}.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    _absolutise_certificate_paths(path, Path(cluster.kubeconfig).parent)
    return OperatorIdentity(f"system:serviceaccount:{namespace}:{sa}", path)


def _absolutise_certificate_paths(path: Path, base: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    for entry in doc["clusters"]:
        ca = entry["cluster"].get("certificate-authority")
        if ca and not os.path.isabs(ca):
            entry["cluster"]["certificate-authority"] = str(base / ca)
    path.write_text(yaml.safe_dump(doc))


def create_peering(cluster, namespace: str) -> None:
    kubectl_apply(
        cluster,
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": PEERING_NAME, "namespace": namespace},
        },
    )


@dataclass
class OperatorProcess:
    """`python -m modeldeploy` as a child process (so killing it is real)."""

    identity: OperatorIdentity
    namespace: str
    log_path: Path
    priority: int = 100
    extra_env: dict[str, str] = field(default_factory=dict)
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.identity.kubeconfig),
            "MODELDEPLOY_NAMESPACES": self.namespace,
            "MODELDEPLOY_PRIORITY": str(self.priority),
            "MODELDEPLOY_PEERING_NAME": PEERING_NAME,
            "MODELDEPLOY_PEERING_LIFETIME_SECONDS": "5",
            "MODELDEPLOY_HEALTH_PORT": str(self.health_port),
            "MODELDEPLOY_HEALTH_HOST": "127.0.0.1",
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
            "MODELDEPLOY_SERVING_IMAGE": "registry.example.internal/modelserve:e2e",
            "MODELDEPLOY_ROLLOUT_TICK_SECONDS": "1",
            "MODELDEPLOY_LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        wait_for(self.healthy, timeout=60, what=f"operator liveness (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            pytest.fail(f"operator exited with {self.process and self.process.returncode}: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait: the clean shutdown path."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"operator ignored SIGTERM for {timeout}s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the active replica dies without saying goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_operator(
    identity: OperatorIdentity, namespace: str, log_path: Path, **kwargs: Any
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(identity, namespace, log_path, **kwargs).start()
    try:
        yield operator
    finally:
        operator.stop()


# -- ModelDeployment helpers -------------------------------------------------------------------------

EXAMPLE_SHA256 = "4f2c" * 16


def model_deployment(name: str, namespace: str, *, labels: dict | None = None, **spec: Any) -> dict:
    body_spec = {
        "model": {
            "uri": "https://models.example.internal/iris/v3/model.joblib",
            "format": "sklearn",
            "sha256": EXAMPLE_SHA256,
            "version": "3",
        },
        "replicas": 2,
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
    }
    body_spec.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": meta,
        "spec": body_spec,
    }


def get_md(cluster, namespace: str, name: str) -> dict | None:
    result = cluster.kubectl("get", "modeldeployment", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict | None, ctype: str) -> dict:
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


def is_ready(body: dict | None) -> bool:
    """Ready=True for the current generation."""
    if not body:
        return False
    status = body.get("status") or {}
    generation = body["metadata"]["generation"]
    return condition(body, "Ready").get("status") == "True" and status.get("observedGeneration") == generation


def wait_ready(cluster, namespace: str, name: str, timeout: float = 90) -> dict:
    return wait_for(
        lambda: (lambda b: b if is_ready(b) else None)(get_md(cluster, namespace, name)),
        timeout=timeout,
        what=f"ModelDeployment {namespace}/{name} Ready",
    )


def get_obj(cluster, kind: str, namespace: str, name: str) -> dict | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


# -- the audit log -----------------------------------------------------------------------------------


def audit_timestamp() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def audit_writes(
    audit_log: Path, username: str, namespace: str, since: dt.datetime, until: dt.datetime
) -> list[dict]:
    """Writes by `username` to ModelDeployments or their children in `namespace` within [since, until]."""
    found = []
    with audit_log.open() as lines:
        for line in lines:
            if username not in line or namespace not in line:
                continue  # cheap prefilter: the log is shared by every test
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                event.get("user", {}).get("username") == username
                and event.get("verb") in WRITE_VERBS
                and ref.get("namespace") == namespace
                and ref.get("resource") in OWNED_RESOURCES
                and event.get("stage") == "ResponseComplete"
            ):
                at = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
                if since <= at <= until:
                    found.append(
                        {"verb": event["verb"], "resource": ref.get("resource"),
                         "subresource": ref.get("subresource"), "name": ref.get("name"),
                         "at": event["requestReceivedTimestamp"]}
                    )  # fmt: skip
    return found


@dataclass(frozen=True)
class AuditedRequest:
    group: str
    resource: str  # plural, with "/subresource" when there is one
    name: str
    verb: str
    code: int
    allowed: bool  # the authorizer's decision


def audit_requests(audit_log: Path, username: str, since: dt.datetime) -> list[AuditedRequest]:
    """Every resource request `username` made since `since` (non-resource URLs such as discovery aside)."""
    found = []
    with audit_log.open() as lines:
        for line in lines:
            if username not in line:
                continue  # cheap prefilter: the log is shared by every test
            event = json.loads(line)
            ref = event.get("objectRef")
            if (
                event.get("user", {}).get("username") != username
                or not ref
                or event.get("stage") != "ResponseComplete"
            ):
                continue
            at = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if at < since:
                continue
            resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
            code = int((event.get("responseStatus") or {}).get("code") or 0)
            found.append(
                AuditedRequest(
                    ref.get("apiGroup", ""),
                    resource,
                    ref.get("name", ""),
                    event["verb"],
                    code,
                    decision != "forbid" and code != 403,
                )
            )
    return found


def decode_secret_value(value: str) -> str:
    return base64.b64decode(value).decode()
