"""The object cache: what the operator knows without asking the API server, and when it stops trusting it."""

from __future__ import annotations

import pytest

from modeldeploy.objectcache import CARRIED_CLAIM_SECONDS, CarriedClaims, Echoes, ObjectCache, Presence
from modeldeploy.objectcache.presence import PRESENCE_SECONDS

PARENT = ("ml", "iris")


def test_the_echo_of_our_write_is_recognised_and_laid_over_the_index_until_it_comes():
    echoes = Echoes()
    echoes.wrote(PARENT, "Service", "iris", "7", packed='{"kind":"Service"}')
    assert echoes.is_own_write("Service", "ml", "iris", "7")
    assert not echoes.is_own_write("Service", "ml", "iris", "8")  # someone else's write after ours
    assert dict(echoes.unechoed(PARENT)) == {("Service", "iris"): '{"kind":"Service"}'}
    echoes.echoed(PARENT, "Service", "iris")
    assert dict(echoes.unechoed(PARENT)) == {}


def test_a_kind_no_index_holds_is_never_awaited_and_a_deleted_child_is_forgotten():
    echoes = Echoes()
    echoes.wrote(PARENT, "ServiceMonitor", "iris", "3", packed=None)
    assert echoes.is_own_write("ServiceMonitor", "ml", "iris", "3") and dict(echoes.unechoed(PARENT)) == {}
    echoes.wrote(PARENT, "Deployment", "iris-blue", "4", packed="{}")
    echoes.deleted(PARENT, "Deployment", "iris-blue")
    assert not echoes.is_own_write("Deployment", "ml", "iris-blue", "4")
    assert dict(echoes.unechoed(PARENT)) == {}


def test_a_gone_model_deployment_leaves_nothing_of_its_childrens_writes_behind():
    echoes = Echoes()
    echoes.wrote(PARENT, "Deployment", "iris-blue", "4", packed="{}")
    echoes.wrote(PARENT, "Service", "iris", "5", packed=None)
    echoes.wrote(("ml", "other"), "Service", "other", "6", packed=None)
    echoes.forget_parent(*PARENT)
    assert not echoes.is_own_write("Deployment", "ml", "iris-blue", "4")
    assert dict(echoes.unechoed(PARENT)) == {}
    assert len(echoes) == 1 and echoes.is_own_write("Service", "ml", "other", "6")


@pytest.mark.parametrize(("age", "known"), [(0.0, False), (PRESENCE_SECONDS + 1, None)])
def test_a_crds_presence_is_known_for_a_while(age, known):
    presence = Presence()
    presence.record("servicemonitors.monitoring.coreos.com", False, now=10.0)
    assert presence.known("servicemonitors.monitoring.coreos.com", now=10.0 + age) is known


@pytest.mark.parametrize(("age", "kept"), [(0.0, True), (CARRIED_CLAIM_SECONDS + 1, False)])
def test_carried_holders_serve_one_pass_and_only_while_fresh(age, kept):
    claims = CarriedClaims()
    claims.keep(PARENT, {("Service", "iris"): None}, now=100.0)
    assert (claims.take(PARENT, now=100.0 + age) != {}) is kept
    assert claims.take(PARENT, now=100.0) == {}  # used (or dropped) once


def test_a_gone_model_deployment_leaves_nothing_behind():
    cache = ObjectCache()
    cache.bodies.remember({"metadata": {"namespace": "ml", "name": "iris", "resourceVersion": "5"}})
    cache.echoes.wrote(PARENT, "Service", "iris", "6", packed="{}")
    cache.claims.keep(PARENT, {("Service", "iris"): None}, now=0.0)
    cache.forget_parent(*PARENT)
    assert cache.bodies.get(*PARENT) is None
    assert dict(cache.echoes.unechoed(PARENT)) == {} and cache.claims.take(PARENT, now=0.0) == {}
