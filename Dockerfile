# One image for every hookstream service: `hookstream matcher|sender|topics create`.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/hookstream
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
RUN /opt/hookstream/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home hookstream
COPY --from=build /opt/hookstream /opt/hookstream
ENV PATH=/opt/hookstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001
ENTRYPOINT ["hookstream"]
CMD ["--help"]
