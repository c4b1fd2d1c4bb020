"""A batch job's record and its states, shared by the gateway (jobs.client) and the worker.

    queued -> running                   (the first chunk a worker takes)
    queued | running -> succeeded | failed | cancelled

A job leaves the active states (queued, running) once, for good: JobStore.update checks each
move against TRANSITIONS atomically, so a worker holding a stale copy of the record can never
move a cancelled or finished job again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
#: The states in which chunks still run and count against the owner's running-job cap.
ACTIVE = frozenset({QUEUED, RUNNING})

#: New status -> the statuses a job may be in to move there.
TRANSITIONS: dict[str, frozenset[str]] = {
    RUNNING: frozenset({QUEUED}),
    SUCCEEDED: ACTIVE,
    FAILED: ACTIVE,
    CANCELLED: ACTIVE,
}


def encoded(value: Any) -> bytes:
    """A field value as the record hash stores it (what the Lua scripts compare against)."""
    return orjson.dumps(value)


@dataclass(frozen=True)
class JobRecord:
    """One batch job: who owns it, which pinned model version, how far it got."""

    id: str
    owner: str
    model: str
    version: int
    rows: int
    chunks: int
    status: str = QUEUED
    id_columns: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: When its inputs and results were deleted (DELETE /v1/jobs/{id}, a cancel or a failure);
    #: None while kept.
    deleted: float | None = None
    #: When its data expires: its submission's start plus the job TTL, and once it succeeded,
    #: when its results go (the record stays an hour longer). None in records made before it.
    expires: float | None = None

    def to_hash(self) -> dict[str, bytes]:
        """The record as its Redis hash stores it: one orjson-encoded value per field."""
        return {k: encoded(v) for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> JobRecord:
        """The record from its hash; fields it does not know (a newer writer's) are dropped."""
        data = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def results_expired(self, now: float) -> bool:
        """Whether a succeeded job's results were kept for their retention and are gone."""
        return self.status == SUCCEEDED and self.expires is not None and now >= self.expires

    def public(self, rows_done: int) -> dict[str, Any]:
        """What `GET /v1/jobs/{id}` answers."""
        body: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "rows_done": rows_done,
            "progress": round(rows_done / self.rows, 4) if self.rows else 1.0,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "deleted": self.deleted,
            "expires": self.expires,
            "id_columns": self.id_columns,
        }
        if self.error_code:
            body["error"] = {"code": self.error_code, "message": self.error_message}
        return body


def new_job_id() -> str:
    """A new job id: 32 hex digits (what JobClient.get accepts as plausible)."""
    return uuid.uuid4().hex
