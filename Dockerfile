# userpilot-gateway container image.
#
# Not built on the development machine (no Docker engine runs there); `make test` builds the
# same way (scripts/install-deps.sh, then the Makefile's configure step).
#
#   docker build -t userpilot-gateway .
#   docker run --rm -p 50051:50051 --stop-timeout 30 -e USERPILOT_API_KEY userpilot-gateway
#
# Arguments after the image name are gateway flags; every flag can also be set as
# USERPILOT_GATEWAY_<FLAG> (see README "Configuration").

# ---- Build: the same Debian packages and install script as `make test`. ----
FROM debian:12 AS build
WORKDIR /src
# The install script alone first, so that the dependency layer is cached across source edits.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# The same configuration path as `make test` (make deps + configure), building the binary only.
RUN make gateway BUILD=build CMAKE_FLAGS=-DCMAKE_BUILD_TYPE=Release

# ---- Runtime: the binary and the shared libraries it links, nothing else. ----
FROM debian:12-slim
# Mapped from `ldd build/service/userpilot-gateway` with `dpkg -S`: gRPC (libgrpc++, libgpr),
# Protobuf, Abseil, libcurl (OpenSSL flavour), hiredis (shared budgets), prometheus-cpp and
# civetweb (/metrics), spdlog and fmt (logs); their own dependencies come with them, and
# libstdc++/libgcc/libc are in the base image.
# ca-certificates provides the system CA bundle libcurl verifies Userpilot's certificate with.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libcurl4 libhiredis0.14 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 libspdlog1.10 libfmt9 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 gateway \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=build /src/build/service/userpilot-gateway /usr/local/bin/userpilot-gateway
USER 10001:10001
ENV USERPILOT_GATEWAY_LISTEN=0.0.0.0:50051
# 50051: gRPC (plaintext). 9464: Prometheus /metrics (plain HTTP).
EXPOSE 50051 9464
# The gateway drains on SIGTERM for up to --shutdown_grace (25 s): stop with a longer timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/userpilot-gateway"]
