# syntax=docker/dockerfile:1
# userpilot-gateway container image: the gateway binary on Debian 12, as a non-root user, with
# nothing else but the Debian packages of the shared libraries it loads.
#
#   docker build -t userpilot-gateway \
#     --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 50051:50051 --stop-timeout 30 -e USERPILOT_API_KEY userpilot-gateway
#
# buildah builds it the same way (`buildah bud -t userpilot-gateway --build-arg REVISION=... .`).
# Arguments after the image name are gateway flags; every flag can also be set as
# USERPILOT_GATEWAY_<FLAG> (docs/configuration.md). The root filesystem may be read-only
# (Kubernetes' readOnlyRootFilesystem): the gateway writes only import spool files, to
# --import_spool_dir (default /tmp), which must then be a writable volume.
#
# Build arguments:
#   DEBIAN_IMAGE  the Debian 12 image both stages start from. tests/image builds without a
#                 registry, from a local image made with `mmdebstrap --variant=minbase bookworm`.
#   VERSION, REVISION, SOURCE_URL
#                 the OCI labels org.opencontainers.image.{version,revision,source}; REVISION is
#                 also baked into the binary (`--version`, the userpilot_gateway_build_info
#                 metric), since the build context holds no .git.
#
# The `gateway` stage (the stripped binary and the list of its runtime packages) is built from
# source by default. A named build context of the same name replaces it with a binary built
# outside, on the same Debian release, as tests/image does in CI so that the gateway is not
# compiled twice:
#   buildah bud --build-context gateway=DIR ...   (DIR: userpilot-gateway, runtime-packages)
# The runtime stage is the same either way, and the test checks with ldd inside the image that
# every library the binary loads is there.

ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: compile the gateway from source with the packages of `make test`. ----
FROM ${DEBIAN_IMAGE} AS build
WORKDIR /src
# The install script alone first, so that the dependency layer is cached across source edits.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
ARG REVISION=unknown
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DUPGW_GIT_REVISION="${REVISION}" \
 && cmake --build /build --target userpilot-gateway -j"$(nproc)" \
 && mkdir /out \
 && strip -o /out/userpilot-gateway /build/service/userpilot-gateway \
 && deploy/image/runtime-packages.sh /out/userpilot-gateway >/out/runtime-packages

# ---- gateway: what the runtime stage takes from a build (replaceable, see above). ----
FROM scratch AS gateway
COPY --from=build /out/userpilot-gateway /out/runtime-packages /

# ---- runtime: the binary and the packages of the libraries it loads, nothing else. ----
FROM ${DEBIAN_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=https://github.com/userpilot-gateway/userpilot-gateway
LABEL org.opencontainers.image.title="userpilot-gateway" \
      org.opencontainers.image.description="gRPC gateway in front of Userpilot's REST API" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# runtime-packages: the Debian packages holding every library `ldd` lists for the binary
# (deploy/image/runtime-packages.sh). ca-certificates: the CA bundle libcurl verifies
# Userpilot's certificate with.
RUN --mount=type=bind,from=gateway,source=/runtime-packages,target=/tmp/runtime-packages \
    apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# The spool directory for imports (--import_spool_dir): the mount point of a writable volume
# when the root filesystem is read-only, as in deploy/kubernetes.
RUN groupadd --gid 10001 gateway \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway \
 && install -d -o 10001 -g 10001 -m 0700 /var/spool/userpilot-gateway
COPY --from=gateway /userpilot-gateway /usr/local/bin/userpilot-gateway
USER 10001:10001
ENV USERPILOT_GATEWAY_LISTEN=0.0.0.0:50051
# 50051: gRPC. 9464: Prometheus /metrics (plain HTTP).
EXPOSE 50051 9464
# The gateway drains on SIGTERM for up to --shutdown_grace (25 s): stop with a longer timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/userpilot-gateway"]
