"""Predictions through the gateway equal those of the registered model loaded directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from devstack.processes import Gateway
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

ROWS = load_iris().data[::7].tolist()


def test_v1_instances_match_the_registered_model(gateway: Gateway, iris: dict[int, LoadedModel]):
    """The demo forest is served by its verified ONNX twin: the classes scikit-learn gives,
    exactly, and its probabilities within 1e-5."""
    model = iris[1]
    response = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = model.estimator.predict_proba(np.asarray(ROWS))
    assert body["model"] == "iris" and body["version"] == 1
    assert body["predictions"] == model.estimator.predict(np.asarray(ROWS)).tolist()
    assert np.abs(np.subtract(body["probabilities"], expected)).max() <= 1e-5
    assert body["classes"] == [0, 1, 2]
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-model-runtime"] == "onnx"


def test_the_native_runtime_answers_exactly_like_the_estimator(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
):
    gateway = gateway_factory(runtime="native")
    response = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    assert response.headers["x-model-runtime"] == "sklearn"
    # Exactly scikit-learn's, rounded to 5 decimals as every runtime's probabilities are.
    expected = np.round(iris[1].estimator.predict_proba(np.asarray(ROWS)), 5)
    assert np.allclose(response.json()["probabilities"], expected, atol=1e-12, rtol=0)
    listed = gateway.http.get("/v1/models/iris").json()["versions"][0]
    assert listed["runtime"] == "sklearn" and listed["onnx"] == "verified"


def test_records_equal_instances(gateway: Gateway, iris: dict[int, LoadedModel]):
    names = iris[1].signature.names
    records = [dict(zip(reversed(names), reversed(row), strict=True)) for row in ROWS]
    by_records = gateway.http.post("/v1/models/iris/predict", json={"records": records})
    by_instances = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert by_records.status_code == 200, by_records.text
    assert by_records.json() == by_instances.json()


def test_pinned_version_and_alias_address(gateway: Gateway, iris: dict[int, LoadedModel]):
    pinned = gateway.http.post(
        "/v1/models/iris@production/predict", json={"instances": ROWS, "version": 2}
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["version"] == 2
    assert pinned.json()["predictions"] == iris[2].estimator.predict(np.asarray(ROWS)).tolist()


def test_seed_api_unchanged(gateway: Gateway, iris: dict[int, LoadedModel]):
    row = [[5.1, 3.5, 1.4, 0.2]]
    response = gateway.http.post("/predict", json={"features": row})
    assert response.status_code == 200
    assert set(response.json()) == {"predictions", "probabilities"}
    assert response.json()["predictions"] == iris[1].estimator.predict(np.asarray(row)).tolist()
    # Some of the legacy API's clients send no Content-Type at all (docs/legacy-api.md).
    bare = gateway.http.post("/predict", content=b'{"features": [[5.1, 3.5, 1.4, 0.2]]}')
    assert bare.status_code == 200 and bare.json() == response.json()
    assert gateway.http.get("/health").json() == {"status": "healthy", "model_loaded": True}
    info = gateway.http.get("/model-info").json()
    assert info == {
        "model_type": "RandomForestClassifier",
        "n_features": 4,
        "n_classes": 3,
        "name": "iris",
        "version": 1,
    }


def test_model_listing(gateway: Gateway):
    listing = gateway.http.get("/v1/models").json()["models"]
    assert [m["name"] for m in listing] == ["iris"]
    one = gateway.http.get("/v1/models/iris").json()
    assert one["alias"] == "production" and one["version"] == 1 and one["ready"]
    served = {v["version"]: v for v in one["versions"]}
    assert served[1]["runtime"] == "onnx" and served[1]["onnx"] == "verified"
    assert "accuracy" in served[1]["metrics"]
    assert [f["name"] for f in served[1]["signature"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert len(served[1]["sha256"]) == 64


def test_health_endpoints(gateway: Gateway):
    assert gateway.http.get("/healthz").json() == {"status": "alive"}
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 200
    deps = ready.json()["dependencies"]
    assert deps["redis"]["ok"] and deps["cache"]["ok"] and deps["registry"]["ok"]


def test_load_from_another_working_directory(tmp_path: Path, gateway: Gateway, registry):
    """Artifacts come through the server: a process elsewhere loads the same predictions."""
    script = (
        "import json, sys\n"
        "from registry.client import Registry\n"
        "from registry.loader import load_version\n"
        "m = load_version(Registry(sys.argv[1]), 'iris', 1)\n"
        "print(json.dumps(m.predict(json.loads(sys.argv[2])).labels))\n"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", script, registry.tracking_uri, json.dumps(ROWS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    served = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == served.json()["predictions"]
