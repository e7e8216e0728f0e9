"""modelserve: the inference server bundled with modeldeploy."""

__version__ = "0.1.0"
