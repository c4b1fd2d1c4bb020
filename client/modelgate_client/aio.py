"""`AsyncClient`: the asyncio client (httpx.AsyncClient). It runs the same plans as `Client`,
with awaited sends and `asyncio.sleep`; upload bodies are read in a thread, block by block."""

from __future__ import annotations

import asyncio
import builtins
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union, overload

import httpx

from modelgate_client import frames
from modelgate_client import jobs as plans
from modelgate_client._wire import Call, Plan, Sleep
from modelgate_client.base import ClientBase
from modelgate_client.jobs import IdColumns, Job, JobRef, Progress
from modelgate_client.models import Model, model_plan, models_plan
from modelgate_client.predict import Prediction, Rows, predict_plan
from modelgate_client.uploads import BLOCK_BYTES, make_upload

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


async def in_thread(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking iterator of blocks (file reads, CSV rendering) advanced off the event loop."""
    while True:
        block = await asyncio.to_thread(next, blocks, None)
        if block is None:
            return
        yield block


class AsyncClient(ClientBase):
    """The asyncio twin of `Client` (same arguments, same methods, awaited); use it with
    `async with`, or `await aclose()`."""

    def _open(self, transport: Optional[httpx.AsyncBaseTransport]) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self.jobs = AsyncJobs(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    close = aclose

    async def _run(self, plan: Plan[T]) -> T:
        """Run a plan: send its requests, sleep its sleeps; its result."""
        outcome: Any = None
        while True:
            try:
                step = plan.send(outcome)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                outcome = await self._send(step.call)

    async def _send(self, call: Call) -> Union[httpx.Response, httpx.TransportError]:
        content: Any = call.content
        if content is not None and not isinstance(content, bytes):
            content = in_thread(content.blocks())  # a new pass over the body on every try
        request = self._build(self._http, call, content)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            return exc
        if call.stream and response.status_code < 400:
            return response
        try:
            await response.aread()
        except httpx.TransportError as exc:
            return exc
        finally:
            await response.aclose()
        return response

    @overload
    async def predict(
        self, model: str, data: Rows, *, version: Optional[int] = None
    ) -> Prediction: ...

    @overload
    async def predict(
        self, model: str, data: pd.DataFrame, *, version: Optional[int] = None
    ) -> pd.DataFrame: ...

    async def predict(self, model: str, data: Any, *, version: Optional[int] = None) -> Any:
        return await self._run(predict_plan(self._target, model, data, version))

    async def models(self) -> builtins.list[Model]:
        return await self._run(models_plan(self._target))

    async def model(self, name: str) -> Model:
        return await self._run(model_plan(self._target, name))


class AsyncJobs:
    """`async_client.jobs`: the awaited twin of `Client.jobs`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def submit(
        self,
        model: str,
        source: Any,
        *,
        id_columns: IdColumns = (),
        idempotency_key: Optional[str] = None,
        format: Optional[str] = None,
    ) -> Job:
        client = self._client
        body = await asyncio.to_thread(make_upload, source, format)  # may spool an iterator
        try:
            call = plans.submit_call(
                model, body, id_columns, idempotency_key, client._submit_timeout
            )
            return await client._run(plans.submit_plan(client._target, call))
        finally:
            body.close()

    async def get(self, job: JobRef) -> Job:
        return await self._client._run(plans.get_plan(self._client._target, job))

    async def wait(
        self,
        job: JobRef,
        *,
        progress: Optional[Progress] = None,
        poll_interval: float = 1.0,
        timeout: Optional[float] = None,
    ) -> Job:
        plan = plans.wait_plan(self._client._target, job, progress, poll_interval, timeout)
        return await self._client._run(plan)

    async def cancel(self, job: JobRef) -> Job:
        return await self._client._run(plans.cancel_plan(self._client._target, job))

    async def list(self, all: bool = False) -> builtins.list[Job]:
        return await self._client._run(plans.list_plan(self._client._target, all))

    async def _stream(self, job: JobRef, format: str, lines: bool) -> AsyncIterator[Any]:
        response = await self._client._run(plans.open_results(self._client._target, job, format))
        try:
            pieces = response.aiter_lines() if lines else response.aiter_bytes(BLOCK_BYTES)
            async for piece in pieces:
                yield piece
        except httpx.TransportError as exc:
            raise self._client._broken(exc) from exc
        finally:
            await response.aclose()

    async def results(self, job: JobRef) -> AsyncIterator[dict[str, Any]]:
        """The results, record by record in input order (`async for`)."""
        async for line in self._stream(job, "ndjson", lines=True):
            record = plans.result_record(line)
            if record is not None:
                yield record

    async def _copy(self, job: JobRef, format: str, out: Any) -> int:
        written = 0
        async for block in self._stream(job, format, lines=False):
            out.write(block)
            written += len(block)
        return written

    async def download(
        self, job: JobRef, path: Union[str, os.PathLike[str]], *, format: Optional[str] = None
    ) -> int:
        kind = plans.download_format(path, format)
        with plans.partial_file(path) as out:
            return await self._copy(job, kind, out)

    async def results_frame(self, job: JobRef) -> pd.DataFrame:
        with tempfile.TemporaryFile() as spool:
            await self._copy(job, "csv", spool)
            spool.seek(0)
            return await asyncio.to_thread(frames.read_results_csv, spool)
