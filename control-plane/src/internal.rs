//! The internal API, for filters only (separate listener, token in
//! `x-aipipe-internal-token`): changes after a revision, held until there is
//! one (a long poll); the global table, versioned so an unchanged one costs
//! a 304; and batched usage ingestion, acknowledged only after the batch is
//! committed. Paths and headers are the core's `contract`.

use std::time::Duration;

use aipipe_core::contract::{
    CHANGES_PATH, TABLE_PATH, TENANT_FEEDBACK_PATH, TENANT_USAGE_PATH, TOKEN_HEADER, USAGE_PATH,
    VERSION_HEADER,
};
use aipipe_core::usage::{UsageAck, UsageUpload};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::AppState;
use crate::error::{Error, Result};
use crate::ingest;
use crate::routing;

/// A buffered filter may deliver a large backlog at once.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Things per delta page: a new Envoy's snapshot arrives in pages of this
/// many entries (a few hundred KB each), each applied at once.
const PAGE: usize = 1000;
/// The longest a change request is held.
const MAX_WAIT_MS: u64 = 300_000;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route(CHANGES_PATH, get(changes))
        .route(TABLE_PATH, get(table))
        .route(USAGE_PATH, post(usage))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Authenticated by the caller's own virtual key, not the token.
        .route(TENANT_USAGE_PATH, get(tenant_usage))
        .route(
            TENANT_FEEDBACK_PATH,
            post(feedback).layer(DefaultBodyLimit::max(4096)),
        )
        // For Envoy's active health checks of the control-plane cluster (no
        // token: it says nothing but whether this replica can serve).
        .route(HEALTH_PATH, get(healthz))
        .fallback(|| async { Error::NotFound("no such internal route".into()) })
        .with_state(state)
}

/// Where Envoy's health checks ask (`envoy/*.yaml`, `aipipe_control_plane`).
pub const HEALTH_PATH: &str = "/healthz";

/// 200 while this replica reads its database and is not stopping; 503
/// otherwise, so Envoys send their polls and uploads to another replica
/// (control-plane/README.md, "Replicas").
async fn healthz(State(state): State<AppState>) -> Response {
    if *state.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    // One read of the database a second answers every Envoy's checks (the
    // lock also makes concurrent checks wait for the one read in flight).
    let mut checked = state.db_checked.lock().await;
    let ok = match *checked {
        Some((at, ok)) if at.elapsed() < DB_CHECK_EVERY => ok,
        _ => {
            let ok = match state.db.revision().await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!("health check: the database cannot be read: {e}");
                    false
                }
            };
            *checked = Some((tokio::time::Instant::now(), ok));
            ok
        }
    };
    if ok {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

/// How long one health check's read of the database answers for.
const DB_CHECK_EVERY: Duration = Duration::from_secs(1);

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req.headers().get(TOKEN_HEADER).map(HeaderValue::as_bytes);
    if state.internal_token_ok(given) {
        next.run(req).await
    } else {
        Error::Unauthorized.into_response()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DaysQuery {
    #[serde(default = "a_week")]
    days: u16,
}

fn a_week() -> u16 {
    7
}

/// A tenant's own usage by day and its budget (`GET /usage` through Envoy:
/// the filter sends it on with the client's virtual key). The key is
/// checked here again: only its own tenant's numbers are ever answered.
async fn tenant_usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: std::result::Result<Query<DaysQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::db::TenantUsage>> {
    let tenant = tenant_of_caller(&state, &headers).await?;
    let Query(q) =
        query.map_err(|e| Error::BadRequest(format!("{}; use ?days=N", e.body_text())))?;
    if !(1..=366).contains(&q.days) {
        return Err(Error::BadRequest("days: must be from 1 to 366".into()));
    }
    state
        .db
        .tenant_usage(tenant, q.days)
        .await?
        .map(Json)
        .ok_or(Error::UnknownKey)
}

/// The tenant of the virtual key a client sent (bearer or `x-api-key`),
/// which the filter passed on as it came.
async fn tenant_of_caller(state: &AppState, headers: &HeaderMap) -> Result<String> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .filter(|k| !k.is_empty())
        .ok_or(Error::UnknownKey)?;
    state
        .db
        .tenant_of_key(aipipe_core::table::hex_hash(key))
        .await?
        .ok_or(Error::UnknownKey)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    request_id: String,
    rating: String,
    #[serde(default)]
    tier: Option<String>,
}

#[derive(serde::Serialize)]
struct FeedbackAck {
    request_id: String,
    /// The request's router features are here: the rating teaches this
    /// tenant's router (refitted in a moment). False: it is kept, and
    /// teaches once the request's usage record arrives — which happens only
    /// when the tenant's policy has `learning.feedback` on.
    learns: bool,
}

/// A client's rating of one of its routed answers (`POST /v1/feedback`
/// through Envoy), by the `x-aipipe-request-id` it was answered with
/// (control-plane/README.md, "Per-tenant routing").
async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: crate::body::JsonBody<FeedbackBody>,
) -> Result<(StatusCode, Json<FeedbackAck>)> {
    let tenant = tenant_of_caller(&state, &headers).await?;
    let crate::body::JsonBody(b) = body;
    let id = b.request_id.trim();
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c))
    {
        return Err(Error::Invalid(
            "request_id: the x-aipipe-request-id header of the answer you rate".into(),
        ));
    }
    let good = match b.rating.as_str() {
        "good" => true,
        "bad" => false,
        other => {
            return Err(Error::Invalid(format!(
                "rating: must be \"good\" or \"bad\", got {other:?}"
            )));
        }
    };
    let tier = match b.tier.as_deref() {
        None => None,
        Some(t) => Some(aipipe_core::classify::Tier::from_name(t).ok_or_else(|| {
            Error::Invalid(format!("tier: must be cheap, mid or frontier, got {t:?}"))
        })?),
    };
    let learns = state
        .db
        .add_feedback(tenant.clone(), id.to_owned(), good, tier)
        .await?;
    if learns {
        state.learner.mark([tenant]);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(FeedbackAck {
            request_id: id.to_owned(),
            learns,
        }),
    ))
}

#[derive(serde::Deserialize)]
struct ChangesQuery {
    since: u64,
    #[serde(default)]
    wait_ms: u64,
}

/// Everything changed after `since` (a page of it), as a directory delta;
/// while nothing is newer, held until something is, `wait_ms` passes, or the
/// control plane stops — then an empty delta at the same revision.
async fn changes(State(state): State<AppState>, Query(q): Query<ChangesQuery>) -> Result<Response> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms.min(MAX_WAIT_MS));
    let mut revisions = state.db.subscribe();
    let mut stopping = state.stopping.subscribe();
    let page = loop {
        // Time decay may have made the published penalties stale: then this
        // records a global change first. Free (one atomic load) until then.
        state.db.republish_penalties_if_due().await?;
        revisions.mark_unchanged();
        let page = state.db.changes_since(q.since, PAGE).await?;
        if page.revision < q.since {
            return Err(Error::Conflict(format!(
                "revision {} is ahead of this control plane's ({}): was its database replaced? Restart the Envoy to start over.",
                q.since, page.revision
            )));
        }
        let now = tokio::time::Instant::now();
        if page.revision > q.since || now >= deadline || *stopping.borrow() {
            break page;
        }
        let due = state
            .db
            .penalty_due_ms()
            .saturating_sub(crate::db::now_ms());
        let wake = deadline.min(now + Duration::from_millis(due.max(10)));
        tokio::select! {
            _ = revisions.changed() => {}
            _ = stopping.changed() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    };
    let body = routing::delta(page, &state.cipher, &state.table_cache)?;
    state.counters.delta(body.len(), q.since);
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Deltas carry provider keys: no intermediary may keep a copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The global table (for operators and tools; filters get it in deltas).
async fn table(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    state.db.republish_penalties_if_due().await?;
    let held = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let built = routing::current(&state.db, &state.table_cache).await?;
    if held == Some(built.version) {
        state.counters.table_not_modified();
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    state.counters.table_full();
    let mut resp = Response::new(Body::from(built.json.clone()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(VERSION_HEADER, HeaderValue::from(built.version));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn usage(State(state): State<AppState>, body: Bytes) -> Result<Json<UsageAck>> {
    let received = std::time::Instant::now();
    let upload = match serde_json::from_slice::<UsageUpload>(&body) {
        Ok(b) => b,
        Err(e) => {
            state.counters.ingest_rejected();
            return Err(Error::BadRequest(format!("not a usage batch: {e}")));
        }
    };
    // What the sender says about its queue (filters before it said nothing):
    // kept only when valid, never a reason to refuse the records.
    let source = upload
        .source
        .filter(|s| {
            aipipe_core::validate::node_name("source.node", &s.node)
                .inspect_err(|e| tracing::warn!("usage batch source ignored: {e}"))
                .is_ok()
        })
        .map(|mut s| {
            if let Err(e) = aipipe_core::validate::reservations(&s) {
                tracing::warn!("usage batch reservations ignored: {e}");
                s.reserved_nusd.clear();
                s.key_reserved_nusd.clear();
            }
            s
        });
    let batch = ingest::Batch::from_envoy(upload.records, source);
    let waiting = state.counters.ingest_waiting();
    let (ack, observed, learnable) = ingest::ingest(&state.db, batch).await?;
    state.learner.mark(learnable);
    drop(waiting);
    state
        .counters
        .ingested(ack.accepted, ack.duplicates, ack.refused);
    state.counters.observe(&observed, received.elapsed());
    Ok(Json(ack))
}
