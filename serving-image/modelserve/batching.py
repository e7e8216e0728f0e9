"""Adaptive micro-batching: an idle model runs a request at once; under load, requests that arrive
while the model is busy (or in the same event-loop tick) are merged into one call.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .errors import ModelFailed, Overloaded

PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]
BatchObserver = Callable[[int, float, dict[str, np.ndarray]], None]


def split_outputs(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """Cut a batch's outputs back into one piece per request (pure)."""
    if len(sizes) == 1:
        return [outputs]
    pieces: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for name, value in outputs.items():
        start = 0
        for piece, size in zip(pieces, sizes, strict=True):
            piece[name] = value[start : start + size]
            start += size
    return pieces


def stack_inputs(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)


class Batcher:
    """Queue of (rows, future); one drain at a time so the model sees a single caller."""

    def __init__(
        self,
        predict: PredictFn,
        max_batch_rows: int,
        max_latency_s: float,
        max_queue: int,
        in_thread: bool,
        observe: BatchObserver,
    ) -> None:
        self._predict = predict
        self._max_rows = max_batch_rows
        self._max_latency = max_latency_s
        self._max_queue = max_queue
        self._in_thread = in_thread
        self._observe = observe
        self._waiting: deque[tuple[np.ndarray, asyncio.Future[dict[str, np.ndarray]]]] = deque()
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=_thread_setup)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.arriving = 0  # requests accepted but not yet submitted (their bodies are being read/parsed)
        self.busy_since: float | None = None  # perf_counter() when the model call now running started

    def stalled_for(self, now: float) -> float:
        """Seconds the running model call has been running (0 when none runs): busy calls that finish
        keep resetting it, a hung one makes it grow."""
        since = self.busy_since
        return 0.0 if since is None else now - since

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def submit(self, rows: np.ndarray) -> asyncio.Future[dict[str, np.ndarray]]:
        if len(self._waiting) >= self._max_queue:
            # Requests that already timed out (answered 504) hold no place in the queue.
            self._waiting = deque(item for item in self._waiting if not item[1].done())
        if len(self._waiting) >= self._max_queue:
            raise Overloaded(f"server overloaded: {len(self._waiting)} requests already queued (max_queue)")
        loop = self._loop
        if loop is None:  # bound once: on Python 3.11 get_running_loop() costs a getpid() system call
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, np.ndarray]] = loop.create_future()
        self._waiting.append((rows, future))
        if not self._draining:
            self._draining = True
            if self._in_thread:
                self._drain_task = loop.create_task(self._drain())
            else:  # a plain callback at the end of this tick: everything parsed in the tick joins the batch
                loop.call_soon(self._drain_inline)
        return future

    def _drain_inline(self) -> None:
        try:
            while self._waiting:
                batch = self._take_batch()
                try:
                    self._run_batch(batch)
                except Exception as err:  # our own bug after the model call: fail the batch, keep serving
                    self._fail(batch, err)
        finally:
            self._draining = False

    def _take_batch(self) -> list[tuple[np.ndarray, asyncio.Future[dict[str, np.ndarray]]]]:
        batch = [self._waiting.popleft()]
        rows = len(batch[0][0])
        while self._waiting and rows + len(self._waiting[0][0]) <= self._max_rows:
            item = self._waiting.popleft()
            rows += len(item[0])
            batch.append(item)
        return batch

    def _run_batch(self, batch: list[tuple[np.ndarray, asyncio.Future[dict[str, np.ndarray]]]]) -> None:
        batch = [item for item in batch if not item[1].done()]
        if not batch:
            return
        arrays = [rows for rows, _ in batch]
        started = time.perf_counter()
        try:
            stacked = stack_inputs(arrays)
            outputs = self._predict(stacked)
            pieces = split_outputs(outputs, [len(a) for a in arrays])
        except Exception as err:
            self._fail(batch, err)
            return
        self._finish(batch, stacked, outputs, pieces, time.perf_counter() - started)

    def _fail(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]], err: Exception) -> None:
        """The model raised: every caller in the batch gets a short 500."""
        failure = ModelFailed(f"model raised {type(err).__name__}: {str(err)[:200]}".splitlines()[0])
        for _, future in batch:
            if not future.done():
                future.set_exception(failure)

    def _finish(
        self,
        batch: list[tuple[np.ndarray, asyncio.Future[Any]]],
        stacked: np.ndarray,
        outputs: dict[str, np.ndarray],
        pieces: list[dict[str, np.ndarray]],
        elapsed: float,
    ) -> None:
        self._observe(len(stacked), elapsed, outputs)
        for (_, future), piece in zip(batch, pieces, strict=True):
            if not future.done():
                future.set_result(piece)

    async def _drain(self) -> None:
        """Thread mode: while the model runs in its thread, new requests queue up for the next batch."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                await self._gather_arrivals(loop)
                batch = [item for item in self._take_batch() if not item[1].done()]
                if not batch:
                    continue
                arrays = [rows for rows, _ in batch]
                started = self.busy_since = time.perf_counter()
                try:
                    stacked = stack_inputs(arrays)
                    outputs = await loop.run_in_executor(self._executor, self._predict, stacked)
                    pieces = split_outputs(outputs, [len(a) for a in arrays])
                except Exception as err:
                    self._fail(batch, err)
                    continue
                finally:
                    self.busy_since = None
                self._finish(batch, stacked, outputs, pieces, time.perf_counter() - started)
        finally:
            self._draining = False

    async def _gather_arrivals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Under load, wait (at most max latency) for requests whose bodies are still being parsed."""
        if self._max_latency <= 0 or not self.arriving:
            return
        deadline = loop.time() + self._max_latency
        while self.arriving and len(self._waiting) < self._max_rows and loop.time() < deadline:
            await asyncio.sleep(0)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _thread_setup() -> Any:
    try:
        import sklearn

        sklearn.set_config(assume_finite=True)  # sklearn's config is per thread
    except ImportError:
        pass
