//! `/admin/penalties`: every model's penalty, and resetting them.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::body::JsonBody;
use crate::db::{Penalties, PenaltyReset};
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422};

#[utoipa::path(get, path = "/admin/penalties",
    summary = "Every model's penalty (decayed to now), the value the routing table carries, and its success rate since the last reset",
    responses((status = 200, description = "catalog models in catalog order, then other models with recorded outcomes", body = Penalties),
        (status = 401, response = E401)))]
pub(crate) async fn list_penalties(State(state): State<AppState>) -> Result<Json<Penalties>> {
    Ok(Json(state.db.penalties().await?))
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
