"""What the operator knows of objects without asking the API server, in the shape of client-go's informer
cache: the newest ModelDeployment bodies, the watch echoes of its own writes, who held the names a partial
pass had yet to create, and which optional CRDs are installed. Plain Python: no kopf, no API client, no
other modeldeploy package (the work queue is its sibling: ``modeldeploy.workqueue``)."""

from modeldeploy.objectcache.bodies import BodyCache
from modeldeploy.objectcache.cache import ObjectCache
from modeldeploy.objectcache.claims import CARRIED_CLAIM_SECONDS, CarriedClaims
from modeldeploy.objectcache.echoes import Echoes
from modeldeploy.objectcache.presence import Presence

__all__ = ["CARRIED_CLAIM_SECONDS", "BodyCache", "CarriedClaims", "Echoes", "ObjectCache", "Presence"]
