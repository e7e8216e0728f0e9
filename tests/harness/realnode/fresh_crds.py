"""A cluster as a fresh machine has it: none of our CRDs, no kopf peering objects; put back after.

Deleting a CRD deletes every object of its kind in every namespace: use it only on a cluster no other test is
using at the same time (the real node's default cluster runs one test module at a time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

OUR_CRDS = ("modeldeployments.modeldeploy.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
PEERING_KINDS = ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
# What the API server sets: a restored object must not carry them.
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def restorable(obj: dict) -> dict:
    """The object as it can be created again: no server-set metadata, no status."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return {**{k: v for k, v in obj.items() if k not in ("status", "metadata")}, "metadata": meta}


def existing(cluster, *args: str) -> list[dict]:
    found = cluster.kubectl("get", *args, "-o", "json", check=False)
    if found.returncode != 0:
        return []
    doc = json.loads(found.stdout)
    return doc.get("items", [doc])


def delete_our_crds(cluster) -> None:
    """Deletes our CRDs and with them every ModelDeployment and peering object; finalizers go first (the
    operator that would remove them may be gone)."""
    for md in existing(cluster, "modeldeployments.modeldeploy.io", "-A"):
        meta = md["metadata"]
        if meta.get("finalizers"):
            drop = '{"metadata":{"finalizers":null}}'
            cluster.kubectl(
                "patch", "md", meta["name"], "-n", meta["namespace"], "--type=merge", "-p", drop, check=False
            )
    for crd in OUR_CRDS:
        cluster.kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=true", "--timeout=120s")


@contextmanager
def without_our_crds(cluster) -> Iterator[None]:
    """Every CRD and peering object of ours deleted for the block; the saved ones created again after it."""
    crds = [c for crd in OUR_CRDS for c in existing(cluster, "crd", crd)]
    peerings = [p for kind in PEERING_KINDS for p in existing(cluster, kind, "-A")] if crds else []
    delete_our_crds(cluster)
    try:
        yield
    finally:
        delete_our_crds(cluster)  # whatever the block installed goes: the saved copies are the truth
        for crd in crds:
            cluster.kubectl("create", "-f", "-", input=json.dumps(restorable(crd)))
            cluster.wait_established(crd["metadata"]["name"])
        for peering in peerings:
            cluster.kubectl("create", "-f", "-", input=json.dumps(restorable(peering)), check=False)
