"""ALL Kubernetes API I/O of the operator: server-side apply, reads, status patches, Events.

Calls go through the `kubernetes` client's authenticated REST layer with raw JSON (no model classes:
faster, and every kind - including our CRD - looks the same). Blocking calls run in a thread pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from modeldeploy import metrics
from modeldeploy.k8s.resources import CRD, EVENT, MODEL_DEPLOYMENT, Kind, kind_of
from modeldeploy.workqueue import BEST_EFFORT, NORMAL, URGENT, PriorityGate

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"


class ApiError(Exception):
    """A failed API call, with the HTTP status and the server's message."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def retriable(self) -> bool:
        return self.status in RETRIED_STATUSES or self.status == 0

    @property
    def conflict(self) -> bool:
        return self.status == 409


def starts_pods(manifest: Mapping[str, Any]) -> bool:
    """A Deployment with replicas (or none given: an HPA sets them): its apply goes ahead of other writes,
    and a pass writes it before the other children."""
    return manifest.get("kind") == "Deployment" and (manifest.get("spec") or {}).get("replicas", 1) != 0


def load_api_client(max_connections: int = 32, config_file: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (`config_file` or $KUBECONFIG)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(
            config_file=config_file or os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = max_connections
    return kubernetes.client.ApiClient(configuration)


class Kube:
    """One object per process; every method is async and retries conflicts, throttling and timeouts."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        field_manager: str,
        workers: int = 16,
        request_timeout: float = 30.0,
        attempts: int = 5,
        reserved: int | None = None,
        by_priority: bool = True,
    ) -> None:
        self._api = api_client
        self.field_manager = field_manager
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        # Never more requests than threads (none waits unordered). When every connection is busy, a new
        # ModelDeployment's Deployment goes ahead of Services, status patches and Events (Events last), and
        # `reserved` connections (default a quarter) are kept for it, so pods start early in a burst.
        self._gate = PriorityGate(
            workers, reserved=workers // 4 if reserved is None else reserved, by_priority=by_priority
        )
        self._timeout = request_timeout
        self._attempts = attempts

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    # -- the one raw request -------------------------------------------------------------------------

    def _request_sync(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, _, _ = self._api.param_serialize(
            method, path, query_params=query or [], header_params=headers, auth_settings=["BearerToken"]
        )
        # The client serialises JSON content types itself; an apply patch goes as a JSON (= YAML) string.
        payload = json.dumps(body) if body is not None and content_type == APPLY_CONTENT_TYPE else body
        try:
            response = self._api.rest_client.request(
                method, url, headers=headers, body=payload, _request_timeout=self._timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts, refused connections
            raise ApiError(0, str(exc), "ConnectionError") from exc
        except ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason), "ClientError") from exc
        data = response.read()
        if response.status >= 400:
            try:
                status = json.loads(data)
                raise ApiError(response.status, status.get("message", ""), status.get("reason", ""))
            except (ValueError, AttributeError):
                raise ApiError(response.status, data.decode(errors="replace")[:500]) from None
        return json.loads(data) if data else None

    async def _request(
        self, method: str, path: str, priority: int = NORMAL, *, retry_conflict: bool = True, **kwargs: Any
    ) -> dict | None:
        """Retry what a retry can fix (conflict, throttling, 5xx, timeout) with jittered backoff; a
        conflict on a write with a precondition is the caller's to handle (the same request fails again)."""
        loop = asyncio.get_running_loop()
        for attempt in range(self._attempts):
            try:
                async with self._gate.held(priority):
                    return await loop.run_in_executor(
                        self._executor, lambda: self._request_sync(method, path, **kwargs)
                    )
            except ApiError as exc:
                final = attempt == self._attempts - 1 or (exc.conflict and not retry_conflict)
                if not exc.retriable or final:
                    raise
                delay = min(0.1 * 2**attempt, 2.0) * (0.5 + random.random())
                log.info("retrying %s %s in %.2fs after %s", method, path, delay, exc)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str, *, urgent: bool = False) -> dict | None:
        """The object, or None when it does not exist; `urgent` when a Deployment's apply waits for it."""
        try:
            return await self._request("GET", kind.path(namespace, name), URGENT if urgent else NORMAL)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def list(self, kind: Kind, namespace: str | None, label_selector: str = "") -> list[dict]:
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            result = await self._request("GET", kind.path(namespace), query=query)
        except ApiError as exc:
            if exc.not_found:  # the kind's CRD is not installed
                return []
            raise
        return (result or {}).get("items", [])

    async def get_crd(self, name: str) -> dict | None:
        return await self.get(CRD, None, name)

    # -- writes --------------------------------------------------------------------------------------

    async def apply(self, manifest: dict, *, force: bool = True) -> dict:
        """Server-side apply under our field manager; force where we fully own the object."""
        kind = kind_of(manifest)
        meta = manifest["metadata"]
        query = [("fieldManager", self.field_manager)]
        if force:
            query.append(("force", "true"))
        metrics.API_WRITES.labels(verb="apply", resource=kind.plural).inc()
        result = await self._request(
            "PATCH",
            kind.path(meta.get("namespace"), meta["name"]),
            priority=URGENT if starts_pods(manifest) else NORMAL,
            query=query,
            body=manifest,
            content_type=APPLY_CONTENT_TYPE,  # JSON is YAML, so the JSON body is a valid apply patch
        )
        assert result is not None
        return result

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        metrics.API_WRITES.labels(verb="delete", resource=kind.plural).inc()
        try:
            await self._request(
                "DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"}
            )
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def patch_status(
        self,
        namespace: str,
        name: str,
        status_patch: dict,
        kind: Kind = MODEL_DEPLOYMENT,
        *,
        resource_version: str | None = None,
    ) -> dict:
        """A JSON merge patch through the status subresource (None values remove keys). With
        `resource_version`, it applies only to that version of the object: else ApiError 409, not retried
        (a writer that planned from an older body must read again, never write an older state back)."""
        metrics.API_WRITES.labels(verb="patch", resource=f"{kind.plural}/status").inc()
        body: dict[str, Any] = {"status": status_patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        result = await self._request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body=body,
            content_type=MERGE_CONTENT_TYPE,
            retry_conflict=not resource_version,
        )
        assert result is not None
        return result

    async def emit_event(
        self,
        involved: dict,
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "modeldeploy",
    ) -> None:
        """A core/v1 Event on the object; failures are logged, never raised (Events are best effort)."""
        meta = involved["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", MODEL_DEPLOYMENT.api_version),
                "kind": involved.get("kind", MODEL_DEPLOYMENT.kind),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        metrics.API_WRITES.labels(verb="create", resource="events").inc()
        try:
            await self._request("POST", EVENT.path(meta["namespace"]), priority=BEST_EFFORT, body=event)
        except ApiError as exc:
            log.warning("could not post Event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc)
