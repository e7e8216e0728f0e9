"""Hand freed heap memory back to the OS. A burst (1,000 ModelDeployments, their watch events and
passes) leaves most of its peak free but still resident: glibc keeps freed chunks for reuse and only
trims the top of the heap. malloc_trim also releases the free pages in the middle of it."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


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
