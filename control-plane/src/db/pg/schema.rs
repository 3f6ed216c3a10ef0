//! The PostgreSQL schema, as versioned migrations (control-plane/README.md,
//! "PostgreSQL"). Migration 1 is the SQLite schema after its migrations 1–15
//! (`db/migrations.rs`): the same tables and columns, in PostgreSQL's types:
//!
//! - every integer is `BIGINT` (rusqlite reads them as `i64`; the port
//!   keeps its conversions), every real `DOUBLE PRECISION`, blobs `BYTEA`,
//!   JSON stays `TEXT` (stored and read back byte for byte, as on SQLite);
//! - the 0/1 flags SQLite keeps as integers are `BOOLEAN`: `tenants.disabled`,
//!   `tenants.pass_through`, `usage.stream`, `usage.usage_parsed`,
//!   `usage.cache_hit`, `usage.estimated`, `routing_feedback.good`;
//! - `meta`'s untyped `value` becomes one typed column per kind of value
//!   (`int_value`, `text_value`, `bytes_value`: exactly one is set), and the
//!   change log's revision (SQLite's `meta.table_version`) is the sequence
//!   `change_revision`;
//! - `INTEGER PRIMARY KEY` ids are identity columns;
//! - `usage` and `attempt_failures` are partitioned by UTC day on `ts_ms`
//!   (partitions are made by `partitions::ensure_days`); a partitioned
//!   table's unique keys must hold the partition key, so their primary keys
//!   gain `ts_ms` — a record keeps its `ts_ms` when a filter resends it, so
//!   ingest stays idempotent by record id.
//!
//! `migrated_from` records the SQLite database a `migrate` copied in.
//! Each later migration follows one of SQLite's (its name says which).
//! Never edit a migration that shipped; add the next.

pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "the SQLite schema of migrations 1-15",
        r#"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        int_value BIGINT,
        text_value TEXT,
        bytes_value BYTEA,
        CHECK (num_nonnulls(int_value, text_value, bytes_value) = 1)
    );
    -- The change log's revision: a change takes nextval; the current
    -- revision is its last value.
    CREATE SEQUENCE change_revision AS BIGINT MINVALUE 0 START 0;
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT false,
        created_at BIGINT NOT NULL,
        pass_through BOOLEAN NOT NULL DEFAULT true,
        policy TEXT
    );
    -- sealed = nonce || XChaCha20-Poly1305(key), tenant+provider as associated data.
    CREATE TABLE provider_keys (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        provider TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, provider)
    );
    CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant);
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        json TEXT NOT NULL
    );
    CREATE TABLE usage (
        id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        complexity DOUBLE PRECISION,
        stream BOOLEAN NOT NULL,
        usage_parsed BOOLEAN NOT NULL,
        ts_ms BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        cache_hit BOOLEAN NOT NULL DEFAULT false,
        estimated BOOLEAN NOT NULL DEFAULT false,
        virtual_key TEXT,
        PRIMARY KEY (id, ts_ms)
    ) PARTITION BY RANGE (ts_ms);
    CREATE INDEX usage_tenant_ts ON usage(tenant, ts_ms);
    CREATE TABLE usage_totals (
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        unparsed BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        failed_attempts BIGINT NOT NULL DEFAULT 0,
        cache_hits BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, provider, model)
    );
    CREATE TABLE attempt_failures (
        record_id TEXT NOT NULL,
        n BIGINT NOT NULL,
        ts_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status BIGINT NOT NULL,
        PRIMARY KEY (record_id, n, ts_ms)
    ) PARTITION BY RANGE (ts_ms);
    CREATE INDEX attempt_failures_stats ON attempt_failures(tenant, ts_ms, provider, model);
    CREATE TABLE penalties (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        key_tag TEXT NOT NULL DEFAULT '',
        penalty DOUBLE PRECISION NOT NULL,
        decayed_ms BIGINT NOT NULL,
        successes BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        published DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (provider, model, key_tag)
    );
    CREATE TABLE changes (
        kind BIGINT NOT NULL,
        name TEXT NOT NULL,
        rev BIGINT NOT NULL UNIQUE,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE tenant_deletions (
        tenant TEXT NOT NULL,
        deleted_at BIGINT NOT NULL
    );
    CREATE INDEX tenant_deletions_tenant ON tenant_deletions(tenant, deleted_at);
    CREATE TABLE budgets (
        tenant TEXT PRIMARY KEY,
        limit_nusd BIGINT NOT NULL,
        days BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE usage_days (
        tenant TEXT NOT NULL,
        day BIGINT NOT NULL,
        requests BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        PRIMARY KEY (tenant, day)
    );
    CREATE TABLE rate_limits (
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        requests_per_minute BIGINT NOT NULL,
        tokens_per_minute BIGINT NOT NULL,
        PRIMARY KEY (tenant, key_id)
    );
    CREATE TABLE budget_alerts (
        tenant TEXT NOT NULL,
        threshold BIGINT NOT NULL,
        fired_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, threshold)
    );
    CREATE TABLE webhook_outbox (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        body TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_ms BIGINT NOT NULL
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox(next_ms);
    CREATE TABLE cost_adjustments (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant TEXT NOT NULL,
        day BIGINT NOT NULL,
        previous_nusd BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        at_ms BIGINT NOT NULL
    );
    CREATE TABLE usage_rollups (
        tenant TEXT NOT NULL,
        width_ms BIGINT NOT NULL,
        start_ms BIGINT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        unparsed BIGINT NOT NULL,
        failed_attempts BIGINT NOT NULL,
        cache_hits BIGINT NOT NULL,
        cheap BIGINT NOT NULL,
        mid BIGINT NOT NULL,
        frontier BIGINT NOT NULL,
        unscored BIGINT NOT NULL,
        latency BYTEA,
        ttft BYTEA,
        PRIMARY KEY (tenant, width_ms, start_ms, provider, model)
    );
    CREATE TABLE usage_key_days (
        key_id TEXT NOT NULL,
        day BIGINT NOT NULL,
        requests BIGINT NOT NULL,
        cost_nusd BIGINT NOT NULL,
        PRIMARY KEY (key_id, day)
    );
    CREATE TABLE key_budgets (
        key_id TEXT PRIMARY KEY REFERENCES virtual_keys(id) ON DELETE CASCADE,
        limit_nusd BIGINT NOT NULL,
        days BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE key_budget_alerts (
        key_id TEXT NOT NULL REFERENCES virtual_keys(id) ON DELETE CASCADE,
        threshold BIGINT NOT NULL,
        fired_ms BIGINT NOT NULL,
        PRIMARY KEY (key_id, threshold)
    );
    CREATE TABLE routing_examples (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        tier TEXT NOT NULL,
        category TEXT,
        request TEXT,
        features BYTEA NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE INDEX routing_examples_tenant ON routing_examples(tenant, id);
    CREATE TABLE routing_feedback (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        request_id TEXT NOT NULL,
        good BOOLEAN NOT NULL,
        tier TEXT,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, request_id)
    );
    CREATE TABLE request_features (
        tenant TEXT NOT NULL,
        request_id TEXT NOT NULL,
        ts_ms BIGINT NOT NULL,
        complexity DOUBLE PRECISION NOT NULL,
        features BYTEA NOT NULL,
        PRIMARY KEY (tenant, request_id)
    );
    CREATE INDEX request_features_ts ON request_features(ts_ms);
    CREATE INDEX request_features_tenant_ts ON request_features(tenant, ts_ms);
    CREATE TABLE tenant_routers (
        tenant TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
        model_version BIGINT NOT NULL,
        examples BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        blob BYTEA NOT NULL,
        fitted_ms BIGINT NOT NULL
    );
    CREATE TABLE evals (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        finished_ms BIGINT,
        spec TEXT NOT NULL,
        results TEXT,
        error TEXT,
        applied_ms BIGINT,
        apply_error TEXT
    );
    CREATE INDEX evals_by_tenant ON evals(tenant, created_ms);
    -- The SQLite database `migrate` copied in (its fingerprint), and the
    -- row counts and revision the copy left: a re-run compares with them.
    CREATE TABLE migrated_from (
        source TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        copied_ms BIGINT NOT NULL
    );
    "#,
    ),
    (
        2,
        "state shared by replicas (SQLite's migration 16)",
        r#"
    -- Which control plane runs an eval (a random id per process) and when
    -- it last said it still does (db/evals.rs; control-plane/README.md,
    -- "Replicas"): a running eval whose heartbeat stopped is failed as
    -- interrupted by whichever control plane notices first.
    ALTER TABLE evals ADD COLUMN owner TEXT, ADD COLUMN heartbeat_ms BIGINT;
    CREATE INDEX evals_running ON evals(heartbeat_ms) WHERE status = 'running';
    -- Each Envoy's latest report, sent with its usage batches (db/envoys.rs):
    -- its usage queue, and the budget reservations of its requests in
    -- flight as JSON objects (tenant id or virtual key id → nano-dollars).
    -- At most envoys::MAX_ENVOYS rows, the least recently seen dropped first.
    CREATE TABLE envoy_reports (
        node TEXT PRIMARY KEY,
        queued BIGINT NOT NULL,
        dropped BIGINT NOT NULL,
        sent BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        reserved TEXT NOT NULL,
        key_reserved TEXT NOT NULL
    );
    CREATE INDEX envoy_reports_seen ON envoy_reports(last_seen_ms);
    "#,
    ),
    (
        3,
        "the catalog of 2026-12-05 (SQLite's migration 17)",
        // Rows only, no schema: `pg::prepare` writes them
        // (`db::migrations::catalog_2026_12`). A `migrate` copy brings the
        // catalog of a SQLite file that had migration 17 instead.
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        4,
        "Claude 5.x enabled (SQLite's migration 18)",
        // Rows only, as 3 (`db::migrations::claude_5`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        5,
        "claude-sonnet-4-5 retired (SQLite's migration 19)",
        // Rows only, as 3 (`db::migrations::sonnet_4_5`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        6,
        "gpt-6-luna added, disabled (SQLite's migration 20)",
        // Rows only, as 3 (`db::migrations::gpt_6_luna`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        7,
        "gemini-3.8-flash price change of 2027-01-01 scheduled (SQLite's migration 21)",
        // Rows only, as 3 (`db::migrations::scheduled_prices`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        8,
        "gpt-4o, gpt-4o-mini and claude-opus-4-5 retirements scheduled (SQLite's migration 22)",
        // Rows only, as 3 (`db::migrations::scheduled_retirements`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        9,
        "gpt-6-luna in service from 2027-01-14 (SQLite's migration 23)",
        // Rows only, as 3 (`db::migrations::luna_in_service`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        10,
        "Claude 5.x refuse a prefill (SQLite's migration 24)",
        // Rows only, as 3 (`db::migrations::claude_5_prefill`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        11,
        "gpt-6-luna's long-context rates (SQLite's migration 25)",
        // Rows only, as 3 (`db::migrations::long_context_rates`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        12,
        "claude-haiku-5-5 added, disabled (SQLite's migration 26)",
        // Rows only, as 3 (`db::migrations::claude_haiku_5_5`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        13,
        "Claude 5.x take a reasoning effort (SQLite's migration 27)",
        // Rows only, as 3 (`db::migrations::output_effort`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        14,
        "the GPT-4o generation takes no reasoning effort (SQLite's migration 28)",
        // Rows only, as 3 (`db::migrations::reasoning_effort`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        15,
        "gpt-6-luna takes tools with an effort over the Responses API (SQLite's migration 29)",
        // Rows only, as 3 (`db::migrations::responses_api`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        16,
        "OpenAI's models take no Anthropic extensions (SQLite's migration 30)",
        // Rows only, as 3 (`db::migrations::thinking_extensions`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        17,
        "Claude 5.x take adaptive thinking only (SQLite's migration 31)",
        // Rows only, as 3 (`db::migrations::adaptive_thinking`).
        "-- the catalog's rows are written by pg::prepare",
    ),
    (
        18,
        "Claude Sonnet 5.5 turns thinking off with between_tools (SQLite's migration 32)",
        // Rows only, as 3 (`db::migrations::between_tools`).
        "-- the catalog's rows are written by pg::prepare",
    ),
];
