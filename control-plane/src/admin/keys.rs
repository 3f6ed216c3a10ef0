//! A tenant's keys: `/admin/tenants/{id}/keys` (provider keys, sealed at
//! rest, never returned) and `/admin/tenants/{id}/virtual-keys` (shown once,
//! stored as a hash).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_name, tenant_not_found};
use crate::AppState;
use crate::body::JsonBody;
use crate::crypto;
use crate::db::VirtualKeyView;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E409, E422, TenantId};

fn known_provider(provider: &str) -> bool {
    aipipe_core::catalog::default_providers()
        .iter()
        .any(|p| p.id == provider)
}

/// A provider key must name a known provider and be a plausible header value
/// (it is sent upstream in a header: no spaces or control characters). The
/// message names the provider and never contains the key.
pub fn check_provider_key(provider: &str, key: &str) -> Result<()> {
    if !known_provider(provider) {
        let known: Vec<String> = aipipe_core::catalog::default_providers()
            .into_iter()
            .map(|p| p.id)
            .collect();
        return Err(Error::Invalid(format!(
            "{provider}: unknown provider; known providers are {}",
            known.join(", ")
        )));
    }
    if key.is_empty() || key.len() > 4096 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::Invalid(format!(
            "{provider}: key must be 1-4096 printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

/// Seals and stores keys for an existing tenant in one transaction.
pub async fn upsert_provider_keys(
    state: &AppState,
    tenant: &str,
    keys: BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut sealed = Vec::with_capacity(keys.len());
    for (provider, key) in &keys {
        check_provider_key(provider, key)?;
        sealed.push((provider.clone(), state.cipher.seal(tenant, provider, key)?));
    }
    state
        .db
        .upsert_provider_keys(tenant.to_owned(), sealed)
        .await?
        .ok_or_else(|| tenant_not_found(tenant))
}

// ---- provider keys -------------------------------------------------------------

/// The providers a tenant has a key for, after an upsert.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderKeys {
    tenant: String,
    providers: Vec<String>,
}

#[utoipa::path(post, path = "/admin/tenants/{id}/keys",
    summary = "Upsert provider keys (stored encrypted, never returned)", params(TenantId),
    request_body(content = BTreeMap<String, String>, description = "provider id → key",
        example = json!({"openai": "sk-...", "anthropic": "sk-ant-..."})),
    responses((status = 200, description = "every provider the tenant now has a key for", body = ProviderKeys),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn upsert_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(keys): JsonBody<BTreeMap<String, String>>,
) -> Result<Json<ProviderKeys>> {
    if keys.is_empty() {
        return Err(Error::Invalid(
            "body: name at least one provider, e.g. {\"openai\": \"sk-...\"}".into(),
        ));
    }
    // Every key is checked before anything is written: one bad entry, no write.
    for (provider, key) in &keys {
        check_provider_key(provider, key)?;
    }
    let providers = upsert_provider_keys(&state, &id, keys).await?;
    Ok(Json(ProviderKeys {
        tenant: id,
        providers,
    }))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/keys/{provider}", summary = "Delete one provider key",
    params(TenantId, ("provider" = String, Path, description = "provider id")),
    responses((status = 204, description = "deleted"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Path((id, provider)): Path<(String, String)>,
) -> Result<StatusCode> {
    if state
        .db
        .delete_provider_key(id.clone(), provider.clone())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "tenant `{id}` has no `{provider}` key"
        )))
    }
}

// ---- virtual keys -----------------------------------------------------------------

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewVirtualKey {
    #[serde(default)]
    name: String,
    /// Import an existing key (a migration, or the demo's fixed key) instead
    /// of generating one. Only its hash is stored, as for generated keys.
    #[serde(default)]
    key: Option<String>,
}

/// A new virtual key: the only response that ever carries the key.
#[derive(Serialize, ToSchema)]
pub(crate) struct IssuedVirtualKey {
    id: String,
    /// `aip_...`; shown only here.
    key: String,
    tenant: String,
    name: String,
    created_at: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VirtualKeyList {
    virtual_keys: Vec<VirtualKeyView>,
}

#[utoipa::path(post, path = "/admin/tenants/{id}/virtual-keys",
    summary = "Issue a virtual key (the key is shown once)", params(TenantId),
    request_body(content = NewVirtualKey, description = "optional: no body issues an unnamed key"),
    responses((status = 201, description = "issued", body = IssuedVirtualKey),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 409, response = E409),
        (status = 422, response = E422)))]
pub(crate) async fn create_virtual_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<JsonBody<NewVirtualKey>>,
) -> Result<(StatusCode, Json<IssuedVirtualKey>)> {
    let new = body.map(|JsonBody(b)| b).unwrap_or_default();
    check_name(&new.name)?;
    let key = match new.key {
        Some(k) if k.len() < 12 || k.len() > 256 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(Error::Invalid(
                "key: an imported key must be 12–256 printable ASCII characters without spaces"
                    .into(),
            ));
        }
        Some(k) => k,
        None => crypto::new_virtual_key()?,
    };
    let key_id = crypto::new_id("vk_")?;
    let hash = aipipe_core::table::hex_hash(&key);
    let view = state
        .db
        .create_virtual_key(id.clone(), key_id, new.name, hash)
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    // Shown once: only its hash is kept.
    Ok((
        StatusCode::CREATED,
        Json(IssuedVirtualKey {
            id: view.id,
            key,
            tenant: id,
            name: view.name,
            created_at: view.created_at,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/virtual-keys", summary = "List virtual keys (no secrets)",
    params(TenantId),
    responses((status = 200, description = "the tenant's virtual keys", body = VirtualKeyList),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn list_virtual_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<VirtualKeyList>> {
    let keys = state
        .db
        .list_virtual_keys(id.clone())
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    Ok(Json(VirtualKeyList { virtual_keys: keys }))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/virtual-keys/{key_id}", summary = "Revoke a virtual key",
    params(TenantId, ("key_id" = String, Path, description = "virtual key id")),
    responses((status = 204, description = "revoked"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn revoke_virtual_key(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    if state
        .db
        .revoke_virtual_key(id.clone(), key_id.clone())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "tenant `{id}` has no virtual key `{key_id}`"
        )))
    }
}
