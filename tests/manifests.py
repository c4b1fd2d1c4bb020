"""The Kubernetes manifests of k8s/ as `kubectl apply -k` sees them, built once per overlay."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[1] / "k8s"
OVERLAYS = ("dev", "prod")

Manifest = dict[str, Any]


class KustomizeMissing(RuntimeError):
    """Neither kubectl nor a standalone kustomize is on PATH."""


def kustomize_argv(path: Path) -> list[str]:
    # kubectl embeds kustomize (v5 in current kubectl); a standalone kustomize does the same.
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(path)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(path)]
    raise KustomizeMissing(
        "the k8s/ tests build the overlays with `kubectl kustomize` (or `kustomize build`), "
        "and neither is on PATH: install kubectl (https://kubernetes.io/docs/tasks/tools/; "
        "Debian's kubernetes-client is too old) or kustomize v5"
    )


@functools.cache
def build(overlay: str) -> tuple[Manifest, ...]:
    """Every object of `k8s/overlays/<overlay>`, in kustomize's order."""
    done = subprocess.run(
        kustomize_argv(K8S / "overlays" / overlay),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize failed for {overlay}:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(docs: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def find(docs: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def config_map(docs: tuple[Manifest, ...], name: str) -> dict[str, str]:
    """The data of a generated ConfigMap, found by its name without kustomize's hash suffix."""
    found = [
        doc
        for doc in of_kind(docs, "ConfigMap")
        if doc["metadata"]["name"].rsplit("-", 1)[0] == name
    ]
    assert len(found) == 1, f"expected one ConfigMap {name}-<hash>, found {len(found)}"
    return dict(found[0].get("data", {}))


def secret_values(overlay: str, name: str = "modelgate-secrets") -> dict[str, str]:
    """The Secret's values: built by the dev overlay; in prod, the documented example file."""
    docs = build(overlay)
    secrets = [doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"] == name]
    if secrets:
        data = secrets[0].get("data", {})
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    example = K8S / "overlays" / overlay / "secrets.env.example"
    values = {}
    for line in example.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def pod_spec(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads(docs: tuple[Manifest, ...]) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet", "Job")]


def container_env(docs: tuple[Manifest, ...], container: dict[str, Any], overlay: str) -> dict:
    """The MODELGATE_* environment a container gets: its ConfigMaps, then its own `env`
    (Secret references resolved from `secret_values`; an optional one that is absent is left
    out, as Kubernetes does)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_map(docs, source["configMapRef"]["name"].rsplit("-", 1)[0]))
    secrets = secret_values(overlay)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["key"] in secrets:
            env[var["name"]] = secrets[ref["key"]]
        elif not ref.get("optional"):
            raise AssertionError(f"{var['name']}: Secret key {ref['key']} is not provided")
    return env
