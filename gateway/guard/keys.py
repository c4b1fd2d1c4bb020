"""API keys: their format, their stored records (hashes only) and the store in durable Redis.

A new key looks like `mg_<id>_<secret>` so that logs can name the id; an imported key keeps the
value its clients already send. Only the SHA-256 of a key is ever stored. Every record lives in
one Redis hash, so a gateway reads the whole set in one round trip for its snapshot.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import orjson
from limits import RateLimitItem, parse_many
from redis import Redis

from kernel.errors import ModelgateError

SCOPES = ("predict", "jobs", "admin")
KEY_PREFIX = "mg_"
#: 32 random bytes: 256 bits in the secret.
SECRET_BYTES = 32


class InvalidKeySpec(ModelgateError):
    # Not a GatewayError: `modelgate keys` imports this module, and must not import FastAPI.
    code = "invalid_key_spec"


@dataclass(frozen=True)
class ApiKey:
    """A stored key: who owns it, what it may do, its limits; never the key itself."""

    id: str
    name: str
    owner: str
    scopes: tuple[str, ...]
    sha256: str
    predict_limit: str | None = None
    jobs_limit: str | None = None
    reads_limit: str | None = None
    imported: bool = False
    created_at: float = field(default_factory=time.time)
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> ApiKey:
        data = orjson.loads(raw)
        data["scopes"] = tuple(data.get("scopes") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def public(self) -> dict[str, object]:
        """What `keys list` shows: everything but the hash."""
        shown = asdict(self)
        shown.pop("sha256")
        shown["scopes"] = list(self.scopes)
        return shown


def key_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_key_value(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def key_id_of(value: str) -> str | None:
    """The id inside a `mg_<id>_<secret>` key, or None for any other shape."""
    if not value.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = value[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id.isalnum() and secret else None


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise InvalidKeySpec(f"scopes must be among {', '.join(SCOPES)}")
    return chosen


def check_limit(limit: str | None) -> str | None:
    """A limit in the `limits` notation ("600/minute", "10 per second"), checked now."""
    if limit is None:
        return None
    try:
        parse_one_limit(limit)
    except ValueError as exc:
        raise InvalidKeySpec(f"'{limit}' is not one rate limit such as 600/minute") from exc
    return limit


@functools.lru_cache(maxsize=1024)
def parse_one_limit(limit: str) -> RateLimitItem:
    """Exactly one positive limit ("600/minute"); `limits` would silently keep the first of many.

    Cached: every request asks for its key's limit, and a few strings cover every key."""
    items = parse_many(limit)
    if len(items) != 1 or items[0].amount < 1:
        raise ValueError("expected exactly one positive rate limit")
    return items[0]


class KeyStore:
    """Create, import, list and revoke keys in the durable Redis (synchronous: the CLI's side)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.hash_key = f"{prefix}apikeys"

    def create(
        self,
        *,
        name: str,
        owner: str,
        scopes: Iterable[str],
        predict_limit: str | None = None,
        jobs_limit: str | None = None,
        reads_limit: str | None = None,
        value: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key (or an imported `value`); returns the record and the key, once."""
        key_id = secrets.token_hex(6)
        imported = value is not None
        if value is None:
            value = new_key_value(key_id)
        elif len(value) < 16:
            raise InvalidKeySpec("an imported key must be at least 16 characters long")
        elif (found := self.find_by_value(value)) is not None and not found.revoked:
            raise InvalidKeySpec(f"that key is already active as {found.id}")
        record = ApiKey(
            id=key_id,
            name=name,
            owner=owner,
            scopes=check_scopes(scopes),
            sha256=key_digest(value),
            predict_limit=check_limit(predict_limit),
            jobs_limit=check_limit(jobs_limit),
            reads_limit=check_limit(reads_limit),
            imported=imported,
        )
        if not self.redis.hsetnx(self.hash_key, key_id, record.to_json()):
            raise InvalidKeySpec("key id collision; try again")
        return record, value

    def all(self) -> list[ApiKey]:
        raw = self.redis.hgetall(self.hash_key)
        return sorted((ApiKey.from_json(v) for v in raw.values()), key=lambda k: k.created_at)

    def find_by_value(self, value: str) -> ApiKey | None:
        """The record of a key value: the active one if any, else the newest revoked one."""
        digest = key_digest(value)
        matches = [k for k in self.all() if secrets.compare_digest(k.sha256, digest)]
        active = [k for k in matches if not k.revoked]
        if active:
            return active[-1]
        return matches[-1] if matches else None

    def revoke(self, key_id: str) -> ApiKey:
        raw = self.redis.hget(self.hash_key, key_id)
        if raw is None:
            raise InvalidKeySpec(f"no key with id '{key_id}'")
        record = ApiKey.from_json(raw)
        if not record.revoked:
            record = replace(record, revoked_at=time.time())
            self.redis.hset(self.hash_key, key_id, record.to_json())
        return record
