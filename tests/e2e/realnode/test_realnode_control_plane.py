"""The control plane is closed to pods: a model pod runs its author's code and must not own the cluster.

etcd, the controller-manager and the scheduler listen on loopback only; from a pod, their ports and the
kubelet's are unreachable while the API server's is open; the kubelet authenticates and authorises
every request."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.realnode.pods import exec_in, require_real_node, root_command, start_tools_pod

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]


@pytest.fixture(scope="module")
def tools(cluster, namespace) -> dict:
    require_real_node()
    return start_tools_pod(cluster, namespace)


def cluster_pids(cluster) -> dict[str, str]:
    """PID of each component of this cluster, from kwokctl's pid files."""
    pids = Path(cluster.kubeconfig).parent / "pids"
    return {p.stem: p.read_text().strip() for p in pids.glob("*.pid")}


def listeners(cluster) -> dict[str, list[tuple[str, int]]]:
    """Listening TCP addresses of this cluster's components, by component."""
    by_pid = {pid: name for name, pid in cluster_pids(cluster).items()}
    found: dict[str, list[tuple[str, int]]] = {}
    for line in root_command("ss", "-Hltnp").splitlines():
        local = line.split()[3]
        for pid in re.findall(r"pid=(\d+)", line):
            if pid in by_pid:
                host, _, port = local.rpartition(":")
                found.setdefault(by_pid[pid], []).append((host.strip("[]"), int(port)))
    return found


def node_ip(cluster) -> str:
    node = cluster.get_json("node", require_real_node())
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def test_etcd_controller_manager_and_scheduler_listen_on_loopback_only(cluster):
    require_real_node()
    found = listeners(cluster)
    for component in ("etcd", "kube-controller-manager", "kube-scheduler"):
        assert found.get(component), (component, found)
        assert {host for host, _ in found[component]} == {"127.0.0.1"}, (component, found[component])


def test_from_a_pod_the_control_plane_ports_are_closed_and_the_api_server_open(cluster, namespace, tools):
    ip = node_ip(cluster)
    found = listeners(cluster)
    closed = [port for c in ("etcd", "kube-controller-manager", "kube-scheduler") for _, port in found[c]]
    api_port = found["kube-apiserver"][0][1]
    script = "; ".join(
        f"echo | nc -w 2 {ip} {port} && echo open-{port} || echo closed-{port}" for port in [*closed, 10250]
    )
    result = exec_in(cluster, namespace, "tools", script, timeout=60).stdout.split()
    assert result == [f"closed-{port}" for port in [*closed, 10250]]
    # The positive control: the same pod reaches the API server's port on the same address.
    assert (
        exec_in(cluster, namespace, "tools", f"echo | nc -w 2 {ip} {api_port} && echo open").stdout.strip()
        == "open"
    )


def kubelet_request(url: str, method: str = "GET", token: str | None = None, cert: Path | None = None) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet's serving certificate is self-signed
    if cert:
        context.load_cert_chain(cert / "admin.crt", cert / "admin.key")
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_kubelet_refuses_anonymous_and_unauthorised_callers(cluster, namespace, tools):
    base = f"https://{node_ip(cluster)}:10250"
    exec_path = f"/exec/{namespace}/tools/main?command=id&output=1"
    # Anonymous: not authenticated.
    assert kubelet_request(f"{base}/pods") == 401
    assert kubelet_request(f"{base}{exec_path}", method="POST") == 401
    # A ServiceAccount token (what a pod could hold): authenticated, not authorised.
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    assert kubelet_request(f"{base}/pods", token=token) == 403
    assert kubelet_request(f"{base}{exec_path}", method="POST", token=token) == 403
    # The API server's client certificate (system:masters) is allowed: logs and exec work through it.
    assert kubelet_request(f"{base}/pods", cert=Path(cluster.kubeconfig).parent / "pki") == 200
    pods = json.loads(
        cluster.kubectl("get", "--raw", f"/api/v1/nodes/{require_real_node()}/proxy/pods").stdout
    )
    assert any(p["metadata"]["name"] == "tools" for p in pods["items"])
    assert exec_in(cluster, namespace, "tools", "echo via-exec").stdout.strip() == "via-exec"
