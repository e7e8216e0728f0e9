"""KServe's ModelServer serving the benchmark's joblib model, the way kserve's sklearnserver does.

Run in the kserve virtualenv: python kserve_iris.py --model_path M --http_port P --enable_grpc false
(kserve parses its own flags from sys.argv at import time; --model_path is ours).
"""

import argparse

import joblib
import kserve
from kserve.protocol.infer_type import InferRequest
from kserve.utils.utils import get_predict_response


class IrisModel(kserve.Model):
    def __init__(self, name: str, model_path: str) -> None:
        super().__init__(name)
        self.model_path = model_path

    def load(self) -> bool:
        self.model = joblib.load(self.model_path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        # Both protocols, like kserve's SKLearnModel: v2 InferRequest or v1 {"instances": [...]}.
        instances = (
            payload.inputs[0].as_numpy() if isinstance(payload, InferRequest) else payload["instances"]
        )
        return get_predict_response(payload, self.model.predict(instances), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--model_name", default="iris")
    args, _ = parser.parse_known_args()
    model = IrisModel(args.model_name, args.model_path)
    model.load()
    kserve.ModelServer().start([model])
