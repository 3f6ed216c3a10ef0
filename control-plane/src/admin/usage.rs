//! `/admin/tenants/{id}/stats`: a tenant's usage over a time window.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::tenant_not_found;
use crate::AppState;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, TenantId};
use crate::stats::Report;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Window {
    /// Unix ms, inclusive (default: until - 24 h).
    since: Option<u64>,
    /// Unix ms, exclusive (default: now, inclusive).
    until: Option<u64>,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

#[utoipa::path(get, path = "/admin/tenants/{id}/stats",
    summary = "Requests, errors, success rate, tokens, cost and latency/TTFT percentiles by provider and model",
    params(TenantId, Window),
    responses((status = 200, description = "the window's numbers", body = Report),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404)))]
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
