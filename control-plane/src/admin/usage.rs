//! `/admin/tenants/{id}/stats`: a tenant's usage over a time window;
//! `/admin/usage`: every tenant's usage by day; `/admin/cost`: an operator's
//! correction of a day's cost.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, TenantId};
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Days {
    /// Today (UTC) and the `days - 1` before: 1–366, default 30.
    days: Option<u16>,
}

/// Every tenant's usage by day.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AllUsage {
    days: u16,
    tenants: Vec<crate::db::TenantUsage>,
}

#[utoipa::path(get, path = "/admin/usage",
    summary = "Every tenant's cost, requests and tokens by day, with its budget",
    params(Days),
    responses((status = 200, description = "tenants with usage in the window or a budget, by id", body = AllUsage),
        (status = 400, response = E400), (status = 401, response = E401)))]
pub(crate) async fn all_usage(
    State(state): State<AppState>,
    days: Result<Query<Days>, QueryRejection>,
) -> Result<Json<AllUsage>> {
    let Query(d) =
        days.map_err(|e| Error::BadRequest(format!("{}; use ?days=N", e.body_text())))?;
    let days = d.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(Error::BadRequest("days: must be from 1 to 366".into()));
    }
    Ok(Json(AllUsage {
        days,
        tenants: state.db.all_usage(days).await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostBody {
    tenant: String,
    /// UTC, `YYYY-MM-DD`, not in the future.
    date: String,
    /// Dollars: the day's cost from now on.
    #[schema(minimum = 0.0, maximum = 1e9)]
    cost: f64,
}

#[utoipa::path(post, path = "/admin/cost",
    summary = "Overwrite a tenant's cost of one day (an adjustment, kept with the value it replaced; budgets follow)",
    request_body = CostBody,
    responses((status = 200, description = "the day's cost before and after", body = crate::db::CostAdjustment),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn adjust_cost(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CostBody>,
) -> Result<Json<crate::db::CostAdjustment>> {
    let day = crate::db::parse_date(&body.date).ok_or_else(|| {
        Error::Invalid(format!(
            "date: must be a date as YYYY-MM-DD, got {:?}",
            body.date
        ))
    })?;
    if day > (now_ms() / DAY_MS) as i64 {
        return Err(Error::Invalid("date: must not be in the future".into()));
    }
    if !(body.cost.is_finite() && (0.0..=1e9).contains(&body.cost)) {
        return Err(Error::Invalid(
            "cost: must be a number of dollars from 0 to 1000000000".into(),
        ));
    }
    let nusd = (body.cost * 1e9).round() as u64;
    let adjusted = state
        .db
        .adjust_cost(body.tenant.clone(), day, nusd)
        .await?
        .ok_or_else(|| tenant_not_found(&body.tenant))?;
    tracing::info!(
        tenant = %adjusted.tenant,
        date = %adjusted.date,
        previous = adjusted.previous,
        cost = adjusted.cost,
        "cost adjusted by an operator"
    );
    Ok(Json(adjusted))
}
