"""`python -m modeldeploy`: the operator process (kopf), its metrics server and liveness endpoint."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import tempfile
import tracemalloc
from pathlib import Path

import kopf

from modeldeploy.metrics import serve_metrics
from modeldeploy.settings import get_settings


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread its own malloc arena; with the API thread pool that fragments the heap
    into hundreds of MB of RSS at 1,000 objects. Two arenas keep it compact (same as MALLOC_ARENA_MAX=2)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, arenas)


def dump_heap_on_signal(frames: int) -> None:
    """With tracing on (MODELDEPLOY_TRACEMALLOC_FRAMES > 0), SIGUSR2 writes the live Python allocations
    made since start-up, largest first, to $TMPDIR/modeldeploy-heap-<pid>.txt: where the memory of a
    running operator goes."""
    if frames <= 0:
        return
    tracemalloc.start(frames)  # after the imports: their memory is fixed, the growth is what we look for
    path = Path(tempfile.gettempdir()) / f"modeldeploy-heap-{os.getpid()}.txt"

    def dump(*_: object) -> None:
        stats = tracemalloc.take_snapshot().statistics("traceback")
        total = sum(stat.size for stat in stats)
        lines = [f"total {total / 2**20:.1f} MiB in {len(stats)} places"]
        for stat in stats[:40]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
            lines.extend(f"    {line}" for line in stat.traceback.format(limit=8))
        path.write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, dump)


def main() -> None:
    limit_malloc_arenas()
    settings = get_settings()
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(debug=settings.log_level == "DEBUG", log_format=log_format, log_prefix=True)
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":  # kopf's per-event "Handler ... succeeded" lines drown ours at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    serve_metrics(settings.metrics_port, settings.health_host)
    import modeldeploy.handlers  # noqa: F401  (registers the handlers)

    dump_heap_on_signal(settings.tracemalloc_frames)

    liveness = (
        f"http://{settings.health_host}:{settings.health_port}/healthz" if settings.health_port else None
    )
    # kopf installs SIGINT/SIGTERM handlers: in-flight handlers finish, watches close, exit code 0.
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(runtime=None),
    )


if __name__ == "__main__":
    main()
