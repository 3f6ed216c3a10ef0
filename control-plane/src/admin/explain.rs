//! `POST /admin/route/explain`: how the filter would route a chat request
//! for a tenant, scored and ranked by the filter's own code.

use aipipe_core::route::Explanation;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::error::{Error, Result};
use crate::routing;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainRequest {
    tenant: String,
    request: serde_json::Value,
}

pub(crate) async fn explain(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ExplainRequest>,
) -> Result<Json<Explanation>> {
    // The table of the current version, compiled once for every caller.
    let built = routing::current(&state.db, &state.cipher, &state.table_cache).await?;
    let table = &built.table;
    let tenant = table
        .tenant_by_id(&req.tenant)
        .ok_or_else(|| tenant_not_found(&req.tenant))?;
    let chat = serde_json::to_vec(&req.request)?;
    let explanation = aipipe_core::route::explain(table, tenant, &chat)
        .map_err(|e| Error::Invalid(format!("request: {}", e.message())))?;
    Ok(Json(explanation))
}
