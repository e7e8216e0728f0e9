"""Load a model file once, in any supported format, behind one small `ServedModel` interface.

Each loader imports its framework lazily so the base image only needs the frameworks it serves.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import ModelLoadError
from .runtimes import LightGBMModel, OnnxModel, TensorFlowModel, TorchScriptModel, XGBoostModel
from .schema import InputSchema, load_manifest, manifest_path_for, tabular_schema

FORMATS = ("sklearn", "skops", "onnx", "torchscript", "tensorflow", "xgboost", "lightgbm")
PICKLE_EXTENSIONS = frozenset({".joblib", ".pkl", ".pickle", ".jl"})
EXTENSION_FORMATS = {
    ".joblib": "sklearn",
    ".jl": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".skops": "skops",
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".torchscript": "torchscript",
    ".ubj": "xgboost",
    ".xgb": "xgboost",
    ".bst": "xgboost",
    ".lgb": "lightgbm",
}
# Estimators whose predict() is exactly classes_[argmax(predict_proba())]: one pass instead of two.
ARGMAX_CONSISTENT = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "HistGradientBoostingClassifier",
        "GradientBoostingClassifier",
        "GaussianNB",
        "MultinomialNB",
        "KNeighborsClassifier",
        "MLPClassifier",
    }
)


class ServedModel(Protocol):
    format: str
    schema: InputSchema
    classes: list[Any] | None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Rows in, named output arrays out (first axis = rows)."""


@dataclass
class LoadedModel:
    """What the server holds after start-up: the model plus the facts reported by metadata endpoints."""

    model: ServedModel
    path: Path
    format: str
    schema: InputSchema
    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[Any] | None:
        return self.model.classes


# ---------------------------------------------------------------- format and file resolution


def _sniff(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(512)
    if head[:1] == b"\x80":
        return "sklearn"
    if head[:2] == b"PK":
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            return None
        if "schema.json" in names:
            return "skops"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return None
    if head.startswith(b"tree\n") or b"\nversion=v" in head[:64]:
        return "lightgbm"
    if head.lstrip()[:1] == b"{" and b'"learner"' in head:
        return "xgboost"
    return None


def model_files_in(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and not p.name.endswith(".schema.json")
        and p.name != "modelserve-schema.json"
        and not p.name.startswith(".")
    )


def infer_format(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "tensorflow"
        files = model_files_in(path)
        if len(files) != 1:
            raise ModelLoadError(
                f"cannot infer the model format of directory {path}: it holds {len(files)} candidate files "
                f"{[f.name for f in files][:5]}; set MODELSERVE_MODEL_FORMAT or point MODELSERVE_MODEL_PATH "
                "at a file"
            )
        return infer_format(files[0])
    by_extension = EXTENSION_FORMATS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    sniffed = _sniff(path)
    if sniffed:
        return sniffed
    raise ModelLoadError(
        f"cannot infer the model format of {path.name} from its name or contents; "
        "set MODELSERVE_MODEL_FORMAT to "
        f"one of {', '.join(FORMATS)}"
    )


def resolve_model_file(path: Path, fmt: str) -> Path:
    """A directory holding one model file stands for that file (except TensorFlow SavedModels)."""
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist (MODELSERVE_MODEL_PATH)")
    if path.is_file() or fmt == "tensorflow":
        return path
    files = model_files_in(path)
    if len(files) != 1:
        raise ModelLoadError(f"model directory {path} must hold exactly one model file, found {len(files)}")
    return files[0]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_pickle_family(path: Path, fmt: str) -> bool:
    return fmt == "sklearn" or path.suffix.lower() in PICKLE_EXTENSIONS


def check_pickle_allowed(path: Path, fmt: str, expected_sha256: str, allow_unverified: bool) -> None:
    """Pickle runs code on load: only a file whose digest was pinned (or an explicit waiver) may load."""
    if expected_sha256 and path.is_dir():  # a digest covers one file: never let it look like it pins a folder
        raise ModelLoadError(
            f"MODELSERVE_MODEL_SHA256 is set but {path.name} is a directory (e.g. a SavedModel): a digest "
            "covers a single file, so a directory model cannot be pinned yet; remove model.sha256"
        )
    if expected_sha256 and path.is_file():
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise ModelLoadError(
                f"refusing to load {path.name}: its SHA-256 is {actual} "
                f"but MODELSERVE_MODEL_SHA256 is {expected_sha256}"
            )
        return
    if is_pickle_family(path, fmt) and not allow_unverified:
        raise ModelLoadError(
            f"refusing to load pickle file {path.name}: pickle runs code when loaded; "
            "set MODELSERVE_MODEL_SHA256 "
            "to its SHA-256 digest or MODELSERVE_ALLOW_UNVERIFIED_PICKLE=true"
        )


def explain_missing_code(err: BaseException) -> ModelLoadError:
    """A pickle that names the user's own classes needs their package installed in the image."""
    if isinstance(err, ModuleNotFoundError):
        return ModelLoadError(
            f"the model needs Python module '{err.name}', which is not installed in this image; "
            "build a custom "
            "image FROM modelserve that installs it (see README: custom code)"
        )
    text = str(err)
    if isinstance(err, AttributeError) and "Can't get attribute" in text:
        # "Can't get attribute 'Foo' on <module 'pkg.mod' from ...>"
        cls = text.split("'")[1] if text.count("'") >= 2 else "?"
        module = text.split("<module '")[1].split("'")[0] if "<module '" in text else "?"
        return ModelLoadError(
            f"the model needs class '{cls}' from module '{module}', which that module does not define; "
            "install "
            "the package version the model was trained with"
        )
    return ModelLoadError(f"cannot load the model: {type(err).__name__}: {text}".splitlines()[0])


# ---------------------------------------------------------------- scikit-learn family


class SklearnModel:
    format = "sklearn"

    def __init__(self, estimator: Any) -> None:
        import sklearn

        sklearn.set_config(assume_finite=True)  # inputs are checked for NaN/Inf before they get here
        if not hasattr(estimator, "predict"):
            raise ModelLoadError(f"loaded object of type {type(estimator).__name__} has no predict() method")
        self.estimator = estimator
        self.has_proba = _safe_hasattr(estimator, "predict_proba")
        self.classes = [_plain(c) for c in estimator.classes_] if hasattr(estimator, "classes_") else None
        self._classes_array = np.asarray(estimator.classes_) if self.classes is not None else None
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        self._argmax_ok = type(final).__name__ in ARGMAX_CONSISTENT and self._classes_array is not None
        names = getattr(estimator, "feature_names_in_", None)
        self.frame_columns = [str(n) for n in names] if names is not None and _has_pandas() else None
        self.fast: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
        n_features = getattr(estimator, "n_features_in_", None)
        outputs = ("predict", "predict_proba") if self.has_proba else ("predict",)
        if n_features is None and self.frame_columns is None:
            self.schema = InputSchema(shape=(-1, -1), output_names=outputs)
        else:
            self.schema = tabular_schema(
                int(n_features or len(self.frame_columns or [])), self.frame_columns, output_names=outputs
            )

    def enable_fast_path(self) -> bool:
        """Swap sklearn's call for verified numpy arithmetic when the pipeline is scalers + a linear model."""
        from .fastpath import compile_linear

        n_features = getattr(self.estimator, "n_features_in_", None)
        if n_features is None or self.frame_columns is not None:
            return False
        self.fast = compile_linear(self.estimator, int(n_features))
        return self.fast is not None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.fast is not None and x.dtype != object:
            return self.fast(x)
        x_in: Any = x
        if self.frame_columns is not None:
            import pandas as pd

            x_in = pd.DataFrame(x, columns=self.frame_columns)
        if self.has_proba:
            proba = self.estimator.predict_proba(x_in)
            if self._argmax_ok:
                labels = self._classes_array.take(proba.argmax(axis=1))  # type: ignore[union-attr]
            else:
                labels = np.asarray(self.estimator.predict(x_in))
            return {"predict": labels, "predict_proba": proba}
        return {"predict": np.asarray(self.estimator.predict(x_in))}


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:  # without pandas, DataFrame-fitted models get arrays (fine for numeric columns)
        return False
    return True


def _safe_hasattr(obj: Any, name: str) -> bool:
    try:
        return hasattr(obj, name)
    except Exception:  # available_if checks may raise on odd estimators
        return False


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def load_sklearn(path: Path) -> SklearnModel:
    import joblib

    try:
        estimator = joblib.load(path)
    except (ModuleNotFoundError, AttributeError) as err:
        raise explain_missing_code(err) from None
    return SklearnModel(estimator)


def load_skops(path: Path, trusted: list[str]) -> SklearnModel:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:
        raise ModelLoadError(f"{path.name} is not a readable skops file: {err}".splitlines()[0]) from None
    not_allowed = [t for t in untrusted if t not in trusted]
    if not_allowed:
        raise ModelLoadError(
            f"skops file {path.name} contains types that are not trusted: {', '.join(not_allowed)}; "
            "list them in "
            "MODELSERVE_SKOPS_TRUSTED_TYPES (comma-separated) if you trust them"
        )
    try:
        estimator = sio.load(path, trusted=untrusted)
    except (ModuleNotFoundError, AttributeError) as err:
        raise explain_missing_code(err) from None
    model = SklearnModel(estimator)
    model.format = "skops"
    return model


# ---------------------------------------------------------------- entry point


def load_model(
    model_path: str,
    fmt: str = "",
    sha256: str = "",
    allow_unverified_pickle: bool = False,
    skops_trusted: list[str] | None = None,
    onnx_threads: int = 1,
) -> tuple[ServedModel, Path, str, InputSchema]:
    """Resolve, verify and load; the schema manifest, when present, overrides what the model says."""
    path = Path(model_path)
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist (MODELSERVE_MODEL_PATH)")
    fmt = fmt or infer_format(path)
    if fmt not in FORMATS:
        raise ModelLoadError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
    model_file = resolve_model_file(path, fmt)
    check_pickle_allowed(model_file, fmt, sha256, allow_unverified_pickle)
    manifest = manifest_path_for(path)
    if not manifest.exists() and model_file != path:
        manifest = manifest_path_for(model_file)
    model: ServedModel
    try:
        if fmt == "sklearn":
            model = load_sklearn(model_file)
        elif fmt == "skops":
            model = load_skops(model_file, skops_trusted or [])
        elif fmt == "onnx":
            model = OnnxModel(model_file, onnx_threads)
        elif fmt == "xgboost":
            model = XGBoostModel(model_file)
        elif fmt == "lightgbm":
            model = LightGBMModel(model_file)
        elif fmt == "tensorflow":
            model = TensorFlowModel(model_file)
        else:
            model = TorchScriptModel(model_file, load_manifest(manifest, None) if manifest.exists() else None)
    except ModelLoadError:
        raise
    except ImportError as err:
        raise ModelLoadError(f"the {fmt} runtime is not installed in this image: {err}") from None
    except Exception as err:
        raise explain_missing_code(err) from None
    schema = model.schema
    if manifest.exists() and fmt != "torchscript":
        schema = load_manifest(manifest, schema)
        model.schema = schema
    return model, model_file, fmt, schema
