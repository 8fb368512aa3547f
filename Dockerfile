# syntax=docker/dockerfile:1
# One image for every churnwatch process; the command picks which one runs:
#   python -m services.ingest | services.scoring | services.alerts | shared.migrations
#   (and python -m deploy.dlq, the dead-letter tool of the runbook)
# Build: docker build -t churnwatch:<version> .
# (Docker is not available where the project's CI runs: CI lints this file with hadolint and
# checkov instead of building it — see docs/operations.md.)

# Release builds pin the base by digest: FROM python:3.11-slim-bookworm@sha256:…

# --- builder: a virtual environment with exactly the locked dependencies ----------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY requirements.lock ./
# Wheels only (every locked package publishes them for CPython 3.11 on linux), checked
# against the lock's hashes; nothing is compiled, so no compiler is needed even here.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        -r requirements.lock

COPY alembic.ini /app/
COPY shared /app/shared
COPY services /app/services
# The runbook's dead-letter tool: `python -m deploy.dlq` inside a pod (docs/operations.md).
COPY deploy/dlq.py /app/deploy/dlq.py
# Byte-compile once here: the root filesystem is read-only at run time. unchecked-hash keeps
# the .pyc files valid whatever timestamps the copy below gives the sources.
RUN python -m compileall -q --invalidation-mode unchecked-hash /app /opt/venv

# --- runtime: the interpreter, the environment and the code; no build tools -------------------
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="churnwatch" \
      org.opencontainers.image.description="Event-driven, explainable churn signals" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric user (Kubernetes' runAsNonRoot checks the number), owning nothing: the code
# stays root-owned and read-only to it.
RUN groupadd --system --gid 10001 churnwatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin churnwatch

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1

WORKDIR /app
USER 10001:10001
# ingest 8000, scoring 8001, alerts 8002 (each also serves /healthz, /readyz, /metrics there)
EXPOSE 8000 8001 8002
# Python is PID 1 on purpose: uvicorn installs its own SIGTERM handler (graceful drain), and the
# services start no child processes to reap.
CMD ["python", "-m", "services.ingest"]
