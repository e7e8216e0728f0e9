"""Scheduling of reconcile passes and API requests: pure asyncio, no kopf, no API client, no modeldeploy
layer below it. ``WorkQueue`` is what handlers use (per-key serial, coalescing, priority admission, delayed
and debounced re-adds); ``PriorityGate`` also bounds the API client's connections."""

from modeldeploy.workqueue.keyed_serializer import KeyedSerializer
from modeldeploy.workqueue.priority_gate import BEST_EFFORT, NORMAL, URGENT, PriorityGate
from modeldeploy.workqueue.queue import WorkQueue

__all__ = ["BEST_EFFORT", "NORMAL", "URGENT", "KeyedSerializer", "PriorityGate", "WorkQueue"]
