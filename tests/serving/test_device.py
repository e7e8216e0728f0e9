"""Device choice: MODELSERVE_DEVICE against what the runtime offers (faked capability queries: no GPU here),
and a real ONNX server that says in its `ready` line which device it chose."""

from __future__ import annotations

import pytest

from harness.serving import run_to_exit, start_server
from modelserve.errors import ModelLoadError
from modelserve.runtimes.device import DeviceChoice, choose_device, device_of, onnx_providers, torch_device

from .test_formats import build_onnx

CUDA_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["AzureExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("wanted", "offered", "providers", "device", "reason"),
    [
        ("auto", CUDA_BUILD, ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda",
         "onnxruntime offers CUDA (MODELSERVE_DEVICE=auto)"),
        ("auto", CPU_BUILD, ["CPUExecutionProvider"], "cpu",
         "onnxruntime offers no CUDA (MODELSERVE_DEVICE=auto)"),
        ("cpu", CUDA_BUILD, ["CPUExecutionProvider"], "cpu", "MODELSERVE_DEVICE=cpu"),
        ("cuda", CUDA_BUILD, ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda",
         "onnxruntime offers CUDA (MODELSERVE_DEVICE=cuda)"),
    ],
    ids=["auto-with-cuda", "auto-cpu-only-build", "cpu-forced-on-a-gpu", "cuda-wanted-and-offered"],
)  # fmt: skip
def test_onnx_takes_the_cuda_provider_when_onnxruntime_offers_it(wanted, offered, providers, device, reason):
    chosen, choice = onnx_providers(wanted, lambda: offered)
    assert chosen == providers
    assert choice == DeviceChoice(device, reason)


@pytest.mark.parametrize(
    ("wanted", "cuda", "device"),
    [("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda")],
)
def test_torchscript_takes_the_cuda_device_when_torch_sees_one(wanted, cuda, device):
    assert torch_device(wanted, lambda: cuda).device == device


def test_cpu_never_asks_the_runtime():
    def query():
        raise AssertionError("the capability query ran although the CPU was asked for")

    assert onnx_providers("cpu", query)[1].device == "cpu"
    assert torch_device("cpu", query).device == "cpu"


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_cuda_demanded_but_not_offered_is_a_load_failure(runtime):
    with pytest.raises(ModelLoadError, match=f"MODELSERVE_DEVICE=cuda but {runtime} offers no CUDA"):
        choose_device("cuda", False, runtime)


def test_formats_without_a_device_choice_run_on_the_cpu():
    class Forest:
        format = "sklearn"

    assert device_of(Forest()) == DeviceChoice("cpu", "sklearn runs on the CPU")


def test_onnx_server_logs_its_device_choice(tmp_path, models_dir, iris_pipeline):
    model = build_onnx(models_dir, iris_pipeline)
    server = start_server(tmp_path, {"MODELSERVE_MODEL_PATH": str(model)})
    try:
        ready = next(r for r in server.log_lines() if r.get("event") == "ready")
        assert (ready["device"], ready["device_reason"]) == (
            "cpu",
            "onnxruntime offers no CUDA (MODELSERVE_DEVICE=auto)",
        )
    finally:
        server.stop()


def test_onnx_server_demanding_cuda_without_it_exits_1_naming_the_fix(tmp_path, models_dir, iris_pipeline):
    model = build_onnx(models_dir, iris_pipeline)
    code, _, termination = run_to_exit(
        tmp_path, {"MODELSERVE_MODEL_PATH": str(model), "MODELSERVE_DEVICE": "cuda"}
    )
    assert code == 1
    assert "MODELSERVE_DEVICE=cuda but onnxruntime offers no CUDA" in termination
    assert "modelserve-full" in termination
