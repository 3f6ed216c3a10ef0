//! `POST /admin/route/explain`: how the filter would route a chat request
//! for a tenant, scored and ranked by the filter's own code.

use aipipe_core::route::Explanation;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, ExplanationDoc};
use crate::routing;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainRequest {
    tenant: String,
    /// An OpenAI chat completions body.
    #[schema(value_type = Object)]
    request: serde_json::Value,
}

#[utoipa::path(post, path = "/admin/route/explain",
    summary = "Score a chat request for a tenant and rank every candidate", request_body = ExplainRequest,
    responses((status = 200, description = "the score, and candidates best first", body = ExplanationDoc),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ExplainRequest>,
) -> Result<Json<Explanation>> {
    // The global table of the current version, compiled once for every
    // caller, and this one tenant's keys.
    let built = routing::current(&state.db, &state.table_cache).await?;
    // Priced as a request starting now would be: a scheduled price change
    // that came into force since the table was built applies (a copy, only
    // then).
    let priced = built.table.priced_at(crate::db::now_ms());
    let table: &aipipe_core::table::Table = &priced;
    let tenant = state
        .db
        .tenant_state(req.tenant.clone())
        .await?
        .ok_or_else(|| tenant_not_found(&req.tenant))?;
    let account = routing::account(&state.cipher, table, &req.tenant, &tenant)?;
    let chat = serde_json::to_vec(&req.request)?;
    let explanation = aipipe_core::route::explain(table, &account, &chat)
        .map_err(|e| Error::Invalid(format!("request: {}", e.message())))?;
    Ok(Json(explanation))
}
