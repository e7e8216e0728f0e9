"""Helpers for probe tests: a loopback file server for data sets, CSV writing, traffic senders."""

from __future__ import annotations

import csv
import functools
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

# A user package with a classifier that answers 500 (raises) when a row's first feature is the marker.
MARKER = 999.0
PROBE_MODELS = textwrap.dedent(
    f'''
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    MARKER = {MARKER!r}


    class FailOnMarker(ClassifierMixin, BaseEstimator):
        """Wraps a fitted classifier; raises for rows whose first feature equals MARKER."""

        def __init__(self, inner=None):
            self.inner = inner

        def fit(self, X, y=None):
            return self

        @property
        def classes_(self):
            return self.inner.classes_

        @property
        def n_features_in_(self):
            return self.inner.n_features_in_

        def _check(self, X):
            if (np.asarray(X, dtype=float)[:, 0] == MARKER).any():
                raise ValueError("marker row: failing on purpose")

        def predict(self, X):
            self._check(X)
            return self.inner.predict(X)

        def predict_proba(self, X):
            self._check(X)
            return self.inner.predict_proba(X)
    '''
)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """Serves `directory` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def send_rows(url: str, rows: Sequence[Sequence[float]], model: str = "iris") -> list[int]:
    """One v2 infer request per row, in order; returns the status codes."""
    codes = []
    with httpx.Client(timeout=30.0) as client:
        for row in rows:
            body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": list(row)}]}
            codes.append(client.post(f"{url}/v2/models/{model}/infer", json=body).status_code)
    return codes


def clean_rows(count: int) -> list[list[float]]:
    return [[5.1 + (i % 7) * 0.1, 3.5, 1.4, 0.2] for i in range(count)]


def marker_rows(count: int) -> list[list[float]]:
    return [[MARKER, 3.5, 1.4, 0.2] for _ in range(count)]


def run_probe(resolver, call, **client_options):
    """Runs `await call(client)` with a fresh ProbeClient in its own event loop."""
    import asyncio

    from modeldeploy.probes import ProbeClient

    async def main():
        client = ProbeClient(resolver, **client_options)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(main())
