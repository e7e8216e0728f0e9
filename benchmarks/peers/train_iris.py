"""Trains the benchmark model: iris, StandardScaler + LogisticRegression, saved with joblib and as ONNX.

Usage: python train_iris.py OUT_DIR  -> OUT_DIR/iris.joblib, OUT_DIR/iris.onnx
"""

import sys
from pathlib import Path

import joblib
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(out_dir: Path) -> None:
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    joblib.dump(pipeline, out_dir / "iris.joblib")
    # zipmap=False: plain label and probability tensors, which every ONNX runtime caller can read.
    onnx_model = to_onnx(
        pipeline,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(pipeline): {"zipmap": False}},
        target_opset=17,
    )
    (out_dir / "iris.onnx").write_bytes(onnx_model.SerializeToString())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
