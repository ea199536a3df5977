# syntax=docker/dockerfile:1.7
#
# One image, `commercex`, runs every part of CommerceX: the embedded platform (`serve`), or
# one service per container (`serve users`, ..., `serve gateway`). The per-service targets
# below are that image with its command set, so `docker build --target orders` gives an image
# that needs no arguments. docs/DEPLOYMENT.md has the build and push commands.
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) -> builder (dependencies
# cooked in their own cached layer, then the workspace) -> runtime (distroless, non-root).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# librdkafka (C and C++), OpenSSL for Kafka over TLS (perl for its build) and zlib are built
# from source and linked in statically.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make perl \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is rebuilt when Cargo.lock changes, not on every source change.
RUN cargo chef cook --release --locked --package commercex --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package commercex \
    && install -D -m 0755 target/release/commercex /out/usr/local/bin/commercex \
    && install -d -m 0750 /out/var/lib/commercex

# Distroless "cc": glibc, libgcc, libstdc++ and CA certificates, no shell, no package manager.
# The binary needs no more (OpenSSL and zlib are linked in statically; scripts/check-deploy
# checks the binary's dynamic libraries against this list).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="commercex" \
      org.opencontainers.image.description="CommerceX: an event-driven commerce backend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/commercex/commercex"
COPY --from=builder /out/usr/local/bin/commercex /usr/local/bin/commercex
# The embedded runtime's SQLite files; mount a volume here (the root filesystem can be
# read-only).
COPY --from=builder --chown=65532:65532 /out/var/lib/commercex /var/lib/commercex
ENV COMMERCEX_DATA_DIR=/var/lib/commercex \
    COMMERCEX_LISTEN=0.0.0.0:8080 \
    COMMERCEX_METRICS_LISTEN=0.0.0.0:9464 \
    COMMERCEX_LOG_FORMAT=json
# 65532 is distroless's `nonroot`; numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 9464
# No shell or curl here: the binary probes itself (the management listener's /healthz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/commercex", "probe", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["/usr/local/bin/commercex"]
CMD ["serve"]

# One target per service: the same image with its command set.
FROM runtime AS users
CMD ["serve", "users"]

FROM runtime AS catalog
CMD ["serve", "catalog"]

FROM runtime AS inventory
CMD ["serve", "inventory"]

FROM runtime AS orders
CMD ["serve", "orders"]

FROM runtime AS payments
CMD ["serve", "payments"]

FROM runtime AS webhooks
CMD ["serve", "webhooks"]

FROM runtime AS gateway
CMD ["serve", "gateway"]

# The default target (last): every service and the gateway in one container, SQLite in
# /var/lib/commercex. Also the image Kubernetes runs, with `serve <service>` as arguments.
FROM runtime AS embedded
CMD ["serve"]
