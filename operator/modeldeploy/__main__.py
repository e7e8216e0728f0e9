"""`python -m modeldeploy`: the operator process (kopf), its metrics server and liveness endpoint."""

from __future__ import annotations

import collections
import ctypes
import gc
import logging
import os
import signal
import sys
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


def heap_report(top: int = 40) -> str:
    """Live container objects by type (count, shallow size), and with tracing on the allocations by
    line, largest first."""
    census: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        census[name] += 1
        sizes[name] += sys.getsizeof(obj)
    lines = [f"{len(census)} container types; by shallow size:"]
    lines += [
        f"{sizes[name] / 2**20:8.2f} MiB {census[name]:9d} {name}" for name, _ in sizes.most_common(top)
    ]
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("traceback")
        lines.append(f"traced: {sum(stat.size for stat in stats) / 2**20:.1f} MiB in {len(stats)} places")
        for stat in stats[:top]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
            lines.extend(f"    {line}" for line in stat.traceback.format(limit=8))
    return "\n".join(lines) + "\n"


def dump_heap_on_signal(frames: int) -> None:
    """SIGUSR2 writes heap_report() to $TMPDIR/modeldeploy-heap-<pid>.txt: where the memory of a running
    operator goes. MODELDEPLOY_TRACEMALLOC_FRAMES > 0 adds allocations by line (and slows it down)."""
    if frames > 0:
        tracemalloc.start(frames)  # after the imports: their memory is fixed, the growth is what we seek
    path = Path(tempfile.gettempdir()) / f"modeldeploy-heap-{os.getpid()}.txt"
    signal.signal(signal.SIGUSR2, lambda *_: path.write_text(heap_report()))


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
