# loadgen: the load generator and the simulated server, on a slim Python, as a non-root user.
# Build from the repository root: docker build -f docker/loadgen.Dockerfile .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 loadgen \
    && mkdir /results \
    && chown loadgen /results

WORKDIR /opt/loadgen
COPY pyproject.toml README.md ./
COPY loadgen ./loadgen
RUN pip install --no-compile . \
    && rm -rf /opt/loadgen/loadgen

USER 10001
WORKDIR /results
EXPOSE 8002 8089 5557 9400
ENTRYPOINT ["loadgen"]
CMD ["--help"]
