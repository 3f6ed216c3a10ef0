//! The storage interface on both engines (control-plane/README.md,
//! "PostgreSQL"): every scenario here runs once on a fresh SQLite file and
//! once on a fresh database of a throwaway PostgreSQL server
//! (`aipipe_tests::postgres`), through the admin API, the internal API's
//! deltas and `Db` itself — so the aggregates ported to PostgreSQL (tenants,
//! keys, catalog and router model, policy, rate limits, budgets and their
//! alerts, penalties, usage ingest, the change log)
//! answer exactly as on SQLite. Then what only PostgreSQL has: seeding a new
//! database, and two control planes writing one database at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{ADMIN, TOKEN, secrets, temp_dir};

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use aipipe_control_plane::config::{Database, parse_database_url};
use aipipe_control_plane::db::{Changed, Db};
use aipipe_control_plane::{AppState, admin_app, internal_app};
use aipipe_core::contract::{CHANGES_PATH, TENANT_USAGE_PATH, TOKEN_HEADER, USAGE_PATH};
use aipipe_core::directory::{Delta, KeyEntry, Kind, TenantEntry};
use aipipe_core::usage::{FailedAttempt, UsageBatch, UsageRecord, UsageSource, UsageUpload};
use aipipe_tests::postgres::Postgres;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// One control plane's state on one engine. Fields drop in order: the
/// state (and its connections) before the server.
struct Store {
    state: AppState,
    _pg: Option<Postgres>,
    dir: Option<PathBuf>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

async fn postgres_db(pg: &Postgres, name: &str) -> Db {
    let Database::Postgres(url) = parse_database_url("test", &pg.create_database(name)).unwrap()
    else {
        panic!("not a postgres URL")
    };
    Db::open_postgres(&url, aipipe_control_plane::penalty::DEFAULT_DECAY_MS)
        .await
        .unwrap()
}

async fn store(engine: Engine) -> Store {
    match engine {
        Engine::Sqlite => {
            let dir = temp_dir("engines");
            let db = Db::open(&dir.join("aipipe.db")).unwrap();
            Store {
                state: AppState::new(db, &secrets()),
                _pg: None,
                dir: Some(dir),
            }
        }
        Engine::Postgres => {
            let pg = Postgres::start();
            let db = postgres_db(&pg, "aipipe").await;
            Store {
                state: AppState::new(db, &secrets()),
                _pg: Some(pg),
                dir: None,
            }
        }
    }
}

/// Each scenario as two tests, one per engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::store(super::Engine::Sqlite).await).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::store(super::Engine::Postgres).await).await
            }
        }
    )*};
}

on_both_engines!(
    tenants_are_created_read_updated_and_deleted,
    provider_keys_reach_the_envoys_in_clear_and_never_the_admin_api,
    a_revoked_virtual_key_leaves_every_envoy_once,
    models_the_router_model_and_policies_round_trip,
    rate_limits_travel_in_the_tenant_and_key_entries,
    changes_are_paged_in_revision_order_without_removals_from_zero,
    a_waiting_request_for_changes_wakes_when_one_commits,
    budgets_are_reported_published_and_alert_once_per_threshold,
    penalties_are_shown_decayed_and_reset_with_a_new_epoch,
    usage_is_stored_once_by_record_id_and_counted_in_the_totals,
    failures_raise_a_penalty_that_the_changes_carry,
    spend_moves_the_budget_entry_and_fires_its_alert,
    usage_by_day_cost_corrections_imports_and_budget_metrics,
    a_tenants_examples_and_ratings_fit_a_router_its_entry_carries,
    evals_are_recorded_finished_applied_and_failed_when_interrupted,
    a_running_eval_is_failed_by_another_control_plane_only_once_its_heartbeat_stops,
    two_control_planes_deliver_each_budget_alert_once_and_take_over_a_dead_ones,
    each_envoys_report_is_shared_by_every_control_plane_bounded_and_summed_while_fresh,
    retention_drops_old_records_and_keeps_their_numbers,
);

impl Store {
    fn db(&self) -> &Db {
        &self.state.db
    }

    /// Another control plane's store on the same database (a second
    /// process on the same SQLite file; a replica on PostgreSQL), its
    /// penalties halving every `decay_ms`.
    async fn second(&self, decay_ms: u64) -> Db {
        match (&self._pg, &self.dir) {
            (Some(pg), _) => {
                let Database::Postgres(url) =
                    parse_database_url("test", &pg.url("aipipe")).unwrap()
                else {
                    panic!("not a postgres URL")
                };
                Db::open_postgres(&url, decay_ms).await.unwrap()
            }
            (None, Some(dir)) => Db::open_with(&dir.join("aipipe.db"), decay_ms).unwrap(),
            (None, None) => panic!("a store has a database"),
        }
    }

    /// The rows a query returns on the store's database, each as its
    /// columns' text joined by `|` (integers and text only).
    fn raw_rows(&self, sql: &str) -> Vec<String> {
        match (&self._pg, &self.dir) {
            (Some(pg), _) => pg
                .psql("aipipe", sql)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            (None, Some(dir)) => {
                let conn = rusqlite::Connection::open(dir.join("aipipe.db")).unwrap();
                let mut st = conn.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map([], |r| {
                    Ok((0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Null => String::new(),
                            other => panic!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            (None, None) => panic!("a store has a database"),
        }
    }

    /// Posts a usage batch as a filter does; the ack.
    async fn ingest(&self, records: &[UsageRecord]) -> Value {
        let body = serde_json::to_vec(&UsageBatch {
            records: records.to_vec(),
        })
        .unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri(USAGE_PATH)
            .header(TOKEN_HEADER, TOKEN)
            .body(Body::from(body))
            .unwrap();
        let resp = internal_app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Runs SQL on the store's database behind the control plane's back
    /// (what ingest, not ported to PostgreSQL yet, would have written).
    fn raw_sql(&self, sql: &str) {
        match (&self._pg, &self.dir) {
            (Some(pg), _) => {
                pg.psql("aipipe", sql);
            }
            (None, Some(dir)) => {
                let conn = rusqlite::Connection::open(dir.join("aipipe.db")).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            (None, None) => panic!("a store has a database"),
        }
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-admin-secret", ADMIN)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = admin_app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The delta an Envoy holding `since` gets (no wait).
    async fn changes(&self, since: u64) -> Vec<u8> {
        let req = Request::builder()
            .uri(format!("{CHANGES_PATH}?since={since}&wait_ms=0"))
            .header(TOKEN_HEADER, TOKEN)
            .body(Body::empty())
            .unwrap();
        let resp = internal_app(self.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    /// Every tenant entry a new Envoy is sent (all pages from 0), by id.
    async fn tenant_entries(&self) -> Vec<(String, TenantEntry)> {
        let (mut since, mut out) = (0, Vec::new());
        loop {
            let body = self.changes(since).await;
            let d = Delta::parse(&body).unwrap();
            for r in d.records.iter().filter(|r| r.kind == Kind::Tenant) {
                out.push((r.name.to_owned(), TenantEntry::decode(r.value).unwrap()));
            }
            since = d.revision;
            if !d.more {
                return out;
            }
        }
    }

    async fn create_tenant(&self, id: &str) {
        let (s, v) = self
            .admin(
                Method::POST,
                "/admin/tenants",
                Some(json!({"id": id, "name": id.to_uppercase()})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    async fn virtual_key(&self, tenant: &str) -> (String, String) {
        let (s, v) = self
            .admin(
                Method::POST,
                &format!("/admin/tenants/{tenant}/virtual-keys"),
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }
}

async fn tenants_are_created_read_updated_and_deleted(s: Store) {
    s.create_tenant("acme").await;
    let (status, v) = s
        .admin(
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": "acme", "name": "again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = s.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            &v["name"],
            &v["disabled"],
            &v["pass_through"],
            &v["virtual_keys"]
        ),
        (&json!("ACME"), &json!(false), &json!(true), &json!(0))
    );
    let (status, v) = s
        .admin(
            Method::PATCH,
            "/admin/tenants/acme",
            Some(json!({"name": "Acme Inc", "disabled": true, "pass_through": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["name"], &v["disabled"], &v["pass_through"]),
        (&json!("Acme Inc"), &json!(true), &json!(false))
    );
    let entries = s.tenant_entries().await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0].1.disabled && !entries[0].1.pass_through);

    // A patch that changes nothing the Envoys hold records no change.
    let before = s.db().revision().await.unwrap();
    s.admin(
        Method::PATCH,
        "/admin/tenants/acme",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(s.db().revision().await.unwrap(), before);

    assert!(
        s.db()
            .ensure_tenant("beta".into(), "Beta".into())
            .await
            .unwrap()
    );
    assert!(
        !s.db()
            .ensure_tenant("beta".into(), "B".into())
            .await
            .unwrap()
    );
    let (_, v) = s.admin(Method::GET, "/admin/tenants", None).await;
    let ids: Vec<&str> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);

    s.virtual_key("acme").await;
    let (status, _) = s.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = s.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, _) = s.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let entries = s.tenant_entries().await;
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["beta"], "a new Envoy is sent no removals");
}

async fn provider_keys_reach_the_envoys_in_clear_and_never_the_admin_api(s: Store) {
    s.create_tenant("acme").await;
    let (status, v) = s
        .admin(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"openai": "sk-acme-1", "anthropic": "sk-ant-acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["providers"], json!(["anthropic", "openai"]));
    assert!(!v.to_string().contains("sk-"), "{v}");
    let sealed = s.db().sealed_keys("acme".into()).await.unwrap();
    assert_eq!(sealed.len(), 2);
    assert!(
        sealed
            .iter()
            .all(|(_, b)| !b.windows(3).any(|w| w == b"sk-")),
        "stored sealed"
    );
    let entries = s.tenant_entries().await;
    assert_eq!(
        entries[0].1.provider_keys,
        [
            ("anthropic".to_owned(), "sk-ant-acme".to_owned()),
            ("openai".to_owned(), "sk-acme-1".to_owned())
        ]
    );
    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/keys/anthropic", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/keys/anthropic", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, v) = s.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(v["providers"], json!(["openai"]));
    let (status, _) = s
        .admin(
            Method::POST,
            "/admin/tenants/nobody/keys",
            Some(json!({"openai": "sk-x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_revoked_virtual_key_leaves_every_envoy_once(s: Store) {
    s.create_tenant("acme").await;
    let held = s.db().revision().await.unwrap();
    let (id, key) = s.virtual_key("acme").await;
    let hash = aipipe_core::table::hex_hash(&key);
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    let [r] = d.records.as_slice() else {
        panic!("one entry: {:?}", d.records)
    };
    assert_eq!((r.kind, r.name), (Kind::Key, hash.as_str()));
    let e = KeyEntry::decode(r.value).unwrap();
    assert_eq!(
        (e.removed, e.tenant.as_str(), e.id.as_str()),
        (false, "acme", id.as_str())
    );

    // The same key imported again is refused.
    let (status, _) = s
        .admin(
            Method::POST,
            "/admin/tenants/acme/virtual-keys",
            Some(json!({"name": "again", "key": key})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let held = d.revision;
    let uri = format!("/admin/tenants/acme/virtual-keys/{id}");
    let (status, _) = s.admin(Method::DELETE, &uri, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    let [r] = d.records.as_slice() else {
        panic!("one entry: {:?}", d.records)
    };
    assert!(KeyEntry::decode(r.value).unwrap().removed);
    let revoked_at = d.revision;
    let (status, _) = s.admin(Method::DELETE, &uri, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "revoking twice is a no-op");
    assert_eq!(s.db().revision().await.unwrap(), revoked_at);
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/virtual-keys", None)
        .await;
    assert_eq!(v["virtual_keys"][0]["revoked"], json!(true), "{v}");
    let (status, _) = s
        .admin(
            Method::DELETE,
            "/admin/tenants/acme/virtual-keys/vk_none",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn models_the_router_model_and_policies_round_trip(s: Store) {
    let (_, v) = s.admin(Method::GET, "/admin/models", None).await;
    let models = v["models"].as_array().expect("a catalog").clone();
    assert_eq!(
        models.len(),
        aipipe_core::catalog::default_models().len(),
        "seeded with the default catalog"
    );
    let mut changed = models[0].clone();
    let id = changed["id"].as_str().unwrap().to_owned();
    changed["input_per_mtok"] = json!(0.123);
    let (status, v) = s
        .admin(Method::PUT, &format!("/admin/models/{id}"), Some(changed))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut new = models[0].clone();
    new["id"] = json!("my-model");
    new["upstream_id"] = json!("my-model");
    let (status, v) = s
        .admin(Method::PUT, "/admin/models/my-model", Some(new))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let catalog = s.db().models().await.unwrap();
    assert_eq!(catalog.last().map(|m| m.id.as_str()), Some("my-model"));
    assert!(
        catalog
            .iter()
            .any(|m| m.id == id && m.input_per_mtok == 0.123)
    );

    s.create_tenant("acme").await;
    let (status, v) = s
        .admin(
            Method::PUT,
            "/admin/tenants/acme/policy",
            Some(json!({"pin": "my-model"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = s
        .admin(Method::DELETE, "/admin/models/my-model", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a policy names it: {v}");
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/policy", None)
        .await;
    assert_eq!(v["pin"], json!("my-model"), "{v}");
    let entries = s.tenant_entries().await;
    assert!(entries[0].1.policy.contains("my-model"));
    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/policy", None)
        .await;
    assert!(status.is_success(), "{status}");
    let (status, _) = s
        .admin(Method::DELETE, "/admin/models/my-model", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s
        .admin(Method::DELETE, "/admin/models/my-model", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The router model: none set is the built-in one; setting it is one
    // global change.
    assert_eq!(s.db().global_state().await.unwrap().router_model, None);
    let before = s.db().revision().await.unwrap();
    let (status, v) = s
        .admin(Method::PUT, "/admin/routing/model", Some(json!({})))
        .await;
    assert!(status.is_success(), "{status} {v}");
    let g = s.db().global_state().await.unwrap();
    assert!(g.version > before);
    assert_eq!(g.router_model, None);
}

async fn rate_limits_travel_in_the_tenant_and_key_entries(s: Store) {
    s.create_tenant("acme").await;
    let (key_id, key) = s.virtual_key("acme").await;
    let (status, v) = s
        .admin(
            Method::PUT,
            "/admin/tenants/acme/limits",
            Some(json!({"requests_per_minute": 600, "tokens_per_minute": 200000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let key_limits = format!("/admin/tenants/acme/virtual-keys/{key_id}/limits");
    let (status, v) = s
        .admin(
            Method::PUT,
            &key_limits,
            Some(json!({"requests_per_minute": 10})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = s.admin(Method::GET, &key_limits, None).await;
    assert_eq!(v["requests_per_minute"], json!(10), "{v}");
    let entries = s.tenant_entries().await;
    assert_eq!(
        (
            entries[0].1.limits.requests_per_minute,
            entries[0].1.limits.tokens_per_minute
        ),
        (600, 200_000)
    );
    let body = s.changes(0).await;
    let d = Delta::parse(&body).unwrap();
    let hash = aipipe_core::table::hex_hash(&key);
    let r = d.records.iter().find(|r| r.name == hash).unwrap();
    assert_eq!(
        KeyEntry::decode(r.value)
            .unwrap()
            .limits
            .requests_per_minute,
        10
    );

    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/limits", None)
        .await;
    assert!(status.is_success());
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/limits", None)
        .await;
    assert_eq!(v["requests_per_minute"], json!(0), "{v}");
    let (status, _) = s
        .admin(
            Method::GET,
            "/admin/tenants/acme/virtual-keys/vk_none/limits",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .admin(Method::GET, "/admin/tenants/nobody/limits", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn changes_are_paged_in_revision_order_without_removals_from_zero(s: Store) {
    let db = s.db();
    let start = db.revision().await.unwrap();
    for i in 0..5 {
        db.create_tenant(format!("t{i}"), "T".into()).await.unwrap();
    }
    assert!(db.delete_tenant("t1".into()).await.unwrap());
    let end = db.revision().await.unwrap();
    assert_eq!(end, start + 6, "one revision per change");

    // Read a page at a time: the deletion is the last change, so it comes
    // in a later page (from a revision above 0), as a removal.
    let (mut since, mut revs, mut tenants) = (0, Vec::new(), Vec::new());
    loop {
        let page = db.changes_since(since, 2).await.unwrap();
        assert!(page.changes.len() <= 2);
        for c in &page.changes {
            match c {
                Changed::Global(g) => revs.push(g.version),
                Changed::Tenant { rev, id, state } => {
                    assert!(state.is_some() || since > 0, "no removals from 0");
                    revs.push(*rev);
                    tenants.push((id.clone(), state.is_some()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        since = page.revision;
        if !page.more {
            break;
        }
    }
    assert_eq!(since, end);
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
    let live = |id: &str, live: bool| (id.to_owned(), live);
    assert_eq!(
        tenants,
        [
            live("t0", true),
            live("t2", true),
            live("t3", true),
            live("t4", true),
            live("t1", false)
        ]
    );

    // All at once from 0: the removal is left out.
    let page = db.changes_since(0, 100).await.unwrap();
    assert!(!page.more);
    assert_eq!(page.revision, end);
    assert_eq!(page.changes.len(), 5, "the global table and four tenants");
    assert!(
        page.changes
            .iter()
            .all(|c| !matches!(c, Changed::Tenant { state: None, .. }))
    );
    assert!(db.changes_since(end, 100).await.unwrap().changes.is_empty());
}

async fn a_waiting_request_for_changes_wakes_when_one_commits(s: Store) {
    let mut revisions = s.db().subscribe();
    let held = *revisions.borrow_and_update();
    assert_eq!(held, s.db().revision().await.unwrap());
    let db = s.db().clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        db.create_tenant("late".into(), "Late".into())
            .await
            .unwrap();
    });
    tokio::time::timeout(Duration::from_secs(5), revisions.changed())
        .await
        .expect("woken by the commit")
        .unwrap();
    let now = *revisions.borrow();
    assert_eq!(now, held + 1);
    writer.await.unwrap();
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    assert_eq!(
        d.records
            .iter()
            .map(|r| (r.kind, r.name))
            .collect::<Vec<_>>(),
        [(Kind::Tenant, "late")]
    );
}

async fn budgets_are_reported_published_and_alert_once_per_threshold(s: Store) {
    s.create_tenant("acme").await;
    s.db().enable_alerts();
    let today = aipipe_control_plane::db::now_ms() / 86_400_000;
    // $0.60 spent today.
    s.raw_sql(&format!(
        "INSERT INTO usage_days (tenant, day, requests, prompt_tokens, completion_tokens, cost_nusd)
         VALUES ('acme', {today}, 3, 30, 20, 600000000)"
    ));
    let (status, v) = s
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no budget yet: {v}");

    let held = s.db().revision().await.unwrap();
    let put = |limit: f64| Some(json!({"limit_usd": limit, "days": 7}));
    let (status, v) = s
        .admin(Method::PUT, "/admin/tenants/acme/budget", put(1.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["limit_usd"], &v["spent_usd"], &v["source"]),
        (&json!(1.0), &json!(0.6), &json!("tenant"))
    );
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    let r = d.records.iter().find(|r| r.kind == Kind::Budget).unwrap();
    let e = aipipe_core::directory::BudgetEntry::decode(r.value).unwrap();
    assert_eq!(
        (e.limit_nusd, e.days, e.spent_nusd, e.frees.len()),
        (1_000_000_000, 7, 600_000_000, 1)
    );

    // 60 % of $1 reached 50 %: one alert; lowered to $0.70 (86 %): 80 %
    // too; set again: nothing new.
    let thresholds = |alerts: &[aipipe_control_plane::db::Alert]| -> Vec<u64> {
        alerts
            .iter()
            .map(|a| {
                serde_json::from_str::<Value>(&a.body).unwrap()["threshold_percent"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    // (A claim with no lease leaves them due.)
    assert_eq!(thresholds(&s.db().claim_alerts(10, 0).await.unwrap()), [50]);
    s.admin(Method::PUT, "/admin/tenants/acme/budget", put(0.7))
        .await;
    s.admin(Method::PUT, "/admin/tenants/acme/budget", put(0.7))
        .await;
    let due = s.db().claim_alerts(10, 60_000).await.unwrap();
    assert_eq!(thresholds(&due), [50, 80]);
    // Claimed: nobody else gets them while the lease runs.
    assert!(s.db().claim_alerts(10, 60_000).await.unwrap().is_empty());
    s.db().alert_done(due[0].id).await.unwrap();
    s.db()
        .alert_retry(due[1].id, 1, aipipe_control_plane::db::now_ms() + 60_000)
        .await
        .unwrap();
    assert!(s.db().claim_alerts(10, 0).await.unwrap().is_empty());

    // A virtual key's own budget: its key entry says so, its budget entry
    // carries it.
    let (key_id, key) = s.virtual_key("acme").await;
    let held = s.db().revision().await.unwrap();
    let uri = format!("/admin/tenants/acme/virtual-keys/{key_id}/budget");
    let (status, v) = s.admin(Method::PUT, &uri, put(2.0)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["source"], &v["spent_usd"]),
        (&json!("virtual_key"), &json!(0.0))
    );
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    let hash = aipipe_core::table::hex_hash(&key);
    let k = d.records.iter().find(|r| r.name == hash).unwrap();
    assert!(KeyEntry::decode(k.value).unwrap().budgeted);
    assert!(
        d.records
            .iter()
            .any(|r| r.kind == Kind::KeyBudget && r.name == key_id)
    );

    // The default applies to tenants without their own.
    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/budget", None)
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(s.db().budget_default().await.unwrap(), None);
    let (status, v) = s
        .admin(Method::PUT, "/admin/budget-default", put(5.0))
        .await;
    assert!(status.is_success(), "{status} {v}");
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(
        (&v["source"], &v["limit_usd"]),
        (&json!("default"), &json!(5.0)),
        "{v}"
    );
    assert_eq!(
        s.db()
            .global_state()
            .await
            .unwrap()
            .budget_default
            .map(|l| l.limit_nusd),
        Some(5_000_000_000)
    );
    let (status, _) = s
        .admin(Method::PUT, "/admin/tenants/nobody/budget", put(1.0))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn penalties_are_shown_decayed_and_reset_with_a_new_epoch(s: Store) {
    let now = aipipe_control_plane::db::now_ms();
    // What ingest (not ported yet) would have stored: a model's own
    // penalty and a (model, key) pair's.
    s.raw_sql(&format!(
        "INSERT INTO penalties (provider, model, key_tag, penalty, decayed_ms, successes,
            failures, updated_ms, published)
         VALUES ('openai', 'gpt-4o', '', 2.0, {now}, 3, 5, {now}, 2.0),
                ('openai', 'gpt-4o', '0123456789abcdef', 1.0, {now}, 0, 2, {now}, 1.0)"
    ));
    let (status, v) = s.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let p = v["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "gpt-4o")
        .unwrap();
    assert!(p["penalty"].as_f64().unwrap() > 1.9, "{p}");
    assert_eq!(
        (&p["table_penalty"], &p["success_rate"]),
        (&json!(2.0), &json!(0.375))
    );
    assert_eq!(
        v["key_penalties"][0]["key_tag"],
        json!("0123456789abcdef"),
        "{v}"
    );
    let epoch = v["penalty_epoch"].as_u64().unwrap();
    assert_eq!(
        v["table_version"].as_u64().unwrap(),
        s.db().revision().await.unwrap()
    );
    let table = s.db().global_state().await.unwrap();
    assert!(
        table
            .penalties
            .iter()
            .any(|(_, m, _, p)| m == "gpt-4o" && *p == 2.0)
    );

    let (status, _) = s
        .admin(
            Method::POST,
            "/admin/penalties/reset",
            Some(json!({"model": "no-such"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let held = s.db().revision().await.unwrap();
    let (status, v) = s
        .admin(
            Method::POST,
            "/admin/penalties/reset",
            Some(json!({"model": "gpt-4o"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["reset"], json!(["gpt-4o"]));
    assert_eq!(v["penalty_epoch"].as_u64().unwrap(), epoch + 1);
    assert!(v["table_version"].as_u64().unwrap() > held);
    let table = s.db().global_state().await.unwrap();
    assert_eq!(table.penalty_epoch, epoch + 1);
    assert!(
        table.penalties.iter().all(|(_, _, _, p)| *p == 0.0),
        "{:?}",
        table.penalties
    );
    let (_, v) = s.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(v["key_penalties"], json!([]), "the pair is forgotten");
}

fn record(id: &str, tenant: &str, model: &str, status: u16, ts_ms: u64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        tenant: tenant.into(),
        provider: "openai".into(),
        model: model.into(),
        status,
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 10,
        cache_write_tokens: 5,
        cost_nusd: 45_000,
        latency_ms: 120.0,
        ttft_ms: Some(30.0),
        complexity: Some(0.3),
        stream: false,
        usage_parsed: status < 400,
        ts_ms,
        failed_attempts: Vec::new(),
        cache_hit: false,
        estimated: false,
        key_tag: None,
        reserved_nusd: None,
        virtual_key: None,
        key_reserved_nusd: None,
        router_features: None,
    }
}

async fn usage_is_stored_once_by_record_id_and_counted_in_the_totals(s: Store) {
    s.create_tenant("acme").await;
    let now = aipipe_control_plane::db::now_ms();
    let day = 86_400_000;
    let mut batch: Vec<UsageRecord> = (0..10u64)
        .map(|i| {
            record(
                &format!("r{i}"),
                "acme",
                "gpt-4o-mini",
                200,
                now - i * day / 4,
            )
        })
        .collect();
    batch[3].failed_attempts.push(FailedAttempt {
        provider: "openai".into(),
        model: "gpt-4o".into(),
        status: 503,
        key_tag: None,
    });
    batch[4].status = 500;
    batch[4].usage_parsed = false;
    // A tenant that never existed, and (on both engines) a record like the
    // others beside them: refused one by one, never the batch.
    let mut stranger = batch[0].clone();
    stranger.id = "x".into();
    stranger.tenant = "nobody".into();
    batch.push(stranger);
    let ack = s.ingest(&batch).await;
    assert_eq!(
        (&ack["accepted"], &ack["duplicates"], &ack["refused"]),
        (&json!(10), &json!(0), &json!(1)),
        "{ack}"
    );
    assert_eq!(
        ack["revision"].as_u64().unwrap(),
        s.db().revision().await.unwrap()
    );
    let ack = s.ingest(&batch[..6]).await;
    assert_eq!(
        (&ack["accepted"], &ack["duplicates"]),
        (&json!(0), &json!(6)),
        "{ack}"
    );

    let totals = s.db().usage_totals().await.unwrap();
    let by_model: Vec<(String, u64, u64, u64, u64)> = totals
        .iter()
        .map(|t| {
            (
                t.model.clone(),
                t.sums.requests,
                t.sums.errors,
                t.sums.failed_attempts,
                t.sums.cost_nusd,
            )
        })
        .collect();
    assert_eq!(
        by_model,
        [
            ("gpt-4o".to_owned(), 0, 0, 1, 0),
            ("gpt-4o-mini".to_owned(), 10, 1, 0, 450_000)
        ]
    );
    assert_eq!(s.raw_rows("SELECT COUNT(*) FROM usage"), ["10"]);
    assert_eq!(
        s.raw_rows("SELECT record_id, status FROM attempt_failures"),
        ["r3|503"]
    );
    // The rollups: the same cells on both engines (compared as text with
    // the other engine's in `both_engines_keep_the_same_rollups`).
    let cells = s.raw_rows(
        "SELECT COUNT(*), SUM(requests), SUM(cost_nusd), SUM(failed_attempts) FROM usage_rollups
         WHERE tenant = 'acme' AND width_ms = 86400000",
    );
    assert_eq!(cells.len(), 1);
    assert!(cells[0].ends_with("|10|450000|1"), "{cells:?}");
    let days: u64 = s.raw_rows("SELECT COUNT(*) FROM usage_days WHERE tenant = 'acme'")[0]
        .parse()
        .unwrap();
    assert!((3..=4).contains(&days), "{days}");
}

async fn failures_raise_a_penalty_that_the_changes_carry(s: Store) {
    s.create_tenant("acme").await;
    let penalty = |g: &aipipe_control_plane::db::GlobalState, model: &str| {
        g.penalties
            .iter()
            .find(|(_, m, tag, _)| m == model && tag.is_empty())
            .map_or(0.0, |p| p.3)
    };
    let g0 = s.db().global_state().await.unwrap();
    let now = aipipe_control_plane::db::now_ms();
    // Each failure multiplies 1 + penalty by 4: 0 → 3 → 15.
    s.ingest(&[record("f1", "acme", "gpt-4o-mini", 500, now)])
        .await;
    let g1 = s.db().global_state().await.unwrap();
    assert!(g1.version > g0.version);
    assert!(
        (penalty(&g1, "gpt-4o-mini") - 3.0).abs() < 0.01,
        "{:?}",
        g1.penalties
    );
    s.ingest(&[record("f2", "acme", "gpt-4o-mini", 502, now)])
        .await;
    let g2 = s.db().global_state().await.unwrap();
    assert!(
        (penalty(&g2, "gpt-4o-mini") - 15.0).abs() < 0.05,
        "{:?}",
        g2.penalties
    );
    // A retried batch is a duplicate: no penalty applied twice, no change.
    s.ingest(&[
        record("f1", "acme", "gpt-4o-mini", 500, now),
        record("f2", "acme", "gpt-4o-mini", 502, now),
    ])
    .await;
    assert_eq!(s.db().global_state().await.unwrap().version, g2.version);
    // A success halves it.
    s.ingest(&[record("s1", "acme", "gpt-4o-mini", 200, now)])
        .await;
    let g3 = s.db().global_state().await.unwrap();
    assert!(
        (penalty(&g3, "gpt-4o-mini") - 7.0).abs() < 0.6,
        "{:?}",
        g3.penalties
    );
    let (_, v) = s.admin(Method::GET, "/admin/penalties", None).await;
    let p = v["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "gpt-4o-mini")
        .unwrap();
    assert_eq!(
        (&p["successes"], &p["failures"]),
        (&json!(1), &json!(2)),
        "{p}"
    );
}

async fn spend_moves_the_budget_entry_and_fires_its_alert(s: Store) {
    s.create_tenant("acme").await;
    s.db().enable_alerts();
    let (key_id, _) = s.virtual_key("acme").await;
    s.admin(
        Method::PUT,
        "/admin/tenants/acme/budget",
        Some(json!({"limit_usd": 0.0001, "days": 1})),
    )
    .await;
    s.admin(
        Method::PUT,
        &format!("/admin/tenants/acme/virtual-keys/{key_id}/budget"),
        Some(json!({"limit_usd": 1.0, "days": 1})),
    )
    .await;
    let held = s.db().revision().await.unwrap();
    let mut r = record(
        "b1",
        "acme",
        "gpt-4o-mini",
        200,
        aipipe_control_plane::db::now_ms(),
    );
    r.cost_nusd = 60_000; // 60 % of $0.0001
    r.virtual_key = Some(key_id.clone());
    s.ingest(&[r]).await;
    let body = s.changes(held).await;
    let d = Delta::parse(&body).unwrap();
    let tenant = d.records.iter().find(|r| r.kind == Kind::Budget).unwrap();
    let e = aipipe_core::directory::BudgetEntry::decode(tenant.value).unwrap();
    assert_eq!(e.spent_nusd, 60_000);
    let key = d
        .records
        .iter()
        .find(|r| r.kind == Kind::KeyBudget)
        .unwrap();
    let e = aipipe_core::directory::BudgetEntry::decode(key.value).unwrap();
    assert_eq!((key.name, e.spent_nusd), (key_id.as_str(), 60_000));
    let due = s.db().claim_alerts(10, 0).await.unwrap();
    assert_eq!(due.len(), 1, "the tenant's 50 %, not the key's: {due:?}");
    assert!(
        due[0].body.contains("\"threshold_percent\":50"),
        "{}",
        due[0].body
    );
}

async fn usage_by_day_cost_corrections_imports_and_budget_metrics(s: Store) {
    s.create_tenant("acme").await;
    let (_, key) = s.virtual_key("acme").await;
    let now = aipipe_control_plane::db::now_ms();
    s.ingest(&[
        record("u1", "acme", "gpt-4o-mini", 200, now),
        record("u2", "acme", "gpt-4o-mini", 200, now - 86_400_000),
    ])
    .await;
    s.admin(
        Method::PUT,
        "/admin/tenants/acme/budget",
        Some(json!({"limit_usd": 1.0, "days": 7})),
    )
    .await;

    // A tenant's own usage, asked with its virtual key.
    let req = Request::builder()
        .uri(format!("{TENANT_USAGE_PATH}?days=7"))
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let resp = internal_app(s.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (
            &v["tenant"],
            v["usage"].as_array().map(Vec::len),
            &v["limit"]
        ),
        (&json!("acme"), Some(2), &json!(1.0)),
        "{v}"
    );
    assert!((v["cost"].as_f64().unwrap() - 0.00009).abs() < 1e-12, "{v}");

    // An operator's correction of yesterday: kept, and the budget follows.
    let yesterday = v["usage"][0]["date"].as_str().unwrap().to_owned();
    let (status, c) = s
        .admin(
            Method::POST,
            "/admin/cost",
            Some(json!({"tenant": "acme", "date": yesterday, "cost": 0.5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert!(
        (c["previous"].as_f64().unwrap() - 0.000045).abs() < 1e-12,
        "{c}"
    );
    let (_, v) = s.admin(Method::GET, "/admin/usage?days=7", None).await;
    let acme = &v["tenants"][0];
    assert!(
        (acme["remaining"].as_f64().unwrap() - 0.499955).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(s.raw_rows("SELECT COUNT(*) FROM cost_adjustments"), ["1"]);

    // /metrics reports the tenant's budget and its spend.
    let spend = s.db().budget_spend().await.unwrap();
    assert_eq!(
        spend
            .iter()
            .map(|b| (b.tenant.as_str(), b.limit_nusd, b.spent_nusd))
            .collect::<Vec<_>>(),
        [("acme", 1_000_000_000, 500_045_000)]
    );

    // A bulk import: one new tenant, one refused (exists), one refused
    // (a key hash already registered).
    let hash = aipipe_core::table::hex_hash(&key);
    let lines = [
        json!({"id": "imp-1", "provider_keys": {"openai": "sk-imp"}, "virtual_key_hashes": ["ab".repeat(32)]}),
        json!({"id": "acme"}),
        json!({"id": "imp-2", "virtual_key_hashes": [hash]}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/admin/tenants/import")
        .header("x-admin-secret", ADMIN)
        .body(Body::from(lines))
        .unwrap();
    let resp = admin_app(s.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(status.is_success(), "{status} {v}");
    assert_eq!(v["imported"], json!(1), "{v}");
    assert_eq!(v["refused"].as_array().unwrap().len(), 2, "{v}");
    let entries = s.tenant_entries().await;
    let imp = entries.iter().find(|(id, _)| id == "imp-1").unwrap();
    assert_eq!(
        imp.1.provider_keys,
        [("openai".to_owned(), "sk-imp".to_owned())]
    );
    assert_eq!(
        s.db()
            .tenant_of_key("ab".repeat(32))
            .await
            .unwrap()
            .as_deref(),
        Some("imp-1")
    );
}

async fn a_tenants_examples_and_ratings_fit_a_router_its_entry_carries(s: Store) {
    s.create_tenant("acme").await;
    let (status, v) = s
        .admin(
            Method::POST,
            "/admin/tenants/acme/routing/examples",
            Some(json!([
                {"request": {"messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}, "tier": "frontier", "category": "math_reasoning"},
                {"request": {"messages": [{"role": "user", "content": "hi there"}]}, "tier": "cheap", "category": "chat"},
            ])),
        )
        .await;
    assert!(status.is_success(), "{status} {v}");
    assert_eq!(v["examples"], json!(2), "{v}");
    assert_eq!(v["routing"]["router"]["examples"], json!(2), "{v}");
    let entries = s.tenant_entries().await;
    assert!(
        !entries[0].1.router.is_empty(),
        "the fitted correction is shipped"
    );
    assert_eq!(s.db().learning_tenants().await.unwrap(), ["acme"]);

    // A rating whose request's features are not known yet waits.
    assert!(
        !s.db()
            .add_feedback("acme".into(), "req-1".into(), false, None)
            .await
            .unwrap()
    );
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/routing", None)
        .await;
    assert_eq!(
        (&v["examples"], &v["ratings"], &v["ratings_learnable"]),
        (&json!(2), &json!(1), &json!(0)),
        "{v}"
    );
    let labelled = s.db().labelled_requests("acme".into()).await.unwrap();
    assert_eq!(labelled.len(), 2);
    assert!(labelled.iter().all(|l| !l.feedback && l.request.is_none()));

    // Its usage record brings the features: the rating teaches. Then the
    // features are bounded by age and by count per tenant (newest kept).
    let features = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(
            aipipe_core::tenant_router::encode_features(
                7,
                &aipipe_core::classify::Features::default(),
            ),
        )
    };
    let now = aipipe_control_plane::db::now_ms();
    let with_features = |id: &str, ts: u64| UsageRecord {
        router_features: Some(features.clone()),
        ..record(id, "acme", "gpt-4o-mini", 200, ts)
    };
    s.ingest(&[
        with_features("req-1", now - 10),
        with_features("f-old", now - 50_000),
        with_features("f-1", now - 40),
        with_features("f-2", now - 30),
        with_features("f-3", now - 20),
    ])
    .await;
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/routing", None)
        .await;
    assert_eq!(
        (&v["ratings_learnable"], &v["features_kept"]),
        (&json!(1), &json!(5)),
        "{v}"
    );
    let labelled = s.db().labelled_requests("acme".into()).await.unwrap();
    assert_eq!(labelled.iter().filter(|l| l.feedback).count(), 1);
    assert_eq!(
        s.db()
            .prune_request_features_to(now, 10_000, 2)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.raw_rows("SELECT request_id FROM request_features ORDER BY request_id"),
        ["f-3", "req-1"]
    );

    let (status, _) = s
        .admin(Method::DELETE, "/admin/tenants/acme/routing/examples", None)
        .await;
    assert!(status.is_success());
    let (_, v) = s
        .admin(Method::GET, "/admin/tenants/acme/routing", None)
        .await;
    assert_eq!(
        (&v["examples"], &v["router"]),
        (&json!(0), &json!(null)),
        "{v}"
    );
    let entries = s.tenant_entries().await;
    assert!(entries[0].1.router.is_empty(), "back to the global model");
    assert_eq!(
        s.db()
            .prune_request_features(aipipe_control_plane::db::now_ms())
            .await
            .unwrap(),
        0
    );
}

async fn evals_are_recorded_finished_applied_and_failed_when_interrupted(s: Store) {
    let db = s.db();
    s.create_tenant("acme").await;
    let (_, key) = s.virtual_key("acme").await;
    let hash = aipipe_core::table::hex_hash(&key);
    assert_eq!(
        db.tenant_key_is_live("acme".into(), hash.clone())
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        db.tenant_key_is_live("acme".into(), "00".repeat(32))
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        db.tenant_key_is_live("nobody".into(), hash).await.unwrap(),
        None
    );

    assert!(
        !db.create_eval("ev_0".into(), "nobody".into(), "{}".into())
            .await
            .unwrap()
    );
    for id in ["ev_1", "ev_2"] {
        assert!(
            db.create_eval(id.into(), "acme".into(), r#"{"tasks":[]}"#.into())
                .await
                .unwrap()
        );
    }
    db.finish_eval("ev_1".into(), "done", Some(r#"{"score":1}"#.into()), None)
        .await
        .unwrap();
    // Finishing twice changes nothing: only a running eval ends.
    db.finish_eval("ev_1".into(), "failed", None, Some("late".into()))
        .await
        .unwrap();
    db.eval_applied("ev_1".into(), Err("no such model".into()))
        .await
        .unwrap();
    let e = db.eval("ev_1".into()).await.unwrap().unwrap();
    assert_eq!(
        (
            e.status.as_str(),
            e.results.as_deref(),
            e.error,
            e.apply_error.as_deref()
        ),
        ("done", Some(r#"{"score":1}"#), None, Some("no such model"))
    );
    assert!(e.finished_ms.is_some() && e.applied_ms.is_none());
    db.eval_applied("ev_1".into(), Ok(())).await.unwrap();
    let e = db.eval("ev_1".into()).await.unwrap().unwrap();
    assert!(e.applied_ms.is_some() && e.apply_error.is_none());

    // This control plane's own running eval is its runner's to end; the
    // next process on the database fails it (at start on SQLite: bound 0).
    assert_eq!(db.fail_interrupted_evals(0).await.unwrap(), 0);
    let next = s.second(1000).await;
    assert_ne!(next.owner(), db.owner());
    assert_eq!(next.fail_interrupted_evals(0).await.unwrap(), 1);
    let e = next.eval("ev_2".into()).await.unwrap().unwrap();
    assert_eq!(
        (e.status.as_str(), e.error.as_deref()),
        (
            "failed",
            Some("interrupted: the control plane stopped while it ran")
        )
    );
    assert!(!db.eval_heartbeat("ev_2".into()).await.unwrap());
    drop(next);
    let listed = db.tenant_evals("acme".into(), 10).await.unwrap().unwrap();
    let states: Vec<(&str, &str)> = listed
        .iter()
        .map(|e| (e.id.as_str(), e.status.as_str()))
        .collect();
    assert_eq!(states, [("ev_2", "failed"), ("ev_1", "done")]);
    assert_eq!(
        db.tenant_evals("acme".into(), 1)
            .await
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    assert!(
        db.tenant_evals("nobody".into(), 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.eval("ev_9".into()).await.unwrap().is_none());
    // A tenant's evals go with it.
    assert!(db.delete_tenant("acme".into()).await.unwrap());
    assert!(db.eval("ev_1".into()).await.unwrap().is_none());
}

/// Two control planes on one database, each running an eval: neither fails
/// the other's while its heartbeat is fresh, whatever the bound; one whose
/// heartbeat stopped longer ago than the bound (its control plane was
/// killed) is failed by the other, once, and its runner learns it.
async fn a_running_eval_is_failed_by_another_control_plane_only_once_its_heartbeat_stops(s: Store) {
    let a = s.db().clone();
    let b = s.second(1000).await;
    s.create_tenant("acme").await;
    for (db, id) in [(&a, "ev_a"), (&b, "ev_b")] {
        assert!(
            db.create_eval(id.into(), "acme".into(), "{}".into())
                .await
                .unwrap()
        );
    }
    let owners = s.raw_rows("SELECT id, owner FROM evals ORDER BY id");
    assert_eq!(
        owners,
        [format!("ev_a|{}", a.owner()), format!("ev_b|{}", b.owner())]
    );
    // Fresh heartbeats: a 60 s bound fails nothing, on either side.
    assert_eq!(a.fail_interrupted_evals(60_000).await.unwrap(), 0);
    assert_eq!(b.fail_interrupted_evals(60_000).await.unwrap(), 0);
    // ev_b's control plane went silent two minutes ago.
    let two_minutes_ago = aipipe_control_plane::db::now_ms() - 120_000;
    s.raw_sql(&format!(
        "UPDATE evals SET heartbeat_ms = {two_minutes_ago} WHERE id = 'ev_b'"
    ));
    // Its own control plane never fails it (its runner ends it)…
    assert_eq!(b.fail_interrupted_evals(60_000).await.unwrap(), 0);
    // …a heartbeat written in time keeps it alive…
    assert!(b.eval_heartbeat("ev_b".into()).await.unwrap());
    assert_eq!(a.fail_interrupted_evals(60_000).await.unwrap(), 0);
    // …and once it is stale, the other one fails it, once.
    s.raw_sql(&format!(
        "UPDATE evals SET heartbeat_ms = {two_minutes_ago} WHERE id = 'ev_b'"
    ));
    assert_eq!(a.fail_interrupted_evals(60_000).await.unwrap(), 1);
    assert_eq!(a.fail_interrupted_evals(60_000).await.unwrap(), 0);
    let states = s.raw_rows("SELECT id, status FROM evals ORDER BY id");
    assert_eq!(states, ["ev_a|running", "ev_b|failed"]);
    // Its runner's next heartbeat says it no longer runs there, and its
    // results can no longer be recorded.
    assert!(!b.eval_heartbeat("ev_b".into()).await.unwrap());
    b.finish_eval("ev_b".into(), "done", Some("{}".into()), None)
        .await
        .unwrap();
    assert_eq!(
        b.eval("ev_b".into()).await.unwrap().unwrap().status,
        "failed"
    );
    // An eval from before owners (none, no heartbeat) counts from its
    // creation.
    s.raw_sql(&format!(
        "UPDATE evals SET owner = NULL, heartbeat_ms = NULL, created_ms = {two_minutes_ago}
         WHERE id = 'ev_a'"
    ));
    assert_eq!(a.fail_interrupted_evals(60_000).await.unwrap(), 1);
    drop(b);
}

/// A webhook stand-in: every body it was sent, answered 200 after `delay`
/// (so deliveries of two control planes overlap in time).
async fn webhook(delay: Duration) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                tokio::time::sleep(delay).await;
                log.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// Two control planes with the same webhook on one database: each alert
/// of the outbox reaches the webhook once, whichever delivers it; alerts a
/// control plane claimed and never delivered (it died) are delivered by
/// the others once the claim's lease has passed, not before.
async fn two_control_planes_deliver_each_budget_alert_once_and_take_over_a_dead_ones(s: Store) {
    let b = AppState::new(s.second(1000).await, &secrets());
    let (url, got) = webhook(Duration::from_millis(30)).await;
    let outbox = |from: usize, to: usize| {
        let rows: Vec<String> = (from..to)
            .map(|i| format!("('{{\"n\":{i}}}', 0, 0)"))
            .collect();
        format!(
            "INSERT INTO webhook_outbox (body, attempts, next_ms) VALUES {}",
            rows.join(", ")
        )
    };
    s.raw_sql(&outbox(0, 24));
    aipipe_control_plane::alerts::spawn(s.state.clone(), url.clone());
    aipipe_control_plane::alerts::spawn(b.clone(), url);
    let left = || s.raw_rows("SELECT COUNT(*) FROM webhook_outbox")[0].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while left() != "0" {
        assert!(std::time::Instant::now() < deadline, "{} left", left());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bodies = got.lock().unwrap().clone();
    bodies.sort_by_key(|b| serde_json::from_str::<Value>(b).unwrap()["n"].as_u64());
    let want: Vec<String> = (0..24).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(bodies, want, "each alert delivered once");

    // A control plane claimed three alerts for 1.5 s and died before it
    // delivered them: the others wait for the lease, then deliver them.
    // The rows go in as such a claim leaves them (next attempt at the
    // lease's end), in one statement: inserting them due and claiming them
    // from a third store raced the live workers' ticks on a loaded machine.
    // That a claim moves the next attempt is what the first half shows.
    let claimed_at = std::time::Instant::now();
    let lease_end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1_500;
    let rows: Vec<String> = (24..27)
        .map(|i| format!("('{{\"n\":{i}}}', 0, {lease_end})"))
        .collect();
    s.raw_sql(&format!(
        "INSERT INTO webhook_outbox (body, attempts, next_ms) VALUES {}",
        rows.join(", ")
    ));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(got.lock().unwrap().len(), 24, "delivered inside the lease");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while left() != "0" {
        assert!(std::time::Instant::now() < deadline, "{} left", left());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(claimed_at.elapsed() >= Duration::from_millis(1_500));
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 27, "{got:?}");
    let mut late: Vec<&String> = got[24..].iter().collect();
    late.sort();
    assert_eq!(late, [r#"{"n":24}"#, r#"{"n":25}"#, r#"{"n":26}"#]);
    s.state.stopping.send_replace(true);
    b.stopping.send_replace(true);
}

/// Posts a usage batch to `state`'s internal API as an Envoy's singleton
/// does, with its `source`.
async fn upload(state: &AppState, records: Vec<UsageRecord>, source: UsageSource) {
    let body = serde_json::to_vec(&UsageUpload {
        records,
        source: Some(source),
    })
    .unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri(USAGE_PATH)
        .header(TOKEN_HEADER, TOKEN)
        .body(Body::from(body))
        .unwrap();
    let resp = internal_app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

fn source(node: &str, queued: u64, reserved: &[(&str, u64)], keys: &[(&str, u64)]) -> UsageSource {
    UsageSource {
        node: node.into(),
        queued,
        dropped: 1,
        sent: 10,
        reserved_nusd: reserved
            .iter()
            .map(|(t, n)| ((*t).to_owned(), *n))
            .collect(),
        key_reserved_nusd: keys.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
    }
}

/// Each Envoy's latest report lives in the database: two control planes,
/// each uploaded to by one Envoy, both list both Envoys and sum both
/// Envoys' in-flight reservations into a budget's `reserved_usd`; a report
/// older than 30 s counts no reservation, a newer report without any
/// clears its Envoy's; past 1,000 Envoys a new one drops the least
/// recently seen.
async fn each_envoys_report_is_shared_by_every_control_plane_bounded_and_summed_while_fresh(
    s: Store,
) {
    let b = AppState::new(s.second(1000).await, &secrets());
    s.create_tenant("acme").await;
    let now = aipipe_control_plane::db::now_ms();
    upload(
        &s.state,
        vec![record("r1", "acme", "gpt-4o-mini", 200, now)],
        source("edge-1", 7, &[("acme", 100)], &[("vk_1", 40)]),
    )
    .await;
    upload(&b, Vec::new(), source("edge-2", 0, &[("acme", 20)], &[])).await;
    for db in [s.db(), &b.db] {
        let all = db.envoys().await.unwrap();
        let nodes: Vec<(&str, u64, u64, u64)> = all
            .iter()
            .map(|e| (e.node.as_str(), e.queued, e.dropped, e.sent))
            .collect();
        // `sent` counts the batch it came with.
        assert_eq!(nodes, [("edge-1", 7, 1, 11), ("edge-2", 0, 1, 10)]);
        assert!(all.iter().all(|e| e.last_seen_ms >= now));
        let now = aipipe_control_plane::db::now_ms();
        assert_eq!(db.reserved("acme".into(), None, now).await.unwrap(), 120);
        assert_eq!(
            db.reserved("acme".into(), Some("vk_1".into()), now)
                .await
                .unwrap(),
            40
        );
        assert_eq!(db.reserved("other".into(), None, now).await.unwrap(), 0);
    }
    // The budget answer of either control plane carries both.
    let (status, v) = s
        .admin(
            Method::PUT,
            "/admin/tenants/acme/budget",
            Some(json!({"limit_usd": 1, "days": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let req = Request::builder()
        .uri("/admin/tenants/acme/budget")
        .header("x-admin-secret", ADMIN)
        .body(Body::empty())
        .unwrap();
    let resp = admin_app(b.clone()).oneshot(req).await.unwrap();
    let v: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        (v["reserved_usd"].as_f64().unwrap() - 120e-9).abs() < 1e-12,
        "{v}"
    );

    // edge-1 has not reported for 31 s: its reservations are gone with it.
    let old = now - 31_000;
    s.raw_sql(&format!(
        "UPDATE envoy_reports SET last_seen_ms = {old} WHERE node = 'edge-1'"
    ));
    let at = aipipe_control_plane::db::now_ms();
    assert_eq!(b.db.reserved("acme".into(), None, at).await.unwrap(), 20);
    // edge-2 reports none: none.
    upload(&s.state, Vec::new(), source("edge-2", 3, &[], &[])).await;
    assert_eq!(s.db().reserved("acme".into(), None, at).await.unwrap(), 0);

    // 1,000 Envoys, then one more: the least recently seen go.
    let rows: Vec<String> = (0..998)
        .map(|i| format!("('n{i:03}', 0, 0, 0, {}, '{{}}', '{{}}')", 1_000 + i))
        .collect();
    s.raw_sql(&format!(
        "INSERT INTO envoy_reports (node, queued, dropped, sent, last_seen_ms, reserved, key_reserved)
         VALUES {}",
        rows.join(", ")
    ));
    assert_eq!(s.db().envoys().await.unwrap().len(), 1000);
    // A known Envoy's report drops nobody.
    upload(&b, Vec::new(), source("edge-1", 0, &[], &[])).await;
    assert_eq!(s.db().envoys().await.unwrap().len(), 1000);
    upload(&b, Vec::new(), source("new", 0, &[], &[])).await;
    let nodes: Vec<String> = s
        .db()
        .envoys()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.node)
        .collect();
    assert_eq!(nodes.len(), 1000);
    assert!(
        !nodes.contains(&"n000".to_owned()),
        "the least recently seen"
    );
    assert!(nodes.contains(&"n001".to_owned()) && nodes.contains(&"new".to_owned()));
}

async fn retention_drops_old_records_and_keeps_their_numbers(s: Store) {
    s.create_tenant("acme").await;
    let (now, d) = (aipipe_control_plane::db::now_ms(), 86_400_000u64);
    s.ingest(&[
        record("old", "acme", "gpt-4o-mini", 200, now - 5 * d),
        record("new", "acme", "gpt-4o-mini", 200, now),
    ])
    .await;
    let deleted = s.db().prune(now, Some(2 * d)).await.unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(s.raw_rows("SELECT id FROM usage"), ["new"]);
    let (_, v) = s
        .admin(
            Method::GET,
            &format!(
                "/admin/tenants/acme/stats?since={}&until={}",
                now - 6 * d,
                now + 1
            ),
            None,
        )
        .await;
    assert_eq!(
        v["totals"]["requests"],
        json!(2),
        "the rollups keep its numbers: {v}"
    );
    // A late record of a day retention dropped is still taken.
    let ack = s
        .ingest(&[record("late", "acme", "gpt-4o-mini", 200, now - 5 * d)])
        .await;
    assert_eq!(ack["accepted"], json!(1), "{ack}");
    assert_eq!(s.db().prune(now, None).await.unwrap(), 0);
}

/// The same batches make the same rollup cells, day rows and totals on
/// both engines.
#[tokio::test]
async fn both_engines_keep_the_same_rollups() {
    let (a, b) = (store(Engine::Sqlite).await, store(Engine::Postgres).await);
    let now = aipipe_control_plane::db::now_ms();
    let mut batch = Vec::new();
    for i in 0..200u64 {
        let mut r = record(
            &format!("r{i}"),
            ["t1", "t2"][(i % 2) as usize],
            ["gpt-4o-mini", "gpt-4o", "claude-opus-4-5"][(i % 3) as usize],
            [200, 200, 200, 429, 500][(i % 5) as usize],
            now - i * 3_600_000 / 7,
        );
        r.latency_ms = (i * 37 % 1000) as f64 + 0.5;
        r.complexity = (i % 4 != 0).then_some((i % 10) as f64 / 10.0);
        r.cache_hit = i % 11 == 0;
        batch.push(r);
    }
    for s in [&a, &b] {
        s.create_tenant("t1").await;
        s.create_tenant("t2").await;
        for chunk in batch.chunks(64) {
            s.ingest(chunk).await;
        }
    }
    for sql in [
        "SELECT tenant, width_ms, start_ms, provider, model, requests, errors, prompt_tokens,
            completion_tokens, cached_tokens, cache_write_tokens, cost_nusd, unparsed,
            failed_attempts, cache_hits, cheap, mid, frontier, unscored, length(latency),
            length(ttft)
         FROM usage_rollups ORDER BY tenant, width_ms, start_ms, provider, model",
        "SELECT tenant, day, requests, prompt_tokens, completion_tokens, cost_nusd FROM usage_days
         ORDER BY tenant, day",
        "SELECT tenant, provider, model, requests, errors, cost_nusd, cache_hits FROM usage_totals
         ORDER BY tenant, provider, model",
    ] {
        let (x, y) = (a.raw_rows(sql), b.raw_rows(sql));
        assert!(x.len() > 3, "{sql}: {x:?}");
        assert_eq!(x, y, "{sql}");
    }
    // And the same stats and series from them, windows with raw edges
    // included, for one tenant and for all.
    let (h, d) = (3_600_000u64, 86_400_000u64);
    for (since, until) in [
        (now - 3 * d + 12_345, now + 1),
        (now - 5 * h + 7, now - h + 3),
        (0, now + 1),
    ] {
        // Whole minutes, at most 1,000 buckets.
        let step = (until - since).div_ceil(1000 * 60_000).max(1) * 60_000;
        for uri in [
            format!("/admin/tenants/t1/stats?since={since}&until={until}"),
            format!("/admin/stats?since={since}&until={until}"),
            format!("/admin/stats/series?tenant=t2&since={since}&until={until}&step_ms={step}"),
            format!("/admin/stats/series?since={since}&until={until}&step_ms={step}"),
        ] {
            let ((sa, va), (sb, vb)) = (
                a.admin(Method::GET, &uri, None).await,
                b.admin(Method::GET, &uri, None).await,
            );
            assert_eq!(
                (sa, sb),
                (StatusCode::OK, StatusCode::OK),
                "{uri}: {va} {vb}"
            );
            assert_eq!(va, vb, "{uri}");
            assert!(va.to_string().contains("\"requests\":"), "{uri}: {va}");
        }
    }
    let (_, v) = b
        .admin(
            Method::GET,
            &format!("/admin/tenants/t1/stats?since=0&until={}", now + 1),
            None,
        )
        .await;
    assert_eq!(v["totals"]["requests"], json!(100), "{v}");
    let (status, _) = b
        .admin(Method::GET, "/admin/tenants/nobody/stats", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A new PostgreSQL database starts as a new SQLite file does: the default
/// catalog, a penalty epoch and a revision from the clock; opening it again
/// seeds nothing twice.
#[tokio::test]
async fn a_new_postgres_database_is_seeded_as_a_new_sqlite_file_is() {
    let sqlite = store(Engine::Sqlite).await;
    let pg = Postgres::start();
    let before = aipipe_control_plane::db::now_ms();
    let db = postgres_db(&pg, "seeded").await;
    let (a, b) = (
        sqlite.db().global_state().await.unwrap(),
        db.global_state().await.unwrap(),
    );
    assert_eq!(
        serde_json::to_value(&a.models).unwrap(),
        serde_json::to_value(&b.models).unwrap()
    );
    assert_eq!((a.budget_default, b.budget_default), (None, None));
    assert!(b.penalties.is_empty());
    assert!(b.penalty_epoch >= before / 1000 * 1000 && b.penalty_epoch <= b.version);
    let revision = db.revision().await.unwrap();
    assert_eq!(
        revision, b.version,
        "the global table's change is the first"
    );
    assert!(revision > before, "{revision} {before}");
    let first = db.changes_since(0, 10).await.unwrap();
    assert_eq!((first.changes.len(), first.revision), (1, revision));

    db.create_tenant("acme".into(), "Acme".into())
        .await
        .unwrap();
    drop(db);
    let Database::Postgres(url) = parse_database_url("test", &pg.url("seeded")).unwrap() else {
        panic!()
    };
    let again = Db::open_postgres(&url, 1000).await.unwrap();
    assert_eq!(again.revision().await.unwrap(), revision + 1);
    assert_eq!(again.models().await.unwrap().len(), b.models.len());
    assert_eq!(
        pg.psql(
            "seeded",
            "SELECT COUNT(*) FROM meta WHERE key = 'penalty_epoch'"
        )
        .trim(),
        "1"
    );
    drop(again);
}

/// Two control planes on one database, each creating tenants at once: the
/// change log's revisions commit in the order they were taken, so an Envoy
/// following either one, a page at a time while they write, misses none.
#[tokio::test]
async fn two_replicas_writing_at_once_never_let_an_envoy_miss_a_change() {
    let pg = Postgres::start();
    let a = postgres_db(&pg, "shared").await;
    let Database::Postgres(url) = parse_database_url("test", &pg.url("shared")).unwrap() else {
        panic!()
    };
    let b = Db::open_postgres(&url, 1000).await.unwrap();
    let start = a.revision().await.unwrap();
    const EACH: usize = 40;
    let mut writers = Vec::new();
    for (name, db) in [("a", a.clone()), ("b", b.clone())] {
        for w in 0..2 {
            let db = db.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..EACH / 2 {
                    db.create_tenant(format!("{name}{w}-{i}"), "T".into())
                        .await
                        .unwrap();
                }
            }));
        }
    }
    // An Envoy following replica b while they write.
    let (mut since, mut seen) = (start, BTreeSet::new());
    let mut rounds = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = b.changes_since(since, 7).await.unwrap();
        for c in page.changes {
            if let Changed::Tenant { id, .. } = c {
                seen.insert(id);
            }
        }
        since = page.revision;
        rounds += 1;
        if done && !page.more {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(since, start + 4 * (EACH / 2) as u64);
    assert_eq!(
        seen.len(),
        2 * 2 * (EACH / 2),
        "after {rounds} polls: {seen:?}"
    );
    assert_eq!(a.list_tenants().await.unwrap().len(), seen.len());
    drop((a, b));
}

/// Connections PostgreSQL closed (a restart, a failover, an operator's
/// `pg_terminate_backend`) are replaced at their next use: the statement
/// that met the break fails, the next one works, reads and writes alike.
#[tokio::test]
async fn broken_connections_are_replaced_at_their_next_use() {
    let pg = Postgres::start();
    let db = postgres_db(&pg, "aipipe").await;
    db.create_tenant("acme".into(), "Acme".into())
        .await
        .unwrap();
    for _ in 0..4 {
        db.list_tenants().await.unwrap(); // every reader connected
    }
    let killed = pg.psql(
        "postgres",
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = 'aipipe' AND pid <> pg_backend_pid()",
    );
    assert!(killed.trim().parse::<u32>().unwrap() >= 2, "{killed}");
    let mut failed = 0;
    for i in 0..8 {
        match db.list_tenants().await {
            Ok(t) => assert!(!t.is_empty()),
            Err(_) => failed += 1,
        }
        match db.create_tenant(format!("t{i}"), "T".into()).await {
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    // At most one failure per broken connection (three readers, a writer).
    assert!(failed <= 4, "{failed} calls failed");
    assert!(db.list_tenants().await.unwrap().len() >= 5);
    assert!(db.create_tenant("last".into(), "L".into()).await.is_ok());
    drop(db);
}

/// A commit on one control plane wakes the Envoys waiting on another one
/// on the same database (LISTEN/NOTIFY), with that revision.
#[tokio::test]
async fn a_commit_on_one_replica_wakes_the_envoys_waiting_on_the_other() {
    let pg = Postgres::start();
    let a = postgres_db(&pg, "shared").await;
    let Database::Postgres(url) = parse_database_url("test", &pg.url("shared")).unwrap() else {
        panic!()
    };
    let b = Db::open_postgres(&url, 1000).await.unwrap();
    let state_b = AppState::new(b.clone(), &secrets());
    let mut revisions = b.subscribe();
    let held = *revisions.borrow_and_update();
    // Give b's listener its LISTEN before the commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = tokio::spawn(async move {
        let req = Request::builder()
            .uri(format!("{CHANGES_PATH}?since={held}&wait_ms=20000"))
            .header(TOKEN_HEADER, TOKEN)
            .body(Body::empty())
            .unwrap();
        let resp = internal_app(state_b).oneshot(req).await.unwrap();
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    a.create_tenant("acme".into(), "Acme".into()).await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the other replica's commit")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let d = Delta::parse(&body).unwrap();
    assert_eq!(
        d.records
            .iter()
            .map(|r| (r.kind, r.name))
            .collect::<Vec<_>>(),
        [(Kind::Tenant, "acme")]
    );
    assert_eq!(d.revision, a.revision().await.unwrap());
    revisions.changed().await.unwrap();
    assert_eq!(*revisions.borrow(), d.revision);
    drop((a, b));
}

/// Penalties written through one control plane go stale by decay alone;
/// another control plane on the database, which wrote none of them, still
/// republishes them in time: the first's revision made its deadline "now",
/// its next poll planned the same deadline from the database. Then the
/// first hears that republish and re-plans without writing (no ping-pong).
#[tokio::test]
async fn a_replica_republishes_decayed_penalties_another_one_wrote() {
    let pg = Postgres::start();
    let Database::Postgres(url) =
        parse_database_url("test", &pg.create_database("shared")).unwrap()
    else {
        panic!()
    };
    // Penalties halve every second on both.
    let a = Db::open_postgres(&url, 1000).await.unwrap();
    let b = Db::open_postgres(&url, 1000).await.unwrap();
    let penalty = |g: &aipipe_control_plane::db::GlobalState| {
        g.penalties
            .iter()
            .find(|(_, m, tag, _)| m == "gpt-4o-mini" && tag.is_empty())
            .map_or(0.0, |p| p.3)
    };
    let hears = |db: &Db, rev: u64| {
        let mut revisions = db.subscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(5), revisions.wait_for(|r| *r >= rev))
                .await
                .expect("the revision arrives through the listener")
                .unwrap();
        }
    };
    // b plans from a table without penalties: never due.
    b.republish_penalties_if_due().await.unwrap();
    assert_eq!(b.penalty_due_ms(), u64::MAX);
    tokio::time::sleep(Duration::from_millis(300)).await; // b's LISTEN
    a.create_tenant("acme".into(), "Acme".into()).await.unwrap();
    let now = aipipe_control_plane::db::now_ms();
    aipipe_control_plane::ingest::ingest(
        &a,
        aipipe_control_plane::ingest::Batch::new(vec![record(
            "f1",
            "acme",
            "gpt-4o-mini",
            500,
            now,
        )]),
    )
    .await
    .unwrap();
    let written = a.revision().await.unwrap();
    assert!((penalty(&a.global_state().await.unwrap()) - 3.0).abs() < 0.01);
    let due = a.penalty_due_ms();
    assert!(due > now && due < now + 5_000, "{due} {now}");

    hears(&b, written).await;
    assert!(b.penalty_due_ms() <= due, "b re-plans at its next poll");
    b.republish_penalties_if_due().await.unwrap();
    assert_eq!(b.penalty_due_ms(), due, "the same plan, from the database");
    assert_eq!(b.revision().await.unwrap(), written, "nothing stale yet");

    // Past the deadline, with a silent: b republishes the decayed values.
    let wait = due.saturating_sub(aipipe_control_plane::db::now_ms()) + 50;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    b.republish_penalties_if_due().await.unwrap();
    let republished = b.revision().await.unwrap();
    assert!(republished > written);
    let p = penalty(&b.global_state().await.unwrap());
    assert!(p < 2.0 && p > 0.0, "{p}");

    // a hears it and re-plans; the values are current, so it writes nothing.
    hears(&a, republished).await;
    a.republish_penalties_if_due().await.unwrap();
    assert_eq!(a.revision().await.unwrap(), republished);
    assert_eq!(a.penalty_due_ms(), b.penalty_due_ms());
    drop((a, b));
}

/// `catalog import` updates a PostgreSQL database's catalog as a SQLite
/// file's (its plan and checks are shared; `catalog_import.rs` tests them).
#[tokio::test]
async fn a_catalog_import_runs_on_postgres() {
    let pg = Postgres::start();
    let database = parse_database_url("test", &pg.create_database("cat")).unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model_prices_and_context_window.json");
    let first = aipipe_control_plane::catalog_import::run(&database, &file, false)
        .await
        .unwrap();
    assert!(
        first.contains("gpt-4o-mini (openai): input_per_mtok 0.15 -> 0.2"),
        "{first}"
    );
    let second = aipipe_control_plane::catalog_import::run(&database, &file, false)
        .await
        .unwrap();
    assert!(second.starts_with("0 updated"), "{second}");
    let Database::Postgres(url) = &database else {
        panic!()
    };
    let db = Db::open_postgres(url, 1000).await.unwrap();
    let mini = db
        .models()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == "gpt-4o-mini")
        .unwrap();
    assert_eq!(mini.input_per_mtok, 0.2);
    drop(db);
}

/// A database a migration test seeds as an older release would have, then
/// opens again: a file in a temporary directory on SQLite, database `name`
/// of a throwaway server on PostgreSQL.
struct OlderDb {
    dir: PathBuf,
    pg: Option<Postgres>,
    name: &'static str,
}

impl OlderDb {
    fn new(engine: Engine, dir: &str, name: &'static str) -> Self {
        let pg = matches!(engine, Engine::Postgres).then(Postgres::start);
        if let Some(pg) = &pg {
            pg.create_database(name);
        }
        OlderDb {
            dir: temp_dir(dir),
            pg,
            name,
        }
    }

    async fn open(&self) -> Db {
        match &self.pg {
            Some(pg) => {
                let Database::Postgres(url) =
                    parse_database_url("test", &pg.url(self.name)).unwrap()
                else {
                    panic!("not a postgres URL")
                };
                Db::open_postgres(&url, 1000).await.unwrap()
            }
            None => Db::open(&self.dir.join("aipipe.db")).unwrap(),
        }
    }

    /// A new database with tenant `acme` and today's catalog (the migration
    /// under test a no-op there); its revision.
    async fn new_with_acme(&self) -> u64 {
        let db = self.open().await;
        db.create_tenant("acme".into(), "Acme".into())
            .await
            .unwrap();
        assert_eq!(
            db.models().await.unwrap(),
            aipipe_core::catalog::default_models(),
            "a new database: today's catalog, the migration a no-op"
        );
        db.revision().await.unwrap()
    }

    /// `db`'s revision, after asserting that the global table changed
    /// since `before`, and only it.
    async fn one_global_change(db: &Db, before: u64) -> u64 {
        let after = db.revision().await.unwrap();
        let page = db.changes_since(before, 10).await.unwrap();
        assert!(
            matches!(page.changes[..], [Changed::Global(_)]),
            "the global table changed, and only it: {before} -> {after}"
        );
        after
    }

    /// Opening it again changes nothing more (the same models, the same
    /// revision); then the files go.
    async fn reopens_unchanged(&self, models: &[aipipe_core::catalog::Model], revision: u64) {
        let again = self.open().await;
        assert_eq!(again.models().await.unwrap(), models);
        assert_eq!(
            again.revision().await.unwrap(),
            revision,
            "nothing more on a second start"
        );
        drop(again);
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Writes each of `rows` over its catalog row and forgets that
    /// `migration` ran, so the next open runs it again on them.
    fn rows_before(&self, migration: i64, rows: &[&aipipe_core::table::Model]) {
        let mut sql = String::new();
        for m in rows {
            let json = serde_json::to_string(m).unwrap().replace('\'', "''");
            sql += &format!("UPDATE models SET json = '{json}' WHERE id = '{}';", m.id);
        }
        sql += &format!("DELETE FROM schema_migrations WHERE version = {migration};");
        self.exec(&sql);
    }

    fn exec(&self, sql: &str) {
        match &self.pg {
            Some(pg) => {
                pg.psql(self.name, sql);
            }
            None => rusqlite::Connection::open(self.dir.join("aipipe.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }
}

/// SQLite's migration 17 and PostgreSQL's 3 (filter/README.md, "Catalog
/// changes") on a database seeded before them: the Gemini models Google shut
/// down leave the catalog — removed, or only disabled where a tenant's policy
/// names one, so that policy keeps its meaning — and the new default models
/// arrive, except where the operator already has an entry of that id. Opening
/// the database again changes nothing more.
async fn the_catalog_of_2026_12_reaches_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "catalog-2026-12", "cat");
    let open = || older.open();
    let exec = |sql: &str| older.exec(sql);
    let defaults = aipipe_core::catalog::default_models();
    let default = |id: &str| defaults.iter().find(|m| m.id == id).unwrap().clone();

    // The catalog as the release before it seeded it.
    let db = open().await;
    db.create_tenant("acme".into(), "Acme".into())
        .await
        .unwrap();
    let before = db.revision().await.unwrap();
    drop(db);
    let old = |id: &str, input: f64| {
        let mut m = default("gemini-2.5-flash-lite");
        m.id = id.into();
        m.input_per_mtok = input;
        serde_json::to_string(&m).unwrap().replace('\'', "''")
    };
    let migration = match engine {
        Engine::Sqlite => 17,
        Engine::Postgres => 3,
    };
    exec(&format!(
        "DELETE FROM models WHERE id IN ('gemini-3.5-flash-lite', 'gemini-3.8-flash', 'claude-sonnet-5-5');
         UPDATE models SET json = '{}' WHERE id = 'claude-opus-5-5';
         INSERT INTO models (id, position, json) VALUES
            ('gemini-2.5-pro', 100, '{}'), ('gemini-2.5-flash', 101, '{}');
         UPDATE tenants SET policy = '{{\"allow_models\":[\"gemini-2.5-flash\"]}}' WHERE id = 'acme';
         DELETE FROM schema_migrations WHERE version = {migration};",
        serde_json::to_string(&aipipe_core::table::Model {
            input_per_mtok: 9.0,
            ..default("claude-opus-5-5")
        })
        .unwrap(),
        old("gemini-2.5-pro", 1.25),
        old("gemini-2.5-flash", 0.30),
    ));

    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned();
    assert!(
        find("gemini-2.5-pro").is_none(),
        "named by no policy: removed"
    );
    let flash = find("gemini-2.5-flash").expect("acme's policy names it: kept");
    assert!(!flash.enabled, "{flash:?}");
    assert_eq!(flash.input_per_mtok, 0.30);
    for id in [
        "gemini-3.5-flash-lite",
        "gemini-3.8-flash",
        "claude-sonnet-5-5",
    ] {
        assert_eq!(find(id), Some(default(id)), "{id}");
    }
    assert_eq!(
        find("claude-opus-5-5").unwrap().input_per_mtok,
        9.0,
        "the operator's own entry stays"
    );
    assert_eq!(
        db.policy("acme".into()).await.unwrap(),
        Some(Some("{\"allow_models\":[\"gemini-2.5-flash\"]}".into()))
    );
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn the_catalog_of_2026_12_reaches_an_older_sqlite_file() {
    the_catalog_of_2026_12_reaches_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn the_catalog_of_2026_12_reaches_an_older_postgres_database() {
    the_catalog_of_2026_12_reaches_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 18 and PostgreSQL's 4 (filter/README.md, "Catalog
/// changes"): on a database seeded before them, a Claude 5.x row exactly as
/// the release before shipped it (disabled, without the two capabilities)
/// becomes today's default, enabled; a row the operator changed keeps its
/// changes, `enabled: false` included, and only learns what the model
/// refuses. Opening the database again changes nothing more.
async fn claude_5_is_enabled_on_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "claude-5", "c5");
    let open = || older.open();
    let exec = |sql: &str| older.exec(sql);
    let defaults = aipipe_core::catalog::default_models();
    let default = |id: &str| defaults.iter().find(|m| m.id == id).unwrap().clone();
    // A row as the release before wrote it: no `sampling_params` or
    // `forced_tool_choice` member at all.
    let before = |id: &str, change: &dyn Fn(&mut Value)| {
        let mut v = serde_json::to_value(default(id)).unwrap();
        v["enabled"] = json!(false);
        let caps = v["capabilities"].as_object_mut().unwrap();
        caps.remove("sampling_params");
        caps.remove("forced_tool_choice");
        change(&mut v);
        v.to_string().replace('\'', "''")
    };

    let db = open().await;
    let revision = db.revision().await.unwrap();
    assert_eq!(
        db.models().await.unwrap(),
        defaults,
        "a new database: today's catalog, the migration a no-op"
    );
    drop(db);
    let migration = match engine {
        Engine::Sqlite => 18,
        Engine::Postgres => 4,
    };
    exec(&format!(
        "UPDATE models SET json = '{}' WHERE id = 'claude-sonnet-5-5';
         UPDATE models SET json = '{}' WHERE id = 'claude-opus-5-5';
         DELETE FROM schema_migrations WHERE version = {migration};",
        before("claude-sonnet-5-5", &|_| {}),
        before("claude-opus-5-5", &|v| v["input_per_mtok"] = json!(9.0)),
    ));

    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned().unwrap();
    assert_eq!(find("claude-sonnet-5-5"), default("claude-sonnet-5-5"));
    assert!(find("claude-sonnet-5-5").enabled);
    let opus = find("claude-opus-5-5");
    assert_eq!(opus.input_per_mtok, 9.0, "the operator's change stays");
    assert!(!opus.enabled, "changed by the operator: left disabled");
    assert!(!opus.capabilities.sampling_params && !opus.capabilities.forced_tool_choice);
    assert_eq!(
        models.len(),
        defaults.len(),
        "nothing added or removed: {models:?}"
    );
    let after = db.revision().await.unwrap();
    assert!(after > revision);
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn claude_5_is_enabled_on_an_older_sqlite_file() {
    claude_5_is_enabled_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_5_is_enabled_on_an_older_postgres_database() {
    claude_5_is_enabled_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 19 and PostgreSQL's 5 (filter/README.md, "Catalog
/// changes", claude-sonnet-4-5 retired): on a database seeded before them,
/// claude-sonnet-4-5 leaves the catalog by migration 17's rule — only
/// disabled while a tenant's policy names it, so that policy keeps its
/// meaning; removed once none does. Nothing is added. Opening the database
/// again changes nothing more.
async fn sonnet_4_5_is_retired_from_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "sonnet-4-5", "s45");
    let open = || older.open();
    let exec = |sql: &str| older.exec(sql);
    let defaults = aipipe_core::catalog::default_models();
    assert!(defaults.iter().all(|m| m.id != "claude-sonnet-4-5"));
    // The row as the release before shipped it.
    let mut sonnet = defaults
        .iter()
        .find(|m| m.id == "claude-opus-4-5")
        .unwrap()
        .clone();
    sonnet.id = "claude-sonnet-4-5".into();
    sonnet.input_per_mtok = 3.0;
    sonnet.output_per_mtok = 15.0;
    let row = serde_json::to_string(&sonnet).unwrap().replace('\'', "''");
    let migration = match engine {
        Engine::Sqlite => 19,
        Engine::Postgres => 5,
    };

    let before = older.new_with_acme().await;
    let policy = "{\"allow_models\":[\"claude-sonnet-4-5\",\"gpt-4o-mini\"]}";
    exec(&format!(
        "INSERT INTO models (id, position, json) VALUES ('claude-sonnet-4-5', 100, '{row}');
         UPDATE tenants SET policy = '{policy}' WHERE id = 'acme';
         DELETE FROM schema_migrations WHERE version = {migration};"
    ));

    // Named by acme's policy: kept, disabled, the policy unchanged.
    let db = open().await;
    let models = db.models().await.unwrap();
    let kept = models
        .iter()
        .find(|m| m.id == "claude-sonnet-4-5")
        .expect("acme's policy names it: kept");
    assert_eq!(
        kept,
        &aipipe_core::table::Model {
            enabled: false,
            ..sonnet.clone()
        }
    );
    assert_eq!(
        models.len(),
        defaults.len() + 1,
        "nothing added: {models:?}"
    );
    assert_eq!(
        db.policy("acme".into()).await.unwrap(),
        Some(Some(policy.into()))
    );
    OlderDb::one_global_change(&db, before).await;
    drop(db);

    // Named by no policy: removed, as DELETE /admin/models/{id} would.
    exec(&format!(
        "UPDATE models SET json = '{row}' WHERE id = 'claude-sonnet-4-5';
         UPDATE tenants SET policy = NULL WHERE id = 'acme';
         DELETE FROM schema_migrations WHERE version = {migration};"
    ));
    let db = open().await;
    let models = db.models().await.unwrap();
    assert_eq!(models, defaults, "named by no policy: removed");
    let after = db.revision().await.unwrap();
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn sonnet_4_5_is_retired_from_an_older_sqlite_file() {
    sonnet_4_5_is_retired_from_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn sonnet_4_5_is_retired_from_an_older_postgres_database() {
    sonnet_4_5_is_retired_from_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 20 and PostgreSQL's 6 (filter/README.md, "Catalog
/// changes", gpt-6-luna added): on a database seeded before them, the
/// default catalog's gpt-6-luna arrives as it ships (today: in service
/// from 2027-01-14; migration 23 / 9 dates one added disabled) and gpt-4o /
/// gpt-4o-mini stay; an operator's own row of that id — here one the
/// operator enabled at another price — is left alone. Opening the database
/// again changes nothing more.
async fn gpt_6_luna_is_added_to_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "gpt-6-luna", "luna");
    let open = || older.open();
    let exec = |sql: &str| older.exec(sql);
    let defaults = aipipe_core::catalog::default_models();
    let luna = defaults
        .iter()
        .find(|m| m.id == "gpt-6-luna")
        .unwrap()
        .clone();
    let migration = match engine {
        Engine::Sqlite => 20,
        Engine::Postgres => 6,
    };

    let before = older.new_with_acme().await;
    // The catalog as the release before it seeded it: no gpt-6-luna.
    exec(&format!(
        "DELETE FROM models WHERE id = 'gpt-6-luna';
         DELETE FROM schema_migrations WHERE version = {migration};"
    ));

    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned();
    assert_eq!(find("gpt-6-luna"), Some(luna.clone()), "added as shipped");
    assert!(luna.enabled_from.is_some(), "shipped, and so added, dated");
    assert_eq!(models.len(), defaults.len(), "{models:?}");
    for id in ["gpt-4o", "gpt-4o-mini"] {
        assert!(find(id).is_some_and(|m| m.enabled), "{id} stays");
    }
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    // An operator's own row of that id: left alone, nothing published.
    let own = aipipe_core::table::Model {
        input_per_mtok: 0.2,
        enabled: true,
        ..luna
    };
    let row = serde_json::to_string(&own).unwrap().replace('\'', "''");
    exec(&format!(
        "UPDATE models SET json = '{row}' WHERE id = 'gpt-6-luna';
         DELETE FROM schema_migrations WHERE version = {migration};"
    ));
    let db = open().await;
    let models = db.models().await.unwrap();
    assert_eq!(
        models.iter().find(|m| m.id == "gpt-6-luna"),
        Some(&own),
        "the operator's own entry stays"
    );
    assert_eq!(db.revision().await.unwrap(), after, "nothing written");
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn gpt_6_luna_is_added_to_an_older_sqlite_file() {
    gpt_6_luna_is_added_to_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn gpt_6_luna_is_added_to_an_older_postgres_database() {
    gpt_6_luna_is_added_to_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 21 and PostgreSQL's 7 (filter/README.md, "Catalog
/// changes": gemini-3.8-flash's price change of 2027-01-01): on a database
/// seeded before them, a gemini-3.8-flash row still at the default prices
/// gets the default's schedule ($1.50 / $7.50 from 2027-01-01), as one
/// change of the change log; a row whose prices the operator changed keeps
/// them and gets no schedule, nothing published. Opening the database again
/// changes nothing more.
async fn gemini_3_8_flash_price_change_is_scheduled_on_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "scheduled-prices", "sched");
    let open = || older.open();
    let defaults = aipipe_core::catalog::default_models();
    let flash = defaults
        .iter()
        .find(|m| m.id == "gemini-3.8-flash")
        .unwrap()
        .clone();
    assert_eq!(flash.price_changes.len(), 1);
    let migration = match engine {
        Engine::Sqlite => 21,
        Engine::Postgres => 7,
    };

    let before = older.new_with_acme().await;
    // The row as the release before it seeded it: no schedule.
    let unscheduled = aipipe_core::table::Model {
        price_changes: Vec::new(),
        ..flash.clone()
    };
    older.rows_before(migration, &[&unscheduled]);
    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned();
    assert_eq!(find("gemini-3.8-flash"), Some(flash.clone()), "scheduled");
    assert_eq!(models, defaults, "today's catalog, nothing else moved");
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    // An operator who changed the prices keeps them: no schedule added,
    // nothing written.
    let own = aipipe_core::table::Model {
        input_per_mtok: 0.8,
        ..unscheduled.clone()
    };
    older.rows_before(migration, &[&own]);
    let db = open().await;
    let models = db.models().await.unwrap();
    assert_eq!(
        models.iter().find(|m| m.id == "gemini-3.8-flash"),
        Some(&own),
        "the operator's prices stay, unscheduled"
    );
    assert_eq!(db.revision().await.unwrap(), after, "nothing written");
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn gemini_3_8_flash_price_change_is_scheduled_on_an_older_sqlite_file() {
    gemini_3_8_flash_price_change_is_scheduled_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn gemini_3_8_flash_price_change_is_scheduled_on_an_older_postgres_database() {
    gemini_3_8_flash_price_change_is_scheduled_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 22 and PostgreSQL's 8 (filter/README.md, "Catalog
/// changes": the shutdowns of 2027-01-14 and 2027-01-22): on a database
/// seeded before them, gpt-4o, gpt-4o-mini and claude-opus-4-5 get the
/// default's `retires_at` where the row is still the catalog's model —
/// the operator's other changes (a price, `enabled`) kept — as one change
/// of the change log; a row pointed at another upstream model is left as
/// it is. Opening the database again changes nothing more.
async fn retirements_are_scheduled_on_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "scheduled-retirements", "retire");
    let open = || older.open();
    let defaults = aipipe_core::catalog::default_models();
    let default = |id: &str| defaults.iter().find(|m| m.id == id).unwrap().clone();
    let migration = match engine {
        Engine::Sqlite => 22,
        Engine::Postgres => 8,
    };
    let undated = |m: aipipe_core::table::Model| aipipe_core::table::Model {
        retires_at: None,
        ..m
    };

    let before = older.new_with_acme().await;
    // The rows as the release before seeded them (no dates); the operator
    // had changed gpt-4o's price and disabled it.
    let own_gpt_4o = aipipe_core::table::Model {
        input_per_mtok: 2.0,
        enabled: false,
        ..undated(default("gpt-4o"))
    };
    older.rows_before(
        migration,
        &[
            &undated(default("gpt-4o-mini")),
            &own_gpt_4o,
            &undated(default("claude-opus-4-5")),
        ],
    );
    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned().unwrap();
    assert_eq!(find("gpt-4o-mini"), default("gpt-4o-mini"), "dated");
    assert_eq!(find("claude-opus-4-5"), default("claude-opus-4-5"), "dated");
    assert_eq!(
        find("gpt-4o"),
        aipipe_core::table::Model {
            retires_at: default("gpt-4o").retires_at,
            ..own_gpt_4o.clone()
        },
        "dated, the operator's price and switch kept"
    );
    assert_eq!(
        find("gpt-4o").retires_at.map(|t| t.to_string()).as_deref(),
        Some("2027-01-14T00:00:00Z")
    );
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    // A row pointed at another upstream model is not the one shut down:
    // left undated, nothing written.
    let elsewhere = aipipe_core::table::Model {
        upstream_id: Some("claude-opus-4-6".into()),
        ..undated(default("claude-opus-4-5"))
    };
    older.rows_before(migration, &[&elsewhere]);
    let db = open().await;
    let models = db.models().await.unwrap();
    assert_eq!(
        models.iter().find(|m| m.id == "claude-opus-4-5"),
        Some(&elsewhere),
        "left as it is"
    );
    assert_eq!(db.revision().await.unwrap(), after, "nothing written");
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn retirements_are_scheduled_on_an_older_sqlite_file() {
    retirements_are_scheduled_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn retirements_are_scheduled_on_an_older_postgres_database() {
    retirements_are_scheduled_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 23 and PostgreSQL's 9 (filter/README.md, "Catalog
/// changes": gpt-6-luna in service from 2027-01-14): on a database that got
/// gpt-6-luna disabled (migration 20 / 6 of the release before), the row
/// becomes the default — enabled, in service from the instant gpt-4o and
/// gpt-4o-mini retire — as one change of the change log; a row the operator
/// enabled is the operator's decision and is left as it is. Opening the
/// database again changes nothing more.
async fn gpt_6_luna_is_dated_on_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "luna-in-service", "lunadate");
    let open = || older.open();
    let luna = aipipe_core::catalog::default_models()
        .into_iter()
        .find(|m| m.id == "gpt-6-luna")
        .unwrap();
    let migration = match engine {
        Engine::Sqlite => 23,
        Engine::Postgres => 9,
    };

    let before = older.new_with_acme().await;
    older.rows_before(
        migration,
        &[&aipipe_core::table::Model {
            enabled: false,
            enabled_from: None,
            ..luna.clone()
        }],
    );
    let db = open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned().unwrap();
    assert_eq!(find("gpt-6-luna"), luna, "dated as the catalog ships it");
    assert_eq!(
        luna.enabled_from.map(|t| t.to_string()).as_deref(),
        Some("2027-01-14T00:00:00Z")
    );
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    // Enabled by its operator already: in service now, left as it is.
    let own = aipipe_core::table::Model {
        enabled_from: None,
        ..luna
    };
    older.rows_before(migration, &[&own]);
    let db = open().await;
    let models = db.models().await.unwrap();
    assert_eq!(
        models.iter().find(|m| m.id == "gpt-6-luna"),
        Some(&own),
        "left as it is"
    );
    assert_eq!(db.revision().await.unwrap(), after, "nothing written");
    drop(db);

    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn gpt_6_luna_is_dated_on_an_older_sqlite_file() {
    gpt_6_luna_is_dated_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn gpt_6_luna_is_dated_on_an_older_postgres_database() {
    gpt_6_luna_is_dated_on_an_older_database(Engine::Postgres).await;
}

/// A catalog migration that tells stored rows one capability of theirs
/// (`field`, as the default catalog has it), keeping what else the
/// operator changed: on a database seeded before it (`migrations`:
/// SQLite's, PostgreSQL's), the rows of `ids` learn it — the first with
/// the operator's own price, kept — as one change of the change log.
/// Opening the database again changes nothing more.
async fn rows_learn_a_capability_on_an_older_database(
    engine: Engine,
    name: &'static str,
    migrations: (i64, i64),
    ids: &[&str],
    field: fn(&mut aipipe_core::table::Capabilities) -> &mut bool,
) {
    let older = OlderDb::new(engine, name, name);
    let defaults = aipipe_core::catalog::default_models();
    let default = |id: &str| defaults.iter().find(|m| m.id == id).unwrap().clone();
    let migration = match engine {
        Engine::Sqlite => migrations.0,
        Engine::Postgres => migrations.1,
    };
    let before_it = |mut m: aipipe_core::table::Model| {
        let slot = field(&mut m.capabilities);
        *slot = !*slot;
        m
    };
    let before = older.new_with_acme().await;
    let mut rows: Vec<aipipe_core::table::Model> =
        ids.iter().map(|id| before_it(default(id))).collect();
    rows[0].input_per_mtok = 1.5;
    older.rows_before(migration, &rows.iter().collect::<Vec<_>>());
    let db = older.open().await;
    let models = db.models().await.unwrap();
    let find = |id: &str| models.iter().find(|m| m.id == id).cloned().unwrap();
    for id in &ids[1..] {
        assert_eq!(find(id), default(id), "{id}");
    }
    let mut want = rows[0].clone();
    *field(&mut want.capabilities) = *field(&mut default(ids[0]).capabilities);
    assert_eq!(find(ids[0]), want, "told, the price kept");
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);
    older.reopens_unchanged(&models, after).await;
}

/// SQLite's migration 24 and PostgreSQL's 10 (filter/README.md, "Catalog
/// changes": Claude 5.x refuse a prefill).
async fn claude_5_learn_they_refuse_a_prefill_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "prefill",
        (24, 10),
        &["claude-sonnet-5-5", "claude-opus-5-5"],
        |c| &mut c.assistant_prefill,
    )
    .await;
}

#[tokio::test]
async fn claude_5_learn_they_refuse_a_prefill_on_an_older_sqlite_file() {
    claude_5_learn_they_refuse_a_prefill_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_5_learn_they_refuse_a_prefill_on_an_older_postgres_database() {
    claude_5_learn_they_refuse_a_prefill_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 25 and PostgreSQL's 11 (filter/README.md,
/// "Long-context prices"): on a database seeded before them, gpt-6-luna's
/// row gets its long-context rates, the operator's price kept, as one
/// change of the change log. Opening the database again changes nothing
/// more.
async fn luna_gets_its_long_context_rates_on_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "long-context", "long");
    let defaults = aipipe_core::catalog::default_models();
    let luna = defaults
        .iter()
        .find(|m| m.id == "gpt-6-luna")
        .unwrap()
        .clone();
    let migration = match engine {
        Engine::Sqlite => 25,
        Engine::Postgres => 11,
    };
    let before = older.new_with_acme().await;
    let own_luna = aipipe_core::table::Model {
        input_per_mtok: 0.08,
        long_context: None,
        ..luna.clone()
    };
    older.rows_before(migration, &[&own_luna]);
    let db = older.open().await;
    let models = db.models().await.unwrap();
    let got = models
        .iter()
        .find(|m| m.id == "gpt-6-luna")
        .cloned()
        .unwrap();
    let want = aipipe_core::table::Model {
        long_context: luna.long_context,
        ..own_luna
    };
    assert_eq!(got, want, "given, the price kept");
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);
    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn luna_gets_its_long_context_rates_on_an_older_sqlite_file() {
    luna_gets_its_long_context_rates_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn luna_gets_its_long_context_rates_on_an_older_postgres_database() {
    luna_gets_its_long_context_rates_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 26 and PostgreSQL's 12 (filter/README.md, "Catalog
/// changes", 2026-12-06, third change): a database seeded before them gets
/// claude-haiku-5-5 as the catalog ships it (disabled), as one change of the
/// change log; an operator's own row of that id is left alone.
async fn claude_haiku_5_5_is_added_to_an_older_database(engine: Engine) {
    let older = OlderDb::new(engine, "claude-haiku-5-5", "haiku55");
    let defaults = aipipe_core::catalog::default_models();
    let haiku = defaults
        .iter()
        .find(|m| m.id == "claude-haiku-5-5")
        .unwrap()
        .clone();
    assert!(!haiku.enabled, "shipped disabled");
    let migration = match engine {
        Engine::Sqlite => 26,
        Engine::Postgres => 12,
    };
    let before = older.new_with_acme().await;
    older.exec(&format!(
        "DELETE FROM models WHERE id = 'claude-haiku-5-5';
         DELETE FROM schema_migrations WHERE version = {migration};"
    ));
    let db = older.open().await;
    let models = db.models().await.unwrap();
    let got = models.iter().find(|m| m.id == "claude-haiku-5-5").cloned();
    assert_eq!(got, Some(haiku.clone()), "added as shipped");
    assert_eq!(models.len(), defaults.len(), "{models:?}");
    let after = OlderDb::one_global_change(&db, before).await;
    drop(db);

    // An operator's own row of that id: left alone, nothing published.
    let own = aipipe_core::table::Model {
        input_per_mtok: 0.2,
        enabled: true,
        ..haiku
    };
    older.rows_before(migration, &[&own]);
    let db = older.open().await;
    let models = db.models().await.unwrap();
    let got = models.iter().find(|m| m.id == "claude-haiku-5-5").cloned();
    assert_eq!(got, Some(own), "the operator's row kept");
    assert_eq!(db.revision().await.unwrap(), after, "nothing written");
    drop(db);
    older.reopens_unchanged(&models, after).await;
}

#[tokio::test]
async fn claude_haiku_5_5_is_added_to_an_older_sqlite_file() {
    claude_haiku_5_5_is_added_to_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_haiku_5_5_is_added_to_an_older_postgres_database() {
    claude_haiku_5_5_is_added_to_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 27 and PostgreSQL's 13 (filter/README.md, "Catalog
/// changes", 2026-12-06, fourth change: Claude 5.x take a reasoning effort).
async fn claude_5_learn_they_take_an_effort_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "effort",
        (27, 13),
        &["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"],
        |c| &mut c.output_effort,
    )
    .await;
}

#[tokio::test]
async fn claude_5_learn_they_take_an_effort_on_an_older_sqlite_file() {
    claude_5_learn_they_take_an_effort_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_5_learn_they_take_an_effort_on_an_older_postgres_database() {
    claude_5_learn_they_take_an_effort_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 28 and PostgreSQL's 14 (filter/README.md, "Catalog
/// changes", 2026-12-06, fifth change: the GPT-4o generation takes no
/// reasoning effort).
async fn gpt_4o_learn_they_take_no_effort_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "no-effort",
        (28, 14),
        &["gpt-4o-mini", "gpt-4o"],
        |c| &mut c.reasoning_effort,
    )
    .await;
}

#[tokio::test]
async fn gpt_4o_learn_they_take_no_effort_on_an_older_sqlite_file() {
    gpt_4o_learn_they_take_no_effort_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn gpt_4o_learn_they_take_no_effort_on_an_older_postgres_database() {
    gpt_4o_learn_they_take_no_effort_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 29 and PostgreSQL's 15 (filter/README.md, "Catalog
/// changes", 2026-12-06, sixth change: gpt-6-luna takes tools with an effort
/// over the Responses API).
async fn gpt_6_luna_learns_the_responses_api_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "responses",
        (29, 15),
        &["gpt-6-luna"],
        |c| &mut c.responses_api,
    )
    .await;
}

#[tokio::test]
async fn gpt_6_luna_learns_the_responses_api_on_an_older_sqlite_file() {
    gpt_6_luna_learns_the_responses_api_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn gpt_6_luna_learns_the_responses_api_on_an_older_postgres_database() {
    gpt_6_luna_learns_the_responses_api_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 30 and PostgreSQL's 16 (filter/README.md, "Catalog
/// changes", 2026-12-06, seventh change: OpenAI's models take no Anthropic
/// extensions).
async fn openai_models_learn_they_take_no_extensions_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "no-extensions",
        (30, 16),
        &["gpt-4o-mini", "gpt-4o", "gpt-6-luna"],
        |c| &mut c.thinking_extensions,
    )
    .await;
}

#[tokio::test]
async fn openai_models_learn_they_take_no_extensions_on_an_older_sqlite_file() {
    openai_models_learn_they_take_no_extensions_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn openai_models_learn_they_take_no_extensions_on_an_older_postgres_database() {
    openai_models_learn_they_take_no_extensions_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 31 and PostgreSQL's 17 (filter/README.md, "Catalog
/// changes", 2026-12-08: the Claude 5.x take adaptive thinking only).
async fn claude_5_learns_adaptive_thinking_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "adaptive-thinking",
        (31, 17),
        &["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"],
        |c| &mut c.adaptive_thinking,
    )
    .await;
}

#[tokio::test]
async fn claude_5_learns_adaptive_thinking_on_an_older_sqlite_file() {
    claude_5_learns_adaptive_thinking_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_5_learns_adaptive_thinking_on_an_older_postgres_database() {
    claude_5_learns_adaptive_thinking_on_an_older_database(Engine::Postgres).await;
}

/// SQLite's migration 32 and PostgreSQL's 18 (filter/README.md, "Catalog
/// changes", 2026-12-08, second change: Claude Sonnet 5.5 turns thinking off
/// with `between_tools`). Its one row is the changed one.
async fn claude_sonnet_5_5_learns_between_tools_on_an_older_database(engine: Engine) {
    rows_learn_a_capability_on_an_older_database(
        engine,
        "between-tools",
        (32, 18),
        &["claude-sonnet-5-5"],
        |c| &mut c.between_tools,
    )
    .await;
}

#[tokio::test]
async fn claude_sonnet_5_5_learns_between_tools_on_an_older_sqlite_file() {
    claude_sonnet_5_5_learns_between_tools_on_an_older_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn claude_sonnet_5_5_learns_between_tools_on_an_older_postgres_database() {
    claude_sonnet_5_5_learns_between_tools_on_an_older_database(Engine::Postgres).await;
}
