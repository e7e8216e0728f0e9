"""What every runtime is: the `ServedModel` interface, the load options, and the errors of a failed load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ModelLoadError
from ..schema import InputSchema


class ServedModel(Protocol):
    format: str
    schema: InputSchema
    classes: list[Any] | None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Rows in, named output arrays out (first axis = rows)."""


@dataclass(frozen=True)
class LoadOptions:
    """Format-specific knobs from the settings; each runtime reads the ones it needs."""

    skops_trusted: list[str] = field(default_factory=list)
    onnx_threads: int = 1
    manifest: InputSchema | None = None  # the schema manifest, for formats that carry no signature
    device: str = "auto"  # MODELSERVE_DEVICE: runtimes that can use a GPU read it (runtimes/device.py)


Loader = Callable[[Path, LoadOptions], ServedModel]


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON and metric labels expect."""
    return value.item() if isinstance(value, np.generic) else value


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
