//! `/admin/tenants` and `/admin/tenants/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_name, check_tenant_id, tenant_not_found};
use crate::AppState;
use crate::body::JsonBody;
use crate::db::TenantView;
use crate::error::Result;
use crate::openapi::{E400, E401, E404, E409, E422, TenantId};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    /// 1-64 of a-z, 0-9, `_` and `-`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    id: String,
    /// Display name; the id when absent.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    /// false: the provider pass-through paths answer 403 for this tenant.
    #[serde(default)]
    pass_through: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<TenantView>,
}

#[utoipa::path(post, path = "/admin/tenants", summary = "Create a tenant",
    request_body = NewTenant,
    responses((status = 201, description = "created", body = TenantView),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 409, response = E409), (status = 422, response = E422)))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewTenant>,
) -> Result<(StatusCode, Json<TenantView>)> {
    check_tenant_id(&new.id)?;
    let name = new.name.unwrap_or_else(|| new.id.clone());
    check_name(&name)?;
    let t = state.db.create_tenant(new.id, name).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/admin/tenants", summary = "List tenants",
    responses((status = 200, description = "every tenant", body = TenantList),
        (status = 401, response = E401)))]
pub(crate) async fn list_tenants(State(state): State<AppState>) -> Result<Json<TenantList>> {
    Ok(Json(TenantList {
        tenants: state.db.list_tenants().await?,
    }))
}

#[utoipa::path(get, path = "/admin/tenants/{id}", summary = "Get a tenant", params(TenantId),
    responses((status = 200, description = "the tenant", body = TenantView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>> {
    let t = state.db.get_tenant(id.clone()).await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

#[utoipa::path(patch, path = "/admin/tenants/{id}", summary = "Rename, disable or enable a tenant",
    params(TenantId), request_body = TenantPatch,
    responses((status = 200, description = "the tenant as it is now", body = TenantView),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn update_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<TenantPatch>,
) -> Result<Json<TenantView>> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    let t = state
        .db
        .update_tenant(id.clone(), patch.name, patch.disabled, patch.pass_through)
        .await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}",
    summary = "Delete a tenant with its provider and virtual keys (usage stays)", params(TenantId),
    responses((status = 204, description = "deleted"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if state.db.delete_tenant(id.clone()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(tenant_not_found(&id))
    }
}
