"""Load verdicts end to end: `modelgate promote` refuses a version the running gateways refuse
(their settings, not the CLI's environment), leaving the alias; `--force` moves it; a loadable
version promotes; with no verdict in time the CLI refuses and says so."""

from __future__ import annotations

import os
import subprocess

import mlflow
import mlflow.sklearn
import pytest
from mlflow.models import infer_signature

from devstack.processes import VENV_BIN, Gateway, MlflowServer
from registry.client import Registry
from registry.publish import record_digest
from registry.train import TrainOptions, train_and_register, train_iris
from registry.verdicts import REQUEST_TAG, read_verdicts
from tests.integration.conftest import NO_REQUIREMENTS, V2_OPTIONS, GatewayFactory

NAME = "verdict_m"


def modelgate(server: MlflowServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; its environment allows pickle, which must not matter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env["MODELGATE_ALLOW_PICKLE"] = "true"
    return subprocess.run(
        [str(VENV_BIN / "modelgate"), "--tracking-uri", server.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def register_pickled(registry: Registry, name: str) -> int:
    """A cloudpickle-format version with its digest recorded, as an old import would be."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    mlflow.set_experiment("verdicts")
    model, frame, _ = train_iris(TrainOptions(n_estimators=5))
    signature = infer_signature(frame, model.predict(frame.to_numpy()))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            serialization_format="cloudpickle",
            registered_model_name=name,
            pip_requirements=NO_REQUIREMENTS,
        )
    version = int(info.registered_model_version)
    record_digest(registry, name, version)
    return version


@pytest.fixture(scope="module")
def judge(gateway_factory: GatewayFactory, registry: Registry) -> Gateway:
    """A gateway with the default loader policy (no pickle), serving the test model."""
    train_and_register(registry, TrainOptions(n_estimators=5), name=NAME)
    return gateway_factory(models=f"{NAME}@production", refresh_seconds="0.5")


def test_promote_is_refused_with_the_gateways_reason_and_force_moves_the_alias(
    mlflow_server: MlflowServer, registry: Registry, judge: Gateway
) -> None:
    pickled = register_pickled(registry, NAME)
    refused = modelgate(mlflow_server, "promote", NAME, str(pickled))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "pickle" in refused.stderr and "refuse" in refused.stderr, refused.stderr
    assert "alias 'production' unchanged" in refused.stderr and "--force" in refused.stderr
    assert registry.alias_version(NAME, "production") == 1
    (verdict,) = read_verdicts(registry, NAME, pickled).values()
    assert verdict.startswith("refused: ") and "pickle" in verdict

    forced = modelgate(mlflow_server, "promote", NAME, str(pickled), "--force")
    assert forced.returncode == 0, forced.stderr
    assert registry.alias_version(NAME, "production") == pickled
    # The gateway keeps serving the version it had: the forced one cannot load there.
    served = judge.http.post(f"/v1/models/{NAME}/predict", json={"instances": [[1, 2, 3, 4]]})
    assert served.status_code == 200 and served.json()["version"] == 1


def test_a_loadable_version_promotes_and_rollback_is_checked_too(
    mlflow_server: MlflowServer, registry: Registry, judge: Gateway
) -> None:
    loadable = train_and_register(registry, V2_OPTIONS, name=NAME).version
    promoted = modelgate(mlflow_server, "promote", NAME, str(loadable))
    assert promoted.returncode == 0, promoted.stderr
    assert registry.alias_version(NAME, "production") == loadable
    assert read_verdicts(registry, NAME, loadable)  # judged by the gateway on request
    # Rolling back goes to the forced pickle version, which the gateway refused.
    back = modelgate(mlflow_server, "rollback", NAME)
    assert back.returncode == 1 and "pickle" in back.stderr, back.stderr
    assert registry.alias_version(NAME, "production") == loadable


def test_no_verdict_in_time_is_refused_and_says_how_to_proceed(
    mlflow_server: MlflowServer, registry: Registry, judge: Gateway
) -> None:
    fresh = train_and_register(registry, TrainOptions(n_estimators=7), name=NAME).version
    waited = modelgate(mlflow_server, "promote", NAME, str(fresh), "--wait", "0")
    assert waited.returncode == 1, waited.stderr
    assert "verdict_missing" in waited.stderr and "within 0 s" in waited.stderr
    assert "--wait SECONDS" in waited.stderr
    # Asked, not answered in time, and the request dropped (gateways see only the newest).
    assert REQUEST_TAG not in registry.version(NAME, fresh).tags
    assert registry.alias_version(NAME, "production") != fresh
