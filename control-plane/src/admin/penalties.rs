//! `/admin/penalties`: every model's penalty, and resetting them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::{Penalties, PenaltyReset};
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PenaltyFilter {
    /// Only the (model, key) pairs of this tenant's provider keys.
    tenant: Option<String>,
}

#[utoipa::path(get, path = "/admin/penalties",
    summary = "Every model's penalty (decayed to now), the value the routing table carries, and its success rate since the last reset; and the penalties of (model, provider key) pairs",
    params(PenaltyFilter),
    responses((status = 200, description = "catalog models in catalog order, then other models with recorded outcomes; key pairs worst first", body = Penalties),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404)))]
pub(crate) async fn list_penalties(
    State(state): State<AppState>,
    filter: Result<Query<PenaltyFilter>, QueryRejection>,
) -> Result<Json<Penalties>> {
    let Query(filter) =
        filter.map_err(|e| Error::BadRequest(format!("{}; use ?tenant=<id>", e.body_text())))?;
    let keys = match filter.tenant {
        None => None,
        Some(id) => {
            // The tags of the tenant's keys, as the filter computes them.
            let built = crate::routing::current(&state.db, &state.table_cache).await?;
            let tenant = state
                .db
                .tenant_state(id.clone())
                .await?
                .ok_or_else(|| tenant_not_found(&id))?;
            let account = crate::routing::account(&state.cipher, &built.table, &id, &tenant)?;
            Some(
                (0..built.table.providers.len())
                    .filter_map(|p| account.key_tag(aipipe_core::table::ProviderIx(p)))
                    .map(str::to_owned)
                    .collect(),
            )
        }
    };
    Ok(Json(state.db.penalties(keys).await?))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PenaltyResetRequest {
    /// A catalog model id; absent or null = every model.
    #[serde(default)]
    model: Option<String>,
}

#[utoipa::path(post, path = "/admin/penalties/reset",
    summary = "Zero the penalty and counts of one model (body {\"model\": id}) or of every model (no body); bumps penalty_epoch so every filter forgets its local penalties",
    request_body(content = PenaltyResetRequest, description = "optional: no body resets every model"),
    responses((status = 200, description = "reset", body = PenaltyReset),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn reset_penalties(
    State(state): State<AppState>,
    body: Option<JsonBody<PenaltyResetRequest>>,
) -> Result<Json<PenaltyReset>> {
    let req = body.map(|JsonBody(b)| b).unwrap_or_default();
    if let Some(m) = &req.model
        && m.trim().is_empty()
    {
        return Err(Error::Invalid(
            "model: must name a model (omit it to reset every model)".into(),
        ));
    }
    let model = req.model.clone();
    state
        .db
        .reset_penalties(req.model)
        .await?
        .map(Json)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "model `{}` is not in the catalog and has no penalty",
                model.unwrap_or_default()
            ))
        })
}
