"""Find, verify and load the model file; the format's runtime comes from `runtimes.RUNTIMES`."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive import is_archive, unpack
from .errors import ModelLoadError
from .manifest import MANIFEST_NAME, ManifestError, file_sha256, parse_manifest, verify_tree
from .runtimes import FORMATS, RUNTIMES, LoadOptions, ServedModel, explain_missing_code
from .schema import InputSchema, load_manifest, manifest_path_for

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
# Formats whose files carry no input signature: the manifest is their schema, given to the runtime.
SIGNATURELESS = frozenset({"torchscript"})


@dataclass(frozen=True)
class OutputSpec:
    """One output as the warm-up prediction showed it (OIP v2 metadata)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class LoadedModel:
    """What the server holds after start-up: the model plus the facts reported by metadata endpoints."""

    model: ServedModel
    path: Path
    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    outputs: tuple[OutputSpec, ...] = ()
    fast_path: bool = False  # the sklearn fast path replaced the estimator's own predict

    @property
    def format(self) -> str:
        return self.model.format

    @property
    def schema(self) -> InputSchema:
        return self.model.schema

    @property
    def classes(self) -> list[Any] | None:
        return self.model.classes

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


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
        and p.name != MANIFEST_NAME
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


def is_pickle_family(path: Path, fmt: str) -> bool:
    return fmt == "sklearn" or path.suffix.lower() in PICKLE_EXTENSIONS


def check_pickle_allowed(path: Path, fmt: str, expected_sha256: str, allow_unverified: bool) -> None:
    """Pickle runs code on load: only a file whose digest was pinned (or an explicit waiver) may load."""
    if expected_sha256 and path.is_file():
        actual = file_sha256(path)
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


# ---------------------------------------------------------------- archives and MANIFEST directories


@dataclass(frozen=True)
class ModelFiles:
    """What to load (a file or a directory); `pinned`: the digest was checked on the archive or the MANIFEST,
    so every file under `path` is pinned."""

    path: Path
    pinned: bool


def _digest_error(what: str, actual: str, expected: str) -> ModelLoadError:
    return ModelLoadError(
        f"refusing to load {what}: its SHA-256 is {actual} but MODELSERVE_MODEL_SHA256 is {expected}"
    )


def _verified_tree(root: Path, manifest: Path, sha256: str) -> ModelFiles:
    """A directory pinned by its MANIFEST: the MANIFEST's digest first, then every file against it."""
    if sha256 and (actual := file_sha256(manifest)) != sha256:
        raise _digest_error(f"{root.name}/{MANIFEST_NAME}", actual, sha256)
    try:
        # The side file `MANIFEST.schema.json` (an inline model.schema) sits beside it, outside the MANIFEST.
        verify_tree(root, parse_manifest(manifest.read_bytes()), ignore={MANIFEST_NAME + ".schema.json"})
    except ManifestError as err:
        raise ModelLoadError(f"model directory {root}: {err}") from None
    return ModelFiles(root, pinned=bool(sha256))


def _unpack_dir() -> Path:
    """One directory per process under the temp dir, emptied first (a restarted container reuses its pid)."""
    target = Path(tempfile.gettempdir()) / "modelserve-unpacked" / str(os.getpid())
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def open_model_source(path: Path, sha256: str, max_bytes: int, max_files: int) -> ModelFiles:
    """A MANIFEST (or a pinned directory holding one) is verified file by file; an archive is verified as a
    whole, then unpacked; anything else is loaded as it is."""
    if path.is_file() and path.name == MANIFEST_NAME:
        return _verified_tree(path.parent, path, sha256)
    if path.is_dir() and sha256:
        if not (path / MANIFEST_NAME).is_file():
            raise ModelLoadError(
                f"MODELSERVE_MODEL_SHA256 is set but {path.name} is a directory without a {MANIFEST_NAME} "
                "file: a digest pins a directory through its MANIFEST (see docs/models.md); add one, or "
                "remove model.sha256"
            )
        return _verified_tree(path, path / MANIFEST_NAME, sha256)
    if is_archive(path):
        if sha256 and (actual := file_sha256(path)) != sha256:  # before a single byte is unpacked
            raise _digest_error(f"archive {path.name}", actual, sha256)
        return ModelFiles(unpack(path, _unpack_dir(), max_bytes, max_files), pinned=bool(sha256))
    return ModelFiles(path, pinned=False)


# ---------------------------------------------------------------- entry point


def load_model(
    model_path: str,
    fmt: str = "",
    sha256: str = "",
    allow_unverified_pickle: bool = False,
    skops_trusted: list[str] | None = None,
    onnx_threads: int = 1,
    device: str = "auto",
    archive_max_bytes: int = 10 * 1024**3,
    archive_max_files: int = 10_000,
) -> tuple[ServedModel, Path]:
    """Resolve, verify and load; the schema manifest, when present, overrides what the model says."""
    given_path = Path(model_path)
    if not given_path.exists():
        raise ModelLoadError(f"model path {given_path} does not exist (MODELSERVE_MODEL_PATH)")
    source = open_model_source(given_path, sha256, archive_max_bytes, archive_max_files)
    path = source.path
    fmt = fmt or infer_format(path)
    runtime = RUNTIMES.get(fmt)
    if runtime is None:
        raise ModelLoadError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
    model_file = resolve_model_file(path, fmt)
    if not source.pinned:
        check_pickle_allowed(model_file, fmt, sha256, allow_unverified_pickle)
    manifest = manifest_path_for(given_path)
    if not manifest.exists() and model_file != given_path:
        manifest = manifest_path_for(model_file)
    given = load_manifest(manifest, None) if fmt in SIGNATURELESS and manifest.exists() else None
    options = LoadOptions(skops_trusted or [], onnx_threads, given, device)
    try:
        model = runtime(model_file, options)
    except ModelLoadError:
        raise
    except ImportError as err:
        raise ModelLoadError(f"the {fmt} runtime is not installed in this image: {err}") from None
    except Exception as err:
        raise explain_missing_code(err) from None
    if manifest.exists() and fmt not in SIGNATURELESS:
        model.schema = load_manifest(manifest, model.schema)
    return model, model_file
