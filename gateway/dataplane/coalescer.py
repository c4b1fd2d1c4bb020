"""`Coalescer`: concurrent sync requests for one model version share one model call.

Requests queue per version. A call starts as soon as a thread is free (or, with a maximum wait,
once the oldest request has waited that long or the batch is full); while every thread is busy,
the requests that arrive meanwhile pile up and go together in the next call, up to
`max_batch_rows`. A scikit-learn forest costs about the same for 1 row as for 100, so under load
this multiplies throughput. Each request gets exactly its own rows back. Rows were validated per
request before they got here; should the model still refuse a combined batch, or its own code
(a pyfunc's) raise on it, each request is retried alone so that only the guilty one fails
(`run_batch`, `blamed`). The queue is bounded: when `max_pending`
requests are waiting or running, the next one gets 503 with Retry-After. Small calls of a runtime
cheap enough for it (`Runtime.inline_rows`: onnxruntime takes microseconds) run on the event loop
instead of a thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.http.errors import Overloaded
from gateway.metrics import BATCH_REQUESTS, BATCH_ROWS, MODEL_CALL_SECONDS, OVERLOADED
from kernel.errors import InvalidInput, ModelgateError
from registry.model import LoadedModel
from runtime.base import ModelRaised, Prediction

logger = logging.getLogger(__name__)

#: What one request of a call gets: its answer, or the exception it is answered with.
Outcome = Prediction | Exception


@dataclass(eq=False)
class _Waiting:
    rows: list[list[Any]]
    future: asyncio.Future[Prediction]


@dataclass(eq=False)
class _Queue:
    model: LoadedModel
    items: deque[_Waiting] = field(default_factory=deque)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None
    due: bool = False


class Coalescer:
    """Runs model calls in `threads` threads; every method but the calls runs on the loop."""

    def __init__(
        self, threads: int, max_batch_rows: int, max_wait_seconds: float, max_pending: int
    ) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="predict")
        self.threads = threads
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_seconds
        self.max_pending = max_pending
        self.pending = 0  # requests queued or in a call
        self.busy = 0  # calls running
        # By model object: each queue holds its model, so the id stays unique while it exists.
        self._queues: dict[int, _Queue] = {}

    async def predict(self, model: LoadedModel, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows, sharing the call with concurrent requests for `model`."""
        if self.pending >= self.max_pending:
            OVERLOADED.inc()
            raise Overloaded("too many predictions in progress; retry shortly")
        queue = self._queues.get(id(model))
        if queue is None:
            queue = self._queues[id(model)] = _Queue(model)
        waiting = _Waiting(rows, asyncio.get_running_loop().create_future())
        queue.items.append(waiting)
        queue.rows += len(rows)
        self.pending += 1
        self._dispatch()
        # A cancelled request (client gone) leaves its rows in the call; `pending` drops when
        # the call ends, since the thread is busy until then either way.
        return await waiting.future

    def _dispatch(self) -> None:
        for key, queue in list(self._queues.items()):
            while queue.items and self.busy < self.threads:
                if not self._ready(queue):
                    break
                self._start(queue, self._take(queue))
            if not queue.items and queue.timer is None:
                del self._queues[key]

    def _ready(self, queue: _Queue) -> bool:
        if self.max_wait <= 0 or queue.due or queue.rows >= self.max_batch_rows:
            return True
        if queue.timer is None:
            queue.timer = asyncio.get_running_loop().call_later(self.max_wait, self._due, queue)
        return False

    def _due(self, queue: _Queue) -> None:
        queue.timer = None
        queue.due = True
        self._dispatch()

    def _take(self, queue: _Queue) -> list[_Waiting]:
        batch = [queue.items.popleft()]
        rows = len(batch[0].rows)
        while queue.items and rows + len(queue.items[0].rows) <= self.max_batch_rows:
            item = queue.items.popleft()
            batch.append(item)
            rows += len(item.rows)
        queue.rows -= rows
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        queue.due = False
        return batch

    def _start(self, queue: _Queue, batch: list[_Waiting]) -> None:
        self.busy += 1
        loop = asyncio.get_running_loop()
        requests = [item.rows for item in batch]
        total = sum(map(len, requests))
        runtime = queue.model.runtime_for(itertools.chain.from_iterable(requests))
        if total <= runtime.inline_rows:
            # Microseconds of onnxruntime: cheaper on the loop than a hop to a thread and back
            # (and no GIL ping-pong). Called soon, not now, so that the requests arriving in
            # this turn of the loop join the next call.
            loop.call_soon(self._run_inline, queue.model, batch, requests)
            return
        call = self.executor.submit(run_batch, queue.model, requests)

        def finished(done: Future[list[Outcome]]) -> None:
            loop.call_soon_threadsafe(self._finish, batch, done)

        call.add_done_callback(finished)

    def _run_inline(
        self, model: LoadedModel, batch: list[_Waiting], requests: list[list[list[Any]]]
    ) -> None:
        try:
            outcomes: list[Any] = run_batch(model, requests)
        except Exception as exc:  # a bug in the call: every request of it gets the error
            outcomes = [exc] * len(batch)
        self._settle(batch, outcomes)

    def _finish(self, batch: list[_Waiting], done: Future[list[Outcome]]) -> None:
        try:
            outcomes: list[Any] = done.result()
        except BaseException as exc:  # a bug in the call: every request of it gets the error
            outcomes = [exc] * len(batch)
        self._settle(batch, outcomes)

    def _settle(self, batch: list[_Waiting], outcomes: list[Any]) -> None:
        self.busy -= 1
        self.pending -= len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue  # the request was cancelled meanwhile
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        self._dispatch()

    def close(self) -> None:
        for queue in self._queues.values():
            if queue.timer is not None:
                queue.timer.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def run_batch(model: LoadedModel, requests: list[list[list[Any]]]) -> list[Outcome]:
    """One model call for all requests (in a pool thread); split the answers back per request.

    When the call fails, each request is called alone, so that only the guilty fail: after a
    refusal (a ModelgateError) when there are several; after the model's own code raised
    (ModelRaised) always, a lone request too, so that the rows of every request that fails
    that way have failed twice, alone the second time (see `blamed`). Any other exception
    is a bug: a lone request gets it, several are called alone."""
    rows = [row for request in requests for row in request]
    started = time.perf_counter()
    try:
        combined = model.predict(rows)
    except ModelgateError:
        if len(requests) == 1:
            raise
        return [_alone(model, request) for request in requests]
    except Exception as exc:
        if len(requests) == 1 and not isinstance(exc, ModelRaised):
            raise
        return blamed(model, [_alone(model, request) for request in requests])
    finally:
        MODEL_CALL_SECONDS.labels(model.runtime.name).observe(time.perf_counter() - started)
    BATCH_ROWS.observe(len(rows))
    BATCH_REQUESTS.observe(len(requests))
    if len(requests) == 1:
        return [combined]
    outcomes: list[Outcome] = []
    start = 0
    probabilities, scores = combined.probabilities, combined.scores
    for request in requests:
        end = start + len(request)
        outcomes.append(
            Prediction(
                combined.labels[start:end],
                None if probabilities is None else probabilities[start:end],
                None if scores is None else scores[start:end],
            )
        )
        start = end
    return outcomes


def blamed(model: LoadedModel, outcomes: list[Outcome]) -> list[Outcome]:
    """The outcomes of requests called alone after their call failed, with the rows blamed
    (InvalidInput) of each request that made the model's code fail again, alone, while the
    model answers other rows (another request of the call, or an earlier call): the input
    triggers it. Otherwise nothing shows that the model works at all, and ModelRaised stays
    (a logged 500)."""
    answers = any(isinstance(outcome, Prediction) for outcome in outcomes)
    out: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome, ModelRaised) and (answers or outcome.answered):
            logger.warning(
                "model %s v%s %s on one request's rows alone, and answers others",
                model.name,
                model.version,
                outcome.what,
            )
            outcome = InvalidInput(
                f"the model {outcome.what} on these rows, and answers others: check them "
                "against what the model expects"
            )
        out.append(outcome)
    return out


def _alone(model: LoadedModel, rows: list[list[Any]]) -> Outcome:
    try:
        return model.predict(rows)
    except Exception as exc:
        return exc
