"""The Kubernetes manifests (k8s/): both overlays build, validate against the Kubernetes and
KEDA schemas, and keep the issue's promises (probes, limits, restricted pods, graceful
shutdown, the queue KEDA watches, what the Ingress and the NetworkPolicies let through)."""

from __future__ import annotations

import copy
import re
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from jobs.celery_app import queue_key
from kernel.settings import SharedSettings
from registry.server import MlflowServerSettings
from tests import manifests
from tests.manifests import (
    OVERLAYS,
    Manifest,
    build,
    container_env,
    containers,
    find,
    of_kind,
    pod_spec,
    secret_values,
    workloads,
)
from worker.settings import WorkerSettings

#: The oldest Kubernetes the manifests promise to work on, and the newest the validator knows.
KUBE_VERSIONS = ("1.29", kubernetes_validate.latest_version())
SCHEMAS = Path(manifests.K8S) / "schemas"
CRDS = {
    "ScaledObject": SCHEMAS / "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": SCHEMAS / "keda.sh_triggerauthentications.yaml",
}
OUR_IMAGES = {"ghcr.io/modelgate/gateway", "ghcr.io/modelgate/worker", "ghcr.io/modelgate/mlflow"}
#: Environment variables that are not Modelgate settings, and why they are there.
FOREIGN_ENV = {"MLFLOW_SERVER_ALLOWED_HOSTS"}  # mlflow server's own Host-header allow list


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    try:
        build(request.param)
    except manifests.KustomizeMissing as exc:
        pytest.fail(str(exc))
    return str(request.param)


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused, as the API server's strict field validation
    does (`kubectl apply --validate=strict`); a free-form `type: object` stays open."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


def crd_validator(kind: str, api_version: str) -> jsonschema.Validator:
    crd = yaml.safe_load(CRDS[kind].read_text())
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema.Draft7Validator(_strict(served["schema"]["openAPIV3Schema"]))


def validate(doc: Manifest) -> None:
    """Raise unless `doc` is valid for every Kubernetes version (or KEDA CRD) it targets."""
    if doc["apiVersion"].startswith("keda.sh/"):
        crd_validator(doc["kind"], doc["apiVersion"]).validate(doc)
        return
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def test_every_object_validates(overlay: str) -> None:
    docs = build(overlay)
    assert len(docs) > 20
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_the_validators_catch_a_misspelled_field() -> None:
    docs = build("dev")
    worker = copy.deepcopy(find(docs, "Deployment", "worker"))
    spec = pod_spec(worker)
    spec["terminationGracePeriod"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(worker)
    scaled = copy.deepcopy(find(docs, "ScaledObject", "worker"))
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)
    auth = copy.deepcopy(find(docs, "TriggerAuthentication", "worker-redis"))
    del auth["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(jsonschema.ValidationError):
        validate(auth)


def test_every_image_is_ours_or_pinned(overlay: str) -> None:
    for workload in workloads(build(overlay)):
        for container in containers(workload):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and tag and "/" not in tag, f"{image} has no tag"
            assert tag != "latest", image
            assert name in OUR_IMAGES or workload["metadata"]["name"] in ("redis", "cache"), image


def test_dev_and_prod_differ_where_documented() -> None:
    dev, prod = build("dev"), build("prod")
    assert {d["metadata"]["name"] for d in of_kind(dev, "Namespace")} == {"modelgate-dev"}
    assert {d["metadata"]["name"] for d in of_kind(prod, "Namespace")} == {"modelgate"}
    # Prod's Redis and PostgreSQL are managed services, and its Secret is never in the build.
    assert not of_kind(prod, "Secret")
    assert {d["metadata"]["name"] for d in of_kind(prod, "Deployment")} == {
        "gateway",
        "worker",
        "mlflow",
    }
    assert {"redis", "cache"} <= {d["metadata"]["name"] for d in of_kind(dev, "Deployment")}
    assert find(prod, "Ingress", "gateway")["spec"]["tls"]
    for docs in (dev, prod):
        namespace = of_kind(docs, "Namespace")[0]
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Dev serves versions logged the ordinary MLflow way (trust on first use); prod only
    # registered or adopted ones.
    shared = {
        name: next(
            d
            for d in of_kind(docs, "ConfigMap")
            if d["metadata"]["name"].startswith("modelgate-shared")
        )["data"]
        for name, docs in (("dev", dev), ("prod", prod))
    }
    assert shared["dev"]["MODELGATE_TRUST"] == "first-use"
    assert shared["prod"]["MODELGATE_TRUST"] == "strict"


# --- Ingress: the API port of the gateway, nothing else ---------------------------------------


def test_ingress_routes_only_to_the_gateway_api_port(overlay: str) -> None:
    docs = build(overlay)
    gateway_env = container_env(docs, _container(docs, "gateway"), overlay)
    api_port = int(gateway_env["MODELGATE_PORT"])
    metrics_port = int(gateway_env["MODELGATE_METRICS_PORT"])
    assert api_port != metrics_port
    grpc_port = int(gateway_env["MODELGATE_GRPC_PORT"])
    assert len({api_port, grpc_port, metrics_port}) == 3
    ingresses = {i["metadata"]["name"]: i for i in of_kind(docs, "Ingress")}
    assert set(ingresses) == {"gateway", "gateway-grpc"}
    service = find(docs, "Service", "gateway")
    by_name = {port["name"]: port for port in service["spec"]["ports"]}
    # HTTP on one Ingress; gRPC on its own (ingress-nginx proxies a whole Ingress as gRPC).
    for name, port_wanted, protocol in (
        ("gateway", api_port, None),
        ("gateway-grpc", grpc_port, "GRPC"),
    ):
        ingress = ingresses[name]
        assert ingress["spec"]["ingressClassName"] == "nginx"
        annotations = ingress["metadata"].get("annotations", {})
        assert annotations.get("nginx.ingress.kubernetes.io/backend-protocol") == protocol, name
        backends = [
            path["backend"]["service"]
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        ]
        assert "defaultBackend" not in ingress["spec"]
        assert backends and all(b["name"] == "gateway" for b in backends), backends
        for backend in backends:
            port = by_name[backend["port"]["name"]]
            assert _container_port(_container(docs, "gateway"), port["targetPort"]) == port_wanted
    hosts = [rule["host"] for i in ingresses.values() for rule in i["spec"]["rules"]]
    assert len(set(hosts)) == len(hosts), hosts
    if overlay == "prod":  # ingress-nginx speaks HTTP/2 (so gRPC) to clients over TLS only
        tls_hosts = {h for t in ingresses["gateway-grpc"]["spec"]["tls"] for h in t["hosts"]}
        assert ingresses["gateway-grpc"]["spec"]["rules"][0]["host"] in tls_hosts
    # No Service at all leads to a metrics or health port, so no Ingress can reach one.
    worker_port = int(
        container_env(docs, _container(docs, "worker"), overlay)["MODELGATE_WORKER_HEALTH_PORT"]
    )
    for service in of_kind(docs, "Service"):
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            component = service["spec"]["selector"]["app.kubernetes.io/component"]
            if component in ("gateway", "worker"):
                reached = _container_port(_container(docs, component), target)
                assert reached not in (metrics_port, worker_port), service["metadata"]["name"]


def test_ingress_body_limit_admits_the_largest_job(overlay: str) -> None:
    docs = build(overlay)
    env = container_env(docs, _container(docs, "gateway"), overlay)
    max_job_bytes = _settings(GatewaySettings, env).max_job_bytes
    annotations = find(docs, "Ingress", "gateway")["metadata"]["annotations"]
    size = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    limit = int(size[:-1]) * units[size[-1].lower()] if size[-1].isalpha() else int(size)
    assert limit >= max_job_bytes


# --- Pods: restricted, probed, bounded, and stopped gracefully --------------------------------


def test_every_pod_is_restricted(overlay: str) -> None:
    for workload in workloads(build(overlay)):
        spec = pod_spec(workload)
        what = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, what
        assert spec["securityContext"].get("runAsUser", 1) != 0, what
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", what
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, what
        assert spec["automountServiceAccountToken"] is False, what
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, what
            assert context["readOnlyRootFilesystem"] is True, what
            assert context.get("privileged") is not True, what
            assert context["capabilities"]["drop"] == ["ALL"], what
            assert not context["capabilities"].get("add"), what
            if container["image"].split(":")[0] in OUR_IMAGES:
                # Python and MLflow need a writable temp directory on a read-only root.
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                assert "emptyDir" in volumes[mounts["/tmp"]], what


def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload in workloads(build(overlay)):
        for container in containers(workload):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = _quantity(resources["requests"][resource])
                limit = _quantity(resources["limits"][resource])
                assert 0 < request <= limit, (container["name"], resource)


def test_probes(overlay: str) -> None:
    docs = build(overlay)
    gateway = _container(docs, "gateway")
    assert _probe(gateway, "startupProbe") == ("/healthz", "http")
    assert _probe(gateway, "livenessProbe") == ("/healthz", "http")
    assert _probe(gateway, "readinessProbe") == ("/readyz", "http")
    assert _container_port(gateway, "http") == int(
        container_env(docs, gateway, overlay)["MODELGATE_PORT"]
    )
    worker = _container(docs, "worker")
    assert _probe(worker, "startupProbe") == ("/healthz", "health")
    assert _probe(worker, "livenessProbe") == ("/healthz", "health")
    assert _probe(worker, "readinessProbe") == ("/readyz", "health")
    worker_env = container_env(docs, worker, overlay)
    assert _container_port(worker, "health") == int(worker_env["MODELGATE_WORKER_HEALTH_PORT"])
    assert worker_env["MODELGATE_WORKER_HEALTH_HOST"] == "0.0.0.0"  # the kubelet is not local
    assert container_env(docs, gateway, overlay)["MODELGATE_HOST"] == "0.0.0.0"
    # The HTTP probes cover gRPC too (gateway.yaml): its port is one the container declares.
    assert _container_port(gateway, "grpc") == int(
        container_env(docs, gateway, overlay)["MODELGATE_GRPC_PORT"]
    )
    # gRPC listens on MODELGATE_HOST (0.0.0.0) too.
    assert "MODELGATE_GRPC_HOST" not in container_env(docs, gateway, overlay)
    mlflow = _container(docs, "mlflow")
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert _probe(mlflow, kind) == ("/health", "http")
    for deployment in of_kind(docs, "Deployment"):
        for container in containers(deployment):
            assert "livenessProbe" in container and "readinessProbe" in container, container["name"]


def test_grace_periods_outlast_a_chunk_and_a_drain(overlay: str) -> None:
    docs = build(overlay)
    worker_env = container_env(docs, _container(docs, "worker"), overlay)
    worker_settings = _settings(WorkerSettings, worker_env)
    worker_grace = pod_spec(find(docs, "Deployment", "worker"))["terminationGracePeriodSeconds"]
    # A warm shutdown waits for the running chunk, which the hard time limit bounds.
    assert worker_grace > worker_settings.task_time_limit_seconds
    assert worker_settings.visibility_timeout_seconds > worker_settings.task_time_limit_seconds

    gateway = _container(docs, "gateway")
    command = gateway["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    pause = float(command[1])
    settings = _settings(GatewaySettings, container_env(docs, gateway, overlay))
    # After SIGTERM the gateway drains (/readyz 503, still serving), then waits for the
    # requests in flight.
    after_sigterm = settings.drain_seconds + settings.graceful_shutdown_seconds
    gateway_grace = pod_spec(find(docs, "Deployment", "gateway"))["terminationGracePeriodSeconds"]
    assert gateway_grace > pause + after_sigterm, (gateway_grace, pause, after_sigterm)


def test_rollouts_keep_capacity(overlay: str) -> None:
    docs = build(overlay)
    for name in ("gateway", "worker"):
        strategy = find(docs, "Deployment", name)["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, name


# --- Scaling: HPA on CPU for gateways, KEDA on the queue for workers --------------------------


def test_gateway_hpa_and_disruption_budgets(overlay: str) -> None:
    docs = build(overlay)
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # The autoscalers own the replica counts: an apply must not reset them.
    for name in ("gateway", "worker"):
        assert "replicas" not in find(docs, "Deployment", name)["spec"], name
    for name in ("gateway", "worker"):
        pdb = find(docs, "PodDisruptionBudget", name)
        labels = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 1


def test_keda_watches_the_celery_queue_key(overlay: str) -> None:
    docs = build(overlay)
    (scaled,) = of_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker"
    assert find(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    worker_env = container_env(docs, _container(docs, "worker"), overlay)
    settings = _settings(SharedSettings, worker_env)
    assert trigger["metadata"]["listName"] == queue_key(settings)
    assert trigger["metadata"]["listName"] == "modelgate:modelgate"
    redis_url = urllib.parse.urlsplit(settings.redis_url)
    assert trigger["metadata"]["databaseIndex"] == (redis_url.path.strip("/") or "0")
    assert int(trigger["metadata"]["listLength"]) >= 1
    # Its address and password come from the same Secret as the workers' Redis URL.
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    secrets = secret_values(overlay)
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"address", "password"}
    for ref in refs.values():
        assert ref["name"] == "modelgate-secrets" and ref["key"] in secrets
    host, _, port = secrets[refs["address"]["key"]].rpartition(":")
    assert int(port) == (redis_url.port or 6379)
    if overlay == "dev":
        # The operator resolves names in its own namespace: it needs the Service's full name.
        namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
        assert host == f"{redis_url.hostname}.{namespace}.svc.cluster.local"


# --- Settings: every variable is a real setting, and the values parse -------------------------


def _settings_class(container: str) -> type[BaseSettings]:
    classes: dict[str, type[BaseSettings]] = {
        "gateway": GatewaySettings,
        "worker": WorkerSettings,
        "trainer": SharedSettings,
        "mlflow": MlflowServerSettings,
    }
    return classes[container]


def test_every_variable_is_a_setting_and_parses(overlay: str) -> None:
    docs = build(overlay)
    for workload in workloads(docs):
        for container in containers(workload):
            if container["image"].split(":")[0] not in OUR_IMAGES:
                continue
            env = container_env(docs, container, overlay)
            cls = _settings_class(container["name"])
            ours = {k: v for k, v in env.items() if k.startswith("MODELGATE_")}
            assert set(env) - set(ours) <= FOREIGN_ENV, container["name"]
            fields = {f"MODELGATE_{name.upper()}" for name in cls.model_fields}
            assert set(ours) <= fields, (container["name"], sorted(set(ours) - fields))
            _settings(cls, ours)


def test_every_secret_key_used_is_provided(overlay: str) -> None:
    docs = build(overlay)
    secrets = secret_values(overlay)
    required, optional = set(), set()
    for workload in workloads(docs):
        for container in containers(workload):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "modelgate-secrets"
                    (optional if ref.get("optional") else required).add(ref["key"])
    for auth in of_kind(docs, "TriggerAuthentication"):
        required |= {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert required <= set(secrets), sorted(required - set(secrets))
    if overlay == "prod":  # the example documents every key, optional ones included
        assert required | optional == set(secrets), sorted((required | optional) ^ set(secrets))


def test_clients_reach_mlflow_by_a_host_it_accepts(overlay: str) -> None:
    docs = build(overlay)
    env = container_env(docs, _container(docs, "gateway"), overlay)
    uri = urllib.parse.urlsplit(env["MODELGATE_MLFLOW_TRACKING_URI"])
    service = find(docs, "Service", uri.hostname or "")
    assert uri.port in [port["port"] for port in service["spec"]["ports"]]
    allowed = container_env(docs, _container(docs, "mlflow"), overlay)[
        "MLFLOW_SERVER_ALLOWED_HOSTS"
    ]
    hosts = [h.strip() for h in allowed.split(",")]
    namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    assert is_allowed_host_header(hosts, uri.netloc)
    assert is_allowed_host_header(hosts, f"mlflow.{namespace}.svc.cluster.local:{uri.port}")
    assert is_allowed_host_header(hosts, "localhost:5000")  # kubectl port-forward
    assert is_allowed_host_header(hosts, f"mlflow.{namespace}.svc:{uri.port}")
    for other in ("evil.example.com", "mlflow.evil.example.com:5000", "gateway:5000"):
        assert not is_allowed_host_header(hosts, other)


def test_prometheus_scrapes_the_metrics_ports(overlay: str) -> None:
    docs = build(overlay)
    for name, setting in (
        ("gateway", "MODELGATE_METRICS_PORT"),
        ("worker", "MODELGATE_WORKER_HEALTH_PORT"),
    ):
        deployment = find(docs, "Deployment", name)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = int(container_env(docs, _container(docs, name), overlay)[setting])
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert port in [p["containerPort"] for p in _container(docs, name)["ports"]]


# --- NetworkPolicies, evaluated ---------------------------------------------------------------

INGRESS_NGINX = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
KEDA = ("keda", {"app.kubernetes.io/name": "keda-operator"})
DNS = ("kube-system", {"k8s-app": "kube-dns"})
OUTSIDE = (None, {})  # an address outside the cluster (a managed Redis or PostgreSQL)


def test_network_policies(overlay: str) -> None:
    docs = build(overlay)
    namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    net = Network(namespace, of_kind(docs, "NetworkPolicy"))
    pods = {
        d["metadata"]["name"]: (namespace, d["spec"]["template"]["metadata"]["labels"])
        for d in workloads(docs)
    }
    gateway, worker, mlflow, trainer = (pods[n] for n in ("gateway", "worker", "mlflow", "trainer"))
    stranger = (namespace, {"app": "something-else"})

    for pod in pods.values():
        assert net.allows(pod, DNS, 53, "UDP")
    # Redis: only gateways and workers (a managed service outside the cluster in prod), and in
    # dev, where Redis runs in the namespace, KEDA's operator too; the cache is the gateways'.
    assert net.allows(gateway, OUTSIDE, 6379) and net.allows(worker, OUTSIDE, 6379)
    for other in (mlflow, trainer, stranger):
        assert not net.allows(other, OUTSIDE, 6379)
    if overlay == "dev":
        redis, cache = pods["redis"], pods["cache"]
        for client in (gateway, worker, KEDA):
            assert net.allows(client, redis, 6379)
        for other in (mlflow, trainer, stranger, cache, INGRESS_NGINX, PROMETHEUS):
            assert not net.allows(other, redis, 6379)
        assert net.allows(gateway, cache, 6379)
        for other in (worker, mlflow, trainer, stranger, KEDA):
            assert not net.allows(other, cache, 6379)
    # MLflow: gateways, workers and the trainer; nobody from outside the namespace.
    for client in (gateway, worker, trainer):
        assert net.allows(client, mlflow, 5000)
    for other in (stranger, INGRESS_NGINX, PROMETHEUS, KEDA):
        assert not net.allows(other, mlflow, 5000)
    assert net.allows(mlflow, OUTSIDE, 5432)
    # The API (HTTP and gRPC) from ingress-nginx; metrics from Prometheus only.
    assert net.allows(INGRESS_NGINX, gateway, 8000)
    assert net.allows(INGRESS_NGINX, gateway, 8001)
    assert not net.allows(INGRESS_NGINX, gateway, 9100)
    assert not net.allows(stranger, gateway, 8000)
    assert not net.allows(stranger, gateway, 8001)
    assert net.allows(PROMETHEUS, gateway, 9100) and net.allows(PROMETHEUS, worker, 9101)
    assert not net.allows(trainer, OUTSIDE, 443)  # default deny holds


Pod = tuple[str | None, dict[str, str]]


class Network:
    """The NetworkPolicy semantics needed here: label selectors (matchLabels), namespace
    selectors on kubernetes.io/metadata.name, ports; ipBlock peers are not used."""

    def __init__(self, namespace: str, policies: list[Manifest]) -> None:
        self.namespace = namespace
        self.policies = policies

    def allows(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        out = src[0] != self.namespace or self._side(src, dst, port, protocol, "Egress")
        inbound = dst[0] != self.namespace or self._side(dst, src, port, protocol, "Ingress")
        return out and inbound

    def _side(self, pod: Pod, peer: Pod, port: int, protocol: str, direction: str) -> bool:
        selecting = [
            p
            for p in self.policies
            if direction in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], pod[1])
        ]
        if not selecting:
            return True
        key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for policy in selecting:
            for rule in policy["spec"].get(key, []):
                ports_ok = not rule.get("ports") or any(
                    p.get("protocol", "TCP") == protocol and p.get("port") in (None, port)
                    for p in rule["ports"]
                )
                peer_ok = not rule.get(peers) or any(self._peer(e, peer) for e in rule[peers])
                if ports_ok and peer_ok:
                    return True
        return False

    def _peer(self, selector: dict[str, Any], pod: Pod) -> bool:
        assert "ipBlock" not in selector, "ipBlock peers are not evaluated here"
        if pod[0] is None:  # outside the cluster: no pod or namespace selector matches it
            return False
        if "namespaceSelector" in selector:
            namespace_labels = {"kubernetes.io/metadata.name": pod[0]}
            if not _matches(selector["namespaceSelector"], namespace_labels):
                return False
        elif pod[0] != self.namespace:
            return False
        return _matches(selector.get("podSelector", {}), pod[1])


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert "matchExpressions" not in selector, "matchExpressions are not evaluated here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_the_network_evaluator_can_refuse() -> None:
    deny = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    net = Network("ns", [deny])
    assert not net.allows(("ns", {"a": "b"}), ("ns", {"c": "d"}), 80)
    assert Network("ns", []).allows(("ns", {"a": "b"}), ("ns", {"c": "d"}), 80)


# --- helpers ----------------------------------------------------------------------------------


def _container(docs: tuple[Manifest, ...], name: str) -> dict[str, Any]:
    found = [c for w in workloads(docs) for c in containers(w) if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}, found {len(found)}"
    return found[0]


def _container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(found)


def _probe(container: dict[str, Any], kind: str) -> tuple[str, str]:
    get = container[kind]["httpGet"]
    return get["path"], get["port"]


def _settings(cls: type[Any], env: dict[str, str]) -> Any:
    """`cls` as the container builds it from `env`, this test process's environment aside."""

    class FromManifest(cls):  # type: ignore[misc, valid-type]
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_: Any) -> Any:
            return (init_settings,)

    values = {
        k.removeprefix("MODELGATE_").lower(): v
        for k, v in env.items()
        if k.startswith("MODELGATE_")
    }
    return FromManifest(**{k: v for k, v in values.items() if k in cls.model_fields})


_UNITS = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}


def _quantity(value: str | int) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * _UNITS.get(match[2], 1)
