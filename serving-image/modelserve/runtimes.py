"""Framework runtimes behind the `ServedModel` interface: ONNX, XGBoost, LightGBM, TensorFlow, TorchScript.

Each imports its framework lazily so the base image only needs the frameworks it serves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .schema import InputSchema, tabular_schema


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- ONNX


ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int"}


class OnnxModel:
    format = "onnx"

    def __init__(self, path: Path, intra_op_threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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
                    self.classes = [_plain(k) for k in keys]
                value = np.asarray([[row[k] for k in keys] for row in value])
            out[self._renamed.get(name, name)] = np.asarray(value)
        return out


# ---------------------------------------------------------------- gradient boosting natives


class XGBoostModel:
    format = "xgboost"

    def __init__(self, path: Path) -> None:
        import json

        import xgboost as xgb

        try:
            self.booster = xgb.Booster(model_file=str(path))
        except Exception as err:
            raise ModelLoadError(
                f"{path.name} is not a loadable XGBoost model: {err}".splitlines()[0]
            ) from None
        self.booster.set_param({"nthread": 1})
        config = json.loads(self.booster.save_config())
        self.objective = config["learner"]["objective"]["name"]
        n_class = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
        names = self.booster.feature_names
        self.classes = _objective_classes(self.objective, n_class)
        outputs = ("predict", "predict_proba") if self.classes is not None else ("predict",)
        self.schema = tabular_schema(self.booster.num_features(), names, output_names=outputs)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raw = np.asarray(self.booster.inplace_predict(x))
        return _boosting_outputs(self.objective, raw)


class LightGBMModel:
    format = "lightgbm"

    def __init__(self, path: Path) -> None:
        import lightgbm as lgb

        try:
            self.booster = lgb.Booster(model_file=str(path))
        except Exception as err:
            raise ModelLoadError(
                f"{path.name} is not a loadable LightGBM model: {err}".splitlines()[0]
            ) from None
        dump = self.booster.dump_model(num_iteration=1)
        self.objective = str(dump.get("objective", "regression")).split()[0]
        n_class = int(dump.get("num_class", 1))
        self.classes = _objective_classes(self.objective, n_class)
        names = self.booster.feature_name()
        default_names = all(n.startswith("Column_") for n in names)
        outputs = ("predict", "predict_proba") if self.classes is not None else ("predict",)
        self.schema = tabular_schema(
            self.booster.num_feature(), None if default_names else names, output_names=outputs
        )

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raw = np.asarray(self.booster.predict(x, num_threads=1))
        return _boosting_outputs(self.objective, raw)


def _objective_classes(objective: str, n_class: int) -> list[int] | None:
    if objective.startswith(("multi:soft", "multiclass", "softmax")):
        return list(range(n_class))
    if objective.startswith(("binary", "reg:logistic")):
        return [0, 1]
    return None


def _boosting_outputs(objective: str, raw: np.ndarray) -> dict[str, np.ndarray]:
    if raw.ndim == 2:
        return {"predict": raw.argmax(axis=1), "predict_proba": raw}
    if objective.startswith("binary"):
        proba = np.column_stack([1.0 - raw, raw])
        return {"predict": (raw > 0.5).astype(np.int64), "predict_proba": proba}
    return {"predict": raw}


# ---------------------------------------------------------------- TensorFlow and TorchScript


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


class TorchScriptModel:
    format = "torchscript"

    def __init__(self, path: Path, schema: InputSchema | None) -> None:
        try:
            import torch
        except ImportError:
            raise ModelLoadError(
                "PyTorch is not installed in this image (install modelserve[torch])"
            ) from None
        torch.set_num_threads(1)
        self.torch = torch
        try:
            self.module = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:
            raise ModelLoadError(
                f"{path.name} is not a loadable TorchScript file: {err}".splitlines()[0]
            ) from None
        self.module.eval()
        if schema is None:
            raise ModelLoadError(
                f"TorchScript files carry no input signature: add {path.name}.schema.json "
                "with the input shape"
            )
        self.schema = schema
        self.classes = None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            result = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if isinstance(result, dict):
            return {str(k): v.numpy() for k, v in result.items()}
        if isinstance(result, tuple | list):
            return {f"output_{i}": v.numpy() for i, v in enumerate(result)}
        return {"output_0": result.numpy()}
