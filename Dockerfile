# syntax=docker/dockerfile:1
#
# aipipe's images, one target each, from one build stage (docker-compose.yaml
# builds all three; the README's "Ways in" shows the commands):
#
#   control-plane   the control plane (admin :8082, internal :8083), SQLite in /data
#   mock-provider   the mock LLM providers (:18000) and `demo-seed`, which seeds
#                   the demo tenant as `make demo` does
#   envoy           the official Envoy 1.40 image with filter.wasm, upstream.wasm and
#                   envoy/compose.yaml, laid out as in the repository
#
# Base images are pinned by version tag (add `@sha256:` digests for
# reproducible builds where your registry allows). Every image runs as a
# non-root user. tests/tests/compose.rs lints this file with hadolint and
# checks the pins and users.

# ---- build: the native binaries and the Wasm modules --------------------------
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The toolchain, its components and the wasm32-wasip1 target come from
# rust-toolchain.toml on the first cargo call.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p aipipe-control-plane -p aipipe-tests \
        --bin aipipe-control-plane --bin mock-provider --bin demo-seed --bin envoy-graceful \
    && cargo build --locked --release --target wasm32-wasip1 -p aipipe-proxy-wasm -p aipipe-upstream-wasm \
    && mkdir -p /out/bin /out/data \
    && cp target/release/aipipe-control-plane target/release/mock-provider \
        target/release/demo-seed target/release/envoy-graceful /out/bin/ \
    && cp target/wasm32-wasip1/release/filter.wasm target/wasm32-wasip1/release/upstream.wasm /out/

# ---- runtime: Debian 12 (the builder's glibc), an unprivileged user ----------
# The binaries need only glibc and libgcc (SQLite is compiled in). Pinned to a
# Debian point release; bump it with Debian's.
FROM debian:12.12-slim AS runtime
RUN useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin aipipe

# ---- control plane ------------------------------------------------------------
FROM runtime AS control-plane
COPY --from=build /out/bin/aipipe-control-plane /usr/local/bin/aipipe-control-plane
# An empty /data owned by the runtime user: a new named volume mounted there
# starts with this owner, so the database can be created.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV AIPIPE_ADMIN_LISTEN=0.0.0.0:8082 \
    AIPIPE_INTERNAL_LISTEN=0.0.0.0:8083 \
    AIPIPE_DB=/data/aipipe.db
EXPOSE 8082 8083
ENTRYPOINT ["/usr/local/bin/aipipe-control-plane"]

# ---- mock providers (and the demo seed) ---------------------------------------
FROM runtime AS mock-provider
COPY --from=build /out/bin/mock-provider /out/bin/demo-seed /usr/local/bin/
USER 65532:65532
EXPOSE 18000
CMD ["/usr/local/bin/mock-provider", "--listen", "0.0.0.0:18000"]

# ---- Envoy with the filter ----------------------------------------------------
FROM envoyproxy/envoy:v1.40.0 AS envoy
# The repository's layout: envoy/compose.yaml names the module by the same
# relative path as envoy/demo.yaml.
WORKDIR /aipipe
COPY --from=build /out/filter.wasm /out/upstream.wasm /aipipe/target/wasm32-wasip1/release/
# Envoy exits at once on SIGTERM (a container stop), with the usage its filter
# still holds; envoy-graceful runs it as a child and drains it first
# (tests/src/bin/envoy-graceful.rs).
COPY --from=build /out/bin/envoy-graceful /usr/local/bin/envoy-graceful
COPY envoy/compose.yaml /aipipe/envoy/compose.yaml
# The image's own unprivileged `envoy` user (uid 101, what its entrypoint
# would switch to; started as it, the entrypoint runs Envoy directly).
USER 101:101
EXPOSE 10000 9901
CMD ["envoy-graceful", "-c", "envoy/compose.yaml", "--concurrency", "2"]
