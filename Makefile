# Modelgate developer entry points. `make` (or `make help`) lists the targets.
#
# Targets are documented by a `## ` comment on their rule line; `make help` prints those.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
VENV_BIN := $(abspath $(VENV))/bin
# Written after a successful install; its prerequisites make the install re-run when they change.
# The venv's packages are installed by uv (seconds, where pip takes about two minutes here),
# itself installed by the venv's pip; the dev extra pins the same version. Byte-compiled at
# install, as pip does: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (this
# machine sets it) every process would compile MLflow, scikit-learn... from source at start.
UV_PIN := uv==0.13.9
VENV_STAMP := $(VENV)/.modelgate-installed

# Ports of `make up`. They are the Makefile's, not the services' (docs/design.md, Settings).
GATEWAY_PORT ?= 8000
# The gateway's Open Inference Protocol V2 over gRPC (MODELGATE_GRPC_PORT).
GRPC_PORT ?= 8001
MLFLOW_PORT ?= 5000
REDIS_PORT ?= 6380
CACHE_PORT := $(shell echo $$(( $(REDIS_PORT) + 1 )))

VAR_DIR := $(CURDIR)/var
STACK_ENV := $(VAR_DIR)/stack.env

# Redis roles: a URL given in the environment points at an existing server, which then is not
# started here. With only MODELGATE_REDIS_URL given, the cache shares it (as the settings do).
ifdef MODELGATE_REDIS_URL
  UP_REDIS_URL := $(MODELGATE_REDIS_URL)
  UP_PROCS :=
else
  UP_REDIS_URL := redis://127.0.0.1:$(REDIS_PORT)/0
  UP_PROCS := redis
endif
ifdef MODELGATE_CACHE_URL
  UP_CACHE_URL := $(MODELGATE_CACHE_URL)
else ifdef MODELGATE_REDIS_URL
  UP_CACHE_URL := $(MODELGATE_REDIS_URL)
else
  UP_CACHE_URL := redis://127.0.0.1:$(CACHE_PORT)/0
  UP_PROCS += cache
endif
UP_PROCS += mlflow trainer gateway worker
# Served models: every registered model with the alias production, /predict answering for iris,
# unless MODELGATE_MODELS is given (then its first explicit entry answers /predict, as before).
ifdef MODELGATE_MODELS
  UP_MODELS := $(MODELGATE_MODELS)
  UP_DEFAULT_MODEL := $(MODELGATE_DEFAULT_MODEL)
else
  UP_MODELS := *@production
  UP_DEFAULT_MODEL := $(or $(MODELGATE_DEFAULT_MODEL),iris)
endif
# redis-server is needed only when `make up` starts one of the two Redis roles.
UP_NEEDS_REDIS := $(filter redis cache,$(UP_PROCS))

PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest-xdist processes, a test module per process at a
# time (--dist loadfile: a module's fixtures stay in one process). Each starts its own Redis and
# MLflow; most integration tests wait on processes, so three share two cores well.
TEST_WORKERS ?= 3

# A URL as printed: any password replaced by ***.
mask = $(shell printf '%s' '$(1)' | sed -E 's#//[^/@]*@#//***@#')

.PHONY: help venv redis-check tools-check up status down soak lint format test docs unit integration bench load proto clean clients-venv

help: ## List the targets (this text)
	@echo "Modelgate: make <target> [VAR=value ...]"
	@echo
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^#]*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: VENV=$(VENV) PYTHON=$(PYTHON) GATEWAY_PORT=$(GATEWAY_PORT)" \
		"GRPC_PORT=$(GRPC_PORT) MLFLOW_PORT=$(MLFLOW_PORT) REDIS_PORT=$(REDIS_PORT) (cache: REDIS_PORT+1)"

venv: $(VENV_STAMP) ## Create the venv (VENV, default .venv) and install the pinned dependencies

$(VENV_STAMP): pyproject.toml constraints.txt client/pyproject.toml
	@test -x $(VENV)/bin/python || command -v $(PYTHON) >/dev/null \
		|| { echo "$(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(UV_PIN)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python \
		-c constraints.txt -e '.[dev]' -e './client[pandas]'
	touch $@

# Debian packages the tests and benchmarks run for real: command:package pairs.
SYSTEM_TOOLS ?= redis-server:redis-server nginx:nginx-light promtool:prometheus wrk:wrk
REDIS_TOOLS := redis-server:redis-server

# $(call need-tools,cmd:pkg ...): install the Debian packages of missing commands (as root).
define need-tools
	@missing=""; for pair in $(1); do \
		command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null || exit 1; \
	else \
		echo "missing:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; exit 1; \
	fi
endef

redis-check: ## Make sure redis-server is installed (installs Debian's package as root)
	$(call need-tools,$(REDIS_TOOLS))

tools-check: ## Make sure redis-server, nginx, promtool and wrk are installed (Debian packages, as root)
	$(call need-tools,$(SYSTEM_TOOLS))

# devstack.up runs supervisord (-n, in the foreground) over the Procfile's processes: it restarts
# a process that exits (with backoff when it keeps failing at start), prints why, and keeps the
# others running. It is exec'd so that the SIGTERM make forwards to its child reaches it; in a
# terminal it gives the terminal to supervisord, so that Ctrl-C stops everything and `make up`
# ends in 0 (make kills itself with a SIGINT it receives). Everything runs under umask 077:
# var/ holds keys, job data and the registry (the chmod tightens a var/ of an older make up).
# `make status` and `make down` use the control socket in var/.
up: venv $(if $(UP_NEEDS_REDIS),redis-check) ## Run Redis x2, MLflow, the demo trainer, the gateway and a worker in the foreground, restarted when they exit (Ctrl-C stops all)
	@umask 077; mkdir -p $(VAR_DIR)/redis $(VAR_DIR)/mlflow/artifacts
	@chmod go-rwx $(VAR_DIR); chmod -R go-rwx $(VAR_DIR)/redis $(VAR_DIR)/mlflow
	@umask 077; printf '%s\n' \
		"MODELGATE_MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)" \
		"MODELGATE_REDIS_URL=$(UP_REDIS_URL)" \
		"MODELGATE_CACHE_URL=$(UP_CACHE_URL)" \
		"MODELGATE_PORT=$(GATEWAY_PORT)" \
		"MODELGATE_GRPC_PORT=$(GRPC_PORT)" \
		"MODELGATE_GATEWAY_URL=http://127.0.0.1:$(GATEWAY_PORT)" > $(STACK_ENV).tmp
	@mv $(STACK_ENV).tmp $(STACK_ENV)
	@echo "Modelgate stack (addresses recorded in $(STACK_ENV) for the modelgate CLI):"
	@echo "  gateway    http://127.0.0.1:$(GATEWAY_PORT)  (ready at /readyz once the model loads)"
	@echo "  gRPC       127.0.0.1:$(GRPC_PORT)  (Open Inference Protocol V2, grpc.health.v1)"
	@echo "  MLflow UI  http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "  redis      $(call mask,$(UP_REDIS_URL))  (durable)"
	@echo "  cache      $(call mask,$(UP_CACHE_URL))"
	@echo "Starting: $(strip $(UP_PROCS)). Ctrl-C, SIGTERM or make down stops everything; make status lists them."
	@export PATH="$(VENV_BIN):$$PATH" VENV_BIN="$(VENV_BIN)" VAR_DIR="$(VAR_DIR)" \
		REDIS_PORT="$(REDIS_PORT)" CACHE_PORT="$(CACHE_PORT)" MLFLOW_PORT="$(MLFLOW_PORT)" \
		GATEWAY_PORT="$(GATEWAY_PORT)" GRPC_PORT="$(GRPC_PORT)" MODELGATE_MODELS='$(UP_MODELS)' \
		MODELGATE_DEFAULT_MODEL='$(UP_DEFAULT_MODEL)'; \
	exec "$(VENV_BIN)/python" -m devstack.up --var-dir "$(VAR_DIR)" --procfile Procfile \
		--env-file $(STACK_ENV) $(strip $(UP_PROCS))

SUPERVISORCTL = "$(VENV_BIN)/supervisorctl" -c "$(VAR_DIR)/supervisord.conf"

# supervisorctl's status is 3 when a process is not running, as the finished trainer is not.
status: ## List the processes of the running `make up` (state, pid, uptime)
	@$(SUPERVISORCTL) status || test $$? -eq 3

down: ## Stop the running `make up` from another terminal (as Ctrl-C does)
	@$(SUPERVISORCTL) shutdown

# `make soak`: a soak and chaos run (not a test) of the supervised stack, on its own ports and in
# var/soak/: sync predictions on every protocol, jobs, key churn and promotions while the worker,
# the gateway and the durable Redis are SIGKILLed in turn; then the durable-Redis restart test
# SOAK_RESTARTS times. Prints the report and writes bench/results/soak.json (bench/soak.py).
SOAK_MINUTES ?= 30
SOAK_RESTARTS ?= 10
SOAK_ARGS ?=

soak: venv redis-check ## Soak and chaos run of the supervised stack for SOAK_MINUTES (30), report in bench/results/soak.json
	$(VENV_BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --restart-rounds $(SOAK_RESTARTS) $(SOAK_ARGS)

lint: venv ## Run ruff (lint and format check) and mypy
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy kernel runtime registry jobs gateway worker cli devstack bench client/modelgate_client

format: venv ## Format the code with ruff and apply ruff's safe fixes
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

test: venv tools-check ## Run the linters, the docs build and the whole test suite (real Redis and MLflow; PYTEST_ARGS=...)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory docs
	$(VENV_BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clients-venv: venv ## Build (or reuse) var/clients-venv: tritonclient and KServe's client, pinned, for the protocol tests and docs
	$(VENV_BIN)/python -m devstack.clients_venv

docs: venv ## Build the docs site with mkdocs --strict (any broken link or warning fails) into var/site
	NO_MKDOCS_2_WARNING=1 $(VENV_BIN)/mkdocs build --strict --quiet --site-dir $(VAR_DIR)/site

unit: venv ## Run the unit tests only (no services)
	$(VENV_BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv tools-check ## Run the integration tests only (starts its own Redis, MLflow, gateway)
	$(VENV_BIN)/pytest tests/integration $(PYTEST_ARGS)

# `make bench`: the speed benchmark of issue 5 (not a test): starts its own Redis, MLflow and
# servers one at a time, drives them with wrk, prints a table and writes bench/results/*.json.
# About 10 minutes with the defaults; BENCH_ARGS="--seconds 5 --batch-rows 100000" is quicker.
BENCH_ARGS ?=

bench: venv tools-check ## Benchmark Modelgate against the seed app, mlflow models serve and a bare ONNX app (BENCH_ARGS=...)
	$(VENV_BIN)/python -m bench $(BENCH_ARGS)

# `make load`: locust against the stack of a running `make up` (its address from var/stack.env).
LOAD_USERS ?= 20
LOAD_SPAWN_RATE ?= 10
LOAD_SECONDS ?= 60
# A key with limits high enough that the run measures the stack, not the default rate limits.
LOAD_KEY_FILE := var/load-api-key

load: venv ## Load-test the running `make up` stack: LOAD_USERS users for LOAD_SECONDS; CSVs in var/load/
	@test -f $(STACK_ENV) || { echo "no $(STACK_ENV): start the stack with make up first"; exit 1; }
	@mkdir -p var/load
	@if [ -z "$$MODELGATE_API_KEY" ] && [ ! -s $(LOAD_KEY_FILE) ]; then \
		umask 077; $(VENV_BIN)/modelgate keys create --name load --owner load --scopes predict,jobs \
			--predict-limit 100000000/minute --reads-limit 100000000/minute --jobs-limit 100000/hour \
			| tail -n 1 > $(LOAD_KEY_FILE).tmp && mv $(LOAD_KEY_FILE).tmp $(LOAD_KEY_FILE) || exit 1; \
	fi
	MODELGATE_API_KEY="$${MODELGATE_API_KEY:-$$(cat $(LOAD_KEY_FILE))}" \
		$(VENV_BIN)/locust -f tests/load/locustfile.py --headless --only-summary \
		--users $(LOAD_USERS) --spawn-rate $(LOAD_SPAWN_RATE) --run-time $(LOAD_SECONDS)s \
		--csv var/load/load

# The gRPC stubs are committed (generated code: the images need no grpcio-tools). Each file gets
# a first line saying how it was made.
PROTO_PACKAGE := gateway/protocols/v2_grpc
PROTO_STUBS := $(addprefix $(PROTO_PACKAGE)/grpc_predict_v2_pb2,.py .pyi _grpc.py)

proto: venv ## Regenerate the gRPC stubs in gateway/protocols/v2_grpc/ from proto/grpc_predict_v2.proto
	$(VENV_BIN)/python -m grpc_tools.protoc -I$(PROTO_PACKAGE)=proto \
		--python_out=. --pyi_out=. --grpc_python_out=. proto/grpc_predict_v2.proto
	@for stub in $(PROTO_STUBS); do \
		sed -i '1i # Generated from proto/grpc_predict_v2.proto by `make proto` (grpcio-tools): do not edit.' "$$stub"; \
	done

clean: ## Delete var/: the local registry (models, MLflow db), Redis data and stack.env
	rm -rf var
