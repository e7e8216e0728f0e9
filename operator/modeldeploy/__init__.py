"""modeldeploy: a kopf operator that takes trained ML models to production on Kubernetes."""

__version__ = "0.1.0"
