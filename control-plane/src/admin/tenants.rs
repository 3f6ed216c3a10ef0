//! `/admin/tenants` and `/admin/tenants/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{check_name, check_tenant_id, tenant_not_found};
use crate::AppState;
use crate::body::JsonBody;
use crate::db::TenantView;
use crate::error::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

#[derive(Serialize)]
pub(crate) struct TenantList {
    tenants: Vec<TenantView>,
}

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

pub(crate) async fn list_tenants(State(state): State<AppState>) -> Result<Json<TenantList>> {
    Ok(Json(TenantList {
        tenants: state.db.list_tenants().await?,
    }))
}

pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>> {
    let t = state.db.get_tenant(id.clone()).await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

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
        .update_tenant(id.clone(), patch.name, patch.disabled)
        .await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

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
