"""Which device a model runs on: MODELSERVE_DEVICE (auto, cpu, cuda) against what the runtime offers.

Public: ``choose_device(wanted, cuda_offered, runtime) -> DeviceChoice``,
``onnx_providers(wanted, available)``, ``torch_device(wanted, cuda_available)``, ``device_of(model)``,
``DeviceChoice``, ``DEVICES``.

The decision is pure; the runtime's own capability query (onnxruntime's providers, torch.cuda) is passed in,
so it is tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelLoadError

DEVICES = ("auto", "cpu", "cuda")
ONNX_CUDA = "CUDAExecutionProvider"
ONNX_CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu" or "cuda"
    reason: str  # one line for the log: why this device


def choose_device(wanted: str, cuda_offered: bool, runtime: str) -> DeviceChoice:
    """auto takes CUDA when the runtime offers it; cuda without it is a load failure, never a silent CPU."""
    if wanted not in DEVICES:
        raise ModelLoadError(f"MODELSERVE_DEVICE must be one of {', '.join(DEVICES)}, not {wanted!r}")
    if wanted == "cpu":
        return DeviceChoice("cpu", "MODELSERVE_DEVICE=cpu")
    if cuda_offered:
        return DeviceChoice("cuda", f"{runtime} offers CUDA (MODELSERVE_DEVICE={wanted})")
    if wanted == "cuda":
        raise ModelLoadError(
            f"MODELSERVE_DEVICE=cuda but {runtime} offers no CUDA: the image has no GPU runtime "
            "(use the modelserve-full image) or the pod got no GPU (resources.limits of nvidia.com/gpu)"
        )
    return DeviceChoice("cpu", f"{runtime} offers no CUDA (MODELSERVE_DEVICE=auto)")


def onnx_providers(wanted: str, available: Callable[[], Sequence[str]]) -> tuple[list[str], DeviceChoice]:
    """onnxruntime's execution providers, CUDA first when chosen (CPU stays as the fallback for any node
    CUDA cannot run)."""
    choice = choose_device(wanted, wanted != "cpu" and ONNX_CUDA in available(), "onnxruntime")
    return ([ONNX_CUDA, ONNX_CPU] if choice.device == "cuda" else [ONNX_CPU]), choice


def torch_device(wanted: str, cuda_available: Callable[[], bool]) -> DeviceChoice:
    return choose_device(wanted, wanted != "cpu" and bool(cuda_available()), "torch")


def device_of(model: Any) -> DeviceChoice:
    """The choice a GPU-capable runtime made (its `device_choice`); every other runtime runs on the CPU."""
    choice = getattr(model, "device_choice", None)
    return (
        choice if isinstance(choice, DeviceChoice) else DeviceChoice("cpu", f"{model.format} runs on the CPU")
    )
