"""`*@production` in MODELGATE_MODELS against a real MLflow server and gateway: a model given the
alias is served within three refresh intervals, one that loses it (or is deleted) answers 404,
a version that cannot load leaves the others serving and /readyz 200 with the failure listed,
the legacy routes need a default model, and the cap is visible in /readyz."""

from __future__ import annotations

import json
import time

import pytest

from devstack.processes import Gateway, wait_until
from registry.client import Registry
from registry.digest import DIGEST_TAG
from registry.model import LoadedModel
from registry.train import TrainOptions, train_and_register
from tests.integration.conftest import GatewayFactory

REFRESH = 0.5
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def broken(registry: Registry, iris: dict[int, LoadedModel]) -> str:
    """A model whose production version's recorded digest does not match its artifact."""
    name = "disc_broken"
    published = train_and_register(registry, TrainOptions(n_estimators=5), name=name, alias=None)
    registry.set_version_tag(name, published.version, DIGEST_TAG, "0" * 64)
    registry.set_alias(name, "production", published.version)
    return name


@pytest.fixture(scope="module")
def wildcard(gateway_factory: GatewayFactory, broken: str) -> Gateway:
    """Started (and ready) with a version that cannot load already registered."""
    return gateway_factory(models="*@production", refresh_seconds=str(REFRESH))


def predict(gateway: Gateway, name: str) -> tuple[int, dict]:
    response = gateway.http.post(f"/v1/models/{name}/predict", json={"instances": [ROW]})
    return response.status_code, {"body": response.json(), "headers": response.headers}


def load_ms(gateway: Gateway, name: str, version: int) -> float:
    """The load time the gateway logged when it swapped in `name` version `version`."""
    for line in gateway.log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        message = entry.get("message", "")
        if message.startswith(f"serving {name}@") and entry.get("model_version") == version:
            return float(message.rsplit("loaded in ", 1)[1].split()[0])
    raise AssertionError(f"no load of {name} version {version} in the log")


def test_a_version_that_cannot_load_leaves_the_others_serving(
    wildcard: Gateway, broken: str
) -> None:
    ready = wildcard.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["models"]["iris"]["state"] == "serving"
    assert body["models"][broken]["state"] == "refused"
    (failed,) = [f for f in body["failed"] if f["model"] == broken]
    assert failed["version"] == 1 and "SHA-256" in failed["reason"]
    assert body["discovery"]["patterns"] == ["*@production"]
    status, answer = predict(wildcard, broken)
    assert status == 503 and answer["body"]["error"]["code"] == "model_unavailable"
    assert "SHA-256" in answer["body"]["error"]["message"]
    assert "retry-after" not in answer["headers"]
    assert predict(wildcard, "iris")[0] == 200


def test_a_model_given_the_alias_is_served_within_three_refreshes(
    registry: Registry, wildcard: Gateway
) -> None:
    name = "disc_new"
    assert predict(wildcard, name)[1]["body"]["error"]["code"] == "model_not_found"
    published = train_and_register(registry, TrainOptions(n_estimators=5), name=name, alias=None)
    registry.set_alias(name, "production", published.version)
    aliased = time.monotonic()
    wait_until(lambda: predict(wildcard, name)[0] == 200, 30, f"{name} served", interval=0.05)
    served_after = time.monotonic() - aliased
    loading = load_ms(wildcard, name, published.version) / 1000
    print(f"\n{name}: served {served_after:.2f} s after its alias was set ({loading:.2f} s load)")
    # Found by the next scan (within one interval), then loaded: the load is the model's own.
    assert served_after - loading < 3 * REFRESH


def test_a_model_that_loses_its_alias_or_is_deleted_answers_404(
    registry: Registry, wildcard: Gateway
) -> None:
    names = ("disc_unaliased", "disc_deleted")
    for name in names:
        train_and_register(registry, TrainOptions(n_estimators=5), name=name)
    wait_until(lambda: all(predict(wildcard, n)[0] == 200 for n in names), 30, "both served")
    registry.client.delete_registered_model_alias(names[0], "production")
    registry.client.delete_registered_model(names[1])
    removed = time.monotonic()
    for name in names:
        wait_until(lambda n=name: predict(wildcard, n)[0] == 404, 10, f"{name} gone")
        assert predict(wildcard, name)[1]["body"]["error"]["code"] == "model_not_found"
    assert time.monotonic() - removed < 3 * REFRESH + 1
    models = wildcard.http.get("/v1/models").json()["models"]
    assert not {m["name"] for m in models} & set(names)
    # Another alias of a served model still loads on demand.
    assert wildcard.http.get("/v1/models/iris@production").status_code == 200


def test_the_legacy_routes_need_a_default_model_with_only_patterns(wildcard: Gateway) -> None:
    for response in (
        wildcard.http.post("/predict", json={"features": [ROW]}),
        wildcard.http.get("/model-info"),
        wildcard.http.get("/health"),
    ):
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "model_not_found" and "MODELGATE_DEFAULT_MODEL" in error["message"]


def test_the_cap_serves_explicit_entries_first_and_lists_the_rest(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel], broken: str
) -> None:
    gateway = gateway_factory(
        models="iris@production,*@production",
        default_model="iris",
        max_served_models="1",
        refresh_seconds=str(REFRESH),
    )
    served = gateway.http.post("/predict", json={"features": [ROW]})
    assert served.status_code == 200 and served.headers["x-model-version"] == "1"
    body = gateway.http.get("/readyz").json()
    assert list(body["models"]) == ["iris"] and broken in body["discovery"]["over_cap"]
    status, answer = predict(gateway, broken)
    assert status == 503 and answer["body"]["error"]["code"] == "model_unavailable"
    assert "MODELGATE_MAX_SERVED_MODELS" in answer["body"]["error"]["message"]
    assert predict(gateway, "disc_never_registered")[0] == 404
