"""Native XGBoost and LightGBM Booster files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..schema import tabular_schema
from .base import LoadOptions


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


def load_xgboost(path: Path, options: LoadOptions) -> XGBoostModel:
    return XGBoostModel(path)


def load_lightgbm(path: Path, options: LoadOptions) -> LightGBMModel:
    return LightGBMModel(path)
