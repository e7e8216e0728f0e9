"""The one object cache a reconcile pass is handed (``reconcile.Context.cache``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from modeldeploy.objectcache.bodies import BodyCache
from modeldeploy.objectcache.claims import CarriedClaims
from modeldeploy.objectcache.echoes import Echoes
from modeldeploy.objectcache.presence import Presence


@dataclass
class ObjectCache:
    # The newest ModelDeployment bodies seen (watch events, our status patches): passes need no GET.
    bodies: BodyCache = field(default_factory=BodyCache)
    # Our own writes not yet seen back through the watches.
    echoes: Echoes = field(default_factory=Echoes)
    # Who held the names a partial pass left to create, for the pass that finishes its writes.
    claims: CarriedClaims = field(default_factory=CarriedClaims)
    # Which optional CRDs are installed, known for a minute at a time.
    crds: Presence = field(default_factory=Presence)

    def forget_parent(self, namespace: str, name: str) -> None:
        """The ModelDeployment is gone: drop what is kept for it."""
        self.bodies.forget(namespace, name)
        self.echoes.forget_parent(namespace, name)
        self.claims.clear((namespace, name))
