"""API keys: their format, their stored records and the KeyStore (gateway/guard/keys.py).

The KeyStore runs over a tiny in-memory stand-in with the four hash commands it uses; it keeps
values as bytes, as redis-py returns them without `decode_responses`.
"""

from __future__ import annotations

import hashlib
import math
import re
import string

import orjson
import pytest

from gateway.guard.keys import (
    KEY_PREFIX,
    SCOPES,
    ApiKey,
    InvalidKeySpec,
    KeyStore,
    check_limit,
    check_scopes,
    key_digest,
    key_id_of,
    new_key_value,
)

PREFIX = "test:"
HASH_KEY = f"{PREFIX}apikeys"
URLSAFE = set(string.ascii_letters + string.digits + "-_")


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class MemoryRedis:
    """hsetnx / hgetall / hget / hset over dicts of bytes, counting the writes."""

    def __init__(self) -> None:
        self.hashes: dict[bytes, dict[bytes, bytes]] = {}
        self.writes = 0

    def hsetnx(self, name: str, key: str, value: bytes | str) -> bool:
        fields = self.hashes.setdefault(_bytes(name), {})
        if _bytes(key) in fields:
            return False
        fields[_bytes(key)] = _bytes(value)
        self.writes += 1
        return True

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(_bytes(name), {}))

    def hget(self, name: str, key: str) -> bytes | None:
        return self.hashes.get(_bytes(name), {}).get(_bytes(key))

    def hset(self, name: str, key: str, value: bytes | str) -> int:
        fields = self.hashes.setdefault(_bytes(name), {})
        added = int(_bytes(key) not in fields)
        fields[_bytes(key)] = _bytes(value)
        self.writes += 1
        return added

    def stored_bytes(self) -> bytes:
        return b"\n".join(
            name + b"\n" + k + b"\n" + v
            for name, fields in self.hashes.items()
            for k, v in fields.items()
        )


@pytest.fixture
def redis() -> MemoryRedis:
    return MemoryRedis()


@pytest.fixture
def store(redis: MemoryRedis) -> KeyStore:
    return KeyStore(redis, PREFIX)  # type: ignore[arg-type]


def make_key(**overrides: object) -> ApiKey:
    fields: dict[str, object] = {
        "id": "abc123",
        "name": "ci",
        "owner": "acme",
        "scopes": ("predict", "jobs"),
        "sha256": key_digest("mg_abc123_secret"),
        "predict_limit": "600/minute",
    }
    fields.update(overrides)
    return ApiKey(**fields)  # type: ignore[arg-type]


# -- key values ------------------------------------------------------------------------------


def test_new_key_value_is_prefix_id_and_secret() -> None:
    value = new_key_value("a1b2c3")
    assert value.startswith(KEY_PREFIX + "a1b2c3_")
    secret = value[len(KEY_PREFIX + "a1b2c3_") :]
    assert set(secret) <= URLSAFE
    # token_urlsafe(32): 32 random bytes, 43 base64url characters, 256 bits.
    assert len(secret) >= 43
    assert len(secret) * 6 >= 128
    assert key_id_of(value) == "a1b2c3"


def test_new_key_values_differ() -> None:
    values = {new_key_value("same") for _ in range(50)}
    assert len(values) == 50


def test_new_key_secret_carries_at_least_128_bits() -> None:
    # Empirically: the secrets of many keys use the whole base64url alphabet.
    secrets_seen = [new_key_value("x")[len("mg_x_") :] for _ in range(200)]
    alphabet = set("".join(secrets_seen))
    bits_per_char = math.log2(len(alphabet))
    assert len(alphabet) >= 60
    assert min(len(s) for s in secrets_seen) * bits_per_char >= 128


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mg_a1b2c3_s3cr3t", "a1b2c3"),
        ("mg_a1b2c3_sec_ret-with_underscores", "a1b2c3"),
        ("a1b2c3_s3cr3t", None),  # no prefix
        ("MG_a1b2c3_s3cr3t", None),  # the prefix is lower-case
        ("mg_a1b2c3", None),  # no separator, no secret
        ("mg_a1b2c3_", None),  # empty secret
        ("mg__s3cr3t", None),  # empty id
        ("mg_a-b_s3cr3t", None),  # id not alphanumeric
        ("mg_a.b_s3cr3t", None),
        ("legacy-key-from-the-old-app-1234", None),  # an imported, arbitrary value
        ("", None),
    ],
)
def test_key_id_of(value: str, expected: str | None) -> None:
    assert key_id_of(value) == expected


def test_key_id_of_a_new_key_is_its_id() -> None:
    assert key_id_of(new_key_value("0f1e2d3c4b5a")) == "0f1e2d3c4b5a"


def test_key_digest_is_sha256_hex() -> None:
    digest = key_digest("mg_abc_secret")
    assert digest == hashlib.sha256(b"mg_abc_secret").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)


# -- scopes and limits -----------------------------------------------------------------------


def test_check_scopes_keeps_order_and_drops_duplicates() -> None:
    assert check_scopes(["jobs", "predict", "jobs", " predict "]) == ("jobs", "predict")


def test_check_scopes_accepts_every_scope() -> None:
    assert check_scopes(SCOPES) == SCOPES


@pytest.mark.parametrize("scopes", [["predict", "root"], ["Predict"], ["*"]])
def test_check_scopes_refuses_unknown_scopes(scopes: list[str]) -> None:
    with pytest.raises(InvalidKeySpec) as excinfo:
        check_scopes(scopes)
    assert excinfo.value.code == "invalid_key_spec"


@pytest.mark.parametrize("scopes", [[], [""], [" ", ""]])
def test_check_scopes_refuses_no_scope(scopes: list[str]) -> None:
    with pytest.raises(InvalidKeySpec):
        check_scopes(scopes)


@pytest.mark.parametrize("limit", ["600/minute", "10 per second", "100/hour", "5/2 seconds"])
def test_check_limit_accepts_limits_notation(limit: str) -> None:
    assert check_limit(limit) == limit


@pytest.mark.parametrize("limit", ["lots", "", "600", "minute/600", "-1/minute"])
def test_check_limit_refuses_anything_else(limit: str) -> None:
    with pytest.raises(InvalidKeySpec) as excinfo:
        check_limit(limit)
    assert excinfo.value.code == "invalid_key_spec"


def test_check_limit_of_none_is_none() -> None:
    assert check_limit(None) is None


def test_check_limit_refuses_several_limits_of_which_only_the_first_would_apply() -> None:
    # `limits.parse` returns the first of "a;b" and drops the rest, so the key would be listed
    # with "10/second;600/minute" while only 10/second is enforced (RateLimiter.item_for).
    with pytest.raises(InvalidKeySpec):
        check_limit("10/second;600/minute")


# -- records ---------------------------------------------------------------------------------


def test_api_key_json_round_trip() -> None:
    key = make_key(revoked_at=1234.5, imported=True, jobs_limit="10/hour")
    again = ApiKey.from_json(key.to_json())
    assert again == key
    assert isinstance(again.scopes, tuple)


def test_api_key_from_json_accepts_str() -> None:
    key = make_key()
    assert ApiKey.from_json(key.to_json().decode()) == key


def test_api_key_from_json_ignores_unknown_fields() -> None:
    key = make_key()
    stored = orjson.loads(key.to_json())
    stored["added_by_a_newer_version"] = {"anything": [1, 2]}
    assert ApiKey.from_json(orjson.dumps(stored)) == key


def test_api_key_from_json_fills_defaults_of_missing_optional_fields() -> None:
    stored = {"id": "a1", "name": "n", "owner": "o", "scopes": ["predict"], "sha256": "0" * 64}
    key = ApiKey.from_json(orjson.dumps(stored))
    assert key.scopes == ("predict",)
    assert key.predict_limit is None
    assert not key.imported
    assert not key.revoked


def test_revoked_follows_revoked_at() -> None:
    assert not make_key().revoked
    assert make_key(revoked_at=1.0).revoked


def test_public_never_shows_the_hash() -> None:
    key = make_key()
    shown = key.public()
    assert "sha256" not in shown
    assert key.sha256 not in orjson.dumps(shown).decode()
    assert "mg_abc123_secret" not in orjson.dumps(shown).decode()
    assert shown["scopes"] == ["predict", "jobs"]
    assert shown["id"] == "abc123"
    assert shown["owner"] == "acme"


# -- KeyStore --------------------------------------------------------------------------------


def test_create_returns_a_new_key_whose_digest_is_stored(
    store: KeyStore, redis: MemoryRedis
) -> None:
    record, value = store.create(name="ci", owner="acme", scopes=["predict"])
    assert key_id_of(value) == record.id
    assert record.sha256 == key_digest(value)
    assert not record.imported
    assert record.scopes == ("predict",)
    stored = ApiKey.from_json(redis.hashes[HASH_KEY.encode()][record.id.encode()])
    assert stored == record


def test_create_never_stores_the_key_itself(store: KeyStore, redis: MemoryRedis) -> None:
    record, value = store.create(name="ci", owner="acme", scopes=["predict", "admin"])
    secret = value[len(f"mg_{record.id}_") :]
    assert len(secret) >= 43
    everything = redis.stored_bytes()
    assert value.encode() not in everything
    assert secret.encode() not in everything


def test_create_checks_scopes_and_limits(store: KeyStore, redis: MemoryRedis) -> None:
    with pytest.raises(InvalidKeySpec):
        store.create(name="ci", owner="acme", scopes=["root"])
    with pytest.raises(InvalidKeySpec):
        store.create(name="ci", owner="acme", scopes=["predict"], predict_limit="lots")
    assert redis.writes == 0


def test_create_keeps_the_limits_of_the_key(store: KeyStore) -> None:
    record, _ = store.create(
        name="ci",
        owner="acme",
        scopes=["predict", "jobs"],
        predict_limit="600/minute",
        jobs_limit="10 per hour",
    )
    assert (record.predict_limit, record.jobs_limit, record.reads_limit) == (
        "600/minute",
        "10 per hour",
        None,
    )


def test_import_keeps_the_value_and_stores_only_its_digest(
    store: KeyStore, redis: MemoryRedis
) -> None:
    legacy = "legacy-client-key-0123456789"
    record, value = store.create(name="old", owner="acme", scopes=["predict"], value=legacy)
    assert value == legacy
    assert record.imported
    assert record.sha256 == key_digest(legacy)
    assert legacy.encode() not in redis.stored_bytes()


@pytest.mark.parametrize("value", ["", "short", "x" * 15])
def test_import_refuses_keys_under_16_characters(
    store: KeyStore, redis: MemoryRedis, value: str
) -> None:
    with pytest.raises(InvalidKeySpec):
        store.create(name="old", owner="acme", scopes=["predict"], value=value)
    assert redis.writes == 0


def test_import_accepts_16_characters(store: KeyStore) -> None:
    record, _ = store.create(name="old", owner="acme", scopes=["predict"], value="x" * 16)
    assert record.imported


def test_import_of_a_value_already_active_is_refused(store: KeyStore) -> None:
    # Two active records with one digest: the snapshot keeps whichever came last, so the key's
    # owner (and scopes) depend on Redis hash order, and revoking one record leaves the key valid.
    legacy = "legacy-client-key-0123456789"
    store.create(name="old", owner="acme", scopes=["predict"], value=legacy)
    with pytest.raises(InvalidKeySpec):
        store.create(name="old", owner="globex", scopes=["predict", "admin"], value=legacy)


def test_all_lists_keys_oldest_first(store: KeyStore) -> None:
    first, _ = store.create(name="one", owner="acme", scopes=["predict"])
    second, _ = store.create(name="two", owner="acme", scopes=["jobs"])
    listed = store.all()
    assert {k.id for k in listed} == {first.id, second.id}
    assert [k.created_at for k in listed] == sorted(k.created_at for k in listed)


def test_all_of_an_empty_store_is_empty(store: KeyStore) -> None:
    assert store.all() == []


def test_create_refuses_an_id_collision(
    store: KeyStore, redis: MemoryRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.guard.keys.secrets.token_hex", lambda n: "c0ffee")
    store.create(name="one", owner="acme", scopes=["predict"])
    with pytest.raises(InvalidKeySpec, match="collision"):
        store.create(name="two", owner="acme", scopes=["predict"])
    assert ApiKey.from_json(redis.hget(HASH_KEY, "c0ffee") or b"").name == "one"


def test_revoke_sets_revoked_at(store: KeyStore, redis: MemoryRedis) -> None:
    record, _ = store.create(name="ci", owner="acme", scopes=["predict"])
    revoked = store.revoke(record.id)
    assert revoked.revoked
    assert revoked.revoked_at is not None and revoked.revoked_at >= record.created_at
    assert ApiKey.from_json(redis.hget(HASH_KEY, record.id) or b"") == revoked
    assert revoked.sha256 == record.sha256


def test_revoke_is_idempotent(store: KeyStore, redis: MemoryRedis) -> None:
    record, _ = store.create(name="ci", owner="acme", scopes=["predict"])
    first = store.revoke(record.id)
    writes = redis.writes
    second = store.revoke(record.id)
    assert second.revoked_at == first.revoked_at
    assert redis.writes == writes


def test_revoke_of_an_unknown_id_is_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidKeySpec, match="nope"):
        store.revoke("nope")


def test_find_by_value(store: KeyStore) -> None:
    record, value = store.create(name="ci", owner="acme", scopes=["predict"])
    imported, legacy = store.create(
        name="old", owner="acme", scopes=["predict"], value="legacy-client-key-0123456789"
    )
    assert store.find_by_value(value) == record
    assert store.find_by_value(legacy) == imported
    assert store.find_by_value(value + "x") is None
    assert store.find_by_value("unknown-value-0123456789") is None


def test_find_by_value_prefers_the_active_record(store: KeyStore) -> None:
    # `modelgate keys dev` re-imports the value of its file once that key is revoked, then
    # asks find_by_value on the next start: returning the old, revoked record makes it import
    # the same value again on every start.
    old, value = store.create(name="dev", owner="dev", scopes=SCOPES)
    store.revoke(old.id)
    again, _ = store.create(name="dev", owner="dev", scopes=SCOPES, value=value)
    found = store.find_by_value(value)
    assert found is not None
    assert found.id == again.id
    assert not found.revoked
