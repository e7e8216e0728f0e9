"""Each name in the operator's `disable` setting turns off its piece of the burst machinery (for the
ablation benchmark), and nothing is off by default."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Callable

import pydantic
import pytest

from modeldeploy.handlers.children import index_entry
from modeldeploy.handlers.runtime import object_cache, packs_indexes, work_queue
from modeldeploy.k8s import DEPLOYMENT, POD
from modeldeploy.settings import BurstPiece, OperatorSettings
from modeldeploy.workqueue import WorkQueue

BODY = {"metadata": {"namespace": "ns", "name": "iris", "resourceVersion": "7"}, "spec": {}}


def body_is_cached(settings: OperatorSettings) -> bool:
    cache = object_cache(settings)
    cache.bodies.remember(BODY)
    return cache.bodies.get("ns", "iris") is not None


def own_write_is_recognised(settings: OperatorSettings) -> bool:
    echoes = object_cache(settings).echoes
    echoes.wrote(("ns", "iris"), "Service", "iris", "7", packed="{}")
    return echoes.is_own_write("Service", "ns", "iris", "7") and bool(echoes.unechoed(("ns", "iris")))


def claims_are_carried(settings: OperatorSettings) -> bool:
    claims = object_cache(settings).claims
    claims.keep(("ns", "iris"), {("Service", "iris"): None}, now=0.0)
    return bool(claims.take(("ns", "iris"), now=1.0))


def crd_presence_is_remembered(settings: OperatorSettings) -> bool:
    crds = object_cache(settings).crds
    crds.record("httproutes.gateway.networking.k8s.io", True, now=0.0)
    return crds.known("httproutes.gateway.networking.k8s.io", now=1.0) is not None


def index_entries_are_packed(settings: OperatorSettings) -> bool:
    packed = packs_indexes(settings)
    entries = [index_entry(kind, BODY, packed=packed) for kind in (POD, DEPLOYMENT)]
    return all(isinstance(entry, str) for entry in entries)


async def _triggers(queue: WorkQueue, extra: int) -> tuple[int, int]:
    """One pass of a key running while `extra` more triggers for it arrive: (passes run, most at once)."""
    release, ran, running, most = asyncio.Event(), [0], [0], [0]

    async def work() -> None:
        ran[0] += 1
        running[0] += 1
        most[0] = max(most[0], running[0])
        await release.wait()
        running[0] -= 1

    first = asyncio.create_task(queue.run("iris", work))
    await asyncio.sleep(0)
    more = [asyncio.create_task(queue.run("iris", work)) for _ in range(extra)]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, *more)
    return ran[0], most[0]


def triggers_coalesce(settings: OperatorSettings) -> bool:
    ran, _ = asyncio.run(_triggers(work_queue(settings), extra=3))
    return ran == 2  # the running pass and one rerun for the three triggers


def passes_of_a_key_are_serial(settings: OperatorSettings) -> bool:
    _, most = asyncio.run(_triggers(work_queue(settings), extra=1))
    return most == 1


def urgent_goes_first(settings: OperatorSettings) -> bool:
    """With one place held, a normal pass queues, then an urgent one: who is let in first?"""

    async def scenario() -> list[str]:
        queue = work_queue(settings.model_copy(update={"max_concurrent_reconciles": 1}))
        release, order = asyncio.Event(), []

        async def hold() -> None:
            await release.wait()

        async def note(tag: str) -> None:
            order.append(tag)

        holder = asyncio.create_task(queue.run("a", hold))
        await asyncio.sleep(0)
        normal = asyncio.create_task(queue.run("b", lambda: note("normal")))
        await asyncio.sleep(0)
        urgent = asyncio.create_task(queue.run("c", lambda: note("urgent"), urgent=True))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(holder, normal, urgent)
        return order

    return asyncio.run(scenario()) == ["urgent", "normal"]


PROBES: dict[str, Callable[[OperatorSettings], bool]] = {
    "priority_gate": urgent_goes_first,
    "serial": passes_of_a_key_are_serial,
    "coalesce": triggers_coalesce,
    "body_cache": body_is_cached,
    "echoes": own_write_is_recognised,
    "claims": claims_are_carried,
    "crd_presence": crd_presence_is_remembered,
    "packed_indexes": index_entries_are_packed,
}


# Coalescing is the per-key serialiser's: without it no trigger has a running pass to join.
ALSO_OFF = {"serial": {"coalesce"}}


def test_every_piece_that_can_be_disabled_has_a_probe():
    assert set(PROBES) == set(typing.get_args(BurstPiece))


@pytest.mark.parametrize("piece", sorted(PROBES))
def test_a_piece_works_by_default_and_its_name_in_disable_turns_it_off(piece, monkeypatch):
    assert PROBES[piece](OperatorSettings()), f"{piece} should work by default"
    monkeypatch.setenv("MODELDEPLOY_DISABLE", f" {piece} ,")
    disabled = OperatorSettings()
    assert disabled.disable == {piece}
    assert not PROBES[piece](disabled), f"MODELDEPLOY_DISABLE={piece} should turn {piece} off"
    others = [other for name, other in PROBES.items() if name not in {piece, *ALSO_OFF.get(piece, ())}]
    assert all(probe(disabled) for probe in others), f"disabling {piece} should leave the others on"


def test_an_unknown_piece_is_refused_naming_the_setting():
    with pytest.raises(pydantic.ValidationError, match="disable"):
        OperatorSettings(disable="priority_gate,no_such_piece")
