//! `/admin/penalties`: every model's penalty, and resetting them.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::AppState;
use crate::body::JsonBody;
use crate::db::{Penalties, PenaltyReset};
use crate::error::{Error, Result};

pub(crate) async fn list_penalties(State(state): State<AppState>) -> Result<Json<Penalties>> {
    Ok(Json(state.db.penalties().await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PenaltyResetRequest {
    /// A catalog model id; absent or null = every model.
    #[serde(default)]
    model: Option<String>,
}

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
