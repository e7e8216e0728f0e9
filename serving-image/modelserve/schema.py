"""Input schema (from a manifest next to the model, else from the model) and request validation.

Validation is vectorised with numpy: the happy path is one `np.asarray` plus one `isfinite`; the slow
search for *which* field broke which rule only runs once something is already wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import BadRequest, ModelLoadError

NUMERIC_DTYPES = {"float": np.float64, "float32": np.float32, "float64": np.float64, "int": np.float64}
DTYPE_NAMES = frozenset({"float", "float32", "float64", "int", "bool", "string"})
V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "float": "FP64", "int": "INT64", "bool": "BOOL"}


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str = "float"
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Any, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "required": self.required}
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class InputSchema:
    """Tabular models have `features` (one per column); tensor models only a `shape` (-1 = any).

    Derived facts are cached properties: the hot path reads them on every request.
    """

    input_name: str = "input"
    features: tuple[Feature, ...] = ()
    shape: tuple[int, ...] = (-1, -1)
    dtype: str = "float64"
    output_names: tuple[str, ...] = ()
    source: str = "model"
    redacted: frozenset[str] = frozenset()  # features whose values error messages never quote

    @cached_property
    def tabular(self) -> bool:
        return bool(self.features)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def numeric(self) -> bool:
        return all(f.dtype in NUMERIC_DTYPES or f.dtype == "bool" for f in self.features)

    @cached_property
    def value_checked(self) -> bool:
        """Rules numpy cannot check in bulk (categories, integers): every value is checked in Python."""
        return any(f.categories is not None or f.dtype == "int" for f in self.features)

    @cached_property
    def accepts_bool(self) -> bool:
        return any(f.dtype == "bool" for f in self.features)

    @cached_property
    def has_bounds(self) -> bool:
        return any(f.minimum is not None or f.maximum is not None for f in self.features)

    @cached_property
    def v2_datatype(self) -> str:
        return "BYTES" if not self.numeric else V2_DATATYPES.get(self.dtype, "FP64")

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_name": self.input_name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "features": [f.as_dict() for f in self.features],
            "outputs": list(self.output_names),
            "source": self.source,
        }


def tabular_schema(
    n_features: int,
    names: list[str] | None = None,
    input_name: str = "input",
    dtype: str = "float64",
    output_names: tuple[str, ...] = (),
) -> InputSchema:
    names = names or [f"feature_{i}" for i in range(n_features)]
    feature_dtype = "float" if dtype in NUMERIC_DTYPES else dtype
    features = tuple(Feature(name=str(n), dtype=feature_dtype) for n in names)
    return InputSchema(
        input_name=input_name,
        features=features,
        shape=(-1, len(features)),
        dtype=dtype,
        output_names=output_names,
    )


def manifest_path_for(model_path: Path) -> Path:
    if model_path.is_dir():
        return model_path / "modelserve-schema.json"
    return model_path.with_name(model_path.name + ".schema.json")


class ManifestFeature(BaseModel):
    """One entry of the manifest's `features` (or `inputs`): an object, or just the feature's name."""

    model_config = ConfigDict(extra="ignore")

    name: StrictStr
    dtype: str = "float"
    required: bool = True
    minimum: Any = Field(None, alias="min")  # a number kept as written: "below the minimum 0", not 0.0
    maximum: Any = Field(None, alias="max")
    categories: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("minimum", "maximum")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"must be a number, got {value!r}")
        return value

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in DTYPE_NAMES:
            raise ValueError(f"must be one of {sorted(DTYPE_NAMES)}, got {value!r}")
        return value

    def feature(self) -> Feature:
        categories = tuple(self.categories) if self.categories is not None else None
        return Feature(
            name=self.name,
            dtype=self.dtype,
            required=self.required,
            minimum=self.minimum,
            maximum=self.maximum,
            categories=categories,
        )


class SchemaManifest(BaseModel):
    """`<model>.schema.json`: what the operator writes from `ModelSchema.to_manifest()`."""

    model_config = ConfigDict(extra="ignore")

    features: list[ManifestFeature] = Field(
        default_factory=list, validation_alias=AliasChoices("inputs", "features")
    )
    shape: list[StrictInt] | None = None
    dtype: str | None = None
    input_name: str | None = None
    outputs: list[Annotated[str, BeforeValidator(str)]] = Field(default_factory=list)


def _manifest_error(path: Path, err: ValidationError) -> ModelLoadError:
    """The first problem, located like `inputs[0].dtype` (`inputs` and `features` are one field)."""
    first = err.errors()[0]
    where = ""
    for part in first["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += ("." if where else "") + ("inputs" if part == "features" else str(part))
    message = first["msg"].removeprefix("Value error, ")
    return ModelLoadError(
        f"schema manifest {path}: {where}: {message}" if where else f"schema manifest {path}: {message}"
    )


def load_manifest(path: Path, fallback: InputSchema | None) -> InputSchema:
    """Parse the schema manifest; any mistake in it is a load failure naming the field."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ModelLoadError(f"schema manifest {path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ModelLoadError(f"schema manifest {path}: expected a JSON object")
    try:
        manifest = SchemaManifest.model_validate(doc)
    except ValidationError as err:
        raise _manifest_error(path, err) from None
    return manifest_schema(manifest, fallback or InputSchema(), path)


def manifest_schema(manifest: SchemaManifest, base: InputSchema, path: Path) -> InputSchema:
    """The manifest over what the model says: what the manifest leaves out comes from `base`."""
    features = tuple(f.feature() for f in manifest.features)
    shape = manifest.shape
    dtype = manifest.dtype or (base.dtype if base.dtype != "float64" or not features else "float64")
    if features:
        shape = shape or [-1, len(features)]
        if len(shape) != 2 or shape[1] != len(features):
            raise ModelLoadError(
                f"schema manifest {path}: shape {shape} does not match {len(features)} inputs"
            )
    return InputSchema(
        input_name=manifest.input_name or base.input_name,
        features=features,
        shape=tuple(shape or base.shape),
        dtype=dtype,
        output_names=tuple(manifest.outputs or base.output_names),
        source="manifest",
    )


# ---------------------------------------------------------------- validation


EXCERPT_CHARS = 24
INT64_MAX = 2**63 - 1


def excerpt(value: Any, hidden: bool = False) -> str:
    """A client's value as error messages may quote it: at most EXCERPT_CHARS characters, none if redacted."""
    if hidden:
        return "[REDACTED]"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


def _describe(value: Any, hidden: bool = False) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return f"string {excerpt(value, hidden)}"
    if isinstance(value, int) and abs(value) > INT64_MAX:
        return "an integer beyond 64 bits"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _hidden(schema: InputSchema, col: int) -> bool:
    return (
        bool(schema.redacted) and col < len(schema.features) and schema.features[col].name in schema.redacted
    )


def _feature_label(schema: InputSchema, col: int) -> str:
    if schema.tabular and col < len(schema.features):
        return f"feature '{schema.features[col].name}'"
    return f"element {col}"


def rows_to_array(rows: Any, schema: InputSchema, field_name: str) -> np.ndarray:
    """List of rows (lists) -> validated 2-D array (or N-D for tensor models)."""
    if not isinstance(rows, list):
        raise BadRequest(f"{field_name}: expected a list of rows, got {_describe(rows)}")
    if not rows:
        raise BadRequest(f"{field_name}: expected at least one row, got none")
    if schema.tabular and not schema.numeric:
        return _object_rows(rows, schema, field_name)
    if schema.value_checked:
        _check_rows(rows, schema, field_name)  # categories and integers; the model still gets numbers
    np_dtype = NUMERIC_DTYPES.get(schema.dtype, np.float64)
    try:
        array = np.asarray(rows, dtype=np_dtype)
    except (ValueError, TypeError, OverflowError):
        _explain_bad_rows(rows, schema, field_name)
        raise BadRequest(f"{field_name}: rows must be lists of numbers of equal length") from None
    if array.ndim == 2 and not schema.accepts_bool and _has_bool(rows):
        _explain_bad_rows(rows, schema, field_name)
    return check_array(array, schema, field_name, rows)


def _has_bool(rows: list[Any]) -> bool:
    """numpy silently reads true/false as 1/0; a JSON boolean for a numeric feature is a type error."""
    return any(value.__class__ is bool for row in rows if isinstance(row, list) for value in row)


def check_array(array: np.ndarray, schema: InputSchema, field_name: str, raw: Any = None) -> np.ndarray:
    """Shape, finiteness and bounds of an already numeric array."""
    if array.ndim == 1 and len(schema.shape) == 2:
        array = array.reshape(1, -1) if array.size == schema.shape[1] or schema.shape[1] < 0 else array
    expected = schema.shape
    if array.ndim != len(expected):
        if schema.tabular and array.ndim == 1:
            raise BadRequest(f"{field_name}: expected {len(schema.features)} features, got {array.shape[0]}")
        raise BadRequest(
            f"{field_name}: expected {len(expected)}-dimensional input {list(expected)}, got shape "
            f"{list(array.shape)}"
        )
    for axis in range(1, len(expected)):
        if expected[axis] >= 0 and array.shape[axis] != expected[axis]:
            if schema.tabular:
                raise BadRequest(f"{field_name}: expected {expected[1]} features, got {array.shape[1]}")
            raise BadRequest(
                f"{field_name}: expected shape {list(expected)}, got {list(array.shape)} (axis {axis})"
            )
    if array.shape[0] == 0:
        raise BadRequest(f"{field_name}: expected at least one row, got none")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(array.reshape(array.shape[0], -1)))[0])
        if raw is not None and array.ndim == 2 and raw[row][col] is None:  # numpy turns null into NaN
            raise BadRequest(f"{field_name}: row {row}, {_feature_label(schema, col)}: missing value (null)")
        raise BadRequest(
            f"{field_name}: row {row}, {_feature_label(schema, col)}: NaN and Infinity are not allowed"
        )
    if schema.has_bounds:
        _check_bounds(array, schema, field_name)
    return array


def _check_bounds(array: np.ndarray, schema: InputSchema, field_name: str) -> None:
    for col, feat in enumerate(schema.features):
        column = array[:, col]
        if feat.minimum is not None and (column < feat.minimum).any():
            row = int(np.argmax(column < feat.minimum))
            raise BadRequest(_out_of_bounds(field_name, row, feat, schema, column[row], "below the minimum"))
        if feat.maximum is not None and (column > feat.maximum).any():
            row = int(np.argmax(column > feat.maximum))
            raise BadRequest(_out_of_bounds(field_name, row, feat, schema, column[row], "above the maximum"))


def _out_of_bounds(
    field_name: str, row: int, feat: Feature, schema: InputSchema, value: Any, words: str
) -> str:
    bound = feat.minimum if words.startswith("below") else feat.maximum
    shown = "[REDACTED]" if feat.name in schema.redacted else f"{value:g}"
    return f"{field_name}: row {row}, feature '{feat.name}': {shown} is {words} {bound:g}"


def _explain_bad_rows(rows: list[Any], schema: InputSchema, field_name: str) -> None:
    """Find the first element that made np.asarray fail and raise a BadRequest naming it."""
    width = schema.shape[1] if len(schema.shape) == 2 else -1
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"{field_name}: row {r}: expected a list of values, got {_describe(row)}")
        if width >= 0 and len(row) != width:
            noun = "features" if schema.tabular else "values"
            raise BadRequest(f"{field_name}: row {r}: expected {width} {noun}, got {len(row)}")
        for c, value in enumerate(row):
            if value is None:
                raise BadRequest(f"{field_name}: row {r}, {_feature_label(schema, c)}: missing value (null)")
            if isinstance(value, list) and len(schema.shape) > 2:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > INT64_MAX:
                hidden = _hidden(schema, c)
                raise BadRequest(
                    f"{field_name}: row {r}, {_feature_label(schema, c)}: expected a number, got "
                    f"{_describe(value, hidden)}"
                )
    if width < 0:
        lengths = {len(row) for row in rows if isinstance(row, list)}
        if len(lengths) > 1:
            raise BadRequest(f"{field_name}: rows have different lengths {sorted(lengths)}")


def _object_rows(rows: list[Any], schema: InputSchema, field_name: str) -> np.ndarray:
    """Mixed-type tabular input (strings, categories): checked column by column in Python."""
    _check_rows(rows, schema, field_name)
    array = np.empty((len(rows), len(schema.features)), dtype=object)
    array[:] = rows
    return array


def _check_rows(rows: list[Any], schema: InputSchema, field_name: str) -> None:
    width = len(schema.features)
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"{field_name}: row {r}: expected a list of values, got {_describe(row)}")
        if len(row) != width:
            raise BadRequest(f"{field_name}: row {r}: expected {width} features, got {len(row)}")
        for feat, value in zip(schema.features, row, strict=True):
            check_value(
                value, feat, f"{field_name}: row {r}, feature '{feat.name}'", feat.name in schema.redacted
            )


def check_value(value: Any, feat: Feature, where: str, hidden: bool = False) -> None:
    """One value against its feature's rules; messages quote at most an excerpt of it (none if `hidden`)."""
    if value is None:
        if feat.required:
            raise BadRequest(f"{where}: missing value (null)")
        return
    if feat.dtype == "string":
        if not isinstance(value, str):
            raise BadRequest(f"{where}: expected a string, got {_describe(value, hidden)}")
    elif feat.dtype == "bool":
        if not isinstance(value, bool):
            raise BadRequest(f"{where}: expected a boolean, got {_describe(value, hidden)}")
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{where}: expected a number, got {_describe(value, hidden)}")
        if isinstance(value, int) and abs(value) > INT64_MAX:
            raise BadRequest(f"{where}: integers must fit in 64 bits")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{where}: NaN and Infinity are not allowed")
        if feat.dtype == "int" and isinstance(value, float) and not value.is_integer():
            raise BadRequest(f"{where}: expected an integer, got {excerpt(value, hidden)}")
        if feat.minimum is not None and value < feat.minimum:
            raise BadRequest(f"{where}: {excerpt(value, hidden)} is below the minimum {feat.minimum}")
        if feat.maximum is not None and value > feat.maximum:
            raise BadRequest(f"{where}: {excerpt(value, hidden)} is above the maximum {feat.maximum}")
    if feat.categories is not None and value not in feat.categories:
        raise BadRequest(
            f"{where}: {excerpt(value, hidden)} is not one of the allowed values {list(feat.categories)}"
        )


def records_to_rows(records: Any, schema: InputSchema, field_name: str) -> list[list[Any]]:
    """[{"feature": value, ...}, ...] -> rows in the schema's column order."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise BadRequest(f"{field_name}: expected a list of records (objects), got {_describe(records)}")
    if not records:
        raise BadRequest(f"{field_name}: expected at least one record, got none")
    if not schema.tabular:
        raise BadRequest(
            f"{field_name}: this model takes a tensor of shape {list(schema.shape)}, not named features; "
            "use /v2/models/{name}/infer or /v1/models/{name}:predict"
        )
    names = schema.feature_names
    known = frozenset(names)
    rows: list[list[Any]] = []
    for r, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(
                f"{field_name}: row {r}: expected an object of feature values, got {_describe(record)}"
            )
        if len(record) != len(names) or not known.issuperset(record):
            for name in record:
                if name not in known:
                    raise BadRequest(f"{field_name}: row {r}: unknown feature {excerpt(name)}")
            for feat in schema.features:
                if feat.name not in record and feat.required:
                    raise BadRequest(f"{field_name}: row {r}: missing required feature '{feat.name}'")
        rows.append([record.get(name) for name in names])
    return rows


def warmup_rows(schema: InputSchema) -> np.ndarray | list[list[Any]]:
    """One plausible row for the start-up prediction."""
    if schema.tabular:
        row: list[Any] = []
        for feat in schema.features:
            if feat.categories:
                row.append(feat.categories[0])
            elif feat.dtype == "string":
                row.append("")
            elif feat.dtype == "bool":
                row.append(False)
            elif feat.minimum is not None and feat.maximum is not None:
                row.append((feat.minimum + feat.maximum) / 2)
            elif feat.minimum is not None:
                row.append(feat.minimum)
            else:
                row.append(0.0)
        return [row]
    dims = [1] + [d if d > 0 else 1 for d in schema.shape[1:]]
    return np.zeros(dims, dtype=NUMERIC_DTYPES.get(schema.dtype, np.float64))
