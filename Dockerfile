# CoreCast testbed in a container, for the smoke test in CI.
#
#   docker build -t localhost/corecast:smoke .
#   docker run --rm --privileged --network none -v "$PWD/results:/opt/corecast/results" localhost/corecast:smoke
#
# The image is set up by the same scripts/setup.sh that `make setup` runs on a
# VM; the default command is `make smoke`. The run needs --privileged (network
# namespaces, veth, Linux bridges, TUN): see docs/container.md. Workarounds for
# particular hosts (CA bundles, runtimes, ulimits) live in scripts/container/,
# not here.
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

# What setup.sh itself assumes is there: make to drive it, procps for sysctl
# and pkill (Mininet calls both).
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/corecast
COPY . .

# The Makefile's set-up: Debian packages plus .venv with `pip install -e .`.
# (`make setup` would also run the preflight, which needs the privileges only
# `docker run` grants; setup.sh itself needs none.)
RUN scripts/setup.sh \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

CMD ["make", "smoke"]
