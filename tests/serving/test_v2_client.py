"""A standard Open Inference Protocol v2 client (tritonclient's HTTP client) works unchanged."""

from __future__ import annotations

import numpy as np
import pytest

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def v2_client(iris_server):
    from tritonclient.http import InferenceServerClient

    client = InferenceServerClient(url=iris_server.url.removeprefix("http://"))
    yield client
    client.close()


def test_health_and_metadata_through_the_client(v2_client):
    assert v2_client.is_server_live() and v2_client.is_server_ready()
    assert v2_client.is_model_ready("iris")
    meta = v2_client.get_model_metadata("iris")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_infer_through_the_client(v2_client, iris_pipeline, binary):
    from tritonclient.http import InferInput, InferRequestedOutput

    tensor = InferInput("input", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")]
    result = v2_client.infer("iris", [tensor], outputs=outputs)
    assert result.as_numpy("predict").tolist() == iris_pipeline.predict(ROWS).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), iris_pipeline.predict_proba(ROWS))


def test_client_sees_errors_as_exceptions_with_our_message(v2_client):
    from tritonclient.http import InferInput
    from tritonclient.utils import InferenceServerException

    tensor = InferInput("input", [1, 3], "FP64")
    tensor.set_data_from_numpy(np.array([[1.0, 2.0, 3.0]]), binary_data=False)
    with pytest.raises(InferenceServerException, match="expected 4 features, got 3"):
        v2_client.infer("iris", [tensor])
