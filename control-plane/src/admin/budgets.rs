//! `/admin/tenants/{id}/budget` and `/admin/budget-default`: a dollar limit
//! over a rolling window of whole days (control-plane/README.md, "Budgets").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::{BudgetView, BudgetWrite, Limit};
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, TenantId};
use aipipe_core::directory::MAX_BUDGET_DAYS;

/// The largest limit: a billion dollars (nano-dollars stay far inside i64).
const MAX_LIMIT_USD: f64 = 1e9;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetBody {
    /// Dollars per window; 0 blocks the tenant.
    #[schema(minimum = 0.0, maximum = 1e9)]
    limit_usd: f64,
    /// The window: today (UTC) and the `days - 1` days before it.
    #[schema(minimum = 1, maximum = 366)]
    days: u16,
}

impl BudgetBody {
    fn limit(&self) -> Result<Limit> {
        if !(self.limit_usd.is_finite() && (0.0..=MAX_LIMIT_USD).contains(&self.limit_usd)) {
            return Err(Error::Invalid(format!(
                "limit_usd: must be a number from 0 to {MAX_LIMIT_USD}"
            )));
        }
        if !(1..=MAX_BUDGET_DAYS).contains(&self.days) {
            return Err(Error::Invalid(format!(
                "days: must be from 1 to {MAX_BUDGET_DAYS}"
            )));
        }
        Ok(Limit {
            limit_nusd: (self.limit_usd * 1e9).round() as u64,
            days: self.days,
        })
    }
}

fn no_budget(id: &str) -> Error {
    Error::NotFound(format!(
        "tenant `{id}` has no budget (and no default budget is set)"
    ))
}

fn no_key(id: &str, key_id: &str) -> Error {
    Error::NotFound(format!("tenant `{id}` has no live virtual key `{key_id}`"))
}

/// The view with the Envoys' in-flight reservations of its budget.
async fn reserved(state: &AppState, v: BudgetView) -> Result<BudgetView> {
    let now = crate::db::now_ms();
    let nusd = state
        .db
        .reserved(v.tenant.clone(), v.virtual_key.clone(), now)
        .await?;
    Ok(v.with_reserved(nusd))
}

fn answer(id: &str, w: BudgetWrite) -> Result<BudgetView> {
    match w {
        BudgetWrite::NoTenant => Err(tenant_not_found(id)),
        // A tenant-wide call never looks for a key.
        BudgetWrite::NoKey => Err(no_budget(id)),
        BudgetWrite::Done(None) => Err(no_budget(id)),
        BudgetWrite::Done(Some(v)) => Ok(v),
    }
}

fn key_answer(id: &str, key_id: &str, w: BudgetWrite) -> Result<BudgetView> {
    match w {
        BudgetWrite::NoTenant => Err(tenant_not_found(id)),
        BudgetWrite::NoKey => Err(no_key(id, key_id)),
        BudgetWrite::Done(None) => Err(Error::NotFound(format!(
            "virtual key `{key_id}` has no budget of its own"
        ))),
        BudgetWrite::Done(Some(v)) => Ok(v),
    }
}

#[utoipa::path(put, path = "/admin/tenants/{id}/budget",
    summary = "Set a tenant's budget: a dollar limit over a rolling window of days (0 blocks it)",
    params(TenantId), request_body = BudgetBody,
    responses((status = 200, description = "the budget with its spend", body = BudgetView),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn put_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<BudgetBody>,
) -> Result<Json<BudgetView>> {
    let limit = body.limit()?;
    let w = state.db.set_budget(id.clone(), Some(limit)).await?;
    Ok(Json(reserved(&state, answer(&id, w)?).await?))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/budget",
    summary = "A tenant's budget (its own or the default): limit, window, spent, remaining",
    params(TenantId),
    responses((status = 200, description = "the budget with its spend", body = BudgetView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BudgetView>> {
    let w = state.db.budget(id.clone()).await?;
    Ok(Json(reserved(&state, answer(&id, w)?).await?))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/budget",
    summary = "Remove a tenant's own budget (the default, if set, applies again)",
    params(TenantId),
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    match state.db.budget(id.clone()).await? {
        BudgetWrite::NoTenant | BudgetWrite::NoKey => return Err(tenant_not_found(&id)),
        BudgetWrite::Done(Some(v)) if v.source == "tenant" => {}
        BudgetWrite::Done(_) => {
            return Err(Error::NotFound(format!(
                "tenant `{id}` has no budget of its own"
            )));
        }
    }
    match state.db.set_budget(id.clone(), None).await? {
        BudgetWrite::NoTenant | BudgetWrite::NoKey => Err(tenant_not_found(&id)),
        BudgetWrite::Done(_) => Ok(StatusCode::NO_CONTENT),
    }
}

#[utoipa::path(put, path = "/admin/tenants/{id}/virtual-keys/{key_id}/budget",
    summary = "Set one virtual key's budget (on top of its tenant's; 0 blocks the key)",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    request_body = BudgetBody,
    responses((status = 200, description = "the key's budget with its spend", body = BudgetView),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn put_key_budget(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<BudgetBody>,
) -> Result<Json<BudgetView>> {
    let limit = body.limit()?;
    let w = (state.db)
        .set_key_budget(id.clone(), key_id.clone(), Some(limit))
        .await?;
    Ok(Json(reserved(&state, key_answer(&id, &key_id, w)?).await?))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/virtual-keys/{key_id}/budget",
    summary = "One virtual key's own budget: limit, window, spent, remaining",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    responses((status = 200, description = "the key's budget with its spend", body = BudgetView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_key_budget(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<BudgetView>> {
    let w = state.db.key_budget(id.clone(), key_id.clone()).await?;
    Ok(Json(reserved(&state, key_answer(&id, &key_id, w)?).await?))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/virtual-keys/{key_id}/budget",
    summary = "Remove one virtual key's own budget (its tenant's still applies)",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_key_budget(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    key_answer(
        &id,
        &key_id,
        state.db.key_budget(id.clone(), key_id.clone()).await?,
    )?;
    let w = state
        .db
        .set_key_budget(id.clone(), key_id.clone(), None)
        .await?;
    match w {
        BudgetWrite::Done(_) => Ok(StatusCode::NO_CONTENT),
        other => key_answer(&id, &key_id, other).map(|_| StatusCode::NO_CONTENT),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BudgetDefaultView {
    limit_usd: f64,
    days: u16,
}

#[utoipa::path(put, path = "/admin/budget-default",
    summary = "Set the budget of every tenant without one of its own",
    request_body = BudgetBody,
    responses((status = 200, description = "the default", body = BudgetDefaultView),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 422, response = E422)))]
pub(crate) async fn put_default(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BudgetBody>,
) -> Result<Json<BudgetDefaultView>> {
    let limit = body.limit()?;
    state.db.set_budget_default(Some(limit)).await?;
    Ok(Json(default_view(limit)))
}

fn default_view(l: Limit) -> BudgetDefaultView {
    BudgetDefaultView {
        limit_usd: l.limit_nusd as f64 / 1e9,
        days: l.days,
    }
}

#[utoipa::path(get, path = "/admin/budget-default",
    summary = "The budget of every tenant without one of its own",
    responses((status = 200, description = "the default", body = BudgetDefaultView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_default(State(state): State<AppState>) -> Result<Json<BudgetDefaultView>> {
    state
        .db
        .budget_default()
        .await?
        .map(|l| Json(default_view(l)))
        .ok_or_else(|| Error::NotFound("no default budget is set".into()))
}

#[utoipa::path(delete, path = "/admin/budget-default",
    summary = "Remove the default budget",
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_default(State(state): State<AppState>) -> Result<StatusCode> {
    if state.db.budget_default().await?.is_none() {
        return Err(Error::NotFound("no default budget is set".into()));
    }
    state.db.set_budget_default(None).await?;
    Ok(StatusCode::NO_CONTENT)
}
