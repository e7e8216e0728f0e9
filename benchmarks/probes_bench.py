"""Probes benchmark: one direct analysis pass (scrape /metrics of 2 pods + parse + deltas + verdict) against
two local modelserve processes, compared with the floor of just fetching both /metrics bodies; plus one
quality-gate pass over a 10,000-row labelled CSV.

    .venv/bin/python benchmarks/probes_bench.py [--passes 50] [--rows 10000]

Prints median and p95 milliseconds per pass and the ratio analysis/floor. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from harness.probes import file_server
from harness.serving import iris_env, start_server
from modeldeploy.api import Analysis, QualityGate
from modeldeploy.probes import (
    MetricsSnapshot,
    ProbeClient,
    SeriesSelector,
    StaticResolver,
    Target,
    judge_analysis,
    parse_pod_counts,
    window_stats,
)

TARGET = Target(namespace="bench", service="iris-preview", color="green")
SELECTOR = SeriesSelector(model="iris", revision="bench", color="green")


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


async def _bench(urls: list[str], passes: int, dataset_url: str, rows: int) -> None:
    client = ProbeClient(StaticResolver({"green": urls}))
    analysis = Analysis(max_error_rate=0.01, max_latency_p99_ms=250, min_requests=1)
    async with httpx.AsyncClient() as raw:
        body = {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
        }
        for url in urls:  # series for several routes and codes, as a serving pod has
            for _ in range(200):
                await raw.post(f"{url}/v2/models/iris/infer", json=body)
            await raw.post(f"{url}/v2/models/iris/infer", json={"inputs": []})
        since = datetime.now(UTC)
        baseline = (await client.analyse(TARGET, SELECTOR, analysis, since=since)).baseline
        floor, full = [], []
        for _ in range(passes):
            t0 = time.perf_counter()
            await asyncio.gather(*(raw.get(f"{u}/metrics") for u in urls))
            floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            outcome = await client.analyse(TARGET, SELECTOR, analysis, since=since, baseline=baseline)
            full.append(time.perf_counter() - t0)
        assert outcome.result.requests is not None
        texts = [(await raw.get(f"{u}/metrics")).text for u in urls]
        size = len(texts[0])
        compute = []
        for _ in range(passes):  # the pure part alone: parse both bodies, deltas, p99, verdict
            t0 = time.perf_counter()
            pods = {u: parse_pod_counts(t, SELECTOR) for u, t in zip(urls, texts, strict=True)}
            judge_analysis(window_stats(baseline, MetricsSnapshot(since, pods)), analysis, since)
            compute.append(time.perf_counter() - t0)
    f_med, f_p95 = _ms(floor)
    a_med, a_p95 = _ms(full)
    print(f"analysis pass, 2 pods ({size} B of /metrics each), {passes} passes:")
    print(f"  floor (GET both /metrics):     median {f_med:7.2f} ms  p95 {f_p95:7.2f} ms")
    print(f"  analyse (scrape+parse+judge):  median {a_med:7.2f} ms  p95 {a_p95:7.2f} ms")
    c_med, c_p95 = _ms(compute)
    print(f"  pure parse+deltas+verdict:     median {c_med:7.2f} ms  p95 {c_p95:7.2f} ms")
    print(f"  ratio analyse/floor (median):  {a_med / f_med:.2f}x")

    gate = QualityGate.model_validate(
        {"datasetUri": dataset_url, "labelColumn": "species", "metric": "accuracy", "threshold": 0.5}
    ).model_copy(update={"max_rows": rows})
    t0 = time.perf_counter()
    result = await client.quality_gate(TARGET, gate, "iris")
    took = time.perf_counter() - t0
    print(
        f"quality gate, {rows} rows from a CSV on loopback HTTP, 256 rows/request: {took * 1000:.0f} ms"
        f" ({result.message})"
    )
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        X, y = load_iris(return_X_y=True)
        model_path = tmp / "iris.joblib"
        joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model_path)
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(X), args.rows)
        csv_path = tmp / "holdout.csv"
        lines = ["a,b,c,d,species"] + [",".join(f"{v:.2f}" for v in X[i]) + f",{y[i]}" for i in picks]
        csv_path.write_text("\n".join(lines) + "\n")
        env = {"MODELSERVE_MODEL_COLOR": "green", "MODELSERVE_MODEL_REVISION": "bench"}
        servers = [start_server(tmp / f"pod-{i}", iris_env(model_path, **env)) for i in range(2)]
        try:
            with file_server(tmp) as base:  # the operator reads data sets over http(s) only
                asyncio.run(_bench([s.url for s in servers], args.passes, f"{base}/holdout.csv", args.rows))
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
