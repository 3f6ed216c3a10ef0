//! The operator's endpoints beside the resources: liveness, Prometheus
//! metrics (both open: no secrets in them), each Envoy's usage queue and
//! this API's OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::Result;

#[utoipa::path(get, path = "/healthz", summary = "Liveness (no secret)", security(()),
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/metrics",
    summary = "Prometheus metrics (no secret): per-tenant requests, tokens, cost, failed attempts; per-model penalty and success rate; ingest counters; table version",
    security(()),
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = crate::metrics::render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

/// `GET /admin/envoys`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Envoys {
    envoys: Vec<crate::envoys::EnvoyView>,
}

#[utoipa::path(get, path = "/admin/envoys",
    summary = "Each Envoy's usage queue as its last usage batch reported it: records queued behind that batch, dropped and acknowledged since its singleton started, and when it was heard from (stored in the database, so every control plane on it answers the same: at most 1,000 Envoys, the least recently heard forgotten first)",
    responses((status = 200, description = "by node", body = Envoys),
        (status = 401, response = crate::openapi::E401)))]
pub(crate) async fn envoys(State(state): State<AppState>) -> crate::error::Result<Json<Envoys>> {
    Ok(Json(Envoys {
        envoys: state.db.envoys().await?,
    }))
}

#[utoipa::path(get, path = "/admin/openapi.json", summary = "This document",
    responses((status = 200, description = "the OpenAPI document", body = Object),
        (status = 401, response = crate::openapi::E401)))]
pub(crate) async fn openapi() -> Json<&'static serde_json::Value> {
    Json(crate::openapi::document())
}
