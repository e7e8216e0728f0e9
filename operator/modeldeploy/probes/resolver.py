"""Where the model servers of a colour answer: pod URLs for metrics, one Service URL for requests.

Public: ``Target``, ``AddressResolver`` (protocol), ``ClusterResolver`` (pod IPs and Service DNS, the
default in a cluster), ``StaticResolver`` (fixed URLs per colour or Service name: tests, port-forwards).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

SERVING_PORT = 8080  # modelserve's one port (serving contract)
SERVICE_PORT = 80  # the Services' port (desired.children.SERVICE_PORT)


@dataclass(frozen=True)
class Target:
    """The model servers a probe talks to: a colour's pods and the Service in front of them.

    `service` is the Service to send requests through (``<name>-preview`` for the candidate before it gets
    traffic, ``<name>-<colour>`` or ``<name>`` otherwise); `pod_ips` are the Ready pods of `color`.
    """

    namespace: str
    service: str
    color: str | None = None
    pod_ips: tuple[str, ...] = ()


class AddressResolver(Protocol):
    def pod_urls(self, target: Target) -> list[str]:
        """Base URLs of every pod of the target (for /metrics), e.g. ``http://10.0.0.7:8080``."""
        ...

    def service_url(self, target: Target) -> str:
        """Base URL of the target's Service (for smoke and labelled-data requests)."""
        ...


@dataclass(frozen=True)
class ClusterResolver:
    """In-cluster addresses: pods by IP on the serving port, Services by DNS name."""

    serving_port: int = SERVING_PORT
    service_port: int = SERVICE_PORT
    cluster_domain: str = "cluster.local"

    def pod_urls(self, target: Target) -> list[str]:
        return [f"http://{_host(ip)}:{self.serving_port}" for ip in target.pod_ips]

    def service_url(self, target: Target) -> str:
        host = f"{target.service}.{target.namespace}.svc.{self.cluster_domain}"
        return f"http://{host}:{self.service_port}"


@dataclass(frozen=True)
class StaticResolver:
    """Fixed URLs: `pods` by colour, `services` by Service name (falling back to the colour's first pod)."""

    pods: Mapping[str, Sequence[str]]
    services: Mapping[str, str] | None = None

    def pod_urls(self, target: Target) -> list[str]:
        return list(self.pods.get(target.color or "", ()))

    def service_url(self, target: Target) -> str:
        if self.services and target.service in self.services:
            return self.services[target.service]
        urls = self.pod_urls(target)
        if not urls:
            raise LookupError(f"no address for service {target.service!r} (colour {target.color!r})")
        return urls[0]


def _host(ip: str) -> str:
    try:
        return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        return ip
