"""Idempotent submission: one job per (owner, Idempotency-Key), however many requests race.

The first request claims the key before it creates the job: a redis-py Lock (SET NX with a
token of its own, released only by its holder). It remembers the job under the key and only
then lets the claim go. A request that finds the claim taken polls `claim` again (the gateway
does, without holding a thread) until the job is remembered, and answers with that job; if the
first submission failed, its claim is released with nothing remembered, and the next request
to claim the key creates the job itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock

from jobs.errors import IdempotencyConflict
from jobs.keys import idempotency_key
from jobs.record import JobRecord
from jobs.store import JobStore

logger = logging.getLogger(__name__)

#: How long a claim outlives a holder that never lets it go (a gateway that died mid-way);
#: far longer than storing the largest upload allowed takes.
CLAIM_SECONDS = 300


@dataclass(frozen=True)
class IdempotencyClaim:
    """The right to create the one job of an (owner, key): remember it, or release the claim."""

    key: str
    body_sha256: str
    lock: Lock


class Idempotency:
    """The jobs Idempotency-Keys made, and the claims of the requests making them."""

    def __init__(self, redis: Redis, store: JobStore, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.store = store
        self.prefix = prefix
        self.ttl = ttl_seconds

    def claim(self, owner: str, key: str, body_sha256: str) -> JobRecord | IdempotencyClaim | None:
        """The job an earlier submission with this key made, or the claim to make it, or None
        while another request holds the claim. IdempotencyConflict if the body differs."""
        saved = idempotency_key(self.prefix, owner, key)
        earlier = self._earlier(saved, body_sha256)
        if earlier is not None:
            return earlier
        # Not thread-local: the gateway claims in one worker thread and submits in another.
        lock = self.redis.lock(f"{saved}:claim", timeout=CLAIM_SECONDS, thread_local=False)
        if not lock.acquire(blocking=False):
            return None
        try:
            # The holder may have remembered its job and let go between the two looks.
            earlier = self._earlier(saved, body_sha256)
        except BaseException:
            self._let_go(lock)
            raise
        if earlier is not None:
            self._let_go(lock)
            return earlier
        return IdempotencyClaim(saved, body_sha256, lock)

    def remember(self, claim: IdempotencyClaim, job_id: str) -> None:
        """Record the job the claim made, then let the claim go (in that order: a waiting
        request that then claims the key finds the job)."""
        value = orjson.dumps({"job_id": job_id, "body": claim.body_sha256})
        self.redis.set(claim.key, value, ex=self.ttl)
        self._let_go(claim.lock)

    def release(self, claim: IdempotencyClaim) -> None:
        """Let the claim go without a job (the submission failed): a retry may create it."""
        self._let_go(claim.lock)

    def _earlier(self, saved: str, body_sha256: str) -> JobRecord | None:
        raw = self.redis.get(saved)
        if raw is None:
            return None
        remembered = orjson.loads(raw)
        if remembered["body"] != body_sha256:
            raise IdempotencyConflict("this Idempotency-Key was used with a different body")
        return self.store.get(remembered["job_id"])  # None once the job expired: make anew

    @staticmethod
    def _let_go(lock: Lock) -> None:
        try:
            lock.release()
        except LockError:
            # It outlived CLAIM_SECONDS and expired (or was taken over): nothing left to free.
            logger.warning("an idempotency claim expired before its submission ended")
