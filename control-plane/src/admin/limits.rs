//! `/admin/tenants/{id}/limits` and `/admin/tenants/{id}/virtual-keys/{key_id}/limits`:
//! requests and tokens per minute (control-plane/README.md, "Rate limits").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::{LimitsAt, Scope};
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, TenantId};
use aipipe_core::ratelimit::Limits;

/// The most tokens a minute a limit may name (far above any provider's).
const MAX_TOKENS_PER_MINUTE: u64 = 1_000_000_000_000;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsBody {
    /// Requests a minute; 0 or absent = no limit.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    requests_per_minute: u32,
    /// Tokens a minute (prompt estimate + max_tokens, settled with the real
    /// count); 0 or absent = no limit.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000000000_u64)]
    tokens_per_minute: u64,
}

fn answer(at: LimitsAt, scope: &Scope) -> Result<Json<LimitsBody>> {
    match at {
        LimitsAt::Found(l) => Ok(Json(LimitsBody {
            requests_per_minute: l.requests_per_minute,
            tokens_per_minute: l.tokens_per_minute,
        })),
        LimitsAt::NoTenant => Err(tenant_not_found(&scope.tenant)),
        LimitsAt::NoKey => Err(Error::NotFound(format!(
            "tenant `{}` has no live virtual key `{}`",
            scope.tenant,
            scope.key_id.as_deref().unwrap_or_default()
        ))),
    }
}

async fn put(state: AppState, scope: Scope, body: LimitsBody) -> Result<Json<LimitsBody>> {
    if body.tokens_per_minute > MAX_TOKENS_PER_MINUTE {
        return Err(Error::Invalid(format!(
            "tokens_per_minute: must be at most {MAX_TOKENS_PER_MINUTE}"
        )));
    }
    let limits = Limits {
        requests_per_minute: body.requests_per_minute,
        tokens_per_minute: body.tokens_per_minute,
    };
    if limits.is_none() {
        return Err(Error::Invalid(
            "set requests_per_minute or tokens_per_minute above 0 (DELETE removes the limits)"
                .into(),
        ));
    }
    let at = state.db.set_limits(scope.clone(), limits).await?;
    answer(at, &scope)
}

async fn get(state: AppState, scope: Scope) -> Result<Json<LimitsBody>> {
    let at = state.db.limits(scope.clone()).await?;
    answer(at, &scope)
}

async fn delete(state: AppState, scope: Scope) -> Result<StatusCode> {
    let at = state
        .db
        .set_limits(scope.clone(), Limits::default())
        .await?;
    answer(at, &scope).map(|_| StatusCode::NO_CONTENT)
}

fn tenant(id: String) -> Scope {
    Scope {
        tenant: id,
        key_id: None,
    }
}

fn key(id: String, key_id: String) -> Scope {
    Scope {
        tenant: id,
        key_id: Some(key_id),
    }
}

#[utoipa::path(put, path = "/admin/tenants/{id}/limits",
    summary = "Set a tenant's rate limits (requests and tokens per minute, per Envoy)",
    params(TenantId), request_body = LimitsBody,
    responses((status = 200, description = "the limits", body = LimitsBody),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn put_tenant_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<LimitsBody>,
) -> Result<Json<LimitsBody>> {
    put(state, tenant(id), body).await
}

#[utoipa::path(get, path = "/admin/tenants/{id}/limits", summary = "A tenant's rate limits (0 = none)",
    params(TenantId),
    responses((status = 200, description = "the limits", body = LimitsBody),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_tenant_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LimitsBody>> {
    get(state, tenant(id)).await
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/limits", summary = "Remove a tenant's rate limits",
    params(TenantId),
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_tenant_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    delete(state, tenant(id)).await
}

#[utoipa::path(put, path = "/admin/tenants/{id}/virtual-keys/{key_id}/limits",
    summary = "Set one virtual key's rate limits (on top of its tenant's)",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    request_body = LimitsBody,
    responses((status = 200, description = "the limits", body = LimitsBody),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn put_key_limits(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<LimitsBody>,
) -> Result<Json<LimitsBody>> {
    put(state, key(id, key_id), body).await
}

#[utoipa::path(get, path = "/admin/tenants/{id}/virtual-keys/{key_id}/limits",
    summary = "One virtual key's rate limits (0 = none)",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    responses((status = 200, description = "the limits", body = LimitsBody),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_key_limits(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<LimitsBody>> {
    get(state, key(id, key_id)).await
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/virtual-keys/{key_id}/limits",
    summary = "Remove one virtual key's rate limits",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_key_limits(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    delete(state, key(id, key_id)).await
}
