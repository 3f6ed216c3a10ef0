//! The operator's endpoints beside the resources: liveness, Prometheus
//! metrics (both open: no secrets in them) and this API's OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::Result;

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = crate::metrics::render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
