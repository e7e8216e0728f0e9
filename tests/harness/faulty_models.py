"""Models that misbehave on purpose, trained here and pinned by digest like any other.

Each pickles one step as a `builtins.eval` of a short source line, so the server needs no module of ours to
load it: the line runs inside the real serving process, which is what these tests are about.
"""

from __future__ import annotations

import io

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

FAIL_SHARE = 0.3  # the release lane's flaky candidate


def flaky_source(fail_share: float) -> str:
    """Passes the warm-up's all-zero row; any other row fails (IndexError -> 500) with chance `fail_share`."""
    return f"lambda X: X if not X.any() or __import__('random').random() >= {fail_share!r} else X[[len(X)]]"


class Evaluated:
    """Behaves as `source` evaluated, and pickles as that evaluation."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, x):
        return eval(self.source)(x)

    def __reduce__(self):
        return (eval, (self.source,))


def flaky_iris(fail_share: float = FAIL_SHARE) -> bytes:
    """An iris classifier whose predictions fail (HTTP 500) on `fail_share` of requests, never at warm-up."""
    if not 0 <= fail_share <= 1:
        raise ValueError(f"fail_share must be in [0, 1], got {fail_share!r}")
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    model.steps[0][1].func = Evaluated(
        flaky_source(fail_share)
    )  # after fitting: the training rows never see a failure
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def loading_runs(source: str) -> bytes:
    """A model file whose loading runs `source` in the server (allocates, exits...) before anything else."""
    buffer = io.BytesIO()
    joblib.dump(Evaluated(source), buffer)
    return buffer.getvalue()


ENDLESS_MARKER = "ENDLESS-ANSWER-MARKER"
# A stand-in for a tenant's own server: healthy on the probes' paths, an endless chunked body on any other.
_ENDLESS_SERVER = f"""
import http.server, os
FRAME = b"%x\\r\\n%s\\r\\n" % (22 * 3000, b"{ENDLESS_MARKER} " * 3000)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        if self.path.startswith("/v2/health"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{{}}")
        else:
            self.endless()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.endless()
    def endless(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                self.wfile.write(FRAME)
        except OSError:
            pass
http.server.ThreadingHTTPServer(("", int(os.environ.get("MODELSERVE_PORT", "8080"))), Handler).serve_forever()
"""


def endless_server() -> bytes:
    """A model file whose loading replaces the serving process with a server that never ends its answers."""
    sys_ = "__import__('sys')"
    return loading_runs(
        f"__import__('os').execv({sys_}.executable, [{sys_}.executable, '-c', {_ENDLESS_SERVER!r}])"
    )
