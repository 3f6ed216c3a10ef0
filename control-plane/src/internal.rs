//! The internal API, for filters only (separate listener, token in
//! `x-aipipe-internal-token`): the routing table, versioned so an unchanged
//! table costs a 304, and batched usage ingestion, acknowledged only after
//! the batch is committed. Paths and headers are the core's `contract`.

use aipipe_core::contract::{TABLE_PATH, TOKEN_HEADER, USAGE_PATH, VERSION_HEADER};
use aipipe_core::usage::{UsageAck, UsageBatch};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
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

pub fn app(state: AppState) -> Router {
    Router::new()
        .route(TABLE_PATH, get(table))
        .route(USAGE_PATH, post(usage))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(|| async { Error::NotFound("no such internal route".into()) })
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req.headers().get(TOKEN_HEADER).map(HeaderValue::as_bytes);
    if state.internal_token_ok(given) {
        next.run(req).await
    } else {
        Error::Unauthorized.into_response()
    }
}

async fn table(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    // Time decay may have made the published penalties stale: then this
    // bumps the version first, so the filter gets them instead of a 304.
    // Free (one atomic load) until then.
    state.db.republish_penalties_if_due().await?;
    let held = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(held) = held {
        // The cheap path every poll takes: one indexed read, no build.
        if state.db.table_version().await? == held {
            state.counters.table_not_modified();
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
    }
    let built = routing::current(&state.db, &state.cipher, &state.table_cache).await?;
    state.counters.table_full();
    let mut resp = Response::new(Body::from(built.json.clone()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(VERSION_HEADER, HeaderValue::from(built.version));
    // The table carries provider keys: no intermediary may keep a copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn usage(State(state): State<AppState>, body: Bytes) -> Result<Json<UsageAck>> {
    let batch = serde_json::from_slice::<UsageBatch>(&body)
        .map_err(|e| Error::BadRequest(format!("not a usage batch: {e}")))
        .and_then(ingest::Batch::try_from);
    let batch = match batch {
        Ok(b) => b,
        Err(e) => {
            state.counters.ingest_rejected();
            return Err(e);
        }
    };
    let ack = ingest::ingest(&state.db, batch).await?;
    state.counters.ingested(ack.accepted, ack.duplicates);
    Ok(Json(ack))
}
