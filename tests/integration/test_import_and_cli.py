"""`modelgate import` of joblib files, and the CLI's promote/rollback history, as subprocesses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

from devstack.processes import VENV_BIN, MlflowServer, wait_until
from registry.client import Registry
from registry.train import TrainOptions, train_and_register
from tests.integration.conftest import GatewayFactory


def modelgate(
    server: MlflowServer, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    return subprocess.run(
        [str(VENV_BIN / "modelgate"), "--tracking-uri", server.url, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
    )


def test_import_model_with_preprocessor_serves_the_same_predictions(
    tmp_path: Path, mlflow_server: MlflowServer, gateway_factory: GatewayFactory
) -> None:
    # What the legacy app's users have on disk: a fitted preprocessor and a model fitted after it.
    wine = load_wine(as_frame=True)
    frame = wine.data.rename(columns=lambda c: c.replace("/", "_"))
    scaler = StandardScaler().fit(frame.to_numpy())
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(frame.to_numpy()), wine.target)
    joblib.dump(model, tmp_path / "model.pkl")
    joblib.dump(scaler, tmp_path / "preprocessor.pkl")
    frame.head(20).to_csv(tmp_path / "sample.csv", index=False)
    diabetes = load_diabetes()
    regressor = LinearRegression().fit(diabetes.data, diabetes.target)
    joblib.dump(regressor, tmp_path / "regressor.pkl")

    # Started first: it judges the imported version before import sets the alias.
    gateway = gateway_factory(models="wine@production,diabetes@production", ready=False)
    imported = modelgate(
        mlflow_server,
        "import",
        str(tmp_path / "model.pkl"),
        "--preprocessor",
        str(tmp_path / "preprocessor.pkl"),
        "--sample",
        str(tmp_path / "sample.csv"),
        "--name",
        "wine",
    )
    assert imported.returncode == 0, imported.stderr
    assert "registered wine version 1" in imported.stdout
    assert "alias production -> version 1" in imported.stdout
    plain = modelgate(
        mlflow_server, "import", str(tmp_path / "regressor.pkl"), "--name", "diabetes", "--force"
    )
    assert plain.returncode == 0, plain.stderr
    # /readyz does not wait for a model the registry lacked while another serves: ask each.
    for name in ("wine", "diabetes"):
        wait_until(
            lambda n=name: gateway.http.get(f"/v1/models/{n}").json().get("ready") is True,
            60,
            f"{name} served",
        )
    rows = frame.iloc[::9].to_numpy().tolist()
    response = gateway.http.post("/v1/models/wine/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    # scikit-learn's, rounded to 5 decimals as every runtime's probabilities are.
    expected = np.round(model.predict_proba(scaler.transform(np.asarray(rows))), 5)
    assert (
        response.json()["predictions"] == model.predict(scaler.transform(np.asarray(rows))).tolist()
    )
    assert np.allclose(response.json()["probabilities"], expected, atol=1e-12)
    records = frame.iloc[::9].to_dict(orient="records")
    by_name = gateway.http.post("/v1/models/wine/predict", json={"records": records})
    assert by_name.json()["predictions"] == response.json()["predictions"]

    reg_rows = diabetes.data[:5].tolist()
    reg = gateway.http.post("/v1/models/diabetes/predict", json={"instances": reg_rows})
    assert reg.status_code == 200, reg.text
    assert reg.json()["probabilities"] is None and reg.json()["classes"] is None
    assert np.allclose(reg.json()["predictions"], regressor.predict(np.asarray(reg_rows)))
    # The legacy route serves the first configured model.
    legacy = gateway.http.post("/predict", json={"features": rows[:1]})
    assert legacy.json()["predictions"] == response.json()["predictions"][:1]
    info = gateway.http.get("/model-info").json()
    assert info["model_type"] == "LogisticRegression" and info["n_features"] == 13


def test_cli_promote_and_rollback_go_back_step_by_step(
    tmp_path: Path, mlflow_server: MlflowServer, registry: Registry
) -> None:
    trained = modelgate(mlflow_server, "train", "--name", "iris_cli", "--n-estimators", "5")
    assert trained.returncode == 0, trained.stderr
    assert "registered iris_cli version 1" in trained.stdout
    for seed in (2, 3):
        train_and_register(registry, TrainOptions(n_estimators=5, seed=seed), name="iris_cli")
    again = modelgate(mlflow_server, "train", "--name", "iris_cli", "--if-missing")
    assert again.returncode == 0 and "nothing to train" in again.stdout

    def production() -> str:
        return f"version {registry.alias_version('iris_cli', 'production')}"

    header, *listing = modelgate(mlflow_server, "versions", "iris_cli").stdout.splitlines()
    assert header.split() == ["MODEL", "VERSION", "ALIASES", "SHA256", "ONNX", "RUN"]
    assert len(listing) == 3 and listing[0].split()[:3] == ["iris_cli", "1", "production"]
    assert all(line.split()[3] != "none" for line in listing)
    # No gateway runs here to judge the versions (tests/integration/test_verdicts.py does):
    # --force moves the alias without the gateways' verdict.
    assert modelgate(mlflow_server, "promote", "iris_cli", "2", "--force").returncode == 0
    assert modelgate(mlflow_server, "promote", "iris_cli", "3", "--force").returncode == 0
    assert production() == "version 3"
    # From another working directory: the history lives in the registry, not on this machine.
    rolled = modelgate(mlflow_server, "rollback", "iris_cli", "--force", cwd=tmp_path)
    assert rolled.returncode == 0
    assert production() == "version 2"
    assert modelgate(mlflow_server, "rollback", "iris_cli", "--force").returncode == 0
    assert production() == "version 1"
    empty = modelgate(mlflow_server, "rollback", "iris_cli")
    assert empty.returncode == 1 and "alias_history_empty" in empty.stderr
    assert "Traceback" not in empty.stderr
    missing = modelgate(mlflow_server, "promote", "iris_cli", "9")
    assert missing.returncode == 1 and "version_not_found" in missing.stderr
