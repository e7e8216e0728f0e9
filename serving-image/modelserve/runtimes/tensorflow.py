"""TensorFlow SavedModel directories (the `serving_default` signature, one input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..schema import InputSchema, tabular_schema
from .base import LoadOptions


class TensorFlowModel:
    format = "tensorflow"

    def __init__(self, path: Path) -> None:
        try:
            import tensorflow as tf
        except ImportError:
            raise ModelLoadError(
                "TensorFlow is not installed in this image (install modelserve[tensorflow])"
            ) from None
        tf.config.threading.set_intra_op_parallelism_threads(1)
        self.tf = tf
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as err:
            raise ModelLoadError(f"{path} is not a loadable SavedModel: {err}".splitlines()[0]) from None
        self._loaded = loaded  # keeps the variables alive
        if "serving_default" not in loaded.signatures:
            raise ModelLoadError(f"SavedModel {path} has no 'serving_default' signature")
        self.fn = loaded.signatures["serving_default"]
        specs = self.fn.structured_input_signature[1]
        if len(specs) != 1:
            raise ModelLoadError(
                f"SavedModels with {len(specs)} inputs are not supported; export one input tensor"
            )
        ((self.input_name, spec),) = specs.items()
        self.tf_dtype = spec.dtype
        dtype = {"float32": "float32", "float64": "float64", "int64": "int"}.get(spec.dtype.name)
        if dtype is None:
            raise ModelLoadError(
                f"SavedModel input '{self.input_name}' has dtype {spec.dtype.name}; not supported"
            )
        shape = tuple(-1 if d is None else int(d) for d in spec.shape.as_list())
        outputs = tuple(sorted(self.fn.structured_outputs))
        if len(shape) == 2 and shape[1] > 0:
            self.schema = tabular_schema(shape[1], None, self.input_name, dtype, outputs)
        else:
            self.schema = InputSchema(
                input_name=self.input_name, shape=shape, dtype=dtype, output_names=outputs
            )
        self.classes = None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        result = self.fn(**{self.input_name: self.tf.constant(x, dtype=self.tf_dtype)})
        return {name: value.numpy() for name, value in result.items()}


def load_tensorflow(path: Path, options: LoadOptions) -> TensorFlowModel:
    return TensorFlowModel(path)
