# syntax=docker/dockerfile:1
# ghcr.io/modelgate/mlflow: the MLflow tracking and registry server with PostgreSQL's driver
# (`python -m registry.server`). From the checkout:
#   docker build -f docker/mlflow.Dockerfile -t ghcr.io/modelgate/mlflow:dev .

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer, rebuilt only when the pins change: the package
# directory is empty here, so this installs the `server` group and an empty modelgate.
COPY pyproject.toml constraints.txt ./
RUN mkdir registry \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt '.[server]'
# registry.server is all of ours the server runs.
COPY registry registry
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --force-reinstall .

FROM python:3.11.14-slim-bookworm
# The uid and gid the Kubernetes pods run as (k8s/base: runAsUser 10001). The artifact
# directory is theirs, so a new volume mounted on it is too.
RUN groupadd --system --gid 10001 modelgate \
    && useradd --system --uid 10001 --gid modelgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin modelgate \
    && mkdir -p /var/lib/mlflow/artifacts \
    && chown -R 10001:10001 /var/lib/mlflow
COPY --from=build /opt/venv /opt/venv
# MODELGATE_MLFLOW_BACKEND_STORE_URI (it carries the database password) is not set here: it
# comes from the environment (compose, the Kubernetes Secret), and the server refuses to start
# without it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELGATE_MLFLOW_HOST=0.0.0.0 \
    MODELGATE_MLFLOW_PORT=5000 \
    MODELGATE_MLFLOW_ARTIFACTS_DESTINATION=/var/lib/mlflow/artifacts
WORKDIR /app
USER 10001:10001
EXPOSE 5000
# /health answers whatever the Host header (MLflow exempts it from its allowed-hosts check).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MODELGATE_MLFLOW_PORT', '5000'), timeout=3)"]
CMD ["python", "-m", "registry.server"]
