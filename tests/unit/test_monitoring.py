"""monitoring/: promtool accepts the config, the rules and their unit tests; the dashboards are
valid, parse as PromQL, and query only metrics the code exports.

promtool is Debian's `prometheus` package (`make tools-check` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

#: The alerts the issue asks for, by what they watch.
REQUIRED_ALERTS = {
    "ModelgateHighErrorRatio",  # error ratio
    "ModelgatePredictLatencyHigh",  # p99 latency
    "ModelgateQueueBacklogGrowing",  # queue backlog growing
    "ModelgateNoWorker",  # no worker
    "ModelgateModelNotReady",  # model not ready
    "ModelgateRedisDown",  # Redis down
    "ModelgateModelLoadRefused",  # a served version refused for a lasting reason
}
#: Grafana's variables, replaced by something PromQL parses.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: `make tools-check` (Debian package prometheus)")
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


# -- what the code exports ---------------------------------------------------------------------


def _sample_names(family: Metric) -> set[str]:
    """The names a family's samples carry (prometheus_client names a counter without `_total`)."""
    if family.type == "counter":
        return {f"{family.name}_total"}
    if family.type == "histogram":
        return {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    if family.type == "summary":
        return {family.name, f"{family.name}_count", f"{family.name}_sum"}
    return {family.name}


def _families() -> Iterator[Metric]:
    import gateway.metrics
    import worker.metrics
    from worker.queue_length import QueueLengthCollector

    assert gateway.metrics.HTTP_REQUESTS and worker.metrics.CHUNKS  # imported for registration
    yield from REGISTRY.collect()
    # Its names without a Redis round trip: `describe()`. Registering proves a registry uses it
    # too (without it, `register` would collect, and reach for a Redis that is not there).
    queue = QueueLengthCollector(Redis(port=1, socket_connect_timeout=0.1), "unused")
    CollectorRegistry().register(queue)
    yield from queue.describe()


def exported_names() -> set[str]:
    names = {"up"}  # written by Prometheus for every target
    for family in _families():
        if family.name.startswith("modelgate_"):
            names |= _sample_names(family)
    return names


# -- metric names in PromQL --------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKENS = re.compile(r"\d[\w.]*|[A-Za-z_:][\w:]*(?=\s*(\(?))")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords,
    label names, grouping labels, numbers or durations."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = _STRINGS.sub('""', expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _RANGES.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in _TOKENS.finditer(expr):
        token = match.group(0)
        called = match.group(1) == "("
        if token[0].isdigit() or called or token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def test_metric_names_finds_selectors_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(foo_bucket{route!~"/a|{b}", x="y"}'
        "[$__rate_interval]))) / on (job) group_left (model) bar_total offset 5m"
        ' > bool 1e3 and absent(up{job="worker"} == 1) or vector(0) unless baz:rec'
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total", "up", "baz:rec"}


# -- Prometheus ------------------------------------------------------------------------------


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    result = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The rule files are found through the config's relative glob, as in the container.
    assert f"{len(RULE_FILES)} rule files found" in result.stdout, result.stdout


def test_scrape_targets_are_the_compose_services() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["gateway"]["static_configs"][0]["targets"]
    assert targets == ["gateway-1:9100", "gateway-2:9100"]
    (workers,) = jobs["worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and workers["port"] == 9101


def test_rules_are_valid() -> None:
    assert RULE_FILES
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_the_required_alerts_exist_with_severity_and_summary() -> None:
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert alerts.keys() >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_rule_unit_tests_pass_and_cover_alerts() -> None:
    assert RULE_TESTS
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {check["alertname"] for check in case.get("alert_rule_test", [])}
    assert tested >= REQUIRED_ALERTS, REQUIRED_ALERTS - tested


def test_rules_query_only_exported_metrics() -> None:
    exported = exported_names() | {rule["record"] for rule in _rules() if "record" in rule}
    used: dict[str, set[str]] = {}
    for rule in _rules():
        used[rule.get("alert") or rule["record"]] = metric_names(rule["expr"])
    missing = {name: names - exported for name, names in used.items() if names - exported}
    assert not missing, missing
    assert set().union(*used.values()) >= {"modelgate_http_requests_total", "up"}


# -- Grafana -----------------------------------------------------------------------------------


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_dashboards_are_valid_json_with_unique_ids() -> None:
    assert {p.name for p in DASHBOARDS} == {"gateway.json", "worker.json"}
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for path in DASHBOARDS:
        dashboard = _load(path)
        ids = [panel["id"] for panel in _panels(dashboard)]
        assert len(set(ids)) == len(ids), path.name
        assert dashboard["title"] and _exprs(dashboard), path.name


def test_dashboards_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    for path in DASHBOARDS:
        for panel in _panels(_load(path)):
            if panel["type"] == "row":
                continue
            sources = [panel.get("datasource")] + [t.get("datasource") for t in panel["targets"]]
            assert all(s and s["uid"] in uids for s in sources), (path.name, panel["title"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/modelgate.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each query, Grafana's variables replaced, as a recording rule that promtool parses."""
    rules = []
    for path in DASHBOARDS:
        for n, expr in enumerate(_exprs(_load(path))):
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:{path.stem}:{n}", "expr": expr})
    rule_file = tmp_path / "dashboards.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_query_only_exported_metrics(path: Path) -> None:
    exported = exported_names()
    used = set().union(*(metric_names(expr) for expr in _exprs(_load(path))))
    assert used, path.name
    assert used <= exported, sorted(used - exported)


def test_dashboards_show_what_the_issue_asks_for() -> None:
    by_name = {
        path.stem: set().union(*map(metric_names, _exprs(_load(path)))) for path in DASHBOARDS
    }
    assert by_name["gateway"] >= {
        "modelgate_http_requests_total",  # req/s by route and status, error ratio
        "modelgate_http_request_seconds_bucket",  # p50/p99
        "modelgate_cache_hits_total",  # cache hit ratio
        "modelgate_cache_misses_total",
        "modelgate_batch_rows_sum",  # coalesced batch sizes
        "modelgate_rate_limited_total",
        "modelgate_model_version",
    }
    assert by_name["worker"] >= {
        "modelgate_worker_rows_total",
        "modelgate_worker_task_seconds_bucket",
        "modelgate_worker_chunk_failures_total",
        "modelgate_worker_redeliveries_total",
        "modelgate_queue_length",
    }


def test_the_kubernetes_scrape_config_names_the_jobs_the_alerts_use() -> None:
    """In the cluster, pods are found by service discovery; the job label must still be
    `gateway` or `worker`, which the alert rules and dashboards select on."""
    config = yaml.safe_load((PROMETHEUS / "kubernetes" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabel = job["relabel_configs"]
    component = "__meta_kubernetes_pod_label_app_kubernetes_io_component"
    assert {"source_labels": [component], "target_label": "job"} in relabel
    kept = [r for r in relabel if r.get("action") == "keep" and r["source_labels"] == [component]]
    assert kept and set(kept[0]["regex"].split("|")) == {"gateway", "worker"}
    rules = sorted(p.resolve() for p in (PROMETHEUS / "kubernetes").glob(config["rule_files"][0]))
    assert rules == sorted(p.resolve() for p in RULE_FILES)
    alert_jobs = set(re.findall(r'job="(\w+)"', "".join(p.read_text() for p in RULE_FILES)))
    assert alert_jobs <= {"gateway", "worker"}, alert_jobs
    # The pods it keeps carry that label and say where their metrics are.
    for name, port in (("gateway", "9100"), ("worker", "9101")):
        documents = yaml.safe_load_all((ROOT / "k8s" / "base" / f"{name}.yaml").read_text())
        (deployment,) = [d for d in documents if d and d["kind"] == "Deployment"]
        template = deployment["spec"]["template"]["metadata"]
        assert template["labels"]["app.kubernetes.io/component"] == name
        assert template["labels"]["app.kubernetes.io/name"] == "modelgate"
        assert template["annotations"]["prometheus.io/scrape"] == "true"
        assert template["annotations"]["prometheus.io/port"] == port
