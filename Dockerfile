# One image for every hookstream service; the command picks the service:
#   docker run IMAGE matcher | sender | admin | topics create
# Settings come only from HOOKSTREAM_* variables (see README.md, "Settings").
# Checked by tests/deploy (hadolint with .hadolint.yaml, the commands against the CLI).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: a virtual environment with hookstream and its dependencies (all binary wheels).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/hookstream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN /opt/hookstream/bin/pip install --no-compile . \
    && /opt/hookstream/bin/python -m compileall -q /opt/hookstream/lib

# Final stage: the same slim base, the virtual environment, a non-root user; no pip run, no compiler.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="hookstream" \
      org.opencontainers.image.description="Webhook delivery on Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 hookstream \
    && useradd --system --uid 10001 --gid hookstream --create-home --home-dir /home/hookstream \
       --shell /usr/sbin/nologin hookstream
COPY --from=build /opt/hookstream /opt/hookstream
ENV PATH=/opt/hookstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/hookstream
USER 10001:10001
# Documentation only: the matcher's and sender's ops ports and the admin API (settings defaults).
EXPOSE 9101 9102 8080
ENTRYPOINT ["hookstream"]
CMD ["--help"]
