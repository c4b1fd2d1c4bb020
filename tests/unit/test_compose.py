"""The Docker Compose stack (compose.yaml): valid against the Compose Specification's schema, and
keeping the issue's promises (images built here or pinned, real settings only, health checks
and restarts, nothing published but nginx, Grafana and Prometheus, the start order, mounts that
exist, and an nginx config that `nginx -t` accepts, TLS server included).

No Docker here: the file is read as Compose would, with YAML anchors and `${VAR:-default}`
interpolated. nginx is Debian's package (`make tools-check` installs it).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from kernel.settings import SharedSettings
from registry.server import MlflowServerSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SCHEMA = ROOT / "compose" / "schema" / "compose-spec.json"
NGINX_DIR = ROOT / "compose" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OUR_IMAGES = {
    "ghcr.io/modelgate/gateway": "docker/gateway.Dockerfile",
    "ghcr.io/modelgate/worker": "docker/worker.Dockerfile",
    "ghcr.io/modelgate/mlflow": "docker/mlflow.Dockerfile",
}
GATEWAYS = ("gateway-1", "gateway-2")
#: Services that run once and exit.
ONE_SHOT = {"trainer"}
#: The settings class each service running our code reads.
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway-1": GatewaySettings,
    "gateway-2": GatewaySettings,
    "worker": WorkerSettings,
    "trainer": SharedSettings,
    "mlflow": MlflowServerSettings,
}
#: The variables of the official images, by service: the prefix each image documents.
OFFICIAL_ENV = {"postgres": "POSTGRES_", "grafana": "GF_"}
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def interpolate(value: Any) -> Any:
    """`value` as Compose sees it with no variable set: `${NAME:-default}` is the default (the
    only form used here; any other `$` would be a mistake)."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, str):
        value = _DEFAULTED.sub(lambda match: match.group(2), value)
        assert "$" not in value, f"unsupported interpolation in {value!r}"
    return value


@functools.cache
def _raw() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())  # anchors and `<<` merges resolved
    assert isinstance(document, dict)
    assert "include" not in document, "resolve the included files here before checking"
    return document


def compose() -> dict[str, Any]:
    return copy.deepcopy(interpolate(_raw()))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env(service: str) -> dict[str, str]:
    environment = services()[service].get("environment", {})
    assert isinstance(environment, dict), f"{service}: use the mapping form of environment"
    return {key: str(value) for key, value in environment.items()}


def long_running() -> list[str]:
    return sorted(set(services()) - ONE_SHOT)


# --- the Compose Specification ---------------------------------------------------------------


@functools.cache
def _validator() -> jsonschema.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _validator().iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_specification() -> None:
    assert _errors(_raw()) == []


def test_the_schema_refuses_a_misspelled_field() -> None:
    document = compose()
    nginx = document["services"]["nginx"]
    nginx["healthchek"] = nginx.pop("healthcheck")
    assert _errors(document)
    document = compose()
    document["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_ready"
    assert _errors(document)


# --- images -----------------------------------------------------------------------------------


def test_every_image_is_built_here_or_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" in service:
            build = service["build"]
            assert OUR_IMAGES.get(repository) == build["dockerfile"], (name, image)
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
            assert (ROOT / build["context"]).resolve() == ROOT, name
        else:
            assert repository not in OUR_IMAGES, f"{name}: {image} is ours but not built here"


def _dockerfile_has_healthcheck(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not build:
        return False
    text = (ROOT / build["context"] / build["dockerfile"]).read_text()
    return re.search(r"^HEALTHCHECK\s+(?!NONE)", text, re.MULTILINE) is not None


# --- settings ---------------------------------------------------------------------------------


def _fields(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def _from_env(cls: type[BaseSettings], values: dict[str, str]) -> BaseSettings:
    """`cls` built from `values` alone (the environment of this test process aside)."""

    class FromCompose(cls):  # type: ignore[misc, valid-type]
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_: Any) -> Any:
            return (init_settings,)

    prefix = cls.model_config.get("env_prefix", "")
    return FromCompose(**{k.removeprefix(prefix).lower(): v for k, v in values.items()})


def test_every_variable_is_a_setting_or_the_official_images() -> None:
    for name in services():
        variables = env(name)
        if name in SETTINGS:
            cls = SETTINGS[name]
            assert set(variables) <= _fields(cls), (name, sorted(set(variables) - _fields(cls)))
            _from_env(cls, variables)  # and the values parse
        else:
            prefix = OFFICIAL_ENV.get(name)
            assert all(prefix and key.startswith(prefix) for key in variables), (name, variables)
            assert not any(key.startswith("MODELGATE_") for key in variables), name


def test_secrets_are_development_defaults_read_from_the_environment() -> None:
    """Passwords come from the environment (or a .env file); the fallbacks say what they are."""
    text = COMPOSE.read_text()
    for variable in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{variable}:-" in text, variable
    for key, value in env("postgres").items():
        if "PASSWORD" in key:
            assert value.endswith("dev-only"), key


# --- health, restarts, start order --------------------------------------------------------------


@pytest.mark.parametrize("name", long_running())
def test_long_running_service_has_a_health_check_and_restarts(name: str) -> None:
    service = services()[name]
    assert service.get("restart") == "unless-stopped", name
    check = service.get("healthcheck")
    if check is None:
        assert _dockerfile_has_healthcheck(service), f"{name}: no health check"
    else:
        assert not check.get("disable") and check["test"] not in (["NONE"], "NONE"), name


def test_the_trainer_runs_once_as_the_kubernetes_job_does() -> None:
    trainer = services()["trainer"]
    assert trainer.get("restart", "no") == "no"
    assert trainer["image"] == services()["gateway-1"]["image"]
    job = yaml.safe_load((ROOT / "k8s" / "base" / "trainer.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert trainer["command"] == container["command"]
    assert "--if-missing" in trainer["command"]


@pytest.mark.parametrize("name", GATEWAYS)
def test_gateways_wait_for_the_trainer_and_what_they_need(name: str) -> None:
    depends = services()[name]["depends_on"]
    assert depends["trainer"]["condition"] == "service_completed_successfully"
    for dependency in ("redis", "cache", "mlflow"):
        assert depends[dependency]["condition"] == "service_healthy", dependency
    assert services()["trainer"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services()["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_two_gateways_are_one_definition() -> None:
    first, second = (services()[name] for name in GATEWAYS)
    assert first == second


def test_stop_grace_periods_cover_the_drain_and_a_chunk() -> None:
    def seconds(value: str) -> float:
        return float(value.removesuffix("s"))

    gateway = _from_env(GatewaySettings, env("gateway-1"))
    assert isinstance(gateway, GatewaySettings)
    grace = seconds(services()["gateway-1"]["stop_grace_period"])
    assert grace > gateway.drain_seconds + gateway.graceful_shutdown_seconds
    worker = _from_env(WorkerSettings, env("worker"))
    assert isinstance(worker, WorkerSettings)
    assert seconds(services()["worker"]["stop_grace_period"]) > worker.task_time_limit_seconds


# --- what is reachable from outside --------------------------------------------------------------


def test_only_nginx_grafana_and_prometheus_publish_ports() -> None:
    published = {name: s["ports"] for name, s in services().items() if s.get("ports")}
    assert set(published) == {"nginx", "grafana", "prometheus"}
    # Grafana and Prometheus (no authentication) on this machine only.
    for name in ("grafana", "prometheus"):
        assert all(str(port).startswith("127.0.0.1:") for port in published[name]), name
    for service in services().values():
        assert service.get("network_mode") != "host"
        assert not service.get("expose")


def test_nginx_publishes_the_ports_its_servers_listen_on() -> None:
    inside = {int(str(port).rsplit(":", 1)[1]) for port in services()["nginx"]["ports"]}
    listens = set()
    for path in ("modelgate.conf", "tls/tls.conf.example", "grpc.conf"):
        found = re.findall(r"^\s*listen\s+(\d+)", (NGINX_DIR / path).read_text(), re.MULTILINE)
        listens |= {int(port) for port in found}
    assert inside == listens


def _upstream_servers() -> list[str]:
    text = (NGINX_DIR / "upstreams.conf").read_text()
    return re.findall(r"^\s*server\s+(\S+)", text, re.MULTILINE)


def test_nginx_proxies_only_the_gateways_api_port() -> None:
    ports = {int(env(name)["MODELGATE_PORT"]) for name in GATEWAYS}
    assert sorted(_upstream_servers()) == sorted(
        f"{name}:{port}" for name in GATEWAYS for port in ports
    )
    metrics = {env(name)["MODELGATE_METRICS_PORT"] for name in GATEWAYS}
    assert not metrics & ports
    config = (NGINX_DIR / "modelgate.conf").read_text()
    (upstream,) = re.findall(r"^upstream\s+(\S+)", (NGINX_DIR / "upstreams.conf").read_text(), re.M)
    assert set(re.findall(r"proxy_pass\s+([^;]+);", config)) == {f"http://{upstream}"}
    assert "mlflow" not in config


def test_nginx_proxies_grpc_to_the_gateways_grpc_port_only() -> None:
    config = (NGINX_DIR / "grpc.conf").read_text()
    ports = {int(env(name)["MODELGATE_GRPC_PORT"]) for name in GATEWAYS}
    assert ports.isdisjoint(
        {
            int(env(name)[key])
            for name in GATEWAYS
            for key in ("MODELGATE_PORT", "MODELGATE_METRICS_PORT")
        }
    )
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", config, re.MULTILINE)
    assert sorted(servers) == sorted(f"{name}:{port}" for name in GATEWAYS for port in ports)
    (upstream,) = re.findall(r"^upstream\s+(\S+)", config, re.MULTILINE)
    assert set(re.findall(r"grpc_pass\s+([^;]+);", config)) == {f"grpc://{upstream}"}
    assert "proxy_pass" not in config and "mlflow" not in config
    # HTTP/2 on its own port; a body limit above the gateway's, which answers RESOURCE_EXHAUSTED.
    (listen,) = re.findall(r"^\s*listen\s+([^;]+);", config, re.MULTILINE)
    assert listen.split()[1:] == ["http2"]
    (size,) = re.findall(r"client_max_body_size\s+(\d+)m;", config)
    assert int(size) * 1024**2 > max(
        _from_env(GatewaySettings, env(n)).max_body_bytes for n in GATEWAYS
    )
    (retry,) = re.findall(r"^\s*grpc_next_upstream\s+([^;]+);", config, re.MULTILINE)
    assert "error" in retry.split() and "non_idempotent" not in retry.split()
    assert re.search(r"grpc_set_header\s+X-Request-ID\s+\$\w+;", config)
    for line in config.splitlines():
        if re.match(r"\s*server\s+\S+:\d+", line):
            assert "max_fails=" in line and "fail_timeout=" in line


def test_nginx_retries_refused_connections_but_never_a_request_sent() -> None:
    config = (NGINX_DIR / "modelgate.conf").read_text()
    (retry,) = re.findall(r"^\s*proxy_next_upstream\s+([^;]+);", config, re.MULTILINE)
    assert "error" in retry.split() and "non_idempotent" not in retry.split()
    assert re.search(r"proxy_set_header\s+X-Request-ID\s+\$\w+;", config)
    for line in (NGINX_DIR / "upstreams.conf").read_text().splitlines():
        if re.match(r"\s*server\s", line):
            assert "max_fails=" in line and "fail_timeout=" in line


# --- MLflow, Redis, PostgreSQL ----------------------------------------------------------------


def test_clients_reach_mlflow_by_a_host_it_accepts_and_it_stores_in_postgres() -> None:
    uri = urllib.parse.urlsplit(env("gateway-1")["MODELGATE_MLFLOW_TRACKING_URI"])
    assert uri.hostname == "mlflow" and uri.port == int(env("mlflow")["MODELGATE_MLFLOW_PORT"])
    for name in ("gateway-1", "gateway-2", "worker", "trainer"):
        assert env(name)["MODELGATE_MLFLOW_TRACKING_URI"] == uri.geturl(), name
    hosts = env("mlflow")["MODELGATE_MLFLOW_ALLOWED_HOSTS"].split(",")
    assert is_allowed_host_header(hosts, uri.netloc)
    assert is_allowed_host_header(hosts, "localhost:5000")
    for other in ("evil.example.com", "mlflow.evil.example.com:5000", "gateway-1:5000"):
        assert not is_allowed_host_header(hosts, other)
    store = urllib.parse.urlsplit(env("mlflow")["MODELGATE_MLFLOW_BACKEND_STORE_URI"])
    postgres = env("postgres")
    assert store.scheme == "postgresql" and store.hostname == "postgres"
    assert store.username == postgres["POSTGRES_USER"] == "mlflow"
    assert store.password == postgres["POSTGRES_PASSWORD"]
    assert store.path == f"/{postgres['POSTGRES_DB']}" == "/mlflow"


def _volume_targets(service: str) -> dict[str, str]:
    """Mount target -> source, for the short syntax `source:target[:mode]`."""
    mounts = {}
    for volume in services()[service].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    return mounts


def test_mlflow_artifacts_are_on_a_volume_the_server_proxies() -> None:
    destination = env("mlflow")["MODELGATE_MLFLOW_ARTIFACTS_DESTINATION"]
    assert destination == "/var/lib/mlflow/artifacts"
    assert _volume_targets("mlflow")[destination] in compose()["volumes"]
    assert "ports" not in services()["mlflow"]


def _redis_args(service: str) -> dict[str, str]:
    argv = services()[service]["command"]
    assert argv[0] == "redis-server"
    return dict(zip(argv[1::2], argv[2::2], strict=True))


def test_the_two_redis_roles() -> None:
    durable, cache = _redis_args("redis"), _redis_args("cache")
    assert durable["--appendonly"] == "yes" and durable["--maxmemory-policy"] == "noeviction"
    assert _volume_targets("redis")["/data"] in compose()["volumes"]
    assert cache["--maxmemory-policy"] == "allkeys-lru" and cache["--maxmemory"]
    assert cache["--appendonly"] == "no" and cache["--save"] == ""
    assert not _volume_targets("cache")
    for name in ("gateway-1", "worker"):
        assert urllib.parse.urlsplit(env(name)["MODELGATE_REDIS_URL"]).hostname == "redis"
    assert urllib.parse.urlsplit(env("gateway-1")["MODELGATE_CACHE_URL"]).hostname == "cache"
    redis_image = services()["redis"]["image"]
    assert redis_image == services()["cache"]["image"] and redis_image.startswith("redis:7.")


def test_prometheus_scrapes_the_services_on_their_metrics_ports() -> None:
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["gateway"]["static_configs"][0]["targets"]
    assert targets == [f"{name}:{env(name)['MODELGATE_METRICS_PORT']}" for name in GATEWAYS]
    (workers,) = jobs["worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and "worker" in services()
    assert workers["port"] == int(env("worker")["MODELGATE_WORKER_HEALTH_PORT"])
    assert env("worker")["MODELGATE_WORKER_HEALTH_HOST"] == "0.0.0.0"


# --- files mounted from the checkout -------------------------------------------------------------


def test_files_mounted_from_the_checkout_exist() -> None:
    bind_mounts = 0
    for name in services():
        for target, source in _volume_targets(name).items():
            if source.startswith((".", "/")):
                bind_mounts += 1
                assert (ROOT / source).exists(), f"{name}: {source} -> {target}"
            else:
                assert source in compose()["volumes"], f"{name}: volume {source} not declared"
    assert bind_mounts >= 5


def test_monitoring_is_mounted_where_its_config_expects() -> None:
    assert _volume_targets("prometheus")["/etc/prometheus"] == "./monitoring/prometheus"
    grafana = _volume_targets("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/modelgate.yml").read_text()
    )
    dashboards = provider["providers"][0]["options"]["path"]
    assert grafana[dashboards] == "./monitoring/grafana/dashboards"


def test_nginx_mounts_the_server_config_and_its_includes() -> None:
    mounts = _volume_targets("nginx")
    assert mounts["/etc/nginx/conf.d/default.conf"] == "./compose/nginx/modelgate.conf"
    # The official image's nginx.conf includes every /etc/nginx/conf.d/*.conf.
    assert mounts["/etc/nginx/conf.d/grpc.conf"] == "./compose/nginx/grpc.conf"
    assert "include" not in (NGINX_DIR / "grpc.conf").read_text()
    directory = mounts["/etc/nginx/modelgate"]
    assert directory == "./compose/nginx"
    config = (NGINX_DIR / "modelgate.conf").read_text()
    includes = re.findall(r"^\s*include\s+(\S+);", config, re.MULTILINE)
    assert includes == ["/etc/nginx/modelgate/upstreams.conf", "/etc/nginx/modelgate/tls/*.conf"]
    tls = (NGINX_DIR / "tls" / "tls.conf.example").read_text()
    for path in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", tls):
        assert path.startswith("/etc/nginx/modelgate/tls/"), path


# --- nginx -t ---------------------------------------------------------------------------------


def _server_body(text: str) -> str:
    """From the first proxy-related directive to the end of the server block: what the HTTP
    and the HTTPS servers must share."""
    start = text.index("    client_max_body_size")
    end = text.index("\n}", start)
    return text[start:end]


def test_the_tls_server_serves_what_the_http_server_does() -> None:
    plain = (NGINX_DIR / "modelgate.conf").read_text()
    tls = (NGINX_DIR / "tls" / "tls.conf.example").read_text()
    assert _server_body(tls) == _server_body(plain)


def test_nginx_accepts_the_config_with_the_tls_server(tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        pytest.fail("nginx not found: `make tools-check` (Debian package nginx-light)")
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (Debian package openssl)")
    etc = tmp_path / "modelgate"
    shutil.copytree(NGINX_DIR, etc)
    # The upstreams' names resolve only on the compose network.
    for upstreams in (etc / "upstreams.conf", etc / "grpc.conf"):
        upstreams.write_text(re.sub(r"gateway-\d", "127.0.0.1", upstreams.read_text()))
    (etc / "tls" / "tls.conf").write_text((etc / "tls" / "tls.conf.example").read_text())
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(etc / "tls" / "tls.key")]
        + ["-out", str(etc / "tls" / "tls.crt")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for path in (etc / "modelgate.conf", etc / "tls" / "tls.conf"):
        path.write_text(path.read_text().replace("/etc/nginx/modelgate", str(etc)))
    main = tmp_path / "nginx.conf"
    temp = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n{temp}    include {etc / 'modelgate.conf'};\n"
        f"    include {etc / 'grpc.conf'};\n}}\n"
    )
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ssl" in (etc / "tls" / "tls.conf").read_text()
