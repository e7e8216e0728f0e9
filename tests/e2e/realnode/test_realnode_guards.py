"""The egress guards: nothing the cluster sends leaves the machine, the machine's DNS keeps working, and the
guard jumps stay rule 1 while kube-proxy rewrites its own rules.

The probe packets go to one address of 10.0.0.0/8 outside the cluster (three TCP connection attempts of one
second, once); the guards are checked to be in place before any is sent."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.realnode.pods import exec_in, require_real_node, root_command, start_tools_pod

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

OUTSIDE = "10.200.200.200"  # in 10.0.0.0/8, outside the pod (10.244.0.0/22) and Service (10.96.0.0/16) ranges
CHAINS = {
    "POSTROUTING": "MODELDEPLOY-GUARD-OUT",
    "FORWARD": "MODELDEPLOY-GUARD-FWD",
    "INPUT": "MODELDEPLOY-GUARD-IN",
}


def first_rule(builtin: str) -> str:
    return root_command("iptables", "-w", "5", "-t", "mangle", "-S", builtin).splitlines()[1]


def drop_count(chain: str, match: str) -> int:
    """Packets counted by the DROP rule of CHAIN whose line contains MATCH."""
    for line in root_command(
        "iptables", "-w", "5", "-t", "mangle", "-L", chain, "-n", "-v", "-x"
    ).splitlines():
        if "DROP" in line and match in line:
            return int(line.split()[0])
    raise AssertionError(f"no DROP rule matching {match!r} in {chain}")


def assert_guards_first() -> None:
    for builtin, chain in CHAINS.items():
        assert first_rule(builtin) == f"-A {builtin} -j {chain}", root_command(
            "iptables", "-t", "mangle", "-S", builtin
        )


@pytest.fixture(scope="module")
def tools(cluster, namespace) -> dict:
    require_real_node()
    assert_guards_first()
    return start_tools_pod(cluster, namespace)


def uplink() -> str:
    route = root_command("ip", "-4", "route", "show", "default")
    return re.search(r"\bdev (\S+)", route).group(1)


def test_a_packet_from_a_pod_to_an_outside_10_address_is_dropped(cluster, namespace, tools):
    assert_guards_first()
    before = drop_count("MODELDEPLOY-GUARD-FWD", uplink())
    sent = exec_in(
        cluster, namespace, "tools", f"for i in 1 2 3; do echo probe | nc -w 1 {OUTSIDE} 9; done; echo sent"
    )
    assert sent.stdout.strip().endswith("sent"), sent.stderr
    assert drop_count("MODELDEPLOY-GUARD-FWD", uplink()) >= before + 3


def test_a_packet_from_the_host_to_an_outside_10_address_is_dropped_before_the_uplink():
    require_real_node()
    assert_guards_first()
    before = drop_count("MODELDEPLOY-GUARD-OUT", "10.0.0.0/8")
    # netfilter's verdict reaches the sender as EPERM
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(PermissionError):
        s.sendto(b"probe", (OUTSIDE, 9))
    assert drop_count("MODELDEPLOY-GUARD-OUT", "10.0.0.0/8") >= before + 1


def test_the_machines_dns_resolver_is_never_blocked():
    require_real_node()
    resolvers = [
        line.split()[1]
        for line in Path("/etc/resolv.conf").read_text().splitlines()
        if line.startswith("nameserver")
    ]
    rules = root_command("iptables", "-w", "5", "-t", "mangle", "-S", "MODELDEPLOY-GUARD-OUT").splitlines()
    for resolver in (r for r in resolvers if ":" not in r):
        assert rules[1] == f"-A MODELDEPLOY-GUARD-OUT -d {resolver}/32 -j ACCEPT", rules
    # A package registry's name still resolves through that resolver.
    assert socket.getaddrinfo("deb.debian.org", 80, proto=socket.IPPROTO_TCP)


def test_guards_stay_first_after_kube_proxy_has_run_a_minute(cluster):
    require_real_node()
    pid = Path(cluster.env["MODELDEPLOY_REAL_NODE_STATE"], "kube-proxy.pid").read_text().strip()
    running_for = float(
        subprocess.run(["ps", "-o", "etimes=", "-p", pid], capture_output=True, text=True).stdout
    )
    # kube-proxy resyncs every 30 s: let it run a minute (one bounded wait, not a timed assertion).
    time.sleep(max(0.0, 61 - running_for))
    assert_guards_first()
    kube_rules = root_command("iptables", "-w", "5", "-t", "nat", "-S")
    assert "KUBE-SERVICES" in kube_rules  # kube-proxy did write its own rules meanwhile
    assert root_command("sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
