"""The operator's memory: glibc tuning that keeps the heap compact after a burst, and a heap report on
demand. A burst leaves most of its peak free but still resident (glibc keeps freed chunks for reuse and
trims only the top of the heap); malloc_trim also releases the free pages in the middle of it."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import os
import signal
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path


def _malloc_trim() -> Callable[[], None] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


async def trim_heap_forever(interval: float) -> None:
    """Every `interval` seconds (0 disables), return freed memory to the OS; cheap when little is free."""
    trim = _malloc_trim()
    if trim is None or interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        trim()


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
