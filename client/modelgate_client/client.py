"""`Client`: the blocking client (httpx.Client). Every operation is a plan of `_wire`, run here
with blocking sends and `time.sleep`."""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union, overload

import httpx

from modelgate_client import frames
from modelgate_client import jobs as plans
from modelgate_client._wire import Call, Plan, Sleep
from modelgate_client.base import ClientBase, counted
from modelgate_client.jobs import IdColumns, Job, JobRef, Progress
from modelgate_client.models import Model, model_plan, models_plan
from modelgate_client.predict import Prediction, Rows, predict_plan
from modelgate_client.uploads import BLOCK_BYTES, make_upload

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


class Client(ClientBase):
    """A blocking client of one gateway; use it as a context manager, or `close()` it.

        Client(url=None, api_key=None, *, timeout=30.0, retry=Retry(), transport=None,
               headers=None)

    `url` and `api_key` default to `find_connection()` (argument, environment, var/stack.env,
    user config, default). `retry` is a `Retry` or a number of retries (0: none).
    `transport` replaces httpx's (tests); `headers` are sent with every request.
    """

    def _open(self, transport: Optional[httpx.BaseTransport]) -> None:
        self._http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self.jobs = Jobs(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the driver ----------------------------------------------------------------------------

    def _run(self, plan: Plan[T]) -> T:
        """Run a plan: send its requests, sleep its sleeps; its result."""
        outcome: Any = None
        while True:
            try:
                step = plan.send(outcome)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = self._send(step.call)

    def _send(self, call: Call) -> Union[httpx.Response, httpx.TransportError]:
        content: Any = call.content
        if content is not None and not isinstance(content, bytes):
            content = content.blocks()  # a new pass over the body on every try
        request = self._build(self._http, call, content)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            return exc
        if call.stream and response.status_code < 400:
            return response
        try:
            response.read()
        except httpx.TransportError as exc:
            return exc
        finally:
            response.close()
        return response

    # -- the API -------------------------------------------------------------------------------

    @overload
    def predict(self, model: str, data: Rows, *, version: Optional[int] = None) -> Prediction: ...

    @overload
    def predict(
        self, model: str, data: pd.DataFrame, *, version: Optional[int] = None
    ) -> pd.DataFrame: ...

    def predict(self, model: str, data: Any, *, version: Optional[int] = None) -> Any:
        """Predict `data` (rows, records or a DataFrame) with `model` ("name" or
        "name@alias"), optionally pinned to `version`; a Prediction, or for a DataFrame a
        DataFrame with the same index (columns `prediction`, `proba_<class>`)."""
        return self._run(predict_plan(self._target, model, data, version))

    def models(self) -> builtins.list[Model]:
        """Every configured model (`GET /v1/models`)."""
        return self._run(models_plan(self._target))

    def model(self, name: str) -> Model:
        """One model (`GET /v1/models/{name}`; "name@alias" also loads that alias)."""
        return self._run(model_plan(self._target, name))


class Jobs:
    """`client.jobs`: batch jobs (see `modelgate_client.jobs` and `uploads`)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def submit(
        self,
        model: str,
        source: Any,
        *,
        id_columns: IdColumns = (),
        idempotency_key: Optional[str] = None,
        format: Optional[str] = None,
    ) -> Job:
        """Upload `source` (a path, binary file, DataFrame or records) as a job of `model`."""
        client = self._client
        body = make_upload(source, format)
        try:
            call = plans.submit_call(
                model, body, id_columns, idempotency_key, client._submit_timeout
            )
            return client._run(plans.submit_plan(client._target, call))
        finally:
            body.close()

    def get(self, job: JobRef) -> Job:
        return self._client._run(plans.get_plan(self._client._target, job))

    def wait(
        self,
        job: JobRef,
        *,
        progress: Optional[Progress] = None,
        poll_interval: float = 1.0,
        timeout: Optional[float] = None,
    ) -> Job:
        """Poll until the job finished, calling `progress(job)` after each poll; the job if it
        succeeded, else JobFailed or JobCancelled (WaitTimeout after `timeout` seconds)."""
        plan = plans.wait_plan(self._client._target, job, progress, poll_interval, timeout)
        return self._client._run(plan)

    def cancel(self, job: JobRef) -> Job:
        return self._client._run(plans.cancel_plan(self._client._target, job))

    def list(self, all: bool = False) -> builtins.list[Job]:
        """The caller's jobs, newest first; `all=True` lists every owner's (admin key)."""
        return self._client._run(plans.list_plan(self._client._target, all))

    def _open(self, job: JobRef, format: str) -> contextlib.closing[httpx.Response]:
        return contextlib.closing(
            self._client._run(plans.open_results(self._client._target, job, format))
        )

    def results(self, job: JobRef) -> Iterator[dict[str, Any]]:
        """The results, record by record in input order (streamed, read as you iterate)."""
        with self._open(job, "ndjson") as response:
            try:
                for line in response.iter_lines():
                    record = plans.result_record(line)
                    if record is not None:
                        yield record
            except httpx.TransportError as exc:
                raise self._client._broken(exc) from exc

    def _copy(self, job: JobRef, format: str, out: Any) -> int:
        with self._open(job, format) as response:
            try:
                return counted(response.iter_bytes(BLOCK_BYTES), out)
            except httpx.TransportError as exc:
                raise self._client._broken(exc) from exc

    def download(
        self, job: JobRef, path: Union[str, os.PathLike[str]], *, format: Optional[str] = None
    ) -> int:
        """Stream the results into `path` (format by suffix unless given), via `<path>.part`
        renamed when complete; the bytes written."""
        kind = plans.download_format(path, format)
        with plans.partial_file(path) as out:
            return self._copy(job, kind, out)

    def results_frame(self, job: JobRef) -> pd.DataFrame:
        """The results as a DataFrame: id columns, `prediction`, `proba_<class>`."""
        with tempfile.TemporaryFile() as spool:
            self._copy(job, "csv", spool)
            spool.seek(0)
            return frames.read_results_csv(spool)
