//! The schema, as versioned migrations applied at open.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::{now_ms, to_i64};
use crate::error::Result;

/// Versioned migrations, applied in order, each in its own transaction and
/// recorded in `schema_migrations`. Never edit one that shipped; add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- sealed = nonce || XChaCha20-Poly1305(key), tenant+provider as associated data.
    CREATE TABLE provider_keys (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        provider TEXT NOT NULL,
        sealed BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, provider)
    ) WITHOUT ROWID;
    -- Only the SHA-256 of a virtual key is kept.
    CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant);
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        json TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Usage rows outlive their tenant (accounting). The id is the filter's
    -- request id: the idempotency key of ingestion.
    CREATE TABLE usage (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        complexity REAL,
        stream INTEGER NOT NULL,
        usage_parsed INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Covering index of the stats query: a tenant's window is one range scan
    -- that never touches the table.
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cost_nusd, usage_parsed,
        latency_ms, ttft_ms);
    -- Running totals per tenant/provider/model for /metrics, maintained by
    -- ingestion in the same transaction (a scrape never scans `usage`).
    CREATE TABLE usage_totals (
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        unparsed INTEGER NOT NULL,
        PRIMARY KEY (tenant, provider, model)
    ) WITHOUT ROWID;
    "#,
    ),
    (
        2,
        "cache-write tokens, failed attempts, penalties",
        r#"
    ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    -- The stats query reads the new column too: rebuild its covering index.
    DROP INDEX usage_stats;
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_nusd,
        usage_parsed, latency_ms, ttft_ms);
    ALTER TABLE usage_totals ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
    -- Upstream attempts that failed before another model answered (failover).
    -- Written with their record, in the same transaction, only when the record
    -- is new: as idempotent as the record. `n` is the attempt's position.
    CREATE TABLE attempt_failures (
        record_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status INTEGER NOT NULL,
        PRIMARY KEY (record_id, n)
    ) WITHOUT ROWID;
    CREATE INDEX attempt_failures_stats ON attempt_failures(tenant, ts_ms, provider, model);
    -- Each model's penalty (see penalty.rs) as of its last decay step
    -- `decayed_ms`, its counts since the last reset, the time of its last
    -- event (or reset), and `published`: the value the routing table carries.
    CREATE TABLE penalties (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        penalty REAL NOT NULL,
        decayed_ms INTEGER NOT NULL,
        successes INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        published REAL NOT NULL,
        PRIMARY KEY (provider, model)
    ) WITHOUT ROWID;
    -- Bumped by a penalty reset: filters then forget their local penalties.
    INSERT OR IGNORE INTO meta (key, value) VALUES ('penalty_epoch', 0);
    "#,
    ),
    (
        3,
        "answer-cache hits",
        r#"
    -- 1 when the filter answered from its cache (filter/README.md#cache): no
    -- provider was called, so the row stays out of percentiles, success rates,
    -- penalties.
    ALTER TABLE usage ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
    -- The stats query reads the new column too: rebuild its covering index.
    DROP INDEX usage_stats;
    CREATE INDEX usage_stats ON usage(tenant, ts_ms, provider, model, status,
        prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_nusd,
        usage_parsed, latency_ms, ttft_ms, cache_hit);
    ALTER TABLE usage_totals ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;
    "#,
    ),
    (
        4,
        "penalty epoch from the clock",
        r#"
    -- Filters act only on a higher penalty_epoch than the one they hold, so a
    -- new database counting resets from 0 had its resets ignored until they
    -- passed the old database's count. A new database now starts at its
    -- creation time in ms (a reset adds one), above any epoch before it. A
    -- database never reset moves there too: filters forget their local
    -- penalties once, as after a reset.
    UPDATE meta SET value = CAST(strftime('%s', 'now') AS INTEGER) * 1000
        WHERE key = 'penalty_epoch' AND value = 0;
    "#,
    ),
    (
        5,
        "change log",
        r#"
    -- What changed, for deltas (control-plane/README.md, "Change log"): one
    -- row per thing a filter holds — kind 0 the global table (name ''), 1 a
    -- tenant (by id), 2 a virtual key (by its hash) — with the revision of its
    -- last change. Every admin write bumps the revision (meta.table_version)
    -- once per thing it changed and moves that row to it, in the same
    -- transaction, so "what changed after R" is one range of `changes_rev`.
    -- A deleted tenant or revoked key keeps its row: an Envoy that held it
    -- learns of the removal.
    CREATE TABLE changes (
        kind INTEGER NOT NULL,
        name TEXT NOT NULL,
        rev INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX changes_rev ON changes(rev);
    -- Everything that existed before the log, each at its own revision.
    UPDATE meta SET value = value + 1 WHERE key = 'table_version';
    INSERT INTO changes SELECT 0, '', value FROM meta WHERE key = 'table_version';
    INSERT INTO changes SELECT 1, id,
        (SELECT value FROM meta WHERE key = 'table_version') + ROW_NUMBER() OVER (ORDER BY id)
        FROM tenants;
    UPDATE meta SET value = value + (SELECT COUNT(*) FROM tenants) WHERE key = 'table_version';
    INSERT INTO changes SELECT 2, key_hash,
        (SELECT value FROM meta WHERE key = 'table_version') + ROW_NUMBER() OVER (ORDER BY key_hash)
        FROM virtual_keys;
    UPDATE meta SET value = value + (SELECT COUNT(*) FROM virtual_keys)
        WHERE key = 'table_version';
    "#,
    ),
    (
        6,
        "tenant deletions",
        r#"
    -- When each tenant id was deleted: usage rows outlive their tenant (for
    -- accounting), and a new tenant of the same id counts only usage from
    -- after the last deletion.
    CREATE TABLE tenant_deletions (
        tenant TEXT NOT NULL,
        deleted_at INTEGER NOT NULL
    );
    CREATE INDEX tenant_deletions_tenant ON tenant_deletions(tenant, deleted_at);
    "#,
    ),
    (
        7,
        "per-tenant pass-through switch",
        r#"
    -- 0: the provider pass-through paths (/<provider>/…) answer 403 for it.
    ALTER TABLE tenants ADD COLUMN pass_through INTEGER NOT NULL DEFAULT 1;
    "#,
    ),
    (
        8,
        "estimated usage",
        r#"
    -- 1 when tokens and cost are the filter's estimate (a stream cut before
    -- the provider's usage arrived); such rows also have usage_parsed = 0.
    ALTER TABLE usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
    "#,
    ),
    (
        9,
        "key-scoped penalties",
        r#"
    -- A penalty row is a model's (key_tag '') or a (model, provider key)
    -- pair's: a key's 401/402/403/429 moves only its pair (penalty.rs).
    -- The primary key grows a column, so the table is rebuilt.
    CREATE TABLE penalties_v9 (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        key_tag TEXT NOT NULL DEFAULT '',
        penalty REAL NOT NULL,
        decayed_ms INTEGER NOT NULL,
        successes INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        published REAL NOT NULL,
        PRIMARY KEY (provider, model, key_tag)
    ) WITHOUT ROWID;
    INSERT INTO penalties_v9 (provider, model, penalty, decayed_ms, successes, failures,
        updated_ms, published)
        SELECT provider, model, penalty, decayed_ms, successes, failures, updated_ms, published
        FROM penalties;
    DROP TABLE penalties;
    ALTER TABLE penalties_v9 RENAME TO penalties;
    "#,
    ),
    (
        10,
        "budgets, usage per day, cost adjustments, rate limits, budget alerts, policies",
        r#"
    -- A tenant's own budget: a limit (nano-dollars) over a window of whole
    -- UTC days (db/budgets.rs). The default lives in meta.
    CREATE TABLE budgets (
        tenant TEXT PRIMARY KEY,
        limit_nusd INTEGER NOT NULL,
        days INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Usage per tenant per UTC day (unix ms / 86400000), kept by ingest in
    -- the records' transaction: a budget's window and the usage APIs read
    -- at most `days` rows. `cost_nusd` may be an operator's adjustment
    -- (`cost_adjustments` keeps each one and what it replaced).
    CREATE TABLE usage_days (
        tenant TEXT NOT NULL,
        day INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        PRIMARY KEY (tenant, day)
    ) WITHOUT ROWID;
    INSERT INTO usage_days (tenant, day, requests, prompt_tokens, completion_tokens, cost_nusd)
        SELECT tenant, ts_ms / 86400000, COUNT(*), MIN(SUM(prompt_tokens), 9223372036854775807),
            MIN(SUM(completion_tokens), 9223372036854775807),
            MIN(SUM(cost_nusd), 9223372036854775807)
        FROM usage WHERE tenant IN (SELECT id FROM tenants)
            AND ts_ms > COALESCE((SELECT MAX(deleted_at) FROM tenant_deletions d
                WHERE d.tenant = usage.tenant), 0)
        GROUP BY tenant, ts_ms / 86400000;
    -- Requests and tokens per minute (0 = no limit) of a tenant (key_id '')
    -- or of one of its virtual keys; enforced by each Envoy
    -- (filter/core/src/ratelimit.rs), shipped in the tenant's and the key's
    -- directory entries.
    CREATE TABLE rate_limits (
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        requests_per_minute INTEGER NOT NULL,
        tokens_per_minute INTEGER NOT NULL,
        PRIMARY KEY (tenant, key_id)
    ) WITHOUT ROWID;
    -- Budget thresholds (50, 80, 100 %) a tenant's window has reached: an
    -- alert fires when a row is added; the row goes when spend falls back
    -- below, so each crossing alerts once.
    CREATE TABLE budget_alerts (
        tenant TEXT NOT NULL,
        threshold INTEGER NOT NULL,
        fired_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, threshold)
    ) WITHOUT ROWID;
    -- Alerts waiting for the webhook, written in the ingest transaction that
    -- crossed the threshold; delivered (and deleted) by a task of their own.
    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_ms INTEGER NOT NULL
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox(next_ms);
    -- A tenant's routing policy (filter/core/src/policy.rs) as validated
    -- JSON; NULL: none. Shipped in its directory entry.
    ALTER TABLE tenants ADD COLUMN policy TEXT;
    -- POST /admin/cost: every overwrite of a day's cost, with the value it
    -- replaced.
    CREATE TABLE cost_adjustments (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        day INTEGER NOT NULL,
        previous_nusd INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        at_ms INTEGER NOT NULL
    );
    "#,
    ),
    (
        11,
        "usage rollups",
        r#"
    -- Per-interval cells of usage (db/rollups.rs): exact sums, complexity
    -- bands and latency/TTFT sketches per tenant ('' = every tenant),
    -- interval width (minute, hour, day) and start, provider and model.
    -- Stats over any window read these, and raw records only at its edges.
    CREATE TABLE usage_rollups (
        tenant TEXT NOT NULL,
        width_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        unparsed INTEGER NOT NULL,
        failed_attempts INTEGER NOT NULL,
        cache_hits INTEGER NOT NULL,
        cheap INTEGER NOT NULL,
        mid INTEGER NOT NULL,
        frontier INTEGER NOT NULL,
        unscored INTEGER NOT NULL,
        latency BLOB,
        ttft BLOB,
        PRIMARY KEY (tenant, width_ms, start_ms, provider, model)
    ) WITHOUT ROWID;
    -- Raw records are now read only at a window's edges (and deleted by
    -- age): the covering index, a second copy of every record, gives way to
    -- a narrow one.
    DROP INDEX usage_stats;
    CREATE INDEX usage_tenant_ts ON usage(tenant, ts_ms);
    "#,
    ),
    (
        12,
        "virtual key budgets",
        r#"
    -- The virtual key a record's request came with (its id; NULL before
    -- records carried it, and for bootstrap keys).
    ALTER TABLE usage ADD COLUMN virtual_key TEXT;
    -- Usage per virtual key per UTC day, kept by ingest like usage_days:
    -- a key's budget window reads at most `days` rows.
    CREATE TABLE usage_key_days (
        key_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        cost_nusd INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
    ) WITHOUT ROWID;
    -- A virtual key's own budget (db/budgets.rs), on top of its tenant's.
    CREATE TABLE key_budgets (
        key_id TEXT PRIMARY KEY REFERENCES virtual_keys(id) ON DELETE CASCADE,
        limit_nusd INTEGER NOT NULL,
        days INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- The thresholds a key's budget window has reached (as budget_alerts).
    CREATE TABLE key_budget_alerts (
        key_id TEXT NOT NULL REFERENCES virtual_keys(id) ON DELETE CASCADE,
        threshold INTEGER NOT NULL,
        fired_ms INTEGER NOT NULL,
        PRIMARY KEY (key_id, threshold)
    ) WITHOUT ROWID;
    "#,
    ),
    (
        13,
        "task quality of the default models",
        // Rust below (`task_quality`): the stored catalog rows are JSON.
        "",
    ),
    (
        14,
        "per-tenant routing",
        r#"
    -- A tenant's labelled requests (db/learning.rs): imported, or a rated
    -- request's features once its feedback and its usage record are both in.
    CREATE TABLE routing_examples (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        tier TEXT NOT NULL,
        category TEXT,
        -- The request as imported, only when the tenant's policy stores
        -- prompts; NULL otherwise.
        request TEXT,
        -- tenant_router::encode_features: the router model version inside.
        features BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX routing_examples_tenant ON routing_examples(tenant, id);
    -- Ratings of routed answers (POST /v1/feedback), by request id.
    CREATE TABLE routing_feedback (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        request_id TEXT NOT NULL,
        good INTEGER NOT NULL,
        -- The tier the answer needed, when the rater said.
        tier TEXT,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, request_id)
    ) WITHOUT ROWID;
    -- The router's features of auto requests of tenants whose policy learns
    -- from feedback, from their usage records (pruned with raw usage).
    CREATE TABLE request_features (
        tenant TEXT NOT NULL,
        request_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        complexity REAL NOT NULL,
        features BLOB NOT NULL,
        PRIMARY KEY (tenant, request_id)
    ) WITHOUT ROWID;
    CREATE INDEX request_features_ts ON request_features(ts_ms);
    CREATE INDEX request_features_tenant_ts ON request_features(tenant, ts_ms);
    -- A tenant's fitted correction to the router model, as shipped.
    CREATE TABLE tenant_routers (
        tenant TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
        model_version INTEGER NOT NULL,
        examples INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        blob BLOB NOT NULL,
        fitted_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    ),
    (
        15,
        "tenant evals",
        r#"
    -- A tenant's evals (db/evals.rs, control-plane/README.md "Evals"): the
    -- request without its virtual key, and the results once finished.
    CREATE TABLE evals (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        spec TEXT NOT NULL,
        results TEXT,
        error TEXT,
        applied_ms INTEGER,
        apply_error TEXT
    );
    CREATE INDEX evals_by_tenant ON evals(tenant, created_ms);
    "#,
    ),
    (
        16,
        "state shared by replicas",
        r#"
    -- Which control plane runs an eval (a random id per process) and when
    -- it last said it still does (db/evals.rs; control-plane/README.md,
    -- "Replicas"): a running eval whose heartbeat stopped is failed as
    -- interrupted by whichever control plane notices first.
    ALTER TABLE evals ADD COLUMN owner TEXT;
    ALTER TABLE evals ADD COLUMN heartbeat_ms INTEGER;
    CREATE INDEX evals_running ON evals(heartbeat_ms) WHERE status = 'running';
    -- Each Envoy's latest report, sent with its usage batches (db/envoys.rs):
    -- its usage queue, and the budget reservations of its requests in
    -- flight as JSON objects (tenant id or virtual key id → nano-dollars).
    -- At most envoys::MAX_ENVOYS rows, the least recently seen dropped first.
    CREATE TABLE envoy_reports (
        node TEXT PRIMARY KEY,
        queued INTEGER NOT NULL,
        dropped INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        reserved TEXT NOT NULL,
        key_reserved TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX envoy_reports_seen ON envoy_reports(last_seen_ms);
    "#,
    ),
    (
        17,
        "the catalog of 2026-12-05",
        // Rust below (`catalog_2026_12`): the stored catalog rows are JSON.
        "",
    ),
    (
        18,
        "Claude 5.x enabled (2026-12-05)",
        // Rust below (`claude_5`): the stored catalog rows are JSON.
        "",
    ),
    (
        19,
        "claude-sonnet-4-5 retired (2026-12-05)",
        // Rust below (`sonnet_4_5`): migration 17's rule on one more model.
        "",
    ),
    (
        20,
        "gpt-6-luna added, disabled (2026-12-05)",
        // Rust below (`gpt_6_luna`): migration 17's insert of a new model.
        "",
    ),
    (
        21,
        "gemini-3.8-flash price change of 2027-01-01 scheduled (2026-12-05)",
        // Rust below (`scheduled_prices`): the stored catalog rows are JSON.
        "",
    ),
    (
        22,
        "gpt-4o, gpt-4o-mini and claude-opus-4-5 retirements scheduled (2026-12-05)",
        // Rust below (`scheduled_retirements`): the stored catalog rows are JSON.
        "",
    ),
    (
        23,
        "gpt-6-luna in service from 2027-01-14 (2026-12-05)",
        // Rust below (`luna_in_service`): the stored catalog rows are JSON.
        "",
    ),
    (
        24,
        "Claude 5.x refuse a prefill (2026-12-06)",
        // Rust below (`claude_5_prefill`): the stored catalog rows are JSON.
        "",
    ),
    (
        25,
        "gpt-6-luna's long-context rates (2026-12-06)",
        // Rust below (`long_context_rates`): the stored catalog rows are JSON.
        "",
    ),
    (
        26,
        "claude-haiku-5-5 added, disabled (2026-12-06)",
        // Rust below (`claude_haiku_5_5`, migration 20's rule).
        "",
    ),
    (
        27,
        "Claude 5.x take a reasoning effort (2026-12-06)",
        // Rust below (`output_effort`): the stored catalog rows are JSON.
        "",
    ),
    (
        28,
        "the GPT-4o generation takes no reasoning effort (2026-12-06)",
        // Rust below (`reasoning_effort`): the stored catalog rows are JSON.
        "",
    ),
    (
        29,
        "gpt-6-luna takes tools with an effort over the Responses API (2026-12-06)",
        // Rust below (`responses_api`): the stored catalog rows are JSON.
        "",
    ),
    (
        30,
        "OpenAI's models take no Anthropic extensions (2026-12-06)",
        // Rust below (`thinking_extensions`): the stored catalog rows are JSON.
        "",
    ),
    (
        31,
        "Claude 5.x take adaptive thinking only (2026-12-08)",
        // Rust below (`adaptive_thinking`): the stored catalog rows are JSON.
        "",
    ),
    (
        32,
        "Claude Sonnet 5.5 turns thinking off with between_tools (2026-12-08)",
        // Rust below (`between_tools`): the stored catalog rows are JSON.
        "",
    ),
];

/// The schema version a database has after every migration of this build.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// A database from before per-task quality: each default model whose stored
/// row still has the default's general quality (the operator has not
/// changed it) and no task figures gets the default's task figures; the
/// filters get the new table. Returns the models updated.
fn task_quality(tx: &Transaction<'_>) -> Result<usize> {
    let defaults = aipipe_core::catalog::default_models();
    let rows: Vec<(String, String)> = tx
        .prepare("SELECT id, json FROM models")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut updated = 0;
    for (id, json) in rows {
        let Ok(mut stored) = serde_json::from_str::<aipipe_core::table::Model>(&json) else {
            continue;
        };
        let Some(d) = defaults.iter().find(|d| d.id == id) else {
            continue;
        };
        if d.category_quality.is_empty()
            || !stored.category_quality.is_empty()
            || stored.quality.to_bits() != d.quality.to_bits()
        {
            continue;
        }
        stored.category_quality = d.category_quality.clone();
        tx.execute(
            "UPDATE models SET json = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(&stored)?],
        )?;
        updated += 1;
    }
    if updated > 0 {
        super::record_change(tx, super::Change::Global)?;
    }
    Ok(updated)
}

/// The catalog as of 2026-12-05 (filter/README.md, "Catalog changes") onto a
/// database seeded before it: SQLite's migration 17, PostgreSQL's migration 3
/// (`pg::prepare`). The models their provider shut down are removed as
/// `DELETE /admin/models/{id}` removes one — unless a tenant's policy names
/// the model (the admin API answers 409 then), in which case it is only
/// disabled, so the policy stays valid and keeps its meaning (a tenant allowed
/// only that model is not opened to every model). A row whose upstream name
/// the operator changed is left alone. The models added are inserted where
/// no row of that id exists (an operator's own entry of that id stays).
/// `plan` takes the lists, so a later retirement applies the same rule
/// (`sonnet_4_5`).
pub(in crate::db) mod catalog_2026_12 {
    use aipipe_core::table::Model;

    use crate::error::Result;

    /// Shut down on the Gemini API on 2026-12-01.
    pub const RETIRED: &[&str] = &["gemini-2.5-pro", "gemini-2.5-flash"];
    /// New in the default catalog.
    pub const ADDED: &[&str] = &[
        "gemini-3.5-flash-lite",
        "gemini-3.8-flash",
        "claude-sonnet-5-5",
        "claude-opus-5-5",
    ];

    /// One write of the migration.
    #[derive(Debug, PartialEq)]
    pub enum Step {
        Delete(String),
        /// The row's new JSON: the stored model, disabled.
        Disable {
            id: String,
            json: String,
        },
        Insert(Box<Model>),
    }

    /// The writes for `stored` (id, JSON of every catalog row) given every
    /// tenant's (id, policy JSON): the models of `retired` removed (or
    /// disabled), those of `added` inserted from the default catalog. A row
    /// that does not parse is left alone.
    pub fn plan(
        stored: &[(String, String)],
        policies: Vec<(String, String)>,
        retired: &[&str],
        added: &[&str],
    ) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for &id in retired {
            let Some((_, json)) = stored.iter().find(|(s, _)| s == id) else {
                continue;
            };
            let Ok(mut model) = serde_json::from_str::<Model>(json) else {
                tracing::warn!(model = id, "catalog row unreadable: left as it is");
                continue;
            };
            if model.upstream_name() != id {
                tracing::info!(
                    model = id,
                    "retired model's upstream name was changed: left as it is"
                );
                continue;
            }
            let naming = super::super::catalog::tenants_naming(policies.clone(), id);
            if naming.is_empty() {
                steps.push(Step::Delete(id.to_owned()));
            } else if model.enabled {
                tracing::info!(model = id, tenants = ?naming, "retired model named by policies: disabled, not removed");
                model.enabled = false;
                steps.push(Step::Disable {
                    id: id.to_owned(),
                    json: serde_json::to_string(&model)?,
                });
            }
        }
        let defaults = aipipe_core::catalog::default_models();
        for &id in added {
            if stored.iter().any(|(s, _)| s == id) {
                continue;
            }
            if let Some(m) = defaults.iter().find(|m| m.id == id) {
                steps.push(Step::Insert(Box::new(m.clone())));
            }
        }
        Ok(steps)
    }
}

/// claude-sonnet-4-5 retired (filter/README.md, "Catalog changes", third
/// entry of 2026-12-05: Anthropic retired it on 2026-11-30) on a database
/// seeded before it: SQLite's migration 19, PostgreSQL's migration 5. The
/// rule of migration 17 (`catalog_2026_12`): removed as `DELETE
/// /admin/models/{id}` would, only disabled where a tenant's policy names it,
/// left alone where the operator changed its upstream name. Nothing is added:
/// `claude-sonnet-5-5`, its replacement, came with migration 17.
pub(in crate::db) mod sonnet_4_5 {
    /// Retired by Anthropic on 2026-11-30.
    pub const RETIRED: &[&str] = &["claude-sonnet-4-5"];
}

/// gpt-6-luna added (filter/README.md, "Catalog changes", fourth entry of
/// 2026-12-05: OpenAI's named replacement for gpt-4o and gpt-4o-mini, which
/// it shuts down on 2027-01-14) to a database seeded before it: SQLite's
/// migration 20, PostgreSQL's migration 6. Migration 17's insert
/// (`catalog_2026_12::plan` with nothing retired): the default catalog's row
/// — disabled, as the catalog ships it, so no deployment's routing moves
/// until its operator enables it — unless a row of that id is already
/// stored (an operator's own, left alone). gpt-4o and gpt-4o-mini stay: they
/// answer until their shutdown.
pub(in crate::db) mod gpt_6_luna {
    /// New in the default catalog.
    pub const ADDED: &[&str] = &["gpt-6-luna"];
}

/// claude-haiku-5-5 added to the catalog, disabled (filter/README.md,
/// "Catalog changes", 2026-12-06, third change): SQLite's migration 26,
/// PostgreSQL's 12, by migration 20's rule (`catalog_2026_12`) — inserted
/// as the default catalog ships it, a row of that id the operator made
/// left alone.
pub(in crate::db) mod claude_haiku_5_5 {
    /// New in the default catalog.
    pub const ADDED: &[&str] = &["claude-haiku-5-5"];
}

/// Claude 5.x enabled (filter/README.md, "Catalog changes", second entry of
/// 2026-12-05) on a database seeded before it: SQLite's migration 18,
/// PostgreSQL's migration 4. `claude-sonnet-5-5` and `claude-opus-5-5`
/// shipped disabled because the filter sent them what they refuse; the
/// filter now knows what they refuse (`Capabilities::sampling_params`,
/// `forced_tool_choice`). A row exactly as the release before shipped it
/// becomes today's default (enabled). A row the operator changed keeps every
/// change, `enabled` included, and only learns what the model refuses (a
/// fact about the model, not a choice). A row pointed at another upstream
/// model is left alone.
pub(in crate::db) mod claude_5 {
    use aipipe_core::table::Model;

    /// The models this migration updates.
    pub const MODELS: &[&str] = &["claude-sonnet-5-5", "claude-opus-5-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        let defaults = aipipe_core::catalog::default_models();
        let mut writes = Vec::new();
        for (id, stored, default) in super::catalog_rows(stored, &defaults, MODELS) {
            let new = if as_shipped_before(&stored, default) {
                default.clone()
            } else {
                let mut m = stored.clone();
                m.capabilities.sampling_params = default.capabilities.sampling_params;
                m.capabilities.forced_tool_choice = default.capabilities.forced_tool_choice;
                if m != stored {
                    tracing::info!(
                        model = id,
                        "changed by the operator: kept, told what the model refuses"
                    );
                }
                m
            };
            if new != stored {
                writes.push((id.to_owned(), serde_json::to_string(&new)?));
            }
        }
        Ok(writes)
    }

    /// `stored` is `default` as the release before shipped it: disabled, and
    /// without the two capabilities (which read as true when absent). Its
    /// observed latency and penalty are not the operator's choices.
    fn as_shipped_before(stored: &Model, default: &Model) -> bool {
        let mut before = default.clone();
        before.enabled = false;
        before.capabilities.sampling_params = true;
        before.capabilities.forced_tool_choice = true;
        let stored = Model {
            latency_ms: before.latency_ms,
            penalty: before.penalty,
            ..stored.clone()
        };
        stored == before
    }
}

/// gemini-3.8-flash's price rise of 2027-01-01 scheduled (filter/README.md,
/// "Catalog changes": $0.75 / $3.75 until then, $1.50 / $7.50 from then) on
/// a database seeded before the catalog carried it: SQLite's migration 21,
/// PostgreSQL's migration 7. A row still at the default catalog's prices
/// (every one of them) with no schedule of its own gets the default's
/// schedule, so the filters switch at the instant by their own clocks. A row
/// whose prices the operator changed keeps them and gets nothing (its
/// operator decides what it costs); so does a row with a schedule of its
/// own, one pointed at another upstream model, or a deleted one.
pub(in crate::db) mod scheduled_prices {
    /// The default models whose schedule this migration brings.
    pub const MODELS: &[&str] = &["gemini-3.8-flash"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        let defaults = aipipe_core::catalog::default_models();
        let mut writes = Vec::new();
        for (id, mut row, default) in super::catalog_rows(stored, &defaults, MODELS) {
            if row.price_changes == default.price_changes {
                // A database seeded with today's catalog: already there.
                continue;
            }
            if !row.price_changes.is_empty() {
                tracing::info!(model = id, "has a price schedule of its own: left as it is");
                continue;
            }
            if row.listed_prices() != default.listed_prices() {
                tracing::info!(
                    model = id,
                    "prices changed by the operator: kept, no change scheduled"
                );
                continue;
            }
            row.price_changes = default.price_changes.clone();
            writes.push((id.to_owned(), serde_json::to_string(&row)?));
        }
        Ok(writes)
    }
}

/// The providers' announced shutdowns scheduled (filter/README.md, "Catalog
/// changes": gpt-4o and gpt-4o-mini on 2027-01-14, claude-opus-4-5 on
/// 2027-01-22; control-plane/README.md, "Scheduled retirements") on a
/// database seeded before the catalog carried them: SQLite's migration 22,
/// PostgreSQL's migration 8. A row that is still the catalog's model — its
/// upstream name unchanged — gets the default's `retires_at`, whatever else
/// the operator changed in it (prices, `enabled`): a shutdown is a fact
/// about the upstream model, as migration 18's refusals are. A row pointed
/// at another upstream model is left as it is (that model is not shut
/// down), and so is one with a date of its own or a deleted one.
pub(in crate::db) mod scheduled_retirements {
    /// The default models whose retirement this migration brings.
    pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "claude-opus-4-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        let defaults = aipipe_core::catalog::default_models();
        let mut writes = Vec::new();
        for (id, mut row, default) in super::catalog_rows(stored, &defaults, MODELS) {
            if row.retires_at == default.retires_at {
                // A database seeded with today's catalog: already there.
                continue;
            }
            if row.retires_at.is_some() {
                tracing::info!(
                    model = id,
                    "has a retirement date of its own: left as it is"
                );
                continue;
            }
            row.retires_at = default.retires_at;
            writes.push((id.to_owned(), serde_json::to_string(&row)?));
        }
        Ok(writes)
    }
}

/// gpt-6-luna put in service from 2027-01-14T00:00:00Z (filter/README.md,
/// "Catalog changes": the instant gpt-4o and gpt-4o-mini, which it replaces,
/// retire) on a database that got it disabled (SQLite's migration 20,
/// PostgreSQL's 6): SQLite's migration 23, PostgreSQL's 9. A row exactly as
/// migration 20 wrote it — disabled, no date — becomes today's default
/// (enabled, `enabled_from` that instant), so no routing moves before it and
/// an OpenAI key keeps a model after. A row the operator changed (enabled
/// it, dated it, repriced it) is the operator's decision and is left alone,
/// as is one pointed at another upstream model or a deleted one.
pub(in crate::db) mod luna_in_service {
    use aipipe_core::table::Model;

    /// The models this migration updates.
    pub const MODELS: &[&str] = &["gpt-6-luna"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        let defaults = aipipe_core::catalog::default_models();
        let mut writes = Vec::new();
        for (id, row, default) in super::catalog_rows(stored, &defaults, MODELS) {
            // Observed latency and penalty are not the operator's choices:
            // compared as the default's, kept as they are.
            let (latency_ms, penalty) = (row.latency_ms, row.penalty);
            let mut before = default.clone();
            (before.enabled, before.enabled_from) = (false, None);
            let row = Model {
                latency_ms: before.latency_ms,
                penalty: before.penalty,
                ..row
            };
            if row == before {
                let new = Model {
                    latency_ms,
                    penalty,
                    ..default.clone()
                };
                writes.push((id.to_owned(), serde_json::to_string(&new)?));
            } else if row != *default {
                tracing::info!(model = id, "changed by the operator: left as it is");
            }
        }
        Ok(writes)
    }
}

/// The Claude 5.x models told that they refuse a prefill (filter/README.md,
/// "Catalog changes", first change of 2026-12-06): SQLite's migration 24,
/// PostgreSQL's 10. A row still pointed at the model gets
/// `assistant_prefill` false whatever else the operator changed in it — what
/// a model refuses is a fact about the model, not a choice (as migration 18
/// told them what else they refuse); a row pointed at another upstream
/// model, or a deleted one, is left as it is.
pub(in crate::db) mod claude_5_prefill {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["claude-sonnet-5-5", "claude-opus-5-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.assistant_prefill)
    }
}

/// The Claude 5.x models told that they take a reasoning effort as
/// `output_config.effort` (filter/README.md, "Catalog changes", 2026-12-06,
/// fourth change): SQLite's migration 27, PostgreSQL's 13, by migration
/// 24's rule — a row still pointed at the model gets the capability
/// whatever else the operator changed in it.
pub(in crate::db) mod output_effort {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.output_effort)
    }
}

/// OpenAI's GPT-4o generation told that it takes no `reasoning_effort`
/// (filter/README.md, "Catalog changes", 2026-12-06, fifth change):
/// SQLite's migration 28, PostgreSQL's 14, by migration 24's rule — a row
/// still pointed at the model gets the capability whatever else the
/// operator changed in it.
pub(in crate::db) mod reasoning_effort {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.reasoning_effort)
    }
}

/// gpt-6-luna told that OpenAI's Responses API takes its tools with a
/// reasoning effort (filter/README.md, "Catalog changes", 2026-12-06, sixth
/// change): SQLite's migration 29, PostgreSQL's 15, by migration 24's rule —
/// a row still pointed at the model gets the capability whatever else the
/// operator changed in it.
pub(in crate::db) mod responses_api {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["gpt-6-luna"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.responses_api)
    }
}

/// OpenAI's models told that they take no Anthropic `thinking` or
/// `output_config` in a Chat body (filter/README.md, "Catalog changes",
/// 2026-12-06, seventh change): SQLite's migration 30, PostgreSQL's 16, by
/// migration 24's rule.
pub(in crate::db) mod thinking_extensions {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-6-luna"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.thinking_extensions)
    }
}

/// The Claude 5.x told that they take adaptive thinking only, and refuse
/// `thinking` enabled with a budget (filter/README.md, "Catalog changes",
/// 2026-12-08): SQLite's migration 31, PostgreSQL's 17, by migration 24's
/// rule.
pub(in crate::db) mod adaptive_thinking {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.adaptive_thinking)
    }
}

/// Claude Sonnet 5.5 told that it turns up-front thinking off with
/// `thinking` `between_tools`, not `disabled` (filter/README.md, "Catalog
/// changes", 2026-12-08, second change): SQLite's migration 32, PostgreSQL's
/// 18, by migration 24's rule.
pub(in crate::db) mod between_tools {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["claude-sonnet-5-5"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        super::capability_as_default(stored, MODELS, |c| &mut c.between_tools)
    }
}

/// The writes that give the stored rows of `ids` the default catalog's
/// value of one capability (`field`), keeping everything else in them:
/// what a model takes or refuses is a fact about it, not a choice.
fn capability_as_default(
    stored: &[(String, String)],
    ids: &[&str],
    field: fn(&mut aipipe_core::table::Capabilities) -> &mut bool,
) -> crate::error::Result<Vec<(String, String)>> {
    let defaults = aipipe_core::catalog::default_models();
    let mut writes = Vec::new();
    for (id, mut row, default) in catalog_rows(stored, &defaults, ids) {
        let mut defaults_caps = default.capabilities;
        let want = *field(&mut defaults_caps);
        let slot = field(&mut row.capabilities);
        if *slot != want {
            *slot = want;
            writes.push((id.to_owned(), serde_json::to_string(&row)?));
        }
    }
    Ok(writes)
}

/// The long-context rates of the default catalog given to its stored rows
/// (filter/README.md, "Long-context prices"): SQLite's migration 25,
/// PostgreSQL's 11. A row still pointed at the model and without rates of
/// its own gets the default's, whatever else the operator changed in it —
/// what a provider bills a long prompt is a fact about the model, as its
/// capabilities are (migration 24); rates the operator set are kept, and a
/// row pointed at another upstream model, or a deleted one, is left alone.
pub(in crate::db) mod long_context_rates {
    /// The models this migration updates.
    pub const MODELS: &[&str] = &["gpt-6-luna"];

    /// The writes for `stored` (id, JSON of every catalog row): each the
    /// model's id and its row's new JSON.
    pub fn plan(stored: &[(String, String)]) -> crate::error::Result<Vec<(String, String)>> {
        let defaults = aipipe_core::catalog::default_models();
        let mut writes = Vec::new();
        for (id, mut row, default) in super::catalog_rows(stored, &defaults, MODELS) {
            if row.long_context.is_none() && default.long_context.is_some() {
                row.long_context = default.long_context;
                writes.push((id.to_owned(), serde_json::to_string(&row)?));
            }
        }
        Ok(writes)
    }
}

/// The stored rows a catalog migration may rewrite: for each of `ids` that
/// is both stored and in `defaults`, its id, its stored row and its default.
/// A row that does not parse, or that the operator pointed at another
/// upstream model, is left alone (and said so in the log).
fn catalog_rows<'a>(
    stored: &'a [(String, String)],
    defaults: &'a [aipipe_core::table::Model],
    ids: &'a [&'a str],
) -> impl Iterator<
    Item = (
        &'a str,
        aipipe_core::table::Model,
        &'a aipipe_core::table::Model,
    ),
> + 'a {
    ids.iter().filter_map(move |&id| {
        let json = stored.iter().find(|(s, _)| s == id).map(|(_, j)| j)?;
        let default = defaults.iter().find(|m| m.id == id)?;
        let Ok(row) = serde_json::from_str::<aipipe_core::table::Model>(json) else {
            tracing::warn!(model = id, "catalog row unreadable: left as it is");
            return None;
        };
        if row.upstream_name() != id {
            tracing::info!(model = id, "upstream name was changed: left as it is");
            return None;
        }
        Some((id, row, default))
    })
}

/// A catalog migration's pure plan: from the stored rows (id, JSON), the
/// rows to write.
pub(super) type ModelsPlan = fn(&[(String, String)]) -> Result<Vec<(String, String)>>;

/// SQLite's migrations 18 (`claude_5::plan`), 21 (`scheduled_prices::plan`),
/// 22 (`scheduled_retirements::plan`), 23 (`luna_in_service::plan`), 24
/// (`claude_5_prefill::plan`), 25 (`long_context_rates::plan`), 27
/// (`output_effort::plan`), 28 (`reasoning_effort::plan`), 29
/// (`responses_api::plan`), 30 (`thinking_extensions::plan`), 31
/// (`adaptive_thinking::plan`) and 32 (`between_tools::plan`): each
/// rewrites the model rows its
/// pure plan names, one change of the change log if any. Returns the
/// writes made.
fn rewrite_models(tx: &Transaction<'_>, plan: ModelsPlan) -> Result<usize> {
    let stored: Vec<(String, String)> = tx
        .prepare("SELECT id, json FROM models")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let writes = plan(&stored)?;
    for (id, json) in &writes {
        tx.execute(
            "UPDATE models SET json = ?2 WHERE id = ?1",
            params![id, json],
        )?;
    }
    if !writes.is_empty() {
        super::record_change(tx, super::Change::Global)?;
    }
    Ok(writes.len())
}

/// SQLite's migration 17 (`catalog_2026_12`), 19 (`sonnet_4_5`), 20
/// (`gpt_6_luna`) and 26 (`claude_haiku_5_5`): the models of `retired` removed (or disabled), those of
/// `added` inserted as the default catalog ships them.
/// Returns the writes made.
fn catalog_2026_12(tx: &Transaction<'_>, retired: &[&str], added: &[&str]) -> Result<usize> {
    let stored: Vec<(String, String)> = tx
        .prepare("SELECT id, json FROM models")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let policies: Vec<(String, String)> = tx
        .prepare("SELECT id, policy FROM tenants WHERE policy IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let steps = catalog_2026_12::plan(&stored, policies, retired, added)?;
    for step in &steps {
        match step {
            catalog_2026_12::Step::Delete(id) => {
                tx.execute("DELETE FROM models WHERE id = ?1", [id])?;
            }
            catalog_2026_12::Step::Disable { id, json } => {
                tx.execute(
                    "UPDATE models SET json = ?2 WHERE id = ?1",
                    params![id, json],
                )?;
            }
            catalog_2026_12::Step::Insert(m) => {
                tx.execute(
                    "INSERT INTO models (id, position, json)
                     VALUES (?1, (SELECT COALESCE(MAX(position), -1) + 1 FROM models), ?2)",
                    params![m.id, serde_json::to_string(m)?],
                )?;
            }
        }
    }
    if !steps.is_empty() {
        super::record_change(tx, super::Change::Global)?;
    }
    Ok(steps.len())
}

/// Applies every migration the database has not had yet.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    for &(version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        tracing::info!(version, name, "applying migration");
        tx.execute_batch(sql)?;
        if version == 1 {
            seed(&tx)?;
        }
        if version == 11 {
            let n = super::rollups::backfill(&tx, now_ms())?;
            tracing::info!(records = n, "usage rollups built from the stored records");
        }
        if version == 13 {
            let n = task_quality(&tx)?;
            tracing::info!(models = n, "task quality added to the default models");
        }
        // A no-op on a new database: migration 1 seeded this catalog.
        if version == 17 {
            let n = catalog_2026_12(&tx, catalog_2026_12::RETIRED, catalog_2026_12::ADDED)?;
            tracing::info!(writes = n, "catalog of 2026-12-05 applied");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 18 {
            let n = rewrite_models(&tx, claude_5::plan)?;
            tracing::info!(writes = n, "Claude 5.x enabled");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 19 {
            let n = catalog_2026_12(&tx, sonnet_4_5::RETIRED, &[])?;
            tracing::info!(writes = n, "claude-sonnet-4-5 retired");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 20 {
            let n = catalog_2026_12(&tx, &[], gpt_6_luna::ADDED)?;
            tracing::info!(writes = n, "gpt-6-luna added, disabled");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 21 {
            let n = rewrite_models(&tx, scheduled_prices::plan)?;
            tracing::info!(writes = n, "gemini-3.8-flash price change scheduled");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 22 {
            let n = rewrite_models(&tx, scheduled_retirements::plan)?;
            tracing::info!(writes = n, "retirements of 2027-01 scheduled");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 23 {
            let n = rewrite_models(&tx, luna_in_service::plan)?;
            tracing::info!(writes = n, "gpt-6-luna in service from 2027-01-14");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 24 {
            let n = rewrite_models(&tx, claude_5_prefill::plan)?;
            tracing::info!(writes = n, "Claude 5.x refuse a prefill");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 25 {
            let n = rewrite_models(&tx, long_context_rates::plan)?;
            tracing::info!(writes = n, "long-context rates given");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 26 {
            let n = catalog_2026_12(&tx, &[], claude_haiku_5_5::ADDED)?;
            tracing::info!(writes = n, "claude-haiku-5-5 added, disabled");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 27 {
            let n = rewrite_models(&tx, output_effort::plan)?;
            tracing::info!(writes = n, "Claude 5.x take a reasoning effort");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 28 {
            let n = rewrite_models(&tx, reasoning_effort::plan)?;
            tracing::info!(
                writes = n,
                "the GPT-4o generation takes no reasoning effort"
            );
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 29 {
            let n = rewrite_models(&tx, responses_api::plan)?;
            tracing::info!(
                writes = n,
                "gpt-6-luna takes tools with an effort over the Responses API"
            );
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 30 {
            let n = rewrite_models(&tx, thinking_extensions::plan)?;
            tracing::info!(writes = n, "OpenAI's models take no Anthropic extensions");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 31 {
            let n = rewrite_models(&tx, adaptive_thinking::plan)?;
            tracing::info!(writes = n, "Claude 5.x take adaptive thinking only");
        }
        // A no-op on a new database: migration 1 seeded today's catalog.
        if version == 32 {
            let n = rewrite_models(&tx, between_tools::plan)?;
            tracing::info!(
                writes = n,
                "Claude Sonnet 5.5 turns thinking off with between_tools"
            );
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, to_i64(now_ms())],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// First start: the default catalog, and a table version that starts at the
/// current time in ms so versions stay increasing even across a wiped database.
fn seed(tx: &Transaction<'_>) -> Result<()> {
    let mut insert = tx.prepare("INSERT INTO models (id, position, json) VALUES (?1, ?2, ?3)")?;
    for (i, m) in aipipe_core::catalog::default_models().iter().enumerate() {
        insert.execute(params![m.id, i as i64, serde_json::to_string(m)?])?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('table_version', ?1)",
        [to_i64(now_ms())],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::db::Db;

    /// Migration 17 leaves a retired model alone when the operator pointed
    /// its entry at another upstream model, and adds nothing already there.
    #[test]
    fn a_retired_model_the_operator_repointed_is_left_alone() {
        let defaults = aipipe_core::catalog::default_models();
        let mut pro = defaults
            .iter()
            .find(|m| m.id == "gemini-3.8-flash")
            .unwrap()
            .clone();
        pro.id = "gemini-2.5-pro".into();
        let mut stored = vec![(pro.id.clone(), serde_json::to_string(&pro).unwrap())];
        for m in &defaults {
            stored.push((m.id.clone(), serde_json::to_string(m).unwrap()));
        }
        let steps = catalog_2026_12::plan(
            &stored,
            vec![],
            catalog_2026_12::RETIRED,
            catalog_2026_12::ADDED,
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![catalog_2026_12::Step::Delete("gemini-2.5-pro".into())]
        );
        pro.upstream_id = Some("gemini-3.8-flash".into());
        stored[0].1 = serde_json::to_string(&pro).unwrap();
        assert_eq!(
            catalog_2026_12::plan(
                &stored,
                vec![],
                catalog_2026_12::RETIRED,
                catalog_2026_12::ADDED
            )
            .unwrap(),
            vec![]
        );
    }

    /// Migration 19 removes claude-sonnet-4-5 by migration 17's rule: gone
    /// as the admin API would delete it, only disabled while a policy names
    /// it, left alone when pointed at another upstream model; adds nothing.
    /// Migration 21 schedules gemini-3.8-flash's change only on a row at
    /// every default price with no schedule: a row already scheduled (a
    /// new database), one whose cache-read price the operator changed, one
    /// with a schedule of its own and one pointed at another upstream model
    /// get nothing.
    #[test]
    fn the_flash_schedule_reaches_only_rows_at_the_default_prices() {
        let defaults = aipipe_core::catalog::default_models();
        let flash = defaults
            .iter()
            .find(|m| m.id == "gemini-3.8-flash")
            .unwrap()
            .clone();
        let rows =
            |m: &aipipe_core::table::Model| vec![(m.id.clone(), serde_json::to_string(m).unwrap())];
        let plain = aipipe_core::table::Model {
            price_changes: Vec::new(),
            ..flash.clone()
        };
        let writes = scheduled_prices::plan(&rows(&plain)).unwrap();
        assert_eq!(writes.len(), 1);
        let written: aipipe_core::table::Model = serde_json::from_str(&writes[0].1).unwrap();
        assert_eq!(written, flash);
        assert_eq!(scheduled_prices::plan(&rows(&flash)).unwrap(), vec![]);
        for changed in [
            aipipe_core::table::Model {
                cached_input_per_mtok: Some(0.1),
                ..plain.clone()
            },
            aipipe_core::table::Model {
                price_changes: vec![aipipe_core::catalog::PriceChange {
                    from: aipipe_core::catalog::Timestamp(1_800_000_000_000),
                    input_per_mtok: 1.0,
                    output_per_mtok: 5.0,
                    cached_input_per_mtok: None,
                    cache_write_per_mtok: None,
                }],
                ..plain.clone()
            },
            aipipe_core::table::Model {
                upstream_id: Some("gemini-3.9-flash".into()),
                ..plain.clone()
            },
        ] {
            assert_eq!(
                scheduled_prices::plan(&rows(&changed)).unwrap(),
                vec![],
                "{changed:?}"
            );
        }
    }

    /// Migration 22 dates the three models on rows still pointed at them,
    /// the operator's other changes (price, enabled) kept; a row already
    /// dated (a new database), one with its own date, one pointed at
    /// another upstream model get nothing; an absent row is skipped.
    #[test]
    fn the_retirement_dates_reach_rows_still_pointed_at_the_model() {
        use aipipe_core::table::Model;
        let defaults = aipipe_core::catalog::default_models();
        let find = |id: &str| defaults.iter().find(|m| m.id == id).unwrap().clone();
        let rows = |ms: &[Model]| {
            ms.iter()
                .map(|m| (m.id.clone(), serde_json::to_string(m).unwrap()))
                .collect::<Vec<_>>()
        };
        let undated = |m: Model| Model {
            retires_at: None,
            ..m
        };
        let mini = find("gpt-4o-mini");
        let opus = find("claude-opus-4-5");
        let own_price = Model {
            input_per_mtok: 0.2,
            enabled: false,
            ..undated(mini.clone())
        };
        let writes = scheduled_retirements::plan(&rows(&[
            own_price.clone(),
            undated(opus.clone()),
            find("claude-sonnet-5-5"),
        ]))
        .unwrap();
        let written: Vec<(String, Model)> = writes
            .iter()
            .map(|(id, j)| (id.clone(), serde_json::from_str(j).unwrap()))
            .collect();
        assert_eq!(
            written,
            vec![
                (
                    "gpt-4o-mini".to_owned(),
                    Model {
                        retires_at: mini.retires_at,
                        ..own_price
                    }
                ),
                ("claude-opus-4-5".to_owned(), opus.clone()),
            ]
        );
        assert_eq!(
            scheduled_retirements::plan(&rows(&[mini.clone(), opus.clone()])).unwrap(),
            vec![],
            "already dated"
        );
        for kept in [
            Model {
                retires_at: Some(aipipe_core::catalog::Timestamp(1_900_000_000_000)),
                ..mini.clone()
            },
            Model {
                upstream_id: Some("gpt-4o-mini-2024-07-18".into()),
                ..undated(mini.clone())
            },
        ] {
            assert_eq!(
                scheduled_retirements::plan(&rows(std::slice::from_ref(&kept))).unwrap(),
                vec![],
                "{kept:?}"
            );
        }
    }

    /// Migration 23: gpt-6-luna as migration 20 wrote it (disabled, no
    /// date; a penalty or latency observed since is not the operator's
    /// choice) becomes the default, in service from 2027-01-14; a row the
    /// operator enabled, dated or repriced is left alone, as is today's
    /// default.
    #[test]
    fn luna_as_migration_20_wrote_it_enters_service_at_the_retirements() {
        use aipipe_core::table::Model;
        let luna = aipipe_core::catalog::default_models()
            .into_iter()
            .find(|m| m.id == "gpt-6-luna")
            .unwrap();
        assert_eq!(
            luna.enabled_from.map(|t| t.to_string()).as_deref(),
            Some("2027-01-14T00:00:00Z")
        );
        let row = |m: &Model| vec![(m.id.clone(), serde_json::to_string(m).unwrap())];
        let as_20 = Model {
            enabled: false,
            enabled_from: None,
            penalty: 0.4,
            ..luna.clone()
        };
        let writes = luna_in_service::plan(&row(&as_20)).unwrap();
        assert_eq!(
            writes,
            row(&Model {
                penalty: 0.4,
                ..luna.clone()
            })
        );
        for kept in [
            luna.clone(),
            Model {
                enabled_from: None,
                ..luna.clone()
            },
            Model {
                input_per_mtok: 0.2,
                ..as_20.clone()
            },
            Model {
                upstream_id: Some("gpt-6-luna-2026-09-22".into()),
                ..as_20.clone()
            },
        ] {
            assert_eq!(
                luna_in_service::plan(&row(&kept)).unwrap(),
                vec![],
                "{kept:?}"
            );
        }
    }

    /// Migration 24: the Claude 5.x rows learn that they refuse a prefill,
    /// the operator's other changes kept; a row pointed elsewhere, or one
    /// that already says so, is not written.
    #[test]
    fn claude_5_rows_learn_they_refuse_a_prefill() {
        let defaults = aipipe_core::catalog::default_models();
        let mut sonnet = defaults
            .iter()
            .find(|m| m.id == "claude-sonnet-5-5")
            .unwrap()
            .clone();
        assert!(!sonnet.capabilities.assistant_prefill);
        let row =
            |m: &aipipe_core::table::Model| vec![(m.id.clone(), serde_json::to_string(m).unwrap())];
        sonnet.capabilities.assistant_prefill = true;
        sonnet.input_per_mtok = 1.5;
        let writes = claude_5_prefill::plan(&row(&sonnet)).unwrap();
        let mut want = sonnet.clone();
        want.capabilities.assistant_prefill = false;
        assert_eq!(writes, row(&want), "told, its price kept");
        assert_eq!(claude_5_prefill::plan(&row(&want)).unwrap(), vec![]);
        sonnet.upstream_id = Some("claude-sonnet-4-6".into());
        assert_eq!(claude_5_prefill::plan(&row(&sonnet)).unwrap(), vec![]);
    }

    /// Migrations 27 to 32: the Claude 5.x rows learn that they take an
    /// effort (and adaptive thinking only; Sonnet 5.5 that it stops with
    /// `between_tools`), the GPT-4o rows that they take no `reasoning_effort`, the
    /// luna row that it takes tools with one over the Responses API, the
    /// OpenAI rows that they take no Anthropic extensions, the operator's
    /// other changes kept; a row pointed elsewhere, or one that already says
    /// so, is not written.
    #[test]
    fn rows_learn_what_effort_they_take() {
        let defaults = aipipe_core::catalog::default_models();
        let row =
            |m: &aipipe_core::table::Model| vec![(m.id.clone(), serde_json::to_string(m).unwrap())];
        type Field = fn(&mut aipipe_core::table::Capabilities) -> &mut bool;
        let cases: [(ModelsPlan, &[&str], Field); 6] = [
            (output_effort::plan, output_effort::MODELS, |c| {
                &mut c.output_effort
            }),
            (reasoning_effort::plan, reasoning_effort::MODELS, |c| {
                &mut c.reasoning_effort
            }),
            (responses_api::plan, responses_api::MODELS, |c| {
                &mut c.responses_api
            }),
            (
                thinking_extensions::plan,
                thinking_extensions::MODELS,
                |c| &mut c.thinking_extensions,
            ),
            (adaptive_thinking::plan, adaptive_thinking::MODELS, |c| {
                &mut c.adaptive_thinking
            }),
            (between_tools::plan, between_tools::MODELS, |c| {
                &mut c.between_tools
            }),
        ];
        for (plan, ids, field) in cases {
            for id in ids {
                let mut m = defaults.iter().find(|m| m.id == *id).unwrap().clone();
                let want_value = *field(&mut m.capabilities);
                *field(&mut m.capabilities) = !want_value;
                m.enabled = !m.enabled;
                let mut want = m.clone();
                *field(&mut want.capabilities) = want_value;
                assert_eq!(plan(&row(&m)).unwrap(), row(&want), "{id}");
                assert_eq!(plan(&row(&want)).unwrap(), vec![]);
                m.upstream_id = Some("elsewhere-1".into());
                assert_eq!(plan(&row(&m)).unwrap(), vec![]);
            }
        }
    }

    /// Migration 25: a luna row without long-context rates gets the
    /// default's, the operator's other changes kept; rates of the
    /// operator's own, or a row pointed elsewhere, are left alone.
    #[test]
    fn rows_without_long_context_rates_get_the_defaults() {
        let defaults = aipipe_core::catalog::default_models();
        let mut luna = defaults
            .iter()
            .find(|m| m.id == "gpt-6-luna")
            .unwrap()
            .clone();
        let rates = luna.long_context;
        assert!(rates.is_some());
        let row =
            |m: &aipipe_core::table::Model| vec![(m.id.clone(), serde_json::to_string(m).unwrap())];
        luna.long_context = None;
        luna.input_per_mtok = 0.08;
        let writes = long_context_rates::plan(&row(&luna)).unwrap();
        let mut want = luna.clone();
        want.long_context = rates;
        assert_eq!(writes, row(&want), "given, its price kept");
        assert_eq!(long_context_rates::plan(&row(&want)).unwrap(), vec![]);
        let mut own = want.clone();
        own.long_context = Some(aipipe_core::catalog::LongContext {
            above_tokens: 200_000,
            input_multiplier: 3.0,
            output_multiplier: 3.0,
        });
        assert_eq!(long_context_rates::plan(&row(&own)).unwrap(), vec![]);
        luna.upstream_id = Some("gpt-6.1-terra".into());
        assert_eq!(long_context_rates::plan(&row(&luna)).unwrap(), vec![]);
    }

    #[test]
    fn sonnet_4_5_is_retired_by_migration_17s_rule() {
        let defaults = aipipe_core::catalog::default_models();
        assert!(defaults.iter().all(|m| m.id != "claude-sonnet-4-5"));
        let mut sonnet = defaults
            .iter()
            .find(|m| m.id == "claude-opus-4-5")
            .unwrap()
            .clone();
        sonnet.id = "claude-sonnet-4-5".into();
        let mut stored = vec![(sonnet.id.clone(), serde_json::to_string(&sonnet).unwrap())];
        for m in &defaults {
            stored.push((m.id.clone(), serde_json::to_string(m).unwrap()));
        }
        let plan = |stored: &[(String, String)], policies| {
            catalog_2026_12::plan(stored, policies, sonnet_4_5::RETIRED, &[]).unwrap()
        };
        assert_eq!(
            plan(&stored, vec![]),
            vec![catalog_2026_12::Step::Delete("claude-sonnet-4-5".into())]
        );
        let named = vec![(
            "acme".to_owned(),
            r#"{"allow_models": ["claude-sonnet-4-5"]}"#.to_owned(),
        )];
        let steps = plan(&stored, named.clone());
        let [catalog_2026_12::Step::Disable { id, json }] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert_eq!(id, "claude-sonnet-4-5");
        let disabled: aipipe_core::table::Model = serde_json::from_str(json).unwrap();
        assert!(!disabled.enabled);
        assert_eq!(
            disabled,
            aipipe_core::table::Model {
                enabled: false,
                ..sonnet.clone()
            }
        );
        // Already disabled: nothing to write.
        stored[0].1 = json.clone();
        assert_eq!(plan(&stored, named), vec![]);
        sonnet.upstream_id = Some("claude-sonnet-5-5".into());
        stored[0].1 = serde_json::to_string(&sonnet).unwrap();
        assert_eq!(plan(&stored, vec![]), vec![]);
    }

    /// A database written by the first release (migration 1 only, with a
    /// usage row) opens, is migrated in place, and keeps its data.
    #[tokio::test]
    async fn a_version_1_database_is_upgraded_in_place() {
        let dir = std::env::temp_dir().join(format!(
            "aipipe-cp-db-v1-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("aipipe.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);",
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            let (_, _, v1) = MIGRATIONS[0];
            tx.execute_batch(v1).unwrap();
            seed(&tx).unwrap();
            // As the first release stored them: no task figures; one model
            // whose quality the operator changed.
            tx.execute_batch(
                "UPDATE models SET json = json_remove(json, '$.category_quality');
                 UPDATE models SET json = json_set(json, '$.quality', 0.5) WHERE id = 'gpt-4o';",
            )
            .unwrap();
            tx.execute_batch(
                "INSERT INTO schema_migrations VALUES (1, 'initial schema', 0);
                 INSERT INTO usage (id, tenant, provider, model, status, prompt_tokens,
                    completion_tokens, cached_tokens, cost_nusd, latency_ms, ttft_ms, complexity,
                    stream, usage_parsed, ts_ms)
                 VALUES ('old', 'acme', 'openai', 'gpt-4o-mini', 200, 10, 5, 2, 100, 12.0, NULL, NULL, 0, 1, 1000);
                 INSERT INTO usage_totals VALUES ('acme', 'openai', 'gpt-4o-mini', 1, 0, 10, 5, 2, 100, 0);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let horizons = crate::db::Horizons::at(now_ms(), None);
        let a = db
            .stats(Some("acme".into()), 0, 10_000, horizons)
            .await
            .unwrap()
            .unwrap();
        let r = a.window.report("acme", a.since, a.until);
        assert_eq!(r.totals.numbers.requests, 1);
        assert_eq!(r.totals.numbers.cached_tokens, 2);
        assert_eq!(r.totals.numbers.cache_write_tokens, 0);
        let totals = db.usage_totals().await.unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].sums.requests, 1);
        assert_eq!(totals[0].sums.failed_attempts, 0);
        assert_eq!(totals[0].sums.cache_hits, 0);
        assert_eq!(r.totals.numbers.cache_hits, 0);
        // The untouched default models got their task figures.
        let models = db.models().await.unwrap();
        let opus = models.iter().find(|m| m.id == "claude-opus-4-5").unwrap();
        assert!(opus.category_quality.contains_key("coding"), "{opus:?}");
        let gpt4o = models.iter().find(|m| m.id == "gpt-4o").unwrap();
        assert!(
            gpt4o.category_quality.is_empty(),
            "the operator's model: {gpt4o:?}"
        );
        let p = db.penalties(None).await.unwrap();
        // Creation time in ms: above any epoch an older database reached.
        assert!(p.penalty_epoch > 1_700_000_000_000, "{}", p.penalty_epoch);
        assert!(p.penalty_epoch <= now_ms());
        assert!(p.penalties.iter().all(|v| v.penalty == 0.0));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
