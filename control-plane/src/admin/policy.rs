//! `/admin/tenants/{id}/policy`: which models a tenant may use, a pinned
//! model, its own quality figures, a tier cap, aliases (control-plane/
//! README.md, "Policy"). Checked against the current catalog before it is
//! stored; the tenant's directory entry carries it to every Envoy.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E413, E422, TenantId};
use aipipe_core::policy::{MAX_POLICY_BYTES, Policy, validate};

/// The route's body limit.
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_POLICY_BYTES)
}

#[utoipa::path(put, path = "/admin/tenants/{id}/policy",
    summary = "Set a tenant's routing policy: allow_models, deny_models, allow_providers, pin, quality, max_tier, aliases, substitute_named_models",
    params(TenantId),
    request_body(content = Object, description = "the policy (filter/core/src/policy.rs); every model and provider it names must exist"),
    responses((status = 200, description = "the policy as stored", body = Object),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 413, response = E413),
        (status = 422, response = E422)))]
pub(crate) async fn put_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(policy): JsonBody<Policy>,
) -> Result<Json<Value>> {
    let table = crate::routing::current(&state.db, &state.table_cache).await?;
    validate(&policy, &table.table).map_err(Error::Invalid)?;
    let json = serde_json::to_string(&policy)?;
    if !state.db.set_policy(id.clone(), Some(json)).await? {
        return Err(tenant_not_found(&id));
    }
    Ok(Json(serde_json::to_value(&policy)?))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/policy", summary = "A tenant's routing policy",
    params(TenantId),
    responses((status = 200, description = "the policy", body = Object),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    match state.db.policy(id.clone()).await? {
        None => Err(tenant_not_found(&id)),
        Some(None) => Err(Error::NotFound(format!("tenant `{id}` has no policy"))),
        Some(Some(json)) => Ok(Json(serde_json::from_str(&json)?)),
    }
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/policy", summary = "Remove a tenant's routing policy",
    params(TenantId),
    responses((status = 204, description = "removed"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if state.db.set_policy(id.clone(), None).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(tenant_not_found(&id))
    }
}
