"""kopf handlers; importing this package registers them."""

from modeldeploy.handlers import children, modeldeployments, startup

__all__ = ["children", "modeldeployments", "startup"]
