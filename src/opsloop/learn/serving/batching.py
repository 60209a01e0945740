"""Adaptive micro-batching: rows of concurrent requests share one ``predict`` call.

Requests queue up; one worker task per model version takes everything queued (up to
``max_batch_size`` rows), runs a single ``predict`` on the concatenated rows in a thread, and
hands each request back its own slice. While a batch is being predicted new requests queue, so
batches grow with the load by themselves; when the model is idle a request goes at once. The
worker waits for more rows (at most ``max_wait_ms``) only when requests have been arriving
faster than that wait, so a lone client pays no waiting.

If a batch fails, each request in it is predicted on its own, so a bad request fails alone.

The batcher is bound to the event loop that first submits to it (and rebinds if a later
submit comes from another loop, as happens with test clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

PredictRows = Callable[[list[list[Any]]], list[Any]]
BatchHook = Callable[[int, int], None]


@dataclass
class _Item:
    rows: list[list[Any]]
    future: asyncio.Future[list[Any]]


class MicroBatcher:
    """Queues row requests and predicts them in batches on ``executor``.

    ``predict_rows`` takes a list of rows and returns a list of one output per row (or
    raises); a batch whose output has another length is retried request by request.
    ``on_batch(rows, requests)`` is called on the event loop for every predict call.
    """

    def __init__(
        self,
        predict_rows: PredictRows,
        executor: Executor,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        on_batch: BatchHook | None = None,
    ):
        self.predict_rows = predict_rows
        self.executor = executor
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._last_arrival = 0.0
        self._gap = float("inf")  # smoothed seconds between arrivals

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    async def submit(self, rows: list[list[Any]]) -> list[Any]:
        """Predict ``rows``; returns one output per row."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        now = time.perf_counter()
        if self._last_arrival:
            gap = now - self._last_arrival
            self._gap = gap if self._gap == float("inf") else 0.8 * self._gap + 0.2 * gap
        self._last_arrival = now
        item = _Item(rows, loop.create_future())
        self._pending.append(item)
        assert self._wake is not None
        self._wake.set()
        return await item.future

    def close(self) -> None:
        """Let the worker finish what is queued, then stop (a later submit restarts it)."""
        self._closed = True
        if self._wake is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._pending = deque(i for i in self._pending if i.future.get_loop() is loop)
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="opsloop-microbatcher")

    def _take(self, limit: int) -> list[_Item]:
        """Queued items up to ``limit`` rows (at least one item, whatever its size)."""
        batch: list[_Item] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if batch and rows + len(item.rows) > limit:
                break
            self._pending.popleft()
            if item.future.done():  # the caller gave up (timeout)
                continue
            batch.append(item)
            rows += len(item.rows)
        return batch

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None and self._loop is not None
        loop = self._loop
        while True:
            if not self._pending:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
                continue
            batch = self._take(self.max_batch_size)
            rows = sum(len(i.rows) for i in batch)
            if self.max_wait_s > 0 and rows < self.max_batch_size:
                deadline = loop.time() + self.max_wait_s
                while rows < self.max_batch_size:
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self._gap > remaining:
                        break
                    wake.clear()
                    if not self._pending:
                        try:
                            await asyncio.wait_for(wake.wait(), remaining)
                        except TimeoutError:
                            break
                    more = self._take(self.max_batch_size - rows)
                    batch += more
                    rows += sum(len(i.rows) for i in more)
            if batch:
                await self._execute(loop, batch, rows)

    async def _execute(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: int
    ) -> None:
        try:
            results = await loop.run_in_executor(self.executor, self._predict, batch)
        except BaseException:
            for item in batch:
                if not item.future.done():
                    item.future.cancel()
            raise
        if self.on_batch is not None:
            self.on_batch(rows, len(batch))
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _predict(self, batch: list[_Item]) -> list[Any]:
        """Outputs per item: one predict for all, or one per item if the batch fails."""
        if len(batch) == 1:
            return [self._one(batch[0].rows)]
        rows = [row for item in batch for row in item.rows]
        try:
            outputs = self.predict_rows(rows)
            if len(outputs) != len(rows):
                raise ValueError("the model did not return one output per row")
        except Exception:
            return [self._one(item.rows) for item in batch]
        out, start = [], 0
        for item in batch:
            end = start + len(item.rows)
            out.append(outputs[start:end])
            start = end
        return out

    def _one(self, rows: list[list[Any]]) -> Any:
        try:
            return self.predict_rows(rows)
        except Exception as exc:
            return exc
