"""Streaming a blocking iterator (an answer's words, a model's claims) to an async response."""

from __future__ import annotations

import time
from collections import deque

from starlette.concurrency import run_in_threadpool

from rag.models import Answer


class BatchedNext:
    """``await pull()`` gives the next item of a blocking iterator (``end`` when it is done).

    Items are fetched in the threadpool in batches: one thread hop for everything the
    iterator yields within ``budget`` seconds (all the words of an extractive answer, a few
    tokens of a model's stream) instead of one hop per item, which under load made a
    streamed answer several times slower than the same answer in one piece. An exception
    from the iterator is raised after the items that came before it."""

    def __init__(self, iterator, end, budget: float = 0.02):
        self.iterator, self.end, self.budget = iterator, end, budget
        self.buffer: deque = deque()
        self.error: BaseException | None = None

    def _fill(self) -> None:
        deadline = time.monotonic() + self.budget
        try:
            while True:
                item = next(self.iterator, self.end)
                self.buffer.append(item)
                if item is self.end or isinstance(item, Answer) or time.monotonic() >= deadline:
                    return
        except Exception as exc:  # noqa: BLE001  (re-raised in order by __call__)
            self.error = exc

    async def __call__(self):
        if not self.buffer and self.error is None:
            await run_in_threadpool(self._fill)
        if self.buffer:
            return self.buffer.popleft()
        error, self.error = self.error, None
        raise error
