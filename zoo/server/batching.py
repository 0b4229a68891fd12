"""Server-side batching: concurrent requests to one signature run as one call.

Like TF Serving's batching (`max_batch_size`, `batch_timeout_micros`): the
first request of a batch waits at most `timeout` seconds for others; the
batch closes earlier when it holds `max_batch_size` rows.  Requests are
joined along axis 0 only when their other dimensions and dtypes agree
(strings `(n,)` always do; waveforms `(n, samples)` only at equal length);
a request with more rows than `max_batch_size` runs alone.  While a batch
runs, the next one collects.  If a joined call fails (one undecodable image
fails the whole call), every request of it is run again on its own, so a
bad request gets its own error and the others their answers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

__all__ = ["Batcher"]

Inputs = Mapping[str, np.ndarray]


@dataclass
class _Item:
    inputs: Inputs
    rows: int
    key: tuple
    future: asyncio.Future


def _key(inputs: Inputs) -> tuple:
    return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(inputs.items()))


class Batcher:
    """Joins concurrent calls of `run(inputs) -> outputs` (dicts of arrays, rows along axis 0).

    Args:
        run: the blocking call, e.g. a signature on numpy inputs; run in `executor`.
        max_batch_size: most rows per joined call.
        timeout: seconds the first request of a batch waits for more.
        executor: where `run` executes (a thread pool).
    """

    def __init__(self, run: Callable[[Inputs], dict[str, np.ndarray]], max_batch_size: int, timeout: float,
                 executor: Executor):
        self.run, self.max_batch_size, self.timeout, self.executor = run, int(max_batch_size), float(timeout), executor
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.closed = False
        self.calls = 0  # joined calls made (for tests and the benchmark)

    async def submit(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Queue one request (all inputs share dimension 0) and wait for its rows of the outputs."""
        loop = asyncio.get_running_loop()
        rows = {int(v.shape[0]) for v in inputs.values() if v.ndim}
        if self.closed or len(rows) != 1 or any(v.ndim == 0 for v in inputs.values()):  # run alone
            return await loop.run_in_executor(self.executor, self.run, inputs)
        if self.task is None or self.task.done():
            self.queue = asyncio.Queue()
            self.task = loop.create_task(self._loop())
        item = _Item(inputs, rows.pop(), _key(inputs), loop.create_future())
        await self.queue.put(item)
        return await item.future

    def close(self) -> None:
        """Finish what is queued, then stop collecting; later requests run alone (call on the event loop)."""
        self.closed = True
        if self.queue is not None and self.task is not None and not self.task.done():
            self.queue.put_nowait(None)  # the collecting task ends when it reaches this

    async def _loop(self):
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            first = await self.queue.get()
            if first is None:
                return
            items, rows = [first], first.rows
            deadline = loop.time() + self.timeout
            while rows < self.max_batch_size:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if item is None:
                    done = True
                    break
                items.append(item)
                rows += item.rows
            for group in self._groups(items):
                await self._run_group(group)

    def _groups(self, items: list[_Item]) -> list[list[_Item]]:
        """Split by compatible shapes, then into chunks of at most `max_batch_size` rows."""
        by_key: dict[tuple, list[_Item]] = {}
        for item in items:
            by_key.setdefault(item.key, []).append(item)
        groups = []
        for same in by_key.values():
            chunk, rows = [], 0
            for item in same:
                if chunk and rows + item.rows > self.max_batch_size:
                    groups.append(chunk)
                    chunk, rows = [], 0
                chunk.append(item)
                rows += item.rows
            groups.append(chunk)
        return groups

    async def _run_group(self, group: list[_Item]):
        loop = asyncio.get_running_loop()
        group = [i for i in group if not i.future.done()]  # clients that went away
        if not group:
            return
        if len(group) == 1:
            await self._settle(group[0], loop.run_in_executor(self.executor, self.run, group[0].inputs))
            return
        joined = {k: np.concatenate([i.inputs[k] for i in group]) for k in group[0].inputs}
        total = sum(i.rows for i in group)
        try:
            self.calls += 1
            outputs = await loop.run_in_executor(self.executor, self.run, joined)
            if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in outputs.values()):
                raise ValueError("outputs are not batch-major")
        except Exception:  # noqa: BLE001 - one bad request must not fail the others: run each alone
            for item in group:
                await self._settle(item, loop.run_in_executor(self.executor, self.run, item.inputs))
            return
        start = 0
        for item in group:
            if not item.future.done():
                item.future.set_result({k: v[start:start + item.rows] for k, v in outputs.items()})
            start += item.rows

    @staticmethod
    async def _settle(item: _Item, call):
        try:
            result = await call
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)
