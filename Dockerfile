# syntax=docker/dockerfile:1
#
# Prism's container images, built from the Cargo workspace at the repository root.
#
#   docker build --target api    -t prism-api    --build-arg PRISM_GIT_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker build --target worker -t prism-worker --build-arg PRISM_GIT_REVISION=$(git rev-parse --short=12 HEAD) .
#
# Stages: `builder` compiles both binaries once; `runtime-base` is the shared slim
# runtime; `worker` and `api` are the two final images (`api` is last, so it is also
# what a plain `docker build .` produces). The api image also runs the migrations:
# `docker run … prism-api migrate up` (ops/docker-compose.yml's `migrate` service).
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# The workspace declares rust-version 1.88 (edition 2021); `rust:1-bookworm` is the
# newest stable 1.x on the same Debian release as the runtime, so glibc matches.
WORKDIR /src

# Sentry's `release` is `prism@<revision>`. telemetry/build.rs reads it from git, but
# .git is not in the build context (.dockerignore), so CI passes it in; without it the
# release is `prism@unknown`.
ARG PRISM_GIT_REVISION=unknown

COPY . .

# Dependency caching: the cargo registry and the target directory are BuildKit cache
# mounts, so a rebuild recompiles only what changed (normally just the workspace
# crates) instead of the whole dependency graph. A cache mount is not part of the
# image, so the binaries are copied out of it in the same step.
#
# Cargo decides whether a workspace crate is stale by file modification times. Build
# contexts do not always carry meaningful mtimes (some CI checkouts and reproducible-
# build settings normalise them), which could leave a stale binary from the cache in
# a release image; touching the workspace sources first makes every workspace crate
# rebuild while dependencies stay cached.
RUN --mount=type=cache,id=prism-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=prism-cargo-git,target=/usr/local/cargo/git/db,sharing=locked \
    --mount=type=cache,id=prism-target-release,target=/src/target,sharing=locked \
    set -eux; \
    find . -path ./target -prune -o -type f -name '*.rs' -exec touch {} +; \
    PRISM_GIT_REVISION="${PRISM_GIT_REVISION}" \
      cargo build --release --locked --bin prism-api --bin prism-worker; \
    mkdir -p /out; \
    cp target/release/prism-api target/release/prism-worker /out/

# ---------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# ca-certificates: TLS to Postgres, the Clerk JWKS, Sentry and the OTLP collector.
# curl: the HEALTHCHECK probe. bookworm-slim ships neither curl nor wget and the
# binaries have no health subcommand, so curl (--no-install-recommends, ~5 MB with
# libcurl) is the smallest dependable probe. It is only run by the container runtime.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 prism; \
    useradd --system --uid 10001 --gid prism --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin prism

ARG PRISM_GIT_REVISION=unknown
LABEL org.opencontainers.image.vendor="Prism" \
      org.opencontainers.image.revision="${PRISM_GIT_REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"

# Safe by default: ENV=production makes both binaries refuse unsafe settings at start-up
# (docs/configuration.md). The local stack sets ENV=development explicitly.
ENV ENV=production \
    RUST_LOG=info

# ---------------------------------------------------------------------------------------
FROM runtime-base AS worker
LABEL org.opencontainers.image.title="prism-worker" \
      org.opencontainers.image.description="Prism projection workers (apalis): /health, /ready, /metrics on WORKER_PORT"
COPY --from=builder /out/prism-worker /usr/local/bin/prism-worker
ENV WORKER_PORT=8081
# The uid is 10001 (numeric for orchestrators that check runAsNonRoot: set
# runAsUser: 10001 there, as Kubernetes cannot verify a user name).
USER prism
EXPOSE 8081
# Liveness only (/health): /ready also needs Postgres and Redis, and a dependency outage
# is not a reason to replace the container.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${WORKER_PORT}/health" || exit 1
# The binary is PID 1 and handles SIGTERM itself: in-flight batches finish, then it exits.
ENTRYPOINT ["/usr/local/bin/prism-worker"]
CMD ["run"]

# ---------------------------------------------------------------------------------------
FROM runtime-base AS api
LABEL org.opencontainers.image.title="prism-api" \
      org.opencontainers.image.description="Prism HTTP API on PORT; also runs the migrations (prism-api migrate up)"
COPY --from=builder /out/prism-api /usr/local/bin/prism-api
ENV PORT=8080
USER prism
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1
# `serve` by default; `migrate up|down|status`, `openapi` and `dev …` as arguments.
ENTRYPOINT ["/usr/local/bin/prism-api"]
CMD ["serve"]
