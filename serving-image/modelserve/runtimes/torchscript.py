"""TorchScript files; they carry no input signature, so a schema manifest is required."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..schema import InputSchema
from .base import LoadOptions
from .device import torch_device


class TorchScriptModel:
    format = "torchscript"

    def __init__(self, path: Path, schema: InputSchema | None, device: str = "auto") -> None:
        try:
            import torch
        except ImportError:
            raise ModelLoadError(
                "PyTorch is not installed in this image (install modelserve[torch])"
            ) from None
        torch.set_num_threads(1)
        self.torch = torch
        self.device_choice = torch_device(device, torch.cuda.is_available)
        try:
            self.module = torch.jit.load(str(path), map_location=self.device_choice.device)
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
        rows = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device_choice.device)
        with torch.inference_mode():
            result = self.module(rows)
        if isinstance(result, dict):
            return {str(k): v.cpu().numpy() for k, v in result.items()}
        if isinstance(result, tuple | list):
            return {f"output_{i}": v.cpu().numpy() for i, v in enumerate(result)}
        return {"output_0": result.cpu().numpy()}


def load_torchscript(path: Path, options: LoadOptions) -> TorchScriptModel:
    return TorchScriptModel(path, options.manifest, options.device)
