"""ONNX models under onnxruntime (one input tensor; skl2onnx classifiers keep sklearn's output names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..schema import InputSchema, tabular_schema
from .base import LoadOptions, plain
from .device import onnx_providers

ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int"}


class OnnxModel:
    format = "onnx"

    def __init__(self, path: Path, intra_op_threads: int, device: str = "auto") -> None:
        import onnxruntime as ort

        providers, self.device_choice = onnx_providers(device, ort.get_available_providers)

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:
            raise ModelLoadError(f"{path.name} is not a loadable ONNX model: {err}".splitlines()[0]) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(
                f"ONNX models with {len(inputs)} inputs are not supported; export one input tensor"
            )
        spec = inputs[0]
        self.input_name = spec.name
        dtype = ONNX_DTYPES.get(spec.type)
        if dtype is None:
            raise ModelLoadError(
                f"ONNX input '{spec.name}' has type {spec.type}; supported: {sorted(ONNX_DTYPES)}"
            )
        self.np_dtype = np.float32 if dtype == "float32" else np.float64 if dtype == "float64" else np.int64
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._renamed = self._classifier_names(self.output_names)
        shape = tuple(d if isinstance(d, int) else -1 for d in spec.shape)
        names = tuple(self._renamed.get(n, n) for n in self.output_names)
        if len(shape) == 2 and shape[1] > 0:
            self.schema = tabular_schema(shape[1], None, spec.name, dtype, names)
        else:
            self.schema = InputSchema(
                input_name=spec.name, shape=shape or (-1,), dtype=dtype, output_names=names
            )
        self.classes = None

    @staticmethod
    def _classifier_names(names: list[str]) -> dict[str, str]:
        # skl2onnx classifiers answer (label, probabilities): expose them under the sklearn names.
        if len(names) == 2 and names[0] == "label" and names[1].startswith("prob"):
            return {"label": "predict", names[1]: "predict_proba"}
        return {}

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        results = self.session.run(None, {self.input_name: x.astype(self.np_dtype, copy=False)})
        out: dict[str, np.ndarray] = {}
        for name, value in zip(self.output_names, results, strict=True):
            if isinstance(value, list) and value and isinstance(value[0], dict):  # ZipMap output
                keys = list(value[0])
                if self.classes is None:
                    self.classes = [plain(k) for k in keys]
                value = np.asarray([[row[k] for k in keys] for row in value])
            out[self._renamed.get(name, name)] = np.asarray(value)
        return out


def load_onnx(path: Path, options: LoadOptions) -> OnnxModel:
    return OnnxModel(path, options.onnx_threads, options.device)
