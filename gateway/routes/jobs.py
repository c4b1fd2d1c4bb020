"""Batch jobs: submit (JSON, NDJSON or CSV), poll, stream results, cancel, list."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import IO, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Scope

from gateway.deps import JobReadKey, JobSubmitKey, StateDep
from gateway.guard.auth import Forbidden
from gateway.http.errors import BodyTooLarge, UnsupportedMediaType
from gateway.http.media import CSV, JSON, NDJSON, result_format, upload_format
from gateway.jobdata.results import csv_lines, json_pieces, ndjson_lines
from gateway.jobdata.uploads import UploadLimits, iter_chunks
from gateway.responses import json_response
from jobs.client import JobClient
from jobs.errors import IdempotencyInProgress
from jobs.idempotency import IdempotencyClaim
from jobs.record import JobRecord

router = APIRouter(tags=["jobs"])

#: Uploads stay in memory up to this size, then spill to a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
#: How long a submission waits for an earlier one with the same Idempotency-Key to be stored,
#: and how often it looks meanwhile.
IDEMPOTENCY_WAIT_SECONDS = 30.0
IDEMPOTENCY_POLL_SECONDS = 0.1


def is_job_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and str(scope.get("path", "")).endswith("/jobs")


async def spool(request: Request, max_bytes: int) -> tuple[IO[bytes], str]:
    """The upload in a spooled file (never whole in memory) and its SHA-256."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"the upload exceeds {max_bytes} bytes")
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - returned
    digest = hashlib.sha256()
    size = 0
    async for block in request.stream():
        size += len(block)
        if size > max_bytes:
            body.close()
            raise BodyTooLarge(f"the upload exceeds {max_bytes} bytes")
        digest.update(block)
        body.write(block)
    body.seek(0)
    return body, digest.hexdigest()


async def submit_once(
    client: JobClient,
    owner: str,
    key: str,
    body_sha256: str,
    submit: Callable[[IdempotencyClaim], JobRecord],
) -> tuple[JobRecord, bool]:
    """(job, existing) for an Idempotency-Key: the job it made, or a new one `submit` makes
    under its claim; while another request holds the claim, wait (on the event loop, no thread
    held) until it lets go.

    The claim is taken and handed to `submit` in one thread call, which a cancelled request
    does not stop, so the claim is always remembered or released (never left to expire)."""

    def attempt() -> tuple[JobRecord, bool] | None:
        outcome = client.claim(owner, key, body_sha256)
        if outcome is None:
            return None
        if isinstance(outcome, JobRecord):
            return outcome, True
        return submit(outcome), False

    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        found = await asyncio.to_thread(attempt)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise IdempotencyInProgress(
                "a submission with this Idempotency-Key is still being stored; retry shortly"
            )
        await asyncio.sleep(IDEMPOTENCY_POLL_SECONDS)


def _accepted(record: JobRecord, status: dict[str, Any], existing: bool = False) -> Response:
    response = json_response({**status, "existing": existing}, status=202)
    response.headers["Location"] = f"/v1/jobs/{record.id}"
    return response


_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "Rows as CSV with a header row (text/csv), one record object per line "
            "(application/x-ndjson), or JSON with `instances` (+ optional `ids`) or `records`."
        ),
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "instances": {"type": "array", "items": {"type": "array"}},
                        "ids": {"type": "array"},
                        "records": {"type": "array", "items": {"type": "object"}},
                    },
                }
            },
        },
    }
}


@router.post("/v1/models/{model}/jobs", status_code=202, openapi_extra=_UPLOAD_DOC)
async def submit_job(
    model: str,
    request: Request,
    state: StateDep,
    key: JobSubmitKey,
    id_columns: str = Query(default="", max_length=1000),
) -> Response:
    """Upload rows as JSON, NDJSON or CSV (by Content-Type); 202 with the job id."""
    media = upload_format(request.headers.get("content-type", ""))
    if media is None:
        raise UnsupportedMediaType("send text/csv, application/x-ndjson or application/json")
    loaded = await state.models.resolve(model)  # the alias is resolved once: the version is pinned
    settings = state.settings
    body, body_sha256 = await spool(request, settings.max_job_bytes)
    client: JobClient = state.jobs
    idempotency_key = request.headers.get("idempotency-key")
    columns = [c.strip() for c in id_columns.split(",") if c.strip()]
    limits = UploadLimits(
        line_bytes=settings.max_job_line_bytes,
        id_bytes=settings.max_job_id_bytes,
        cell_bytes=settings.max_job_cell_bytes,
    )

    def chunks() -> Iterator[tuple[list[list[Any]], list[list[Any]] | None]]:
        for chunk in iter_chunks(
            body,
            media,
            loaded.signature,
            columns,
            settings.chunk_size,
            settings.max_job_rows,
            limits,
        ):
            yield chunk.rows, chunk.ids

    def submit(claim: IdempotencyClaim | None) -> JobRecord:
        # With a claim, submit remembers the job under its key, or releases the claim.
        return client.submit(
            owner=key.owner,
            model=loaded.name,
            version=loaded.version,
            id_columns=columns,
            classes=loaded.classes,
            chunks=chunks(),
            idempotency=claim,
        )

    try:
        if idempotency_key:
            record, existing = await submit_once(
                client, key.owner, idempotency_key, body_sha256, submit
            )
            if existing:
                return _accepted(record, await asyncio.to_thread(client.status, record), True)
        else:
            record = await asyncio.to_thread(submit, None)
    finally:
        body.close()
    return _accepted(record, await asyncio.to_thread(client.status, record))


@router.get("/v1/jobs")
async def list_jobs(
    state: StateDep, key: JobReadKey, all_owners: bool = Query(default=False, alias="all")
) -> Response:
    """The caller's jobs, newest first; `?all=true` lists every owner's (scope admin)."""
    if all_owners and "admin" not in key.scopes:
        raise Forbidden("listing every owner's jobs needs the admin scope")
    owner = None if all_owners else key.owner
    return json_response({"jobs": await asyncio.to_thread(state.jobs.list_jobs, owner)})


@router.api_route("/v1/jobs/{job_id}", methods=["GET", "DELETE"])
async def job(job_id: str, request: Request, state: StateDep, key: JobReadKey) -> Response:
    """GET: status, rows done, progress, times, model, version, and the error if it failed.
    DELETE: cancel the job if it is queued or running, and delete its inputs and results; the
    record stays, and a finished job keeps its status (succeeded or failed)."""
    record = await asyncio.to_thread(state.jobs.get, job_id, key.owner)
    if request.method == "DELETE":
        record = await asyncio.to_thread(state.jobs.cancel, record)
    return json_response(await asyncio.to_thread(state.jobs.status, record))


@router.get("/v1/jobs/{job_id}/results")
async def job_results(job_id: str, request: Request, state: StateDep, key: JobReadKey) -> Response:
    """Results in input order as JSON, NDJSON or CSV (by Accept), streamed chunk by chunk."""
    record = await asyncio.to_thread(state.jobs.get, job_id, key.owner)
    # 409 unless it succeeded; 410 once its results were deleted.
    chunks = await asyncio.to_thread(state.jobs.results, record)
    media = result_format(request.headers.get("accept", ""))
    csv_render = partial(csv_lines, neutralise=state.settings.csv_neutralise_formulas)
    renderers: dict[str, Callable[[JobRecord, Any], Iterator[bytes]]]
    renderers = {CSV: csv_render, NDJSON: ndjson_lines, JSON: json_pieces}
    render = renderers[media]

    async def stream() -> AsyncIterator[bytes]:
        pieces = render(record, chunks)
        while True:
            # Each step reads one chunk from Redis: off the event loop.
            piece = await asyncio.to_thread(next, pieces, None)
            if piece is None:
                return
            yield piece

    return StreamingResponse(stream(), media_type=media)
