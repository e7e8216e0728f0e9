"""kopf configuration in one startup handler, and the runtime every handler shares."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modeldeploy import api
from modeldeploy.handlers.handled import HandledSpecs
from modeldeploy.handlers.modeldeployments import resync_forever
from modeldeploy.handlers.runtime import CHILD_INDEXES, POD_INDEX, Runtime, object_cache, work_queue
from modeldeploy.k8s import WATCHED_KINDS, Kube, load_api_client
from modeldeploy.memory import trim_heap_forever
from modeldeploy.reconcile import OWNER_SELECTOR, Context, crd_preserves_status_field
from modeldeploy.reconcile.checks import ProbeCheckRunner
from modeldeploy.settings import OperatorSettings, get_settings

log = logging.getLogger(__name__)
BOOKKEEPING_FIELD = "kopf"  # status.kopf: kopf's progress of handlers that retry


def bookkeeping_refusal(crd: dict | None) -> str | None:
    """Why the operator cannot run with this CRD (None when it can): kopf's retry state needs
    status.kopf, else it would fall back to annotations, a write to the object users own."""
    if crd is None:
        return f"CRD {api.CRD_NAME} is not installed: install it (the chart does, with crds.install: true)"
    if crd_preserves_status_field(crd, BOOKKEEPING_FIELD):
        return None
    return (
        f"CRD {api.CRD_NAME} has no status.{BOOKKEEPING_FIELD} field (an older CRD?): the operator keeps "
        f"its retry state there and never writes a ModelDeployment's metadata; install the CRD of this "
        f"release (crds/modeldeployments.yaml, or the chart with crds.install: true)"
    )


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    ours = get_settings()
    kube = Kube(
        load_api_client(max_connections=ours.api_workers * 2),
        field_manager=ours.field_manager,
        workers=ours.api_workers,
        request_timeout=ours.request_timeout_seconds,
        by_priority="priority_gate" not in ours.disable,
    )
    # kopf's last-handled spec lives in memory (handled.py), so a new ModelDeployment costs no write.
    handled = HandledSpecs()
    await _persist_in_status(settings, kube, handled)
    _tune_kopf(settings, ours)
    # One probe client per operator process: rollout checks (smoke, quality gate, analysis) share it.
    memo.runtime = Runtime(
        ctx=Context(
            kube=kube, settings=ours, check_runner=ProbeCheckRunner(kube, ours), cache=object_cache(ours)
        ),
        queue=work_queue(ours),
        handled=handled,
    )
    # Indexes are passed to activities too; the resync loop keeps a reference to them.
    indexes = {name: kwargs[name] for name in (*CHILD_INDEXES, POD_INDEX)}
    memo.runtime.queue.spawn(resync_forever(memo, indexes))
    memo.runtime.queue.spawn(trim_heap_forever(ours.heap_trim_seconds))
    log.info(
        "modeldeploy operator starting: namespaces=%s priority=%s peering=%s",
        ours.namespaces or "all",
        ours.priority,
        "standalone" if ours.standalone else ours.peering_name,
    )


async def _persist_in_status(settings: kopf.OperatorSettings, kube: Kube, handled: HandledSpecs) -> None:
    """Where kopf keeps its own state: never in a ModelDeployment's metadata (its users' and GitOps')."""
    # No finalizer is ever added (no on.delete handlers, no kopf timers/daemons): children are
    # garbage-collected through owner references, so deleting a ModelDeployment never waits for us.
    settings.persistence.finalizer = "modeldeploy.io/finalizer"
    settings.persistence.diffbase_storage = handled
    refusal = bookkeeping_refusal(await kube.get_crd(api.CRD_NAME))
    if refusal is not None:
        log.error("%s", refusal)
        raise kopf.PermanentError(refusal)
    # kopf's progress of a handler that must retry lives in status (which GitOps tools never diff and
    # users never write), not in metadata.annotations: so the operator never patches a ModelDeployment.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field=f"status.{BOOKKEEPING_FIELD}.progress", touch_field=f"status.{BOOKKEEPING_FIELD}.dummy"
    )


def _tune_kopf(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf's posting, timeouts, watch filters and peering from our settings."""
    # Handler logs stay in the operator's log; users get our own Events, so kopf posts only problems.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "modeldeploy"
    settings.networking.request_timeout = ours.request_timeout_seconds
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = ours.watch_server_timeout_seconds
    settings.watching.client_timeout = ours.watch_server_timeout_seconds + 30
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = ours.api_workers

    # Watch only what we own: the API server filters children and pods by our managed-by label.
    for kind in WATCHED_KINDS:
        settings.watching.label_selectors[kind.group, kind.version, kind.plural] = OWNER_SELECTOR

    # HA: replicas share one peering object; the highest priority is active, the others stand by
    # and take over once its record is older than `lifetime` seconds.
    settings.peering.standalone = ours.standalone
    settings.peering.name = ours.peering_name
    settings.peering.priority = ours.priority
    settings.peering.lifetime = ours.peering_lifetime_seconds
    settings.peering.mandatory = not ours.standalone
    settings.peering.clusterwide = ours.clusterwide


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        runtime.queue.shut_down()
        if isinstance(runtime.ctx.check_runner, ProbeCheckRunner):
            await runtime.ctx.check_runner.aclose()
        runtime.ctx.kube.close()
