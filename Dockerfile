# pgtender's image for Docker and Kubernetes work pools (deployments/README.md).
#
#   docker build -t registry.example.com/pgtender:0.1.0 .
#
# Two stages: the first builds a virtualenv from wheels only (every dependency pinned in
# deployments/constraints.txt, no compiler needed or installed), the second copies that virtualenv
# onto a clean slim Python and runs as an unprivileged user. The flows are imported from the
# installed package (flows.edge.entrypoints.<job>): deployments need no pull step.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/pgtender
COPY deployments/constraints.txt deployments/constraints.txt
# dependencies first (their own layer), binary wheels only: nothing is compiled here
RUN /opt/pgtender/bin/pip install --only-binary=:all: -r deployments/constraints.txt
COPY pyproject.toml README.md ./
COPY flows flows
COPY checks checks
COPY sql sql
RUN /opt/pgtender/bin/pip install --no-deps -c deployments/constraints.txt .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="pgtender" \
      org.opencontainers.image.description="Prefect 3 + GX maintenance orchestrator for PostgreSQL"
ENV PATH=/opt/pgtender/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PGTENDER_STATE_DIR=/var/lib/pgtender \
    PREFECT_HOME=/var/lib/pgtender/prefect \
    MPLCONFIGDIR=/var/lib/pgtender/matplotlib \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GX_ANALYTICS_ENABLED=false
RUN groupadd --system --gid 10001 pgtender \
    && useradd --system --uid 10001 --gid pgtender --home-dir /var/lib/pgtender --shell /usr/sbin/nologin pgtender \
    && mkdir -p /var/lib/pgtender /etc/pgtender \
    && chown pgtender:pgtender /var/lib/pgtender
COPY --from=build /opt/pgtender /opt/pgtender
USER 10001:10001
WORKDIR /var/lib/pgtender
# Installed and importable; with PREFECT_API_URL set (a worker's job, the late-run guard), the API
# answers. No database is contacted: a target being down is the job's finding, not the container's.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request, flows.core.settings; u = os.environ.get('PREFECT_API_URL'); u and urllib.request.urlopen(u.rstrip('/') + '/health', timeout=5)"]
# No ENTRYPOINT: Docker and Kubernetes workers start flow runs with their own command
# (`prefect flow-run execute`); the late-run guard runs `pgtender serve --guard-only`.
CMD ["pgtender", "--help"]
