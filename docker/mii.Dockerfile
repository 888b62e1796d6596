# DeepSpeed-MII's OpenAI-compatible server on an NVIDIA GPU (servers/mii/).
# Build from the repository root: docker build -f docker/mii.Dockerfile .
FROM nvidia/cuda:12.1.1-devel-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Python 3.10 (Ubuntu 22.04's), which deepspeed-mii 0.3.3 supports; nvcc comes with the base
# image: DeepSpeed compiles its inference kernels on the first start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.10.* python3-pip=22.0.* python3-dev=3.10.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 mii
WORKDIR /opt/mii
COPY servers/mii/requirements.txt servers/mii/launch.py ./
RUN pip3 install -r requirements.txt

USER 10001
EXPOSE 8001
ENTRYPOINT ["python3", "/opt/mii/launch.py"]
