# One image for every role of the fleet twin; the command picks the role:
#   twin worker                              stream worker (Faust): /metrics /healthz /readyz on 6066
#   twin api                                 HTTP API (FastAPI/uvicorn) on 8080
#   twin collect redfish --targets FILE      Redfish collector
#   twin topics create | twin migrate        one-shot jobs before the first start and on upgrades
# Multi-stage: the build stage has pip and the sources; the runtime stage gets only the installed
# virtual environment and runs as an unprivileged user. Base images are pinned to an exact tag;
# pin them by digest too where your registry policy asks for it (docs/operations.md).
# Build from the repository root:  docker build -t fleet-twin:0.1.0 .

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/twin
# Dependencies first, from the project metadata alone, so a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p schemas twin streams && touch schemas/__init__.py twin/__init__.py streams/__init__.py \
    && /opt/twin/bin/pip install . \
    && /opt/twin/bin/pip uninstall -y fleet-twin
COPY schemas ./schemas
COPY twin ./twin
COPY streams ./streams
RUN /opt/twin/bin/pip install --no-deps . \
    && /opt/twin/bin/python -m compileall -q /opt/twin/lib

FROM ${PYTHON_IMAGE} AS runtime
ARG TWIN_UID=10001
RUN groupadd --system --gid ${TWIN_UID} twin \
    && useradd --system --uid ${TWIN_UID} --gid twin --home-dir /var/lib/twin --create-home --shell /usr/sbin/nologin twin
COPY --from=build /opt/twin /opt/twin
ENV PATH=/opt/twin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TWIN_STATE_DIR=/var/lib/twin \
    TWIN_WORKER_WEB_HOST=0.0.0.0 \
    TWIN_API_HOST=0.0.0.0 \
    TWIN_LOG_LEVEL=info
WORKDIR /var/lib/twin
USER ${TWIN_UID}:${TWIN_UID}
EXPOSE 6066 8080
ENTRYPOINT ["twin"]
CMD ["worker"]
