//! `/admin/tenants/{id}/stats`: a tenant's usage over a time window;
//! `/admin/usage`: every tenant's usage by day; `/admin/cost`: an operator's
//! correction of a day's cost.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::{DAY_MS, HOUR_MS, MINUTE_MS, now_ms};
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, TenantId};
use crate::stats::{self, Report};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Window {
    /// Unix ms, inclusive (default: until - 24 h).
    since: Option<u64>,
    /// Unix ms, exclusive (default: now, inclusive).
    until: Option<u64>,
}

impl Window {
    /// (since, until), defaulted and checked.
    fn resolve(&self) -> Result<(u64, u64)> {
        // Default: the last 24 h, including records stamped this very millisecond.
        let until = self.until.unwrap_or_else(|| now_ms() + 1);
        let since = self.since.unwrap_or(until.saturating_sub(DAY_MS));
        if since > until {
            return Err(Error::BadRequest(format!(
                "since ({since}) is after until ({until})"
            )));
        }
        Ok((since, until))
    }
}

fn query_error(e: &QueryRejection, usage: &str) -> Error {
    Error::BadRequest(format!("{}; use {usage}", e.body_text()))
}

/// The report of one tenant (or every tenant: None) over a window, with
/// the saving priced from the current catalog at the prices in force at
/// the window's end (a scheduled change inside the window is not split:
/// control-plane/README.md, "Stats").
async fn report(
    state: &AppState,
    tenant: Option<String>,
    since: u64,
    until: u64,
) -> Result<Report> {
    let label = tenant.clone().unwrap_or_else(|| "*".into());
    let answer = state
        .db
        .stats(tenant, since, until, state.horizons())
        .await?
        .ok_or_else(|| tenant_not_found(&label))?;
    let catalog = state.db.models().await?;
    let saving = stats::saving(&answer.window, &catalog, answer.until);
    let mut r = answer.window.report(&label, answer.since, answer.until);
    r.saving = saving;
    Ok(r)
}

#[utoipa::path(get, path = "/admin/tenants/{id}/stats",
    summary = "Requests, errors, success rate, tokens, cost, complexity bands, saving and latency/TTFT percentiles by provider and model",
    params(TenantId, Window),
    responses((status = 200, description = "the window's numbers", body = Report),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<Report>> {
    let Query(window) = window.map_err(|e| query_error(&e, "?since=<unix ms>&until=<unix ms>"))?;
    let (since, until) = window.resolve()?;
    Ok(Json(report(&state, Some(id), since, until).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Scoped {
    /// One tenant's id; absent: every tenant.
    tenant: Option<String>,
    /// Unix ms, inclusive (default: until - 24 h).
    since: Option<u64>,
    /// Unix ms, exclusive (default: now, inclusive).
    until: Option<u64>,
    /// Series only: the bucket width in ms, a whole number of minutes
    /// (default: the window / 60, rounded up to a minute, an hour or a day).
    step_ms: Option<u64>,
}

impl Scoped {
    fn window(&self) -> Result<(u64, u64)> {
        Window {
            since: self.since,
            until: self.until,
        }
        .resolve()
    }
}

#[utoipa::path(get, path = "/admin/stats",
    summary = "The stats of one tenant (?tenant=) or of every tenant together",
    params(Scoped),
    responses((status = 200, description = "the window's numbers (tenant `*`: every tenant)", body = Report),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404)))]
pub(crate) async fn stats_scoped(
    State(state): State<AppState>,
    q: Result<Query<Scoped>, QueryRejection>,
) -> Result<Json<Report>> {
    let Query(q) =
        q.map_err(|e| query_error(&e, "?tenant=<id>&since=<unix ms>&until=<unix ms>"))?;
    if q.step_ms.is_some() {
        return Err(Error::BadRequest(
            "step_ms: only /admin/stats/series takes a step".into(),
        ));
    }
    let (since, until) = q.window()?;
    Ok(Json(report(&state, q.tenant, since, until).await?))
}

/// One bucket of a series.
#[derive(Serialize, ToSchema)]
pub(crate) struct SeriesPoint {
    /// Bucket start, unix ms.
    t: u64,
    requests: u64,
    errors: u64,
    cache_hits: u64,
    failed_attempts: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Series {
    tenant: String,
    since: u64,
    until: u64,
    step_ms: u64,
    points: Vec<SeriesPoint>,
}

/// The most buckets one series may have.
const MAX_POINTS: u64 = 1_500;

#[utoipa::path(get, path = "/admin/stats/series",
    summary = "Requests, errors, tokens and cost per time bucket, for one tenant (?tenant=) or every tenant",
    params(Scoped),
    responses((status = 200, description = "every bucket of the window, empty ones as zeros", body = Series),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404)))]
pub(crate) async fn series(
    State(state): State<AppState>,
    q: Result<Query<Scoped>, QueryRejection>,
) -> Result<Json<Series>> {
    let Query(q) = q.map_err(|e| {
        query_error(
            &e,
            "?tenant=<id>&since=<unix ms>&until=<unix ms>&step_ms=<ms>",
        )
    })?;
    let (since, until) = q.window()?;
    let span = (until - since).max(1);
    let step = match q.step_ms {
        Some(s) if s == 0 || s % MINUTE_MS != 0 => {
            return Err(Error::BadRequest(format!(
                "step_ms: must be a positive whole number of minutes ({MINUTE_MS} ms), got {s}"
            )));
        }
        Some(s) => s,
        None => {
            let want = span.div_ceil(60);
            [
                MINUTE_MS,
                5 * MINUTE_MS,
                15 * MINUTE_MS,
                HOUR_MS,
                6 * HOUR_MS,
                DAY_MS,
            ]
            .into_iter()
            .find(|&w| w >= want)
            .unwrap_or(DAY_MS)
        }
    };
    if span.div_ceil(step) + 1 > MAX_POINTS {
        return Err(Error::BadRequest(format!(
            "step_ms: {step} gives more than {MAX_POINTS} buckets over this window"
        )));
    }
    let label = q.tenant.clone().unwrap_or_else(|| "*".into());
    let (step, points) = state
        .db
        .series(q.tenant, since, until, step)
        .await?
        .ok_or_else(|| tenant_not_found(&label))?;
    let since = points.first().map_or(since, |p| p.start);
    let until = points.last().map_or(until, |p| p.start + step);
    Ok(Json(Series {
        tenant: label,
        since,
        until,
        step_ms: step,
        points: points
            .into_iter()
            .map(|p| SeriesPoint {
                t: p.start,
                requests: p.sums.requests,
                errors: p.sums.errors,
                cache_hits: p.sums.cache_hits,
                failed_attempts: p.sums.failed_attempts,
                prompt_tokens: p.sums.prompt_tokens,
                completion_tokens: p.sums.completion_tokens,
                cost_usd: p.sums.cost_usd(),
            })
            .collect(),
    }))
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
