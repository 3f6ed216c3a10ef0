//! The admin and internal APIs driven in-process (`oneshot`, no socket) on a
//! fresh SQLite file per test: each test states one behaviour
//! (control-plane/README.md, "Tenants and keys", "Internal API" and
//! "Errors and bad input").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{ADMIN, Harness, TOKEN, harness_dated, harness_named, undate_catalog};
use std::time::Duration;

use aipipe_control_plane::{AppState, admin_app, adopt_env_keys, internal_app};
use aipipe_core::contract::{CHANGES_PATH, TABLE_PATH, TOKEN_HEADER, USAGE_PATH, VERSION_HEADER};
use aipipe_core::directory::{BudgetEntry, Delta, KeyEntry, Kind, TenantEntry};
use aipipe_core::table::{RoutingTable, Tenant, hex_hash};
use aipipe_core::usage::{FailedAttempt, UsageBatch, UsageRecord};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn harness() -> Harness {
    harness_named("api", None).await
}

/// A harness whose penalties halve every `decay_ms`.
async fn harness_with_decay(decay_ms: u64) -> Harness {
    harness_named("api", Some(decay_ms)).await
}

async fn send(
    app: Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Bytes) {
    send_from(app, None, method, uri, headers, body).await
}

/// As `send`, from a client address (what the real server passes on).
async fn send_from(
    app: Router,
    from: Option<std::net::SocketAddr>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(addr) = from {
        req = req.extension(axum::extract::ConnectInfo(addr));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes)
}

fn json_of(b: &Bytes) -> Value {
    if b.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(b)))
    }
}

impl Harness {
    /// An admin call with the right secret; returns status, JSON and raw text.
    async fn admin(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let body = body.map(|v| serde_json::to_vec(&v).unwrap());
        let (s, _, b) = send(
            admin_app(self.state.clone()),
            method,
            uri,
            &[("x-admin-secret", ADMIN)],
            body,
        )
        .await;
        let json = serde_json::from_slice(&b).unwrap_or(Value::Null);
        (s, json, String::from_utf8_lossy(&b).into_owned())
    }

    /// What a new Envoy receives (every page of changes from revision 0),
    /// as the table it amounts to, with its version the revision reached;
    /// and the bytes received, as text.
    async fn table(&self) -> (RoutingTable, String) {
        let (mut since, mut text) = (0, String::new());
        let mut table = RoutingTable::default();
        let mut tenants = std::collections::BTreeMap::new();
        let mut keys = Vec::new();
        loop {
            let (s, _, b) = send(
                internal_app(self.state.clone()),
                Method::GET,
                &format!("{CHANGES_PATH}?since={since}&wait_ms=0"),
                &[(TOKEN_HEADER, TOKEN)],
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK);
            text.push_str(&String::from_utf8_lossy(&b));
            let d = Delta::parse(&b).unwrap();
            for r in &d.records {
                match r.kind {
                    Kind::Global => table = serde_json::from_slice(r.value).unwrap(),
                    Kind::Tenant => {
                        let e = TenantEntry::decode(r.value).unwrap();
                        assert!(!e.removed, "no removals from revision 0");
                        tenants.insert(
                            r.name.to_owned(),
                            Tenant {
                                id: r.name.to_owned(),
                                disabled: e.disabled,
                                pass_through: e.pass_through,
                                virtual_key_hashes: Vec::new(),
                                provider_keys: e.provider_keys.into_iter().collect(),
                                limits: Default::default(),
                                policy: Default::default(),
                            },
                        );
                    }
                    Kind::Key => {
                        let e = KeyEntry::decode(r.value).unwrap();
                        assert!(!e.removed, "no removals from revision 0");
                        keys.push((r.name.to_owned(), e.tenant));
                    }
                    Kind::Budget | Kind::KeyBudget => {
                        let e = BudgetEntry::decode(r.value).unwrap();
                        assert!(!e.removed, "no removals from revision 0");
                    }
                }
            }
            since = d.revision;
            if !d.more {
                break;
            }
        }
        for (hash, tenant) in keys {
            tenants
                .get_mut(&tenant)
                .expect("a key's tenant is sent")
                .virtual_key_hashes
                .push(hash);
        }
        table.version = since;
        table.tenants = tenants.into_values().collect();
        (table, text)
    }

    /// A filter holding revision `since` asks for changes: None when there
    /// are none, else the global table as it is then, with its version the
    /// revision reached.
    async fn poll(&self, since: u64) -> Option<RoutingTable> {
        let (s, headers, b) = send(
            internal_app(self.state.clone()),
            Method::GET,
            &format!("{CHANGES_PATH}?since={since}&wait_ms=0"),
            &[(TOKEN_HEADER, TOKEN)],
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers["cache-control"], "no-store");
        let d = Delta::parse(&b).unwrap();
        if d.revision == since {
            assert!(d.records.is_empty());
            return None;
        }
        let mut t = match d.records.iter().find(|r| r.kind == Kind::Global) {
            Some(r) => serde_json::from_slice(r.value).unwrap(),
            None => self.table().await.0,
        };
        t.version = d.revision;
        Some(t)
    }

    async fn ingest(&self, records: &[UsageRecord]) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&UsageBatch {
            records: records.to_vec(),
        })
        .unwrap();
        let (s, _, b) = send(
            internal_app(self.state.clone()),
            Method::POST,
            USAGE_PATH,
            &[(TOKEN_HEADER, TOKEN)],
            Some(body),
        )
        .await;
        let mut ack = json_of(&b);
        // The revision that shows the batch: checked here, compared by the
        // budget tests; the others compare the counts.
        if s == StatusCode::OK {
            let rev = ack["revision"].as_u64().expect("an ack names its revision");
            assert!(rev > 0 || ack["accepted"] == 0, "{ack}");
            ack.as_object_mut().unwrap().remove("revision");
        }
        (s, ack)
    }

    async fn create_tenant(&self, id: &str) {
        let (s, v, _) = self
            .admin(
                Method::POST,
                "/admin/tenants",
                Some(json!({"id": id, "name": id.to_uppercase()})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

fn record(id: &str, tenant: &str, model: &str, status: u16, latency: f64, ts: u64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        tenant: tenant.into(),
        provider: "openai".into(),
        model: model.into(),
        status,
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 10,
        cache_write_tokens: 0,
        cost_nusd: 45_000,
        latency_ms: latency,
        ttft_ms: Some(latency / 4.0),
        complexity: Some(0.3),
        stream: false,
        usage_parsed: status < 400,
        ts_ms: ts,
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

fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
}

#[tokio::test]
async fn tenant_lifecycle_create_read_update_delete() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let (s, v, _) = h.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["id"].as_str(),
            v["name"].as_str(),
            v["disabled"].as_bool()
        ),
        (Some("acme"), Some("ACME"), Some(false))
    );

    let (s, v, _) = h.admin(Method::GET, "/admin/tenants", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["tenants"].as_array().unwrap().len(), 1);

    let (s, v, _) = h
        .admin(
            Method::PATCH,
            "/admin/tenants/acme",
            Some(json!({"name": "Acme Inc", "disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["name"].as_str(), v["disabled"].as_bool()),
        (Some("Acme Inc"), Some(true))
    );
    let (table, _) = h.table().await;
    assert!(
        table.tenants.iter().any(|t| t.id == "acme" && t.disabled),
        "disabled tenants stay in the table, marked"
    );

    h.admin(
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-acme-1"})),
    )
    .await;
    h.admin(
        Method::POST,
        "/admin/tenants/acme/virtual-keys",
        Some(json!({"name": "ci"})),
    )
    .await;
    h.ingest(&[record("r1", "acme", "gpt-4o-mini", 200, 10.0, 1_000)])
        .await;

    let (s, _, _) = h.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = h.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    let (table, _) = h.table().await;
    assert!(table.tenants.is_empty());
    let Some(db) = h.raw_db() else { return };
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM provider_keys"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM virtual_keys"), 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM usage WHERE tenant = 'acme'"),
        1,
        "usage stays for accounting"
    );
    let (s, _, _) = h.admin(Method::DELETE, "/admin/tenants/acme", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn provider_keys_are_never_echoed_and_are_encrypted_at_rest() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let secret_a = "sk-live-PLAINTEXT-openai-123";
    let secret_b = "sk-ant-PLAINTEXT-anthropic-456";
    let (s, v, text) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"openai": secret_a, "anthropic": secret_b})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"tenant": "acme", "providers": ["anthropic", "openai"]})
    );
    assert!(!text.contains("PLAINTEXT"));

    for uri in [
        "/admin/tenants",
        "/admin/tenants/acme",
        "/admin/tenants/acme/virtual-keys",
        "/admin/tenants/acme/stats",
        "/admin/openapi.json",
        "/metrics",
    ] {
        let (s, _, text) = h.admin(Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(!text.contains("PLAINTEXT"), "{uri} echoed a provider key");
        assert!(!text.contains(ADMIN), "{uri} echoed the admin secret");
    }

    let Some(db) = h.raw_db() else { return };
    let mut st = db
        .prepare("SELECT tenant, provider, sealed FROM provider_keys")
        .unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    for (_, _, sealed) in &rows {
        assert!(
            !sealed.windows(9).any(|w| w == b"PLAINTEXT"),
            "stored in clear"
        );
        assert!(sealed.len() > 24 + 16);
    }
    // Only the internal table (for filters) carries the opened key.
    let (table, _) = h.table().await;
    let acme = table.tenants.iter().find(|t| t.id == "acme").unwrap();
    assert_eq!(
        acme.provider_keys.get("openai").map(String::as_str),
        Some(secret_a)
    );
    assert_eq!(
        acme.provider_keys.get("anthropic").map(String::as_str),
        Some(secret_b)
    );

    // Upsert replaces; delete removes one provider.
    h.admin(
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-rotated"})),
    )
    .await;
    let (s, _, _) = h
        .admin(Method::DELETE, "/admin/tenants/acme/keys/anthropic", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (table, _) = h.table().await;
    let acme = table.tenants.iter().find(|t| t.id == "acme").unwrap();
    assert_eq!(acme.provider_keys.len(), 1);
    assert_eq!(acme.provider_keys["openai"], "sk-rotated");
    let (s, _, _) = h
        .admin(Method::DELETE, "/admin/tenants/acme/keys/anthropic", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_provider_is_422_and_nothing_is_written() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let version = h.state.db.revision().await.unwrap();
    let (s, v, text) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"openai": "sk-good-KEY", "nope": "x-KEY"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_shape(&v, "validation_failed");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    assert!(!text.contains("KEY"), "the message never carries a key");
    let (_, v, _) = h.admin(Method::GET, "/admin/tenants/acme", None).await;
    assert_eq!(v["providers"], json!([]));
    assert_eq!(h.state.db.revision().await.unwrap(), version);

    // A key with a newline would be a header injection upstream.
    let (s, _, _) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"openai": "sk\r\nx: y"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Keys for a tenant that does not exist.
    let (s, _, _) = h
        .admin(
            Method::POST,
            "/admin/tenants/ghost/keys",
            Some(json!({"openai": "sk-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_admin_input_gets_400_404_409_422() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let (s, v, _) = h
        .admin(Method::POST, "/admin/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error_shape(&v, "conflict");
    for bad in ["", "UPPER", "has space", &"x".repeat(65)] {
        let (s, _, _) = h
            .admin(Method::POST, "/admin/tenants", Some(json!({"id": bad})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": "x", "color": "red"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("color"),
        "{v}"
    );
    let (s, _, b) = send(
        admin_app(h.state.clone()),
        Method::POST,
        "/admin/tenants",
        &[("x-admin-secret", ADMIN)],
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(&json_of(&b), "bad_request");
    let (s, _, _) = h
        .admin(Method::GET, "/admin/tenants/acme/stats?since=abc", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = h
        .admin(
            Method::GET,
            "/admin/tenants/acme/stats?since=10&until=5",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = h
        .admin(Method::GET, "/admin/tenants/ghost/stats", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v, _) = h.admin(Method::GET, "/admin/nothing-here", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    let (s, _, _) = h
        .admin(Method::POST, "/admin/tenants/ghost/virtual-keys", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = h
        .admin(
            Method::PATCH,
            "/admin/tenants/ghost",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn virtual_key_is_shipped_as_hash_and_revocation_removes_it() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let v0 = h.table().await.0.version;
    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/virtual-keys",
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let key = v["key"].as_str().unwrap().to_owned();
    let key_id = v["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("aip_") && key.len() > 40, "{key}");

    let (table, text) = h.table().await;
    assert!(table.version > v0);
    let acme = table.tenants.iter().find(|t| t.id == "acme").unwrap();
    assert_eq!(acme.virtual_key_hashes, vec![hex_hash(&key)]);
    assert!(!text.contains(&key), "the table carries only the hash");
    if let Some(db) = h.raw_db() {
        let stored: String = db
            .query_row("SELECT key_hash FROM virtual_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, hex_hash(&key));
    }

    let (s, v, text) = h
        .admin(Method::GET, "/admin/tenants/acme/virtual-keys", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!text.contains(&key) && !text.contains(&hex_hash(&key)));
    assert_eq!(v["virtual_keys"][0]["name"], "ci");
    assert_eq!(v["virtual_keys"][0]["revoked"], false);

    let v1 = table.version;
    let (s, _, _) = h
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/acme/virtual-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (table, _) = h.table().await;
    assert!(table.version > v1, "revocation bumps the version");
    assert!(table.tenants[0].virtual_key_hashes.is_empty());
    let (_, v, _) = h
        .admin(Method::GET, "/admin/tenants/acme/virtual-keys", None)
        .await;
    assert_eq!(v["virtual_keys"][0]["revoked"], true);
    // Another tenant cannot revoke acme's key.
    h.create_tenant("other").await;
    let (s, _, _) = h
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/other/virtual-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn table_is_304_when_the_filter_holds_the_current_version() {
    // The catalog as seeded, dates included.
    let h = harness_dated("api", None).await;
    let get = |version: String| {
        let app = internal_app(h.state.clone());
        async move {
            send(
                app,
                Method::GET,
                TABLE_PATH,
                &[(TOKEN_HEADER, TOKEN), (VERSION_HEADER, &version)],
                None,
            )
            .await
        }
    };
    let (s, headers, body) = get(String::new()).await;
    assert_eq!(s, StatusCode::OK);
    let table: RoutingTable = serde_json::from_slice(&body).unwrap();
    assert!(table.tenants.is_empty(), "tenants travel in the directory");
    assert_eq!(headers[VERSION_HEADER], table.version.to_string().as_str());
    assert_eq!(
        table.models,
        aipipe_core::catalog::default_models(),
        "seeded from the default catalog"
    );
    assert_eq!(table.providers, aipipe_core::catalog::default_providers());
    let v = table.version.to_string();
    let (s, headers, body) = get(v.clone()).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert!(headers.get("content-type").is_none());
    // A tenant is no change of the global table; a model is.
    h.create_tenant("acme").await;
    assert_eq!(get(v.clone()).await.0, StatusCode::NOT_MODIFIED);
    let mut m = table.models[0].clone();
    m.input_per_mtok += 0.01;
    let (s, _, text) = h
        .admin(
            Method::PUT,
            &format!("/admin/models/{}", m.id),
            Some(serde_json::to_value(&m).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let (s, _, body) = get(v).await;
    assert_eq!(s, StatusCode::OK);
    let t: RoutingTable = serde_json::from_slice(&body).unwrap();
    assert!(t.version > table.version);
    assert_eq!(t.models[0], m);
}

#[tokio::test]
async fn usage_ingest_is_idempotent_by_record_id() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let batch: Vec<UsageRecord> = (0..20u32)
        .map(|i| {
            record(
                &format!("req-{i}"),
                "acme",
                "gpt-4o-mini",
                200,
                f64::from(i),
                1_000 + u64::from(i),
            )
        })
        .collect();
    let (s, ack) = h.ingest(&batch).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ack, json!({"accepted": 20, "duplicates": 0}));
    let uri = "/admin/tenants/acme/stats?since=0&until=10000";
    let (_, before, _) = h.admin(Method::GET, uri, None).await;
    let (s, ack) = h.ingest(&batch).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ack, json!({"accepted": 0, "duplicates": 20}));
    let (_, after, _) = h.admin(Method::GET, uri, None).await;
    assert_eq!(before, after);
    assert_eq!(after["totals"]["requests"], 20);
    // A batch mixing new and old records counts each once.
    let mut mixed = batch[..5].to_vec();
    mixed.push(record("req-new", "acme", "gpt-4o-mini", 200, 1.0, 2_000));
    let (_, ack) = h.ingest(&mixed).await;
    assert_eq!(ack, json!({"accepted": 1, "duplicates": 5}));
    let (_, _, metrics) = h.admin(Method::GET, "/metrics", None).await;
    assert!(
        metrics.contains(
            "aipipe_requests_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o-mini\"} 21"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn usage_batches_that_are_not_json_or_not_batches_are_400() {
    let h = harness().await;
    for body in [
        &b"{nope"[..],
        br#"{"records":[{"id":"x"}]}"#,
        br#"{"records":[],"extra":1}"#,
    ] {
        let (s, _, b) = send(
            internal_app(h.state.clone()),
            Method::POST,
            USAGE_PATH,
            &[(TOKEN_HEADER, TOKEN)],
            Some(body.to_vec()),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_error_shape(&json_of(&b), "bad_request");
    }
}

/// Records that cannot be stored are refused one by one and counted; the
/// batch is acknowledged, so a filter never retries it forever.
#[tokio::test]
async fn impossible_records_and_unknown_tenants_are_refused_counted_and_never_stored() {
    let h = harness().await;
    h.create_tenant("acme").await;
    h.create_tenant("gone").await;
    assert_eq!(
        h.admin(Method::DELETE, "/admin/tenants/gone", None).await.0,
        StatusCode::NO_CONTENT
    );
    let mut huge = record("huge", "acme", "gpt-4o-mini", 200, 1.0, 1);
    huge.prompt_tokens = i64::MAX as u64;
    let mut costly = record("costly", "acme", "gpt-4o-mini", 200, 1.0, 1);
    costly.cost_nusd = u64::MAX;
    let mut nan = record("nan", "acme", "gpt-4o-mini", 200, 1.0, 1);
    nan.latency_ms = -5.0;
    let (s, ack) = h
        .ingest(&[
            record("ok", "acme", "gpt-4o-mini", 200, 1.0, 1),
            record("", "acme", "gpt-4o-mini", 200, 1.0, 1),
            huge,
            costly,
            nan,
            record("stranger", "nobody", "gpt-4o-mini", 200, 1.0, 1),
            // A tenant deleted a moment ago: its last usage is still accounted.
            record("late", "gone", "gpt-4o-mini", 200, 1.0, 1),
        ])
        .await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({"accepted": 2, "duplicates": 0, "refused": 5}));
    if let Some(db) = h.raw_db() {
        let stored: i64 = db
            .query_row("SELECT COUNT(*) FROM usage", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 2);
    }
    let (s, _, text) = h.admin(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains("aipipe_cp_ingest_records_total{result=\"refused\"} 5"),
        "{text}"
    );
}

#[tokio::test]
async fn stats_are_exact_on_a_known_set() {
    let h = harness().await;
    h.create_tenant("acme").await;
    h.create_tenant("other").await;
    let mut records = Vec::new();
    // gpt-4o-mini: latencies 1..=100 ms at ts 1000..1099, every 10th fails.
    for i in 1..=100u32 {
        let status = if i % 10 == 0 { 500 } else { 200 };
        records.push(record(
            &format!("m{i}"),
            "acme",
            "gpt-4o-mini",
            status,
            f64::from(i),
            1_000 + u64::from(i),
        ));
    }
    // claude: 3 requests, one with no status (broken stream) and no TTFT.
    let mut c = record("c1", "acme", "claude-opus-4-5", 200, 300.0, 1_050);
    c.provider = "anthropic".into();
    let mut c2 = c.clone();
    c2.id = "c2".into();
    c2.latency_ms = 100.0;
    c2.ttft_ms = Some(25.0);
    let mut c3 = c.clone();
    c3.id = "c3".into();
    c3.status = 0;
    c3.ttft_ms = None;
    c3.usage_parsed = false;
    c3.latency_ms = 200.0;
    records.extend([c, c2, c3]);
    // Outside the window, and another tenant's: never counted.
    records.push(record("late", "acme", "gpt-4o-mini", 200, 9_999.0, 5_000));
    records.push(record("early", "acme", "gpt-4o-mini", 200, 9_999.0, 999));
    records.push(record("b1", "other", "gpt-4o-mini", 200, 9_999.0, 1_050));
    h.ingest(&records).await;

    let (s, v, _) = h
        .admin(
            Method::GET,
            "/admin/tenants/acme/stats?since=1000&until=2000",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["tenant"].as_str(),
            v["since"].as_u64(),
            v["until"].as_u64()
        ),
        (Some("acme"), Some(1000), Some(2000))
    );
    let t = &v["totals"];
    assert_eq!(t["requests"], 103);
    assert_eq!(t["errors"], 11);
    assert_eq!(t["unparsed"], 11);
    assert_eq!(t["prompt_tokens"], 103 * 100);
    assert_eq!(t["completion_tokens"], 103 * 50);
    assert_eq!(t["cached_tokens"], 103 * 10);
    assert!((t["cost_usd"].as_f64().unwrap() - 103.0 * 45_000e-9).abs() < 1e-12);
    assert!((t["success_rate"].as_f64().unwrap() - 92.0 / 103.0).abs() < 1e-12);

    let by = v["by_model"].as_array().unwrap();
    assert_eq!(by.len(), 2);
    let claude = &by[0];
    assert_eq!(
        (claude["provider"].as_str(), claude["model"].as_str()),
        (Some("anthropic"), Some("claude-opus-4-5"))
    );
    assert_eq!(claude["requests"], 3);
    assert_eq!(claude["errors"], 1);
    assert_percentiles(&claude["latency_ms"], [200.0, 300.0, 300.0]);
    assert_percentiles(&claude["ttft_ms"], [25.0, 75.0, 75.0]);
    let mini = &by[1];
    assert_eq!(mini["model"], "gpt-4o-mini");
    assert_eq!(mini["requests"], 100);
    assert_eq!(mini["success_rate"], 0.9);
    assert_percentiles(&mini["latency_ms"], [50.0, 95.0, 99.0]);
    assert_percentiles(&mini["ttft_ms"], [12.5, 23.75, 24.75]);

    // An empty window: zeros and nulls, not an error.
    let (s, v, _) = h
        .admin(
            Method::GET,
            "/admin/tenants/acme/stats?since=0&until=10",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totals"]["requests"], 0);
    assert_eq!(v["totals"]["success_rate"], Value::Null);
    assert_eq!(v["by_model"], json!([]));
}

#[tokio::test]
async fn models_are_validated_by_compiling_the_table() {
    let h = harness().await;
    let (s, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut mini = listed_model(&v, "gpt-4o-mini");
    let version = h.state.db.revision().await.unwrap();

    mini["quality"] = json!(1.5);
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("quality"),
        "{v}"
    );
    mini["quality"] = json!(0.5);
    mini["provider"] = json!("nobody");
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("provider"),
        "{v}"
    );
    mini["provider"] = json!("openai");
    for (bad, field) in [
        (json!({"poetry": 0.5}), "category_quality.poetry"),
        (json!({"coding": 0}), "category_quality.coding"),
        (json!({"coding": "high"}), "expected f64"),
    ] {
        mini["category_quality"] = bad;
        let (s, v, _) = h
            .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
            .await;
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST,
            "{s} {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    mini["category_quality"] = json!({"coding": 0.62});
    let (s, _, _) = h
        .admin(Method::PUT, "/admin/models/other-id", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/x", Some(json!({"id": "x"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{v}"
    );
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version,
        "refused changes write nothing"
    );

    mini["input_per_mtok"] = json!(0.1);
    let (s, _, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut new = mini.clone();
    new["id"] = json!("gpt-new");
    let (s, _, _) = h
        .admin(Method::PUT, "/admin/models/gpt-new", Some(new))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (table, _) = h.table().await;
    assert_eq!(table.version, version + 2);
    let m = table.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert_eq!(m.input_per_mtok, 0.1);
    assert_eq!(m.category_quality.get("coding"), Some(&0.62));
    assert_eq!(table.models.last().unwrap().id, "gpt-new");
}

/// Scheduled price changes through the admin API (control-plane/README.md,
/// "Scheduled price changes"): a bad schedule is refused naming the change
/// and field, nothing written; a good one is stored, one change of the
/// change log, shipped whole in the table (the filters resolve it by their
/// clocks) and listed priced as now — a passed change folded into the
/// prices, only the later ones listed.
#[tokio::test]
async fn price_changes_are_validated_stored_shipped_and_listed_as_now() {
    use aipipe_core::catalog::Timestamp;
    let h = harness().await;
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let flash = listed_model(&v, "gemini-3.8-flash");
    if aipipe_control_plane::db::now_ms() < 1_798_761_600_000 {
        assert_eq!(
            flash["price_changes"],
            json!([{"from": "2027-01-01T00:00:00Z", "input_per_mtok": 1.5,
                "output_per_mtok": 7.5, "cached_input_per_mtok": 0.15}]),
            "the default catalog schedules it"
        );
    } else {
        // From 2027-01-01 the listing shows it folded into the prices.
        assert_eq!(
            (flash["input_per_mtok"].clone(), flash.get("price_changes")),
            (json!(1.5), None)
        );
    }
    let mut mini = listed_model(&v, "gpt-4o-mini");
    let version = h.state.db.revision().await.unwrap();
    let change = |from: &str, input: Value| json!({"from": from, "input_per_mtok": input, "output_per_mtok": 1.2});
    let later: Vec<Value> = (0..17)
        .map(|i| change(&format!("2030-01-{:02}T00:00:00Z", i + 1), json!(0.3)))
        .collect();
    for (bad, says) in [
        (
            json!([change("2027-13-01T00:00:00Z", json!(0.3))]),
            "price_changes[0].from: must be an RFC 3339 date and time",
        ),
        (
            json!([change("2027-01-01", json!(0.3))]),
            "price_changes[0].from: must be an RFC 3339 date and time",
        ),
        (
            json!([{"from": 1798761600000u64, "input_per_mtok": 0.3, "output_per_mtok": 1.2}]),
            "price_changes[0].from",
        ),
        (
            json!([change("2027-01-01T00:00:00Z", json!(-0.3))]),
            "body.price_changes[0].input_per_mtok: must be a number from 0 to 10000",
        ),
        (
            json!([change("2027-01-01T00:00:00Z", json!("NaN"))]),
            "price_changes[0].input_per_mtok: invalid type",
        ),
        (
            json!([change("2027-01-01T00:00:00Z", json!(null))]),
            "price_changes[0].input_per_mtok: invalid type",
        ),
        (
            json!([change("2027-01-01T00:00:00Z", json!(1e5))]),
            "body.price_changes[0].input_per_mtok: must be a number from 0 to 10000",
        ),
        (
            json!([
                change("2027-01-01T00:00:00Z", json!(0.3)),
                change("2027-01-01T01:00:00+01:00", json!(0.4))
            ]),
            "body.price_changes[1].from: 2027-01-01T00:00:00Z is also body.price_changes[0].from: one change per instant",
        ),
        (
            json!([
                change("2027-02-01T00:00:00Z", json!(0.3)),
                change("2027-01-01T00:00:00Z", json!(0.4))
            ]),
            "body.price_changes[1].from: 2027-01-01T00:00:00Z is before body.price_changes[0].from",
        ),
        (
            Value::Array(later),
            "body.price_changes: at most 16 changes, got 17",
        ),
        (
            json!([{"from": "2027-01-01T00:00:00Z", "input": 0.3, "output_per_mtok": 1.2}]),
            "price_changes[0].input: unknown field `input`",
        ),
        (
            json!({"from": "2027-01-01T00:00:00Z"}),
            "price_changes: invalid type",
        ),
    ] {
        mini["price_changes"] = bad.clone();
        refused(&h, &mini, says).await;
    }
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version,
        "refused schedules write nothing"
    );

    // One change an hour ago, one a day ahead.
    let now = aipipe_control_plane::db::now_ms();
    let past = Timestamp(now / 1000 * 1000 - 3_600_000).to_string();
    let ahead = Timestamp(now / 1000 * 1000 + 86_400_000).to_string();
    mini["price_changes"] = json!([
        {"from": past, "input_per_mtok": 0.3, "output_per_mtok": 1.2},
        {"from": ahead, "input_per_mtok": 0.5, "output_per_mtok": 2.0, "cached_input_per_mtok": 0.05}
    ]);
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version + 1,
        "one change"
    );
    // Shipped whole: the filters price by their own clocks.
    let (table, _) = h.table().await;
    let shipped = table.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert_eq!(shipped.input_per_mtok, 0.15);
    assert_eq!(shipped.price_changes.len(), 2);
    assert_eq!(shipped.prices_at(now).input_per_mtok, 0.3);
    // Listed as priced now: the passed change folded in, the later listed.
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let listed = listed_model(&v, "gpt-4o-mini");
    assert_eq!(
        (
            &listed["input_per_mtok"],
            &listed["output_per_mtok"],
            &listed["cached_input_per_mtok"]
        ),
        (&json!(0.3), &json!(1.2), &Value::Null),
        "{listed}"
    );
    assert_eq!(
        listed["price_changes"],
        json!([{"from": ahead, "input_per_mtok": 0.5, "output_per_mtok": 2.0,
            "cached_input_per_mtok": 0.05}])
    );
    // What is listed can be put back as it is (GET, edit, PUT).
    let (s, _, _) = h
        .admin(
            Method::PUT,
            "/admin/models/gpt-4o-mini",
            Some(listed.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(listed_model(&v, "gpt-4o-mini"), listed);

    // Explain ranks at the prices in force when asked: a change that
    // passed makes gpt-4o-mini dearer than gpt-4o, and a greeting moves.
    h.create_tenant("acme").await;
    h.admin(
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-a"})),
    )
    .await;
    let ask =
        json!({"tenant": "acme", "request": {"messages": [{"role": "user", "content": "hi"}]}});
    let (s, v, _) = h
        .admin(Method::POST, "/admin/route/explain", Some(ask.clone()))
        .await;
    assert_eq!(
        (s, &v["choice"]),
        (StatusCode::OK, &json!("gpt-4o-mini")),
        "{v}"
    );
    let mut dear = listed.clone();
    dear["price_changes"] =
        json!([{"from": past, "input_per_mtok": 30.0, "output_per_mtok": 120.0}]);
    let (s, _, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(dear))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v, _) = h
        .admin(Method::POST, "/admin/route/explain", Some(ask))
        .await;
    assert_eq!(v["choice"], "gpt-4o", "{v}");
    let mini = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "gpt-4o-mini")
        .unwrap();
    assert!(mini["raw_cost_usd"].as_f64().unwrap() > 0.005, "{mini}");
}

/// Scheduled retirements through the admin API (control-plane/README.md,
/// "Scheduled retirements"): the default catalog dates gpt-4o, gpt-4o-mini
/// and claude-opus-4-5; a `retires_at` that is not an RFC 3339 instant is
/// refused naming the field, nothing written; a past one is accepted and
/// means retired now — stored, one change of the change log, shipped in
/// the table, listed as set with the model named in `retired`, and explain
/// no longer ranks the model; null clears it and the model is back.
#[tokio::test]
async fn retirements_are_validated_stored_shipped_and_listed() {
    use aipipe_core::catalog::Timestamp;
    let h = harness_dated("api", None).await;
    let now = aipipe_control_plane::db::now_ms();
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    for (id, date) in [
        ("gpt-4o-mini", "2027-01-14T00:00:00Z"),
        ("gpt-4o", "2027-01-14T00:00:00Z"),
        ("claude-opus-4-5", "2027-01-22T00:00:00Z"),
    ] {
        assert_eq!(listed_model(&v, id)["retires_at"], date, "{id}");
    }
    assert_eq!(
        listed_model(&v, "claude-sonnet-5-5").get("retires_at"),
        None
    );
    // Retired now: those whose date has passed by this machine's clock.
    let due: Vec<String> = aipipe_core::catalog::default_models()
        .into_iter()
        .filter(|m| m.retired_at(now))
        .map(|m| m.id)
        .collect();
    assert_eq!(v["retired"], json!(due));

    let mut mini = listed_model(&v, "gpt-4o-mini");
    let version = h.state.db.revision().await.unwrap();
    for (bad, says) in [
        (
            json!("2027-01-14"),
            "retires_at: must be an RFC 3339 date and time",
        ),
        (
            json!("2027-02-30T00:00:00Z"),
            "retires_at: must be an RFC 3339 date and time",
        ),
        (
            json!("1969-12-31T23:59:59Z"),
            "retires_at: must be an RFC 3339 date and time",
        ),
        (json!(1_799_884_800_000u64), "retires_at"),
        (json!(true), "retires_at"),
    ] {
        mini["retires_at"] = bad.clone();
        refused(&h, &mini, says).await;
    }
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version,
        "refused dates write nothing"
    );

    // From here on the catalog as it is before its dates (explain reads the
    // real clock), with this test's own instants.
    undate_catalog(&h.state).await;
    acme_with_openai_key(&h).await;
    let explain = || explain_hi(&h);
    let (choice, ranked) = explain().await;
    assert_eq!(choice, "gpt-4o-mini");
    assert!(ranked.contains(&"gpt-4o-mini".to_owned()), "{ranked:?}");
    let version = h.state.db.revision().await.unwrap();

    // An hour ago: accepted, retired now.
    let past = Timestamp(now / 1000 * 1000 - 3_600_000).to_string();
    mini["retires_at"] = json!(past);
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["retires_at"], json!(past));
    let (table, _) = h.table().await;
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version + 1,
        "one change"
    );
    let shipped = table.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert_eq!(
        shipped.retires_at.map(|t| t.to_string()),
        Some(past.clone())
    );
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let listed = listed_model(&v, "gpt-4o-mini");
    assert_eq!(listed["retires_at"], json!(past));
    assert!(
        v["retired"]
            .as_array()
            .unwrap()
            .contains(&json!("gpt-4o-mini")),
        "{}",
        v["retired"]
    );
    let (choice, ranked) = explain().await;
    assert_eq!(choice, "gpt-4o", "the only OpenAI model left");
    assert!(!ranked.contains(&"gpt-4o-mini".to_owned()), "{ranked:?}");
    // What is listed can be put back as it is.
    let (s, _, _) = h
        .admin(
            Method::PUT,
            "/admin/models/gpt-4o-mini",
            Some(listed.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Cleared: no date, in service again.
    mini["retires_at"] = Value::Null;
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(listed_model(&v, "gpt-4o-mini").get("retires_at"), None);
    assert!(
        !v["retired"]
            .as_array()
            .unwrap()
            .contains(&json!("gpt-4o-mini"))
    );
    assert_eq!(explain().await.0, "gpt-4o-mini");
}

/// A model's long-context rates are validated before anything is written
/// (a 422 naming the field), stored, shipped in the table and listed; a
/// `null` removes them.
#[tokio::test]
async fn long_context_rates_are_validated_stored_shipped_and_listed() {
    let h = harness().await;
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let mut mini = listed_model(&v, "gpt-4o-mini");
    let version = h.state.db.revision().await.unwrap();
    for (bad, says) in [
        (
            json!({"above_tokens": 0, "input_multiplier": 2, "output_multiplier": 2}),
            "body.long_context.above_tokens: must be from 1 to 100000000, got 0",
        ),
        (
            json!({"above_tokens": 1000, "input_multiplier": 0.5, "output_multiplier": 2}),
            "body.long_context.input_multiplier: must be a number from 1 to 100, got 0.5",
        ),
        (
            json!({"above_tokens": 1000, "input_multiplier": 2, "output_multiplier": 101}),
            "body.long_context.output_multiplier: must be a number from 1 to 100, got 101",
        ),
        (
            json!({"above_tokens": 1000, "input_multiplier": 2}),
            "long_context: missing field `output_multiplier`",
        ),
        (
            json!({"above_tokens": 1000, "input_multiplier": 2, "output_multiplier": 2, "tier": 1}),
            "long_context.tier: unknown field `tier`",
        ),
    ] {
        mini["long_context"] = bad;
        refused(&h, &mini, says).await;
    }
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        version,
        "nothing written"
    );

    let rates = json!({"above_tokens": 128000, "input_multiplier": 2.0, "output_multiplier": 1.5});
    mini["long_context"] = rates.clone();
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(listed_model(&v, "gpt-4o-mini")["long_context"], rates);
    let (table, _) = h.table().await;
    let shipped = table.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert_eq!(
        shipped.long_context,
        Some(aipipe_core::catalog::LongContext {
            above_tokens: 128_000,
            input_multiplier: 2.0,
            output_multiplier: 1.5
        })
    );

    mini["long_context"] = Value::Null;
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(listed_model(&v, "gpt-4o-mini").get("long_context"), None);
}

/// `PUT /admin/models/{id}` of `entry` is refused with a 422 whose message
/// says `says`.
async fn refused(h: &Harness, entry: &Value, says: &str) {
    let id = entry["id"].as_str().unwrap();
    let (s, v, _) = h
        .admin(
            Method::PUT,
            &format!("/admin/models/{id}"),
            Some(entry.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{entry}: {v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
}

/// The entry `id` of a `GET /admin/models` body.
fn listed_model(v: &Value, id: &str) -> Value {
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone()
}

/// Tenant `acme` with one OpenAI key.
async fn acme_with_openai_key(h: &Harness) {
    h.create_tenant("acme").await;
    let (s, _, _) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"openai": "sk-a"})),
        )
        .await;
    assert!(s.is_success(), "{s}");
}

/// Where explain routes a "hi" from `acme` now: its choice and the ranked
/// candidates.
async fn explain_hi(h: &Harness) -> (Value, Vec<String>) {
    let ask =
        json!({"tenant": "acme", "request": {"messages": [{"role": "user", "content": "hi"}]}});
    let (s, v, _) = h
        .admin(Method::POST, "/admin/route/explain", Some(ask))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ranked = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["model"].as_str().unwrap().to_owned())
        .collect();
    (v["choice"].clone(), ranked)
}

/// A model dated to enter service through the admin API (control-plane/
/// README.md, "Scheduled retirements"): the default catalog dates
/// gpt-6-luna to the instant gpt-4o and gpt-4o-mini retire; an
/// `enabled_from` not before `retires_at` is refused naming the field,
/// nothing written; until the instant explain does not rank it; a passed
/// instant puts it in service at once (an OpenAI-only tenant's cheapest
/// model) and the listing drops the passed date.
#[tokio::test]
async fn a_model_enters_service_at_its_enabled_from() {
    let h = harness_dated("api", None).await;
    let luna = |v: &Value| listed_model(v, "gpt-6-luna");
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let now = aipipe_control_plane::db::now_ms();
    let mut m = luna(&v);
    if now < 1_799_884_800_000 {
        assert_eq!(m["enabled_from"], "2027-01-14T00:00:00Z");
    }
    assert_eq!(m["enabled"], true);
    undate_catalog(&h.state).await;
    acme_with_openai_key(&h).await;
    let explain = || async { explain_hi(&h).await.0 };
    let h = &h;
    let put = |m: Value| async move {
        h.admin(Method::PUT, "/admin/models/gpt-6-luna", Some(m))
            .await
    };

    m["enabled"] = json!(true);
    m["enabled_from"] = json!("2040-01-01T00:00:00Z");
    m["retires_at"] = json!("2040-01-01T00:00:00Z");
    let version = h.state.db.revision().await.unwrap();
    refused(h, &m, "enabled_from: must be before retires_at").await;
    assert_eq!(h.state.db.revision().await.unwrap(), version);

    m["retires_at"] = Value::Null;
    let (s, v, _) = put(m.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(explain().await, "gpt-4o-mini", "not before its instant");

    let past = aipipe_core::catalog::Timestamp(now / 1000 * 1000 - 3_600_000).to_string();
    m["enabled_from"] = json!(past);
    let (s, v, _) = put(m.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (table, _) = h.table().await;
    let shipped = table.models.iter().find(|m| m.id == "gpt-6-luna").unwrap();
    assert_eq!(shipped.enabled_from.map(|t| t.to_string()), Some(past));
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    assert_eq!(
        luna(&v).get("enabled_from"),
        None,
        "a passed date is folded"
    );
    assert_eq!(explain().await, "gpt-6-luna", "in service from its instant");
}

#[tokio::test]
async fn the_router_model_is_replaced_through_the_api_and_a_bad_blob_refused() {
    use base64::Engine as _;
    let h = harness().await;
    h.create_tenant("acme").await;
    h.admin(
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-a", "anthropic": "sk-b"})),
    )
    .await;
    let (s, v, _) = h.admin(Method::GET, "/admin/routing/model", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "builtin");
    let builtin_version = v["version"].clone();
    let put_model = |body| h.admin(Method::PUT, "/admin/routing/model", Some(body));

    // Another blob (here the built-in one's bytes): every filter routes by
    // it, and explain says a global model scored.
    let blob = base64::engine::general_purpose::STANDARD.encode(aipipe_core::classify::BUNDLED);
    let (s, v, _) = put_model(json!({"blob": blob})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["model"], &v["version"]),
        (&json!("global"), &builtin_version)
    );
    let (_, v, _) = h.admin(Method::GET, "/admin/routing/model", None).await;
    assert_eq!(v["model"], "global");
    let ask =
        json!({"tenant": "acme", "request": {"messages": [{"role": "user", "content": "hi"}]}});
    let (s, v, _) = h
        .admin(Method::POST, "/admin/route/explain", Some(ask.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["router"]["model"], "global");

    // A blob the filter would refuse is refused here, and nothing changes.
    let mut bad = aipipe_core::classify::BUNDLED.to_vec();
    bad[200] ^= 1;
    for blob in [
        base64::engine::general_purpose::STANDARD.encode(&bad),
        "not base64".to_owned(),
    ] {
        let (s, v, _) = put_model(json!({"blob": blob})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("blob: "),
            "{v}"
        );
    }
    let (_, v, _) = h.admin(Method::GET, "/admin/routing/model", None).await;
    assert_eq!(v["model"], "global");

    // No blob: back to the built-in model.
    let (s, v, _) = put_model(json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "builtin");
    let (_, v, _) = h
        .admin(Method::POST, "/admin/route/explain", Some(ask))
        .await;
    assert_eq!(v["router"]["model"], "builtin");

    // A model wider than axum's default 2 MB body allows (2^17 rows: 1.6 MB,
    // 2.1 MB in base64) is taken.
    let cfg = aipipe_core::classify::FeatureConfig {
        bits: 17,
        ..Default::default()
    };
    let mut w = aipipe_core::classify::Weights::zeros(&cfg);
    w.bias[0] = 0.5;
    if let Some(x) = w.sparse.get_mut(5) {
        *x = 0.25;
    }
    let wide = aipipe_core::classify::Model::quantise(17, cfg, &w)
        .unwrap()
        .encode();
    let blob = base64::engine::general_purpose::STANDARD.encode(&wide);
    assert!(blob.len() > 2 << 20, "{}", blob.len());
    let (s, v, _) = put_model(json!({"blob": blob})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["model"], &v["version"]),
        (&json!("global"), &json!("00000011"))
    );
}

#[tokio::test]
async fn explain_ranks_candidates_best_first_with_the_filters_code() {
    let h = harness().await;
    h.create_tenant("acme").await;
    h.admin(
        Method::POST,
        "/admin/tenants/acme/keys",
        Some(json!({"openai": "sk-a", "anthropic": "sk-b"})),
    )
    .await;
    let body = json!({"tenant": "acme", "request": {"model": "auto", "messages": [
        {"role": "user", "content": "Prove that R(3,3,3) >= 17, then analyze the complexity of checking a colouring."}]}});
    let (s, v, text) = h
        .admin(Method::POST, "/admin/route/explain", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!text.contains("sk-a"));
    let c = v["candidates"].as_array().unwrap();
    assert!(c.len() >= 2, "{v}");
    assert!(
        c.iter()
            .all(|c| c["provider"] == "openai" || c["provider"] == "anthropic"),
        "only providers with keys"
    );
    assert!(
        c.windows(2)
            .all(|w| w[0]["adjusted_cost"].as_f64() <= w[1]["adjusted_cost"].as_f64())
    );
    assert_eq!(v["choice"], c[0]["model"]);
    assert!(v["score"]["complexity"].is_number());
    // The control plane ships the built-in router model: it scored, and
    // says how.
    let router = &v["router"];
    assert_eq!(router["model"], "builtin", "{v}");
    assert_eq!(router["tier"], "frontier", "{v}");
    assert_eq!(router["category"], "math_reasoning", "{v}");
    assert_eq!(v["complexity"], router["complexity"]);
    assert!(router["tier_probabilities"]["frontier"].as_f64() > Some(0.5));
    assert!(!router["top_features"].as_array().unwrap().is_empty());

    let (s, _, _) = h
        .admin(
            Method::POST,
            "/admin/route/explain",
            Some(json!({"tenant": "ghost", "request": {"messages": []}})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = h
        .admin(
            Method::POST,
            "/admin/route/explain",
            Some(json!({"tenant": "acme", "request": {"messages": "no"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn missing_or_wrong_secrets_are_401() {
    let h = harness().await;
    let mut client = 0u8;
    for headers in [
        vec![],
        vec![("x-admin-secret", "wrong")],
        vec![("x-admin-secret", "")],
        vec![("x-admin-secret", "admin-secret-for-testsX")],
    ] {
        for (method, uri) in [
            (Method::GET, "/admin/tenants"),
            (Method::POST, "/admin/tenants"),
            (Method::GET, "/admin/openapi.json"),
        ] {
            // Each from its own address: no address reaches the throttle.
            client += 1;
            let (s, _, b) = send_from(
                admin_app(h.state.clone()),
                Some(([10, 0, 0, client], 4000).into()),
                method,
                uri,
                &headers,
                Some(b"{\"id\":\"x\"}".to_vec()),
            )
            .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri} {headers:?}");
            assert_error_shape(&json_of(&b), "unauthorized");
        }
    }
    assert!(h.state.db.list_tenants().await.unwrap().is_empty());
    for headers in [
        vec![],
        vec![(TOKEN_HEADER, "wrong")],
        vec![("x-admin-secret", ADMIN)],
    ] {
        let (s, _, _) = send(
            internal_app(h.state.clone()),
            Method::GET,
            TABLE_PATH,
            &headers,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, _) = send(
            internal_app(h.state.clone()),
            Method::POST,
            USAGE_PATH,
            &headers,
            Some(b"{\"records\":[]}".to_vec()),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // The admin secret does not open the internal API nor the reverse.
    let (s, _, _) = send(
        admin_app(h.state.clone()),
        Method::GET,
        "/admin/tenants",
        &[("x-admin-secret", TOKEN)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, b) = send(
        admin_app(h.state.clone()),
        Method::GET,
        "/healthz",
        &[],
        None,
    )
    .await;
    assert_eq!((s, &b[..]), (StatusCode::OK, &b"ok"[..]));
    let (s, _, _) = send(
        admin_app(h.state.clone()),
        Method::GET,
        "/metrics",
        &[],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn environment_keys_belong_to_the_default_tenant() {
    let h = harness().await;
    let env = |var: &str| match var {
        "OPENAI_API_KEY" => Some("sk-env-openai".to_owned()),
        "GEMINI_API_KEY" => Some("  ".to_owned()),
        _ => None,
    };
    let adopted = adopt_env_keys(&h.state, env).await.unwrap();
    assert_eq!(adopted, vec!["openai"]);
    let (table, _) = h.table().await;
    let d = table.tenants.iter().find(|t| t.id == "default").unwrap();
    assert_eq!(d.provider_keys.len(), 1);
    assert_eq!(d.provider_keys["openai"], "sk-env-openai");
    // A restart with the same environment changes nothing.
    let adopted = adopt_env_keys(&h.state, env).await.unwrap();
    assert!(adopted.is_empty());
    assert_eq!(h.state.db.revision().await.unwrap(), table.version);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let h = harness().await;
    let (s, v, _) = h.admin(Method::GET, "/admin/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in aipipe_control_plane::openapi::ROUTES {
        assert!(v["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(aipipe_control_plane::openapi::ROUTES.len(), 54);
}

#[tokio::test]
async fn an_existing_key_can_be_imported_once() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let path = "/admin/tenants/acme/virtual-keys";
    let (s, v, _) = h
        .admin(
            Method::POST,
            path,
            Some(json!({"name": "migrated", "key": "legacy-key-0123456789"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (table, text) = h.table().await;
    let acme = table.tenants.iter().find(|t| t.id == "acme").unwrap();
    assert_eq!(
        acme.virtual_key_hashes,
        vec![hex_hash("legacy-key-0123456789")]
    );
    assert!(!text.contains("legacy-key-0123456789"));
    let (s, _, _) = h
        .admin(
            Method::POST,
            path,
            Some(json!({"name": "again", "key": "legacy-key-0123456789"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = h
        .admin(Method::POST, path, Some(json!({"key": "short-key"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

// ---- penalties (control-plane/README.md, "Penalties") ------------------------------

fn now_ms() -> u64 {
    aipipe_control_plane::db::now_ms()
}

/// `actual` is `expected` give or take 1 % (time decay runs while a test does).
fn assert_near(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= expected * 0.01 + 1e-9,
        "{actual} is not {expected}"
    );
}

/// Penalties halve every hour: over a test's run they are the arithmetic.
const HOUR_MS: u64 = 3_600_000;

/// The value of one Prometheus sample.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from\n{metrics}"))
        .parse()
        .unwrap()
}

fn penalty_of(t: &RoutingTable, model: &str) -> f64 {
    t.models.iter().find(|m| m.id == model).unwrap().penalty
}

fn penalty_view<'a>(v: &'a Value, model: &str) -> &'a Value {
    v["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == model)
        .unwrap_or_else(|| panic!("{model} not in {v}"))
}

#[tokio::test]
async fn failures_raise_a_penalty_that_the_polled_table_carries() {
    let h = harness_with_decay(HOUR_MS).await;
    h.create_tenant("acme").await;
    let (t0, _) = h.table().await;
    assert!(t0.models.iter().all(|m| m.penalty == 0.0));
    // A new database's epoch is its creation time (ms), never 0.
    let e0 = t0.penalty_epoch;
    assert!(e0 > 1_700_000_000_000, "{e0}");
    assert!(h.poll(t0.version).await.is_none(), "nothing changed yet");

    // Each failure multiplies 1 + penalty by 4: 0 → 3 → 15.
    let fail1 = record("f1", "acme", "gpt-4o-mini", 500, 10.0, now_ms());
    h.ingest(std::slice::from_ref(&fail1)).await;
    let t1 = h.poll(t0.version).await.expect("a new table");
    assert!(t1.version > t0.version);
    assert_near(penalty_of(&t1, "gpt-4o-mini"), 3.0);
    assert_eq!(penalty_of(&t1, "gpt-4o"), 0.0, "other models untouched");
    assert!(h.poll(t1.version).await.is_none());

    // A 429 speaks about one tenant's provider key: the filters penalize
    // that key, never the model for everybody.
    let limited = record("l1", "acme", "gpt-4o-mini", 429, 10.0, now_ms());
    h.ingest(std::slice::from_ref(&limited)).await;
    assert!(
        h.poll(t1.version).await.is_none(),
        "a 429 moved the model for everybody"
    );

    let fail2 = record("f2", "acme", "gpt-4o-mini", 502, 10.0, now_ms());
    h.ingest(std::slice::from_ref(&fail2)).await;
    let t2 = h.poll(t1.version).await.expect("a new table");
    assert_near(penalty_of(&t2, "gpt-4o-mini"), 15.0);

    // A retried batch (same ids) is a duplicate: no penalty applied twice.
    let (_, ack) = h.ingest(&[fail1, fail2]).await;
    assert_eq!(ack, json!({"accepted": 0, "duplicates": 2}));
    assert!(
        h.poll(t2.version).await.is_none(),
        "no change, no new version"
    );

    // A success halves it; a client error (400) says nothing about the model.
    h.ingest(&[
        record("s1", "acme", "gpt-4o-mini", 200, 10.0, now_ms()),
        record("c1", "acme", "gpt-4o-mini", 400, 10.0, now_ms()),
    ])
    .await;
    let t3 = h.poll(t2.version).await.expect("a new table");
    assert_near(penalty_of(&t3, "gpt-4o-mini"), 7.5);

    let (s, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["penalty_epoch"], e0);
    assert_eq!(v["decay_ms"], HOUR_MS);
    assert_eq!(v["table_version"], t3.version);
    let mini = penalty_view(&v, "gpt-4o-mini");
    assert_eq!(mini["provider"], "openai");
    assert_eq!(
        (mini["successes"].as_u64(), mini["failures"].as_u64()),
        (Some(1), Some(2))
    );
    assert_near(mini["success_rate"].as_f64().unwrap(), 1.0 / 3.0);
    assert_near(mini["penalty"].as_f64().unwrap(), 7.5);
    assert_eq!(
        mini["table_penalty"].as_f64(),
        Some(penalty_of(&t3, "gpt-4o-mini"))
    );
    assert!(mini["updated_ms"].as_u64().unwrap() > 0);
    let idle = penalty_view(&v, "gpt-4o");
    assert_eq!(idle["penalty"], 0.0);
    assert_eq!(idle["success_rate"], Value::Null);
    assert_eq!(idle["updated_ms"], Value::Null);
    assert_eq!(
        v["penalties"].as_array().unwrap().len(),
        aipipe_core::catalog::default_models().len(),
        "every catalog model, in catalog order"
    );

    // The explain route ranks with the same penalties.
    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/route/explain",
            Some(json!({"tenant": "acme", "request": {"model": "auto",
                "messages": [{"role": "user", "content": "hi"}]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_ne!(v["choice"], "gpt-4o-mini", "{v}");

    let (_, _, metrics) = h.admin(Method::GET, "/metrics", None).await;
    assert_near(
        sample(
            &metrics,
            "aipipe_model_penalty{provider=\"openai\",model=\"gpt-4o-mini\"}",
        ),
        7.5,
    );
    assert_near(
        sample(
            &metrics,
            "aipipe_model_success_rate{provider=\"openai\",model=\"gpt-4o-mini\"}",
        ),
        1.0 / 3.0,
    );
    assert!(
        metrics.contains("aipipe_model_penalty{provider=\"openai\",model=\"gpt-4o\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("aipipe_cp_penalty_epoch {e0}\n")),
        "{metrics}"
    );
}

#[tokio::test]
async fn many_failures_cap_and_healthy_traffic_never_bumps_the_version() {
    let h = harness_with_decay(HOUR_MS).await;
    h.create_tenant("acme").await;
    let (t0, _) = h.table().await;
    let healthy: Vec<UsageRecord> = (0..50)
        .map(|i| record(&format!("ok{i}"), "acme", "gpt-4o-mini", 200, 1.0, now_ms()))
        .collect();
    h.ingest(&healthy).await;
    assert!(
        h.poll(t0.version).await.is_none(),
        "successes of a healthy model change nothing"
    );
    let failing: Vec<UsageRecord> = (0..30)
        .map(|i| {
            record(
                &format!("bad{i}"),
                "acme",
                "gpt-4o-mini",
                503,
                1.0,
                now_ms(),
            )
        })
        .collect();
    h.ingest(&failing).await;
    let t = h.poll(t0.version).await.unwrap();
    assert_near(penalty_of(&t, "gpt-4o-mini"), 1e6); // capped
    assert!(aipipe_core::table::Table::compile(t).is_ok());
}

#[tokio::test]
async fn time_decay_alone_republishes_the_table() {
    // Penalties halve every 200 ms here.
    let h = harness_with_decay(200).await;
    h.create_tenant("acme").await;
    let (t0, _) = h.table().await;
    h.ingest(&[record("f1", "acme", "gpt-4o-mini", 500, 1.0, now_ms())])
        .await;
    let t1 = h.poll(t0.version).await.unwrap();
    let p1 = penalty_of(&t1, "gpt-4o-mini");
    assert!(p1 > 2.5 && p1 <= 3.0, "{p1}");

    // After 1.5 intervals it has halved once (the filter's rule: once per
    // full interval): a filter holding t1 must not be told "not modified".
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t2 = h.poll(t1.version).await.expect("decay changed the penalty");
    let p2 = penalty_of(&t2, "gpt-4o-mini");
    assert!(p2 <= 1.5 && p2 > 0.0, "{p2}");
    assert!(t2.version > t1.version);

    // 3 / 2^9 < 0.01: after 1.8 s it is 0, and stays so.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(penalty_view(&v, "gpt-4o-mini")["penalty"], 0.0);
    let t3 = h.poll(t2.version).await.expect("zero is a change");
    assert_eq!(penalty_of(&t3, "gpt-4o-mini"), 0.0);
    assert!(h.poll(t3.version).await.is_none());
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    let mini = penalty_view(&v, "gpt-4o-mini");
    assert_eq!(mini["table_penalty"], 0.0);
    assert_eq!(mini["failures"], 1, "counts do not decay");

    // A failure long ago (a filter's buffered backlog) barely counts.
    h.ingest(&[record(
        "old",
        "acme",
        "gpt-4o-mini",
        500,
        1.0,
        now_ms() - 60_000,
    )])
    .await;
    assert!(
        h.poll(t3.version).await.is_none(),
        "an old failure is decayed"
    );
}

/// The tag the filter names a provider key by (`Account::key_tag`).
fn tag_of(key: &str) -> String {
    aipipe_core::sha::sha256_hex(key.as_bytes())[..16].to_owned()
}

/// A key's own 429s penalize its (model, key) pair: the routing table
/// carries the pair to every Envoy, `/admin/penalties` and explain show it,
/// only tenants holding that key are slowed, and a success lowers it.
#[tokio::test]
async fn a_keys_429s_penalize_only_its_pair_shown_in_penalties_and_explain() {
    let h = harness_with_decay(HOUR_MS).await;
    for (t, key) in [("acme", "sk-acme-limited"), ("beta", "sk-beta-fine")] {
        h.create_tenant(t).await;
        let (s, v, _) = h
            .admin(
                Method::POST,
                &format!("/admin/tenants/{t}/keys"),
                Some(json!({"openai": key})),
            )
            .await;
        assert!(s.is_success(), "{v}");
    }
    let (t0, _) = h.table().await;
    assert!(t0.key_penalties.is_empty());
    let limited = tag_of("sk-acme-limited");
    let keyed = |id: &str, status: u16| UsageRecord {
        key_tag: Some(limited.clone()),
        ..record(id, "acme", "gpt-4o-mini", status, 10.0, now_ms())
    };
    // Two 429s answered directly, one failed attempt before another model.
    let mut failed_over = record("k3", "acme", "gpt-4o", 200, 10.0, now_ms());
    failed_over.failed_attempts = vec![FailedAttempt {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        status: 429,
        key_tag: Some(limited.clone()),
    }];
    h.ingest(&[keyed("k1", 429), keyed("k2", 429), failed_over])
        .await;
    let t1 = h
        .poll(t0.version)
        .await
        .expect("the pair's penalty is news");
    assert_eq!(penalty_of(&t1, "gpt-4o-mini"), 0.0, "the model is fine");
    assert_eq!(t1.key_penalties.len(), 1, "{:?}", t1.key_penalties);
    let kp = &t1.key_penalties[0];
    assert_eq!(
        (kp.model.as_str(), kp.key_tag.as_str()),
        ("gpt-4o-mini", limited.as_str())
    );
    assert_near(kp.penalty, 63.0); // three failures: factor 4^3

    let (s, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(penalty_view(&v, "gpt-4o-mini")["penalty"], 0.0);
    let pairs = v["key_penalties"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{v}");
    assert_eq!(pairs[0]["key_tag"], limited.as_str());
    assert_eq!(pairs[0]["provider"], "openai");
    assert_eq!(pairs[0]["failures"], 3);
    assert_near(pairs[0]["table_penalty"].as_f64().unwrap(), 63.0);
    assert!(!v.to_string().contains("sk-acme"), "no key in the answer");
    for (tenant, n) in [("acme", 1), ("beta", 0)] {
        let (s, v, _) = h
            .admin(
                Method::GET,
                &format!("/admin/penalties?tenant={tenant}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["key_penalties"].as_array().unwrap().len(),
            n,
            "{tenant}: {v}"
        );
    }
    let (s, v, _) = h
        .admin(Method::GET, "/admin/penalties?tenant=nope", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = h.admin(Method::GET, "/admin/penalties?nope=1", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Explain: acme's mini carries the pair's penalty, beta's does not.
    let explain = |tenant: &'static str| {
        let h = &h;
        async move {
            let (s, v, _) = h
                .admin(
                    Method::POST,
                    "/admin/route/explain",
                    Some(json!({"tenant": tenant, "request": {"model": "auto",
                        "messages": [{"role": "user", "content": "hi"}]}})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let mini = |v: &Value| {
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == "gpt-4o-mini")
            .cloned()
            .unwrap_or_else(|| panic!("{v}"))
    };
    let a = explain("acme").await;
    assert_near(mini(&a)["key_penalty"].as_f64().unwrap(), 63.0);
    assert_eq!(mini(&a)["penalty"], 0.0);
    assert_ne!(a["choice"], "gpt-4o-mini", "{a}");
    let b = explain("beta").await;
    assert_eq!(mini(&b)["key_penalty"], 0.0);
    assert_eq!(
        b["choice"], "gpt-4o-mini",
        "beta's routing did not move: {b}"
    );

    // Another tenant's successes never touch the pair; the key's own do.
    h.ingest(&[UsageRecord {
        key_tag: Some(tag_of("sk-beta-fine")),
        ..record("b1", "beta", "gpt-4o-mini", 200, 10.0, now_ms())
    }])
    .await;
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(
        v["key_penalties"].as_array().unwrap().len(),
        1,
        "no row for a healthy key: {v}"
    );
    h.ingest(&[keyed("k4", 200)]).await;
    let t2 = h.poll(t1.version).await.expect("halved");
    assert_near(t2.key_penalties[0].penalty, 31.5);

    // A reset of the model forgets its pairs.
    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/penalties/reset",
            Some(json!({"model": "gpt-4o-mini"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (t3, _) = h.table().await;
    assert!(t3.key_penalties.is_empty(), "{:?}", t3.key_penalties);
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(v["key_penalties"], json!([]));
}

#[tokio::test]
async fn reset_zeroes_penalties_and_bumps_the_epoch() {
    let h = harness_with_decay(HOUR_MS).await;
    h.create_tenant("acme").await;
    h.ingest(&[
        record("a", "acme", "gpt-4o-mini", 500, 1.0, now_ms()),
        record("b", "acme", "gpt-4o", 500, 1.0, now_ms()),
    ])
    .await;
    let (t0, _) = h.table().await;
    assert_near(penalty_of(&t0, "gpt-4o-mini"), 3.0);
    let e0 = t0.penalty_epoch;

    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/penalties/reset",
            Some(json!({"model": "gpt-4o-mini"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reset"], json!(["gpt-4o-mini"]));
    assert_eq!(v["penalty_epoch"], e0 + 1);
    let t1 = h.poll(t0.version).await.expect("a reset is a new table");
    assert_eq!(v["table_version"], t1.version);
    assert_eq!(t1.penalty_epoch, e0 + 1);
    assert_eq!(penalty_of(&t1, "gpt-4o-mini"), 0.0);
    assert_near(penalty_of(&t1, "gpt-4o"), 3.0);
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    let mini = penalty_view(&v, "gpt-4o-mini");
    assert_eq!(
        (
            &mini["penalty"],
            &mini["successes"],
            &mini["failures"],
            &mini["success_rate"]
        ),
        (&json!(0.0), &json!(0), &json!(0), &Value::Null)
    );

    // No body: every model. A model only in the catalog can be reset too.
    let (s, v, _) = h.admin(Method::POST, "/admin/penalties/reset", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["penalty_epoch"], e0 + 2);
    let t2 = h.poll(t1.version).await.unwrap();
    assert_eq!(t2.penalty_epoch, e0 + 2);
    assert!(t2.models.iter().all(|m| m.penalty == 0.0));
    let (s, v, _) = h
        .admin(
            Method::POST,
            "/admin/penalties/reset",
            Some(json!({"model": "claude-haiku-4-5"})),
        )
        .await;
    assert_eq!((s, &v["penalty_epoch"]), (StatusCode::OK, &json!(e0 + 3)));

    // Bad input.
    let reset = |body: &'static [u8]| {
        send(
            admin_app(h.state.clone()),
            Method::POST,
            "/admin/penalties/reset",
            &[("x-admin-secret", ADMIN)],
            Some(body.to_vec()),
        )
    };
    for (body, status, code) in [
        (&b"{nope"[..], StatusCode::BAD_REQUEST, "bad_request"),
        (
            br#"{"model": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            br#"{"models": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            br#"{"model": " "}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (br#"{"model": "ghost"}"#, StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, _, b) = reset(body).await;
        assert_eq!(s, status, "{}", String::from_utf8_lossy(body));
        assert_error_shape(&json_of(&b), code);
    }
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(v["penalty_epoch"], e0 + 3, "refused resets change nothing");
    for (method, uri) in [
        (Method::GET, "/admin/penalties"),
        (Method::POST, "/admin/penalties/reset"),
    ] {
        let (s, _, _) = send(admin_app(h.state.clone()), method, uri, &[], None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
}

#[tokio::test]
async fn failed_attempts_count_in_the_success_rate_of_their_model() {
    let h = harness_with_decay(HOUR_MS).await;
    h.create_tenant("acme").await;
    let ts = now_ms();
    let mut r = record("r1", "acme", "gpt-4o-mini", 200, 10.0, ts);
    r.failed_attempts = vec![
        FailedAttempt {
            provider: "anthropic".into(),
            model: "claude-opus-4-5".into(),
            status: 529,
            key_tag: None,
        },
        FailedAttempt {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            status: 504,
            key_tag: None,
        },
    ];
    let mut answered = record("r2", "acme", "claude-opus-4-5", 200, 10.0, ts + 1);
    answered.provider = "anthropic".into();
    let batch = [r, answered];
    h.ingest(&batch).await;
    h.ingest(&batch).await; // a retry: nothing counts twice

    let uri = format!(
        "/admin/tenants/acme/stats?since={}&until={}",
        ts - 10,
        ts + 10
    );
    let (s, v, _) = h.admin(Method::GET, &uri, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totals"]["requests"], 2);
    assert_eq!(v["totals"]["failed_attempts"], 2);
    assert_eq!(
        v["totals"]["success_rate"], 1.0,
        "clients saw two successes"
    );
    let by = v["by_model"].as_array().unwrap();
    let group = |model: &str| by.iter().find(|g| g["model"] == model).unwrap();
    let claude = group("claude-opus-4-5");
    assert_eq!(
        (&claude["requests"], &claude["failed_attempts"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(claude["success_rate"], 0.5);
    let gpt4o = group("gpt-4o");
    assert_eq!(
        (&gpt4o["requests"], &gpt4o["failed_attempts"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(gpt4o["success_rate"], 0.0);
    assert_eq!(gpt4o["latency_ms"]["p50"], Value::Null);
    assert_eq!(gpt4o["prompt_tokens"], 0, "failed attempts carry no tokens");
    assert_eq!(group("gpt-4o-mini")["success_rate"], 1.0);

    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    let c = penalty_view(&v, "claude-opus-4-5");
    assert_eq!((&c["successes"], &c["failures"]), (&json!(1), &json!(1)));
    assert_eq!(c["success_rate"], 0.5);
    // Failed (×4), then the success that answered r2 (÷2): 1.5.
    assert_near(c["penalty"].as_f64().unwrap(), 1.5);
    let g = penalty_view(&v, "gpt-4o");
    assert_eq!((&g["successes"], &g["failures"]), (&json!(0), &json!(1)));
    assert_near(g["penalty"].as_f64().unwrap(), 3.0);
    let (t, _) = h.table().await;
    assert_near(penalty_of(&t, "gpt-4o"), 3.0);

    let (_, _, metrics) = h.admin(Method::GET, "/metrics", None).await;
    for line in [
        "aipipe_failed_attempts_total{tenant=\"acme\",provider=\"anthropic\",model=\"claude-opus-4-5\"} 1\n",
        "aipipe_failed_attempts_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} 1\n",
        "aipipe_success_rate{tenant=\"acme\",provider=\"anthropic\",model=\"claude-opus-4-5\"} 0.5\n",
        "aipipe_success_rate{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} 0\n",
        "aipipe_requests_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} 0\n",
        "aipipe_model_success_rate{provider=\"anthropic\",model=\"claude-opus-4-5\"} 0.5\n",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn cache_write_tokens_round_trip_into_stats_and_metrics() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let mut a = record("w1", "acme", "claude-opus-4-5", 200, 10.0, 1_000);
    a.provider = "anthropic".into();
    a.cache_write_tokens = 300;
    let mut b = a.clone();
    b.id = "w2".into();
    b.cache_write_tokens = 20;
    h.ingest(&[a, b]).await;
    let (_, v, _) = h
        .admin(
            Method::GET,
            "/admin/tenants/acme/stats?since=0&until=5000",
            None,
        )
        .await;
    assert_eq!(v["totals"]["cache_write_tokens"], 320);
    assert_eq!(v["totals"]["cached_tokens"], 20);
    assert_eq!(v["by_model"][0]["cache_write_tokens"], 320);
    let (_, _, metrics) = h.admin(Method::GET, "/metrics", None).await;
    assert!(
        metrics.contains(
            "aipipe_cache_write_tokens_total{tenant=\"acme\",provider=\"anthropic\",model=\"claude-opus-4-5\"} 320\n"
        ),
        "{metrics}"
    );
    let (_, v, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(v["decay_ms"], 30_000, "the default interval");
    let Some(db) = h.raw_db() else { return };
    let stored: i64 = db
        .query_row(
            "SELECT cache_write_tokens FROM usage WHERE id = 'w1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 300);
}

#[tokio::test]
async fn the_catalog_takes_and_returns_a_cache_write_price() {
    let h = harness().await;
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let mut sonnet = listed_model(&v, "claude-opus-4-5");
    sonnet["cache_write_per_mtok"] = json!(4.5);
    let (s, back, _) = h
        .admin(Method::PUT, "/admin/models/claude-opus-4-5", Some(sonnet))
        .await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(back["cache_write_per_mtok"], 4.5);
    let (t, _) = h.table().await;
    let m = t.models.iter().find(|m| m.id == "claude-opus-4-5").unwrap();
    assert_eq!(m.cache_write_per_mtok, Some(4.5));
    let mut bad = serde_json::to_value(m).unwrap();
    bad["cache_write_per_mtok"] = json!(-1.0);
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/claude-opus-4-5", Some(bad))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cache_write_per_mtok"),
        "{v}"
    );
}

/// The two capabilities of what a model accepts (filter/README.md, "Model
/// selection"): served for every model, Claude 5.x's false; settable like the
/// others and shipped in the table; absent they read as true (rows written
/// before them); a value that is not a boolean is a 422, as for the others.
#[tokio::test]
async fn the_catalog_says_which_models_refuse_sampling_parameters_or_a_forced_tool() {
    let h = harness().await;
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let models = v["models"].as_array().unwrap();
    for m in models {
        let refuses = m["id"].as_str().unwrap().ends_with("-5-5");
        let caps = &m["capabilities"];
        assert_eq!(caps["sampling_params"], !refuses, "{m}");
        assert_eq!(caps["forced_tool_choice"], !refuses, "{m}");
        // Sonnet and Opus 5.5 enabled; Haiku 5.5 ships disabled.
        if refuses {
            assert_eq!(m["enabled"], m["id"] != "claude-haiku-5-5", "{m}");
        }
    }
    let mut mini = models
        .iter()
        .find(|m| m["id"] == "gpt-4o-mini")
        .unwrap()
        .clone();
    mini["capabilities"]["sampling_params"] = json!(false);
    let (s, back, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(mini.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(back["capabilities"]["sampling_params"], false);
    assert_eq!(back["capabilities"]["forced_tool_choice"], true);
    let (t, _) = h.table().await;
    let shipped = t.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
    assert!(!shipped.capabilities.sampling_params && shipped.capabilities.forced_tool_choice);

    let mut older = mini.clone();
    older["capabilities"] = json!({"tools": true, "vision": true, "json_schema": true});
    let (s, back, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(older))
        .await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(back["capabilities"]["sampling_params"], true);
    assert_eq!(back["capabilities"]["forced_tool_choice"], true);

    let mut bad = mini;
    bad["capabilities"]["forced_tool_choice"] = json!("no");
    let (s, v, _) = h
        .admin(Method::PUT, "/admin/models/gpt-4o-mini", Some(bad))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(
            "capabilities.forced_tool_choice: invalid type: a string, expected a boolean"
        ),
        "the 422 names the field: {v}"
    );
}

/// A filter's answer-cache hit (filter/README.md, "Cache"): no provider was
/// called.
fn cache_hit(id: &str, tenant: &str, model: &str, ts: u64) -> UsageRecord {
    UsageRecord {
        prompt_tokens: 0,
        completion_tokens: 0,
        cached_tokens: 0,
        cost_nusd: 0,
        latency_ms: 0.2,
        ttft_ms: Some(0.1),
        cache_hit: true,
        estimated: false,
        ..record(id, tenant, model, 200, 0.2, ts)
    }
}

#[tokio::test]
async fn cache_hits_count_as_requests_but_not_as_latency_cost_or_health() {
    let h = harness_with_decay(HOUR_MS).await;
    h.create_tenant("acme").await;
    let ts = now_ms();
    let (s, _) = h
        .ingest(&[
            record("r1", "acme", "gpt-4o-mini", 200, 100.0, ts),
            record("r2", "acme", "gpt-4o-mini", 500, 300.0, ts + 1),
        ])
        .await;
    assert_eq!(s, StatusCode::OK);
    let uri = format!(
        "/admin/tenants/acme/stats?since={}&until={}",
        ts - 10,
        ts + 10
    );
    let (_, before, _) = h.admin(Method::GET, &uri, None).await;
    let (_, penalties_before, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    let version = h.table().await.0.version;

    let hits = [
        cache_hit("h1", "acme", "gpt-4o-mini", ts + 2),
        cache_hit("h2", "acme", "gpt-4o", ts + 3),
    ];
    let (s, v) = h.ingest(&hits).await;
    assert_eq!((s, &v["accepted"]), (StatusCode::OK, &json!(2)), "{v}");
    let (_, v) = h.ingest(&hits).await; // a retry: nothing counts twice
    assert_eq!(v["duplicates"], 2, "{v}");

    let (s, after, _) = h.admin(Method::GET, &uri, None).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    let t = &after["totals"];
    assert_eq!((&t["requests"], &t["cache_hits"]), (&json!(4), &json!(2)));
    assert_eq!(t["errors"], 1);
    assert_eq!(t["cost_usd"], before["totals"]["cost_usd"], "a hit is free");
    assert_eq!(t["prompt_tokens"], before["totals"]["prompt_tokens"]);
    assert_eq!(t["success_rate"], 0.75, "clients got 3 answers of 4");
    assert_eq!(before["totals"]["cache_hits"], 0);

    let group = |v: &Value, model: &str| {
        v["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["model"] == model)
            .unwrap_or_else(|| panic!("{model} not in {v}"))
            .clone()
    };
    let (was, mini) = (group(&before, "gpt-4o-mini"), group(&after, "gpt-4o-mini"));
    assert_eq!(
        (&mini["requests"], &mini["cache_hits"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(
        mini["success_rate"], 0.5,
        "one success, one failure upstream"
    );
    assert_eq!(mini["latency_ms"], was["latency_ms"], "percentiles unmoved");
    assert_eq!(mini["ttft_ms"], was["ttft_ms"]);
    assert_percentile(&mini["latency_ms"]["p50"], 100.0);
    let only_hits = group(&after, "gpt-4o");
    assert_eq!(
        (&only_hits["requests"], &only_hits["cache_hits"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        only_hits["success_rate"],
        Value::Null,
        "no upstream attempt"
    );
    assert_eq!(only_hits["latency_ms"]["p50"], Value::Null);
    assert_eq!(only_hits["ttft_ms"]["p50"], Value::Null);
    assert_eq!(only_hits["cost_usd"], 0.0);

    let (_, penalties, _) = h.admin(Method::GET, "/admin/penalties", None).await;
    assert_eq!(
        penalty_view(&penalties, "gpt-4o-mini"),
        penalty_view(&penalties_before, "gpt-4o-mini"),
        "a hit moves no penalty and no success count"
    );
    let g = penalty_view(&penalties, "gpt-4o");
    assert_eq!(
        (&g["successes"], &g["updated_ms"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(h.table().await.0.version, version, "nothing to republish");

    let (_, _, metrics) = h.admin(Method::GET, "/metrics", None).await;
    for line in [
        "aipipe_cache_hits_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o-mini\"} 1\n",
        "aipipe_cache_hits_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} 1\n",
        "aipipe_requests_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o-mini\"} 3\n",
        "aipipe_success_rate{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o-mini\"} 0.5\n",
        "aipipe_success_rate{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} NaN\n",
        "aipipe_cost_usd_total{tenant=\"acme\",provider=\"openai\",model=\"gpt-4o\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    if let Some(db) = h.raw_db() {
        let stored: bool = db
            .query_row("SELECT cache_hit FROM usage WHERE id = 'h1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(stored);
    }
}

/// Asks for changes after `since`, held up to `wait_ms`.
async fn changes(state: &AppState, since: u64, wait_ms: u64) -> Vec<u8> {
    let (s, _, b) = send(
        internal_app(state.clone()),
        Method::GET,
        &format!("{CHANGES_PATH}?since={since}&wait_ms={wait_ms}"),
        &[(TOKEN_HEADER, TOKEN)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    b.to_vec()
}

#[tokio::test]
async fn a_held_request_for_changes_answers_when_one_commits_with_only_that_entry() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let (held, _) = h.table().await;
    let since = held.version;

    // Nothing newer: held for the whole wait, then an empty delta.
    let t = std::time::Instant::now();
    let body = changes(&h.state, since, 150).await;
    assert!(
        t.elapsed() >= Duration::from_millis(140),
        "{:?}",
        t.elapsed()
    );
    let d = Delta::parse(&body).unwrap();
    assert_eq!((d.since, d.revision, d.records.len()), (since, since, 0));

    // A change while a request waits: answered at once, with that change only.
    let state = h.state.clone();
    let waiting = tokio::spawn(async move { changes(&state, since, 30_000).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    h.create_tenant("late").await;
    let body = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered as soon as the change committed")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let d = Delta::parse(&body).unwrap();
    assert_eq!(d.records.len(), 1);
    assert_eq!(
        (d.records[0].kind, d.records[0].name),
        (Kind::Tenant, "late")
    );
    assert!(body.len() < 200, "{} bytes for one tenant", body.len());

    // Asked again from the same revision (a retry, or a second Envoy):
    // the same entry; from a revision ahead of the store: refused.
    let again = Delta::parse(&changes(&h.state, since, 0).await)
        .unwrap()
        .records
        .len();
    assert_eq!(again, 1);
    let (s, _, b) = send(
        internal_app(h.state.clone()),
        Method::GET,
        &format!("{CHANGES_PATH}?since={}&wait_ms=0", d.revision + 1000),
        &[(TOKEN_HEADER, TOKEN)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&b));

    // A stopping control plane ends every held request at once.
    let state = h.state.clone();
    let revision = d.revision;
    let waiting = tokio::spawn(async move { changes(&state, revision, 60_000).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.state.stopping.send_replace(true);
    let body = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("released on stop")
        .unwrap();
    assert!(Delta::parse(&body).unwrap().records.is_empty());
}

#[tokio::test]
async fn a_bulk_import_writes_valid_lines_and_reports_each_refused_one_without_its_key() {
    let h = harness().await;
    h.create_tenant("taken").await;
    let hash = |k: &str| hex_hash(k);
    let lines = [
        json!({"id": "imp-a", "provider_keys": {"openai": "sk-imp-a", "anthropic": "ak-imp-a"}, "virtual_key_hashes": [hash("vk-imp-a")]}).to_string(),
        json!({"id": "imp-b", "disabled": true, "virtual_key_hashes": [hash("vk-imp-b1"), hash("vk-imp-b2")]}).to_string(),
        String::new(),
        json!({"id": "taken"}).to_string(),
        json!({"id": "Bad Id"}).to_string(),
        json!({"id": "imp-c", "provider_keys": {"nope": "sk-secret-c"}}).to_string(),
        json!({"id": "imp-d", "provider_keys": "sk-secret-d"}).to_string(),
        json!({"id": "imp-e", "virtual_key_hashes": [hash("vk-imp-a")]}).to_string(),
        json!({"id": "imp-a"}).to_string(),
        "{not json".to_owned(),
    ];
    let before = h.state.db.revision().await.unwrap();
    let (s, _, b) = send(
        admin_app(h.state.clone()),
        Method::POST,
        "/admin/tenants/import",
        &[("x-admin-secret", ADMIN)],
        Some(lines.join("\n").into_bytes()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v = json_of(&b);
    assert_eq!(v["imported"], 2, "{v}");
    let refused: Vec<u64> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, [4, 5, 6, 7, 8, 9, 10], "{v}");
    let text = v.to_string();
    assert!(!text.contains("sk-secret"), "no key in the report: {text}");
    assert!(
        text.contains("already exists") && text.contains("earlier line"),
        "{text}"
    );

    // What filters receive: the two tenants and their three keys, one
    // change each.
    assert_eq!(h.state.db.revision().await.unwrap(), before + 5);
    let (table, _) = h.table().await;
    let a = table.tenants.iter().find(|t| t.id == "imp-a").unwrap();
    assert_eq!(a.provider_keys["anthropic"], "ak-imp-a");
    assert_eq!(a.virtual_key_hashes, [hash("vk-imp-a")]);
    let b = table.tenants.iter().find(|t| t.id == "imp-b").unwrap();
    assert!(b.disabled);
    assert_eq!(b.virtual_key_hashes.len(), 2);
}

/// Catalog input is validated by the core's rules before anything is
/// written; nothing it refuses can reach a header, the table or the totals.
#[tokio::test]
async fn model_ids_prices_and_caps_that_could_do_harm_are_refused_and_models_can_be_removed() {
    let h = harness().await;
    let (_, v, _) = h.admin(Method::GET, "/admin/models", None).await;
    let base: Value = v["models"][0].clone();
    let before = h.state.db.revision().await.unwrap();
    let put = |id: String, patch: Value| {
        let mut m = base.clone();
        m["id"] = json!(id);
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let long = "x".repeat(300);
    for (path_id, id, patch) in [
        (
            "evil%0D%0Ax-injected:%201",
            "evil\r\nx-injected: 1",
            json!({}),
        ),
        ("auto", "auto", json!({})),
        ("..%2Fx", "../x", json!({})),
        (long.as_str(), long.as_str(), json!({})),
        ("ok-id", "ok-id", json!({"input_per_mtok": 1e308})),
        ("ok-id", "ok-id", json!({"output_per_mtok": 1e12})),
        ("ok-id", "ok-id", json!({"max_output_tokens": 0})),
        ("ok-id", "ok-id", json!({"context_window": 0})),
    ] {
        let (s, v, _) = h
            .admin(
                Method::PUT,
                &format!("/admin/models/{path_id}"),
                Some(put(id.to_owned(), patch.clone())),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{id:?} {patch}: {v}");
        assert_error_shape(&v, "validation_failed");
        let field = v["error"]["message"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert!(
            [
                "id",
                "body.input_per_mtok",
                "body.output_per_mtok",
                "body.max_output_tokens",
                "body.context_window"
            ]
            .contains(&field),
            "{v}"
        );
    }
    assert_eq!(
        h.state.db.revision().await.unwrap(),
        before,
        "nothing written"
    );
    let (s, _, _) = h.admin(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);

    // A valid new model, then removed: each a change every Envoy receives.
    let (s, v, _) = h
        .admin(
            Method::PUT,
            "/admin/models/ok-id",
            Some(put("ok-id".into(), json!({}))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, _) = h.admin(Method::DELETE, "/admin/models/ok-id", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = h.admin(Method::DELETE, "/admin/models/ok-id", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (table, _) = h.table().await;
    assert!(table.models.iter().all(|m| m.id != "ok-id"));
    assert_eq!(table.version, before + 2);
}

/// Wrong admin secrets are throttled per client address: after five in a
/// minute, that address gets 429 with `retry-after` — even with the right
/// secret, so guessing learns nothing — while other addresses are served;
/// both are counted in /metrics.
#[tokio::test]
async fn wrong_admin_secrets_are_throttled_per_address_and_counted() {
    let h = harness().await;
    let guesser: std::net::SocketAddr = ([192, 0, 2, 7], 5555).into();
    let operator: std::net::SocketAddr = ([192, 0, 2, 8], 5555).into();
    let call = |from, secret: &'static str| {
        let app = admin_app(h.state.clone());
        async move {
            send_from(
                app,
                Some(from),
                Method::GET,
                "/admin/tenants",
                &[("x-admin-secret", secret)],
                None,
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(call(guesser, "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let (s, headers, b) = call(guesser, ADMIN).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_error_shape(&json_of(&b), "too_many_failures");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(call(operator, ADMIN).await.0, StatusCode::OK);
    let (_, _, text) = h.admin(Method::GET, "/metrics", None).await;
    assert!(
        text.contains("aipipe_cp_admin_auth_failures_total 5"),
        "{text}"
    );
    assert!(
        text.contains("aipipe_cp_admin_auth_throttled_total 1"),
        "{text}"
    );
}

/// A deleted tenant's usage stays for accounting, but a new tenant that
/// takes its id starts at zero, in stats and in /metrics.
#[tokio::test]
async fn a_new_tenant_with_a_deleted_ones_id_starts_at_zero() {
    let h = harness().await;
    h.create_tenant("reused").await;
    let old: Vec<UsageRecord> = (0..3)
        .map(|i| {
            record(
                &format!("old{i}"),
                "reused",
                "gpt-4o-mini",
                200,
                1.0,
                now_ms() - 10_000,
            )
        })
        .collect();
    h.ingest(&old).await;
    let stats = |h: &Harness| {
        let state = h.state.clone();
        async move {
            let until = now_ms() + 60_000;
            let (s, _, b) = send(
                admin_app(state),
                Method::GET,
                &format!("/admin/tenants/reused/stats?since=0&until={until}"),
                &[("x-admin-secret", ADMIN)],
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK);
            json_of(&b)["totals"]["requests"].as_u64()
        }
    };
    assert_eq!(stats(&h).await, Some(3));
    assert_eq!(
        h.admin(Method::DELETE, "/admin/tenants/reused", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        stats(&h).await,
        Some(3),
        "a deleted tenant's usage stays readable"
    );
    std::thread::sleep(Duration::from_millis(5));
    h.create_tenant("reused").await;
    assert_eq!(stats(&h).await, Some(0), "the new tenant inherited usage");
    let (_, _, text) = h.admin(Method::GET, "/metrics", None).await;
    assert!(!text.contains("tenant=\"reused\""), "{text}");
    h.ingest(&[record("new0", "reused", "gpt-4o-mini", 200, 1.0, now_ms())])
        .await;
    assert_eq!(stats(&h).await, Some(1));
}

#[tokio::test]
async fn pass_through_can_be_switched_off_per_tenant_and_every_envoy_hears_of_it() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let (t0, _) = h.table().await;
    assert!(t0.tenants[0].pass_through, "open by default");
    let (s, v, _) = h
        .admin(
            Method::PATCH,
            "/admin/tenants/acme",
            Some(json!({"pass_through": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["pass_through"], false);
    let (t1, _) = h.table().await;
    assert!(!t1.tenants[0].pass_through);
    assert!(t1.version > t0.version, "a change every Envoy receives");
}

/// The budget routes validate before writing, report spend over the window,
/// and every change reaches the filters as the tenant's budget entry (the
/// default in the global table).
#[tokio::test]
async fn budgets_are_validated_reported_and_published_as_entries() {
    let h = harness().await;
    h.create_tenant("acme").await;
    let (s, v, _) = h
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    for bad in [
        json!({"limit_usd": -1, "days": 30}),
        json!({"limit_usd": 1e12, "days": 30}),
        json!({"limit_usd": "NaN", "days": 30}),
        json!({"limit_usd": 10, "days": 0}),
        json!({"limit_usd": 10, "days": 367}),
        json!({"limit_usd": 10, "days": 30, "extra": 1}),
        json!({"limit_usd": 10}),
    ] {
        let (s, v, _) = h
            .admin(Method::PUT, "/admin/tenants/acme/budget", Some(bad.clone()))
            .await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {s} {v}"
        );
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let (s, _, _) = h
        .admin(
            Method::PUT,
            "/admin/tenants/nope/budget",
            Some(json!({"limit_usd": 10, "days": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (t0, _) = h.table().await;
    assert_eq!(h.poll(t0.version).await, None, "refusals wrote nothing");

    let (s, v, _) = h
        .admin(
            Method::PUT,
            "/admin/tenants/acme/budget",
            Some(json!({"limit_usd": 10, "days": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["limit_usd"].as_f64(),
            v["days"].as_u64(),
            v["spent_usd"].as_f64()
        ),
        (Some(10.0), Some(30), Some(0.0))
    );
    // Spend today and 40 days ago: only today's is in the window.
    let now = now_ms();
    h.ingest(&[
        UsageRecord {
            cost_nusd: 2_500_000_000,
            ..record("b1", "acme", "gpt-4o", 200, 10.0, now)
        },
        UsageRecord {
            cost_nusd: 7_000_000_000,
            ..record("b2", "acme", "gpt-4o", 200, 10.0, now - 40 * 86_400_000)
        },
    ])
    .await;
    let (_, v, _) = h
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(v["spent_usd"], 2.5, "{v}");
    assert_eq!(v["remaining_usd"], 7.5, "{v}");
    assert_eq!(v["source"], "tenant");
    let day = now / 86_400_000;
    assert_eq!(v["next_free_ms"], (day + 30) * 86_400_000, "{v}");

    // What a new Envoy gets: the entry, with today's spend and when it frees.
    let entry = |rev: u64| {
        let h = &h;
        async move {
            let (s, _, b) = send(
                internal_app(h.state.clone()),
                Method::GET,
                &format!("{CHANGES_PATH}?since={rev}&wait_ms=0"),
                &[(TOKEN_HEADER, TOKEN)],
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK);
            let d = Delta::parse(&b).unwrap();
            let e = d
                .records
                .iter()
                .find(|r| r.kind == Kind::Budget && r.name == "acme")
                .map(|r| BudgetEntry::decode(r.value).unwrap());
            (e, d.revision)
        }
    };
    let (e, rev) = entry(0).await;
    let e = e.expect("acme's budget entry");
    assert_eq!(
        (e.limit_nusd, e.days, e.spent_nusd),
        (10_000_000_000, 30, 2_500_000_000)
    );
    assert_eq!(e.frees, vec![((day + 30) * 86_400_000, 2_500_000_000)]);
    // New spend: a new entry, at the revision the ack names.
    let body = serde_json::to_vec(&UsageBatch {
        records: vec![UsageRecord {
            cost_nusd: 1_000_000_000,
            ..record("b3", "acme", "gpt-4o", 200, 10.0, now)
        }],
    })
    .unwrap();
    let (_, _, b) = send(
        internal_app(h.state.clone()),
        Method::POST,
        USAGE_PATH,
        &[(TOKEN_HEADER, TOKEN)],
        Some(body),
    )
    .await;
    let acked = json_of(&b)["revision"].as_u64().unwrap();
    let (e, after) = entry(rev).await;
    assert_eq!(e.unwrap().spent_nusd, 3_500_000_000);
    assert!(acked > rev && acked <= after, "{rev} < {acked} <= {after}");

    // Removed: a tombstone; the default then applies (in the global table).
    let (s, _, _) = h
        .admin(Method::DELETE, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (e, rev) = entry(after).await;
    assert!(e.unwrap().removed);
    let (s, _, _) = h
        .admin(Method::DELETE, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v, _) = h
        .admin(
            Method::PUT,
            "/admin/budget-default",
            Some(json!({"limit_usd": 5, "days": 7})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t = h.poll(rev).await.expect("the default is global");
    assert_eq!(
        t.budget_default,
        Some(aipipe_core::table::BudgetDefault {
            limit_nusd: 5_000_000_000,
            days: 7
        })
    );
    let (e, _) = entry(rev).await;
    let e = e.expect("acme has spend: its entry under the default");
    assert_eq!(
        (e.limit_nusd, e.days, e.spent_nusd),
        (5_000_000_000, 7, 3_500_000_000)
    );
    let (_, v, _) = h
        .admin(Method::GET, "/admin/tenants/acme/budget", None)
        .await;
    assert_eq!(v["source"], "default", "{v}");
}

/// A virtual key's own budget: validated, 404 for another tenant's key,
/// its spend counted from records that name the key (and only those), and
/// published as a key budget entry named by the key id; the key's directory
/// entry names its id.
#[tokio::test]
async fn a_virtual_keys_budget_counts_its_own_records_and_is_published() {
    let h = harness().await;
    h.create_tenant("acme").await;
    h.create_tenant("other").await;
    let (_, k, _) = h
        .admin(
            Method::POST,
            "/admin/tenants/acme/virtual-keys",
            Some(json!({"name": "ci"})),
        )
        .await;
    let key_id = k["id"].as_str().unwrap().to_owned();
    // A second key, without a budget of its own.
    h.admin(
        Method::POST,
        "/admin/tenants/acme/virtual-keys",
        Some(json!({"name": "other"})),
    )
    .await;
    let path = format!("/admin/tenants/acme/virtual-keys/{key_id}/budget");
    let (s, v, _) = h.admin(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_error_shape(&v, "not_found");
    let (t0, _) = h.table().await;
    for bad in [
        json!({"limit_usd": -1, "days": 30}),
        json!({"limit_usd": "NaN", "days": 30}),
        json!({"limit_usd": 10, "days": 0}),
        json!({"limit_usd": 10, "days": 30, "extra": 1}),
    ] {
        let (s, v, _) = h.admin(Method::PUT, &path, Some(bad.clone())).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {s} {v}"
        );
    }
    let ok = json!({"limit_usd": 2, "days": 7});
    for wrong in [
        format!("/admin/tenants/other/virtual-keys/{key_id}/budget"),
        "/admin/tenants/acme/virtual-keys/vk_nope/budget".to_owned(),
        format!("/admin/tenants/ghost/virtual-keys/{key_id}/budget"),
    ] {
        let (s, v, _) = h.admin(Method::PUT, &wrong, Some(ok.clone())).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{wrong}: {v}");
    }
    assert_eq!(h.poll(t0.version).await, None, "refusals wrote nothing");

    let (s, v, _) = h.admin(Method::PUT, &path, Some(ok.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["virtual_key"], key_id.as_str());
    assert_eq!(v["source"], "virtual_key");
    // The key list says which keys have a budget of their own.
    let (_, v, _) = h
        .admin(Method::GET, "/admin/tenants/acme/virtual-keys", None)
        .await;
    let listed: Vec<(&str, bool)> = v["virtual_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap(), k["budgeted"].as_bool().unwrap()))
        .collect();
    assert!(listed.contains(&(key_id.as_str(), true)), "{v}");
    assert!(listed.iter().any(|(_, b)| !b), "{v}");
    let now = now_ms();
    h.ingest(&[
        UsageRecord {
            cost_nusd: 500_000_000,
            virtual_key: Some(key_id.clone()),
            ..record("k1", "acme", "gpt-4o", 200, 10.0, now)
        },
        // The tenant's spend without the key: not the key's.
        UsageRecord {
            cost_nusd: 900_000_000,
            ..record("k2", "acme", "gpt-4o", 200, 10.0, now)
        },
    ])
    .await;
    let (_, v, _) = h.admin(Method::GET, &path, None).await;
    assert_eq!(
        (v["spent_usd"].as_f64(), v["remaining_usd"].as_f64()),
        (Some(0.5), Some(1.5)),
        "{v}"
    );

    let (s, _, b) = send(
        internal_app(h.state.clone()),
        Method::GET,
        &format!("{CHANGES_PATH}?since=0&wait_ms=0"),
        &[(TOKEN_HEADER, TOKEN)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let d = Delta::parse(&b).unwrap();
    let e = d
        .records
        .iter()
        .find(|r| r.kind == Kind::KeyBudget && r.name == key_id)
        .map(|r| BudgetEntry::decode(r.value).unwrap())
        .expect("the key's budget entry");
    assert_eq!(
        (e.limit_nusd, e.days, e.spent_nusd),
        (2_000_000_000, 7, 500_000_000)
    );
    let k = d
        .records
        .iter()
        .filter(|r| r.kind == Kind::Key)
        .map(|r| aipipe_core::directory::KeyEntry::decode(r.value).unwrap())
        .find(|k| k.id == key_id)
        .expect("the key's entry");
    assert!(k.budgeted, "requests with the key look for its budget");

    // A record naming something that is no key id is refused.
    let (s, ack) = h
        .ingest(&[UsageRecord {
            virtual_key: Some("vk bad\n".into()),
            ..record("k3", "acme", "gpt-4o", 200, 10.0, now)
        }])
        .await;
    assert_eq!(
        (s, ack["refused"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{ack}"
    );

    let (s, _, _) = h.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = h.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A revoked key's budget entry leaves the Envoys (a tombstone).
    let (s, _, _) = h.admin(Method::PUT, &path, Some(ok.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let (before, _) = h.table().await;
    let since = h.state.db.revision().await.unwrap();
    let (s, v, _) = h
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/acme/virtual-keys/{key_id}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {v}");
    let (_, _, b) = send(
        internal_app(h.state.clone()),
        Method::GET,
        &format!("{CHANGES_PATH}?since={since}&wait_ms=0"),
        &[(TOKEN_HEADER, TOKEN)],
        None,
    )
    .await;
    let d = Delta::parse(&b).unwrap();
    let gone = d
        .records
        .iter()
        .find(|r| r.kind == Kind::KeyBudget && r.name == key_id)
        .map(|r| BudgetEntry::decode(r.value).unwrap())
        .expect("the key budget's tombstone");
    assert!(gone.removed, "{gone:?} (table {})", before.version);
}

/// A percentile from the stats' sketches: never below the true value, at
/// most 0.8 % above it (control-plane/README.md, "Stats").
fn assert_percentile(got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or(f64::NAN);
    assert!(
        g >= want - 1e-9 && g <= want * 1.008 + 0.001,
        "percentile {got} for a true {want}"
    );
}

fn assert_percentiles(got: &Value, [p50, p95, p99]: [f64; 3]) {
    assert_percentile(&got["p50"], p50);
    assert_percentile(&got["p95"], p95);
    assert_percentile(&got["p99"], p99);
}

/// What a window should hold, summed straight from the records.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    requests: u64,
    errors: u64,
    prompt_tokens: u64,
    cost_nusd: u64,
    failed_attempts: u64,
    cheap: u64,
    frontier: u64,
}

fn expected<'a>(records: impl Iterator<Item = &'a UsageRecord>) -> Expected {
    let mut e = Expected::default();
    for r in records {
        e.requests += 1;
        e.errors += u64::from(r.status >= 400 || r.status == 0);
        e.prompt_tokens += r.prompt_tokens;
        e.cost_nusd += r.cost_nusd;
        e.failed_attempts += r.failed_attempts.len() as u64;
        e.cheap += u64::from(r.complexity.is_some_and(|c| c < 0.55));
        e.frontier += u64::from(r.complexity.is_some_and(|c| c >= 0.7));
    }
    e
}

fn got(totals: &Value) -> Expected {
    let n = |k: &str| totals[k].as_u64().unwrap_or(u64::MAX);
    Expected {
        requests: n("requests"),
        errors: n("errors"),
        prompt_tokens: n("prompt_tokens"),
        cost_nusd: (totals["cost_usd"].as_f64().unwrap_or(-1.0) * 1e9).round() as u64,
        failed_attempts: n("failed_attempts"),
        cheap: totals["bands"]["cheap"].as_u64().unwrap_or(u64::MAX),
        frontier: totals["bands"]["frontier"].as_u64().unwrap_or(u64::MAX),
    }
}

/// Records spread over 5 days (two tenants, two models, failovers, all
/// three bands), then random windows: every window's sums from the rollups
/// (whole days and hours) and the raw edges equal the records' own; the
/// all-tenant view and the series too; after the raw records age out, the
/// rollups still hold them.
#[tokio::test]
async fn stats_from_rollups_equal_the_records_they_sum() {
    const HOUR: u64 = 3_600_000;
    let h = harness().await;
    h.create_tenant("acme").await;
    h.create_tenant("other").await;
    let now = now_ms();
    let start = now - 5 * 24 * HOUR;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let records: Vec<UsageRecord> = (0..3_000)
        .map(|i| {
            let tenant = if next() % 3 == 0 { "other" } else { "acme" };
            let model = if next() % 2 == 0 {
                "gpt-4o-mini"
            } else {
                "gpt-4o"
            };
            let status = if next() % 10 == 0 { 500 } else { 200 };
            let mut r = record(
                &format!("r{i}"),
                tenant,
                model,
                status,
                (next() % 5_000) as f64 / 7.0,
                start + next() % (5 * 24 * HOUR),
            );
            r.prompt_tokens = next() % 1_000;
            r.cost_nusd = next() % 1_000_000;
            r.complexity = match next() % 4 {
                0 => None,
                1 => Some(0.2),
                2 => Some(0.6),
                _ => Some(0.9),
            };
            if next() % 7 == 0 {
                r.failed_attempts.push(FailedAttempt {
                    provider: "anthropic".into(),
                    model: "claude-opus-4-5".into(),
                    status: 529,
                    key_tag: None,
                });
            }
            r
        })
        .collect();
    for chunk in records.chunks(500) {
        assert_eq!(h.ingest(chunk).await.0, StatusCode::OK);
    }
    let stats = |path: String| {
        let state = h.state.clone();
        async move {
            let (s, _, b) = send(
                admin_app(state),
                Method::GET,
                &path,
                &[("x-admin-secret", ADMIN)],
                None,
            )
            .await;
            let v = json_of(&b);
            assert_eq!(s, StatusCode::OK, "{path}: {v}");
            v
        }
    };
    let within =
        |tenant: Option<&'static str>, s: u64, u: u64| {
            expected(records.iter().filter(move |r| {
                tenant.is_none_or(|t| r.tenant == t) && r.ts_ms >= s && r.ts_ms < u
            }))
        };
    for _ in 0..40 {
        let since = start - HOUR + next() % (5 * 24 * HOUR);
        let until = since + next() % (3 * 24 * HOUR);
        let v = stats(format!(
            "/admin/tenants/acme/stats?since={since}&until={until}"
        ))
        .await;
        assert_eq!(
            (v["since"].as_u64(), v["until"].as_u64()),
            (Some(since), Some(until))
        );
        assert_eq!(
            got(&v["totals"]),
            within(Some("acme"), since, until),
            "{since}..{until}"
        );
        // Every tenant: the answer says which window it covers (whole minutes
        // here, hours before the minute cells), and holds exactly that.
        let v = stats(format!("/admin/stats?since={since}&until={until}")).await;
        let (s, u) = (v["since"].as_u64().unwrap(), v["until"].as_u64().unwrap());
        assert!(
            s <= since && u >= until && u - s < until - since + 2 * HOUR,
            "{v}"
        );
        assert_eq!(v["tenant"], "*");
        assert_eq!(got(&v["totals"]), within(None, s, u), "all {s}..{u}");
    }
    // The series: each bucket holds its own records.
    for (tenant, step) in [("acme", HOUR), ("acme", 15 * 60_000), ("other", 24 * HOUR)] {
        let v = stats(format!(
            "/admin/stats/series?tenant={tenant}&since={start}&until={now}&step_ms={step}"
        ))
        .await;
        let points = v["points"].as_array().unwrap();
        assert_eq!(v["step_ms"].as_u64(), Some(step));
        let mut total = 0;
        for p in points {
            let t = p["t"].as_u64().unwrap();
            let e = within(Some(tenant), t, t + step);
            assert_eq!(p["requests"].as_u64(), Some(e.requests), "{tenant} {t}");
            assert_eq!(p["failed_attempts"].as_u64(), Some(e.failed_attempts));
            total += e.requests;
        }
        assert_eq!(
            total,
            records.iter().filter(|r| r.tenant == tenant).count() as u64
        );
    }
    let v = stats(format!(
        "/admin/stats/series?since={}&until={now}",
        now - HOUR
    ))
    .await;
    assert_eq!(
        v["step_ms"].as_u64(),
        Some(60_000),
        "an hour in minutes by default"
    );

    // Raw records older than a day go; whole-hour windows keep their numbers,
    // and a tenant's edges before the horizon round out to the hour.
    // (PostgreSQL drops whole day partitions, keeping a record up to a day
    // longer: tests/engines.rs checks retention on both engines.)
    if h.pg.is_some() {
        return;
    }
    let deleted = h.state.db.prune(now, Some(24 * HOUR)).await.unwrap();
    let old = records.iter().filter(|r| r.ts_ms < now - 24 * HOUR).count() as u64;
    assert_eq!(deleted, old);
    h.state.set_usage_kept_ms(Some(24 * HOUR));
    let since = start + 7;
    let until = now - 2 * 24 * HOUR + 11;
    let v = stats(format!(
        "/admin/tenants/acme/stats?since={since}&until={until}"
    ))
    .await;
    let (s, u) = (v["since"].as_u64().unwrap(), v["until"].as_u64().unwrap());
    assert_eq!((s, u), (since - since % HOUR, until.div_ceil(HOUR) * HOUR));
    assert_eq!(got(&v["totals"]), within(Some("acme"), s, u));
}
