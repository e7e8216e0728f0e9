"""Start-up: load and warm the model once, then serve with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, WarmupFailed
from .loaders import LoadedModel, OutputSpec, load_model
from .protocols import v2_datatype
from .runtimes import ServedModel
from .schema import rows_to_array, warmup_rows
from .settings import Settings

EXIT_OK = 0
EXIT_LOAD_FAILURE = 1
EXIT_BAD_CONFIG = 2
EXIT_WARMUP_FAILURE = 5


def write_termination_message(path: str, message: str) -> None:
    """Kubernetes shows this file's content as the container's termination reason."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(message + "\n")
    except OSError:
        pass  # not in a pod (or not writable): stderr still has the reason


def report_load_failure(settings: Settings, err: Exception) -> int:
    warmup = isinstance(err, WarmupFailed)
    line = f"model {'warm-up' if warmup else 'load'} failed: {err}".replace("\n", " ")
    print(line, file=sys.stderr, flush=True)
    write_termination_message(settings.termination_message_path, line)
    return EXIT_WARMUP_FAILURE if warmup else EXIT_LOAD_FAILURE


def load_and_warm(settings: Settings) -> LoadedModel:
    """Load once, run one prediction; raises ModelLoadError with a one-line reason."""
    started = time.perf_counter()
    model, model_file = load_model(
        settings.model_path,
        settings.model_format,
        settings.model_sha256,
        settings.allow_unverified_pickle,
        settings.trusted_skops_types,
        settings.onnx_intra_op_threads,
        settings.device,
        settings.archive_max_bytes,
        settings.archive_max_files,
    )
    fast_path = settings.sklearn_fast_path and hasattr(model, "enable_fast_path") and model.enable_fast_path()
    load_seconds = time.perf_counter() - started
    outputs, warmup_seconds = warm_up(model)
    return LoadedModel(
        model=model,
        path=model_file,
        load_seconds=load_seconds,
        warmup_seconds=warmup_seconds,
        outputs=outputs,
        fast_path=bool(fast_path),
    )


def warm_up(model: ServedModel) -> tuple[tuple[OutputSpec, ...], float]:
    """Three predictions on a plausible row: the outputs' shapes, and the best time (the first pays setup)."""
    sample = warmup_rows(model.schema)
    rows = sample if isinstance(sample, np.ndarray) else rows_to_array(sample, model.schema, "warm-up")
    timings = []
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            outputs = model.predict(rows)
            timings.append(time.perf_counter() - t0)
    except Exception as err:
        raise WarmupFailed(
            f"prediction on a sample row raised {type(err).__name__}: {err}".splitlines()[0]
        ) from None
    if not isinstance(outputs, dict) or not outputs or any(len(v) != len(rows) for v in outputs.values()):
        raise WarmupFailed("the prediction on a sample row did not return one output row per input row")
    specs = tuple(
        OutputSpec(name, v2_datatype(value), (-1, *value.shape[1:])) for name, value in outputs.items()
    )
    return specs, min(timings)


def prepare_metrics_dir(settings: Settings) -> None:
    """Multiprocess metrics need a shared, empty directory before prometheus_client is imported."""
    if settings.workers <= 1:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return
    path = Path(settings.metrics_dir)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def export_settings(settings: Settings) -> None:
    """Worker processes rebuild Settings from the environment: carry CLI overrides there."""
    for name, value in settings.model_dump().items():
        os.environ[f"MODELSERVE_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    from .guard import GuardLimits, guarded_protocol

    limits = GuardLimits(
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        max_connections=settings.max_connections,
    )
    # httptools with header/body deadlines and a connection cap (and, bypassing, one write per response).
    http = guarded_protocol(settings.framework_bypass, limits)

    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": http,
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": settings.graceful_timeout_seconds,
        "timeout_keep_alive": 75,
        "backlog": 4096,
        "server_header": False,
        "date_header": False,
    }


def worker_app() -> Any:
    """uvicorn factory for multi-worker mode: each worker loads its own copy of the model."""
    from .app import create_app

    settings = Settings()
    try:
        loaded = load_and_warm(settings)
    except ModelLoadError as err:
        sys.exit(report_load_failure(settings, err))
    return create_app(settings, loaded)


def _ignore_signal(signum: int, frame: Any) -> None:
    return None


def serve(settings: Settings) -> int:
    prepare_metrics_dir(settings)
    try:
        loaded = load_and_warm(settings)
    except ModelLoadError as err:
        return report_load_failure(settings, err)
    except Exception as err:  # anything unexpected while loading is still a load failure, on one line
        return report_load_failure(settings, ModelLoadError(f"{type(err).__name__}: {err}"))

    import uvicorn

    if settings.workers == 1:
        from .app import create_app

        # uvicorn re-raises the stop signal after its graceful shutdown; make that a clean exit 0.
        signal.signal(signal.SIGTERM, _ignore_signal)
        signal.signal(signal.SIGINT, _ignore_signal)
        config = uvicorn.Config(create_app(settings, loaded), **uvicorn_options(settings))
        server = uvicorn.Server(config)
        try:
            server.run()
        except SystemExit as exit_:
            if not server.started:
                print(f"cannot serve on {settings.host}:{settings.port} (see the log above)", file=sys.stderr)
                return EXIT_BAD_CONFIG
            raise exit_ from None
        return EXIT_OK if server.started else EXIT_BAD_CONFIG

    # Several workers: the parent only verified the model; each worker loads its own copy.
    del loaded
    gc.collect()
    from .feedback_endpoint import ensure_shared_signing_key

    ensure_shared_signing_key(settings, settings.metrics_dir)
    export_settings(settings)
    try:
        uvicorn.run(
            "modelserve.server:worker_app",
            factory=True,
            workers=settings.workers,
            **uvicorn_options(settings),
        )
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return EXIT_OK
