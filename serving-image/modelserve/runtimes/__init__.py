"""Every model format behind one registry: `RUNTIMES[format](path, options) -> ServedModel`.

Each runtime imports its framework lazily, so the image only needs the frameworks it serves. A new format
is one module here and one entry in `RUNTIMES` (and in `settings.ModelFormat`, which validates the variable).
"""

from __future__ import annotations

from .base import Loader, LoadOptions, ServedModel, explain_missing_code, plain
from .boosting import load_lightgbm, load_xgboost
from .onnx import load_onnx
from .sklearn import load_sklearn, load_skops
from .tensorflow import load_tensorflow
from .torchscript import load_torchscript

RUNTIMES: dict[str, Loader] = {
    "sklearn": load_sklearn,
    "skops": load_skops,
    "onnx": load_onnx,
    "torchscript": load_torchscript,
    "tensorflow": load_tensorflow,
    "xgboost": load_xgboost,
    "lightgbm": load_lightgbm,
}
FORMATS = tuple(RUNTIMES)

__all__ = ["FORMATS", "RUNTIMES", "LoadOptions", "Loader", "ServedModel", "explain_missing_code", "plain"]
