"""The floor: a bare ASGI app (no framework) doing the same OIP v2 predict, served by uvicorn.

FLOOR_MODEL_PATH points at a joblib pipeline or an ONNX file. Run in the floor virtualenv:
uvicorn floor_app:app --app-dir benchmarks/peers --loop uvloop --http httptools --no-access-log
"""

import os

import numpy as np
import orjson

MODEL_PATH = os.environ["FLOOR_MODEL_PATH"]

if MODEL_PATH.endswith(".onnx"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(MODEL_PATH, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> list:
        return session.run(None, {input_name: x.astype(np.float32)})[0].tolist()

else:
    import joblib

    model = joblib.load(MODEL_PATH)

    def predict(x: np.ndarray) -> list:
        return model.predict(x).tolist()


async def read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(send, status: int, payload: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await respond(send, 200, b"{}")
        return
    request = orjson.loads(await read_body(receive))
    tensor = request["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    labels = predict(x)
    output = {"name": "predict", "shape": [len(labels)], "datatype": "INT64", "data": labels}
    await respond(send, 200, orjson.dumps({"model_name": "iris", "outputs": [output]}))
