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

# Behind a package-index mirror or a TLS-inspecting proxy: --build-arg PIP_INDEX_URL=URL (the
# mirror's simple index) and --build-arg EXTRA_CA_CERT="$(cat ca.pem)" (PEM certificates to trust
# besides the image's own, used for this build only). Defaults: PyPI and the image's CAs.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG EXTRA_CA_CERT=""

WORKDIR /opt/loadgen
COPY docker/pip-install.sh /usr/local/bin/pip-install
COPY pyproject.toml README.md ./
# The dependencies in a layer of their own, rebuilt only when pyproject.toml changes; then the
# package itself. No source or build file stays behind.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" >/tmp/requirements.txt \
    && pip-install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY loadgen ./loadgen
RUN pip-install --no-deps . \
    && rm -rf /opt/loadgen/loadgen

USER 10001
WORKDIR /results
EXPOSE 8002 8089 5557 9400
ENTRYPOINT ["loadgen"]
CMD ["--help"]
