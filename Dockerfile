# Airlock's programs in one image on Debian 12: airlockd, airlock, mcp-tunnel, sandbox-agent and
# its four helpers (sandbox-agent-connected, -init, -toolbox, -unpack), all in /usr/local/bin.
#
#   docker build -t airlock:0.1.0 .
#
# The Kubernetes manifests (deploy/kubernetes/) run this image with the command each daemon
# needs. Build it FROM this image and add packages when the sandbox's tools need more than
# Debian's base system: `image: host` in sandbox.yaml runs tools on this image's own /usr, /bin
# and /lib, read-only.
# scripts/test checks this file against the build (test/deploy/deploy.test.mjs): the packages of
# the first stage provide every header and library the programs are built from, those of the
# second every shared library they load, and the COPY lines every source file.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libboost1.81-dev libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev \
      libsqlite3-dev libseccomp-dev libarchive-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY src src
# The console's pages and the deployment files it fills in are compiled into airlockd.
COPY console console
COPY deploy/kubernetes deploy/kubernetes
# Programs only: no tests, no benchmarks (those need GoogleTest and Node.js).
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DAIRLOCK_TESTS=OFF -DAIRLOCK_BENCH=OFF \
 && cmake --build /build \
 && DESTDIR=/out cmake --install /build --strip

FROM debian:12-slim
# The shared libraries the programs load, the CA store (TLS to airlockd and web_fetch), bash
# for the sandbox's shell under `image: host`, and curl for the agents' readiness probes (their
# /ready listens on loopback only).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libc6 libgcc-s1 libstdc++6 libssl3 libsqlite3-0 libarchive13 libprometheus-cpp-core1.0 \
      ca-certificates bash curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin airlock
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# airlockd and mcp-tunnel run as this user; sandbox-agent's Deployment runs as root
# (deploy/kubernetes/sandbox-deployment.yaml says why).
USER 10001
EXPOSE 8443
CMD ["airlockd", "--config", "/etc/airlock/airlockd.yaml"]
