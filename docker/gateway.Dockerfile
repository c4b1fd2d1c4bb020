# syntax=docker/dockerfile:1
# ghcr.io/modelgate/gateway: the HTTP gateway (`python -m gateway`), also the `modelgate` CLI and
# the one-shot trainer (`modelgate train --if-missing`). From the checkout:
#   docker build -f docker/gateway.Dockerfile -t ghcr.io/modelgate/gateway:dev .

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer, rebuilt only when the pins change: the package
# directories are empty here, so this installs the `gateway` group and an empty modelgate.
COPY pyproject.toml constraints.txt ./
RUN mkdir kernel runtime registry jobs gateway cli \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt '.[gateway,xgboost,lightgbm]'
# The model flavors' libraries (pyproject's extras). CatBoost's package requires plotly,
# matplotlib, graphviz and their dependencies (157 MB installed), which it never imports to
# load or predict: it is installed without them (its numpy, pandas, scipy and six are above).
# CatBoost itself is 288 MB installed: `--build-arg WITH_CATBOOST=false` leaves it out, and its
# versions are then refused naming the extra.
ARG WITH_CATBOOST=true
RUN if [ "$WITH_CATBOOST" = "true" ]; then \
        /opt/venv/bin/pip install --no-cache-dir --no-deps -c constraints.txt catboost; \
    fi
# What the gateway and the CLI import (docs/design.md: layers); never the worker's code.
COPY kernel kernel
COPY runtime runtime
COPY registry registry
COPY jobs jobs
COPY gateway gateway
COPY cli cli
# The Python client (its own distribution), which the CLI's `jobs` commands use; its one
# dependency, httpx, is in the gateway group already.
COPY client client
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --force-reinstall . ./client

FROM python:3.11.14-slim-bookworm
# LightGBM's library links the system's OpenMP runtime (XGBoost's wheel carries its own).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
# The uid and gid the Kubernetes pods run as (k8s/base: runAsUser 10001).
RUN groupadd --system --gid 10001 modelgate \
    && useradd --system --uid 10001 --gid modelgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin modelgate
COPY --from=build /opt/venv /opt/venv
# Listening on every interface is what a container needs; the rest are the settings' defaults
# (docs/settings.md), set by compose and the Kubernetes ConfigMaps. No secret here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELGATE_HOST=0.0.0.0 \
    MODELGATE_PORT=8000
WORKDIR /app
USER 10001:10001
# The API; gRPC on 8001 when MODELGATE_GRPC_PORT=8001; metrics on 9100 when
# MODELGATE_METRICS_PORT=9100 (never published by nginx).
EXPOSE 8000 8001 9100
# Alive, not ready: /readyz waits for the models (slim has no curl, so Python asks).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MODELGATE_PORT', '8000'), timeout=3)"]
CMD ["python", "-m", "gateway"]
