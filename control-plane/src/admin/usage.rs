//! `/admin/tenants/{id}/stats`: a tenant's usage over a time window.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::tenant_not_found;
use crate::AppState;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::stats::Report;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Window {
    since: Option<u64>,
    until: Option<u64>,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub(crate) async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<Report>> {
    let Query(window) = window.map_err(|e| {
        Error::BadRequest(format!(
            "{}; use ?since=<unix ms>&until=<unix ms>",
            e.body_text()
        ))
    })?;
    // Default: the last 24 h, including records stamped this very millisecond.
    let until = window.until.unwrap_or_else(|| now_ms() + 1);
    let since = window.since.unwrap_or(until.saturating_sub(DAY_MS));
    if since > until {
        return Err(Error::BadRequest(format!(
            "since ({since}) is after until ({until})"
        )));
    }
    let w = state
        .db
        .stats_window(id.clone(), since, until)
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    Ok(Json(w.report(&id, since, until)))
}
