//! The admin API (operators): tenants, provider keys, virtual keys, the model
//! catalog, penalties, route explanations and stats, plus /healthz and /metrics. Every
//! /admin route is behind `X-Admin-Secret`. Handlers are thin: parse and
//! validate, call `db`, shape the answer. Nothing here logs a request body,
//! so provider keys and virtual keys never reach a log line.

use std::collections::BTreeMap;

use aipipe_core::table::{Model, RoutingTable, Table};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::crypto;
use crate::db::{TenantView, now_ms};
use crate::error::{Error, Result, parse_json};
use crate::routing;

pub const ADMIN_SECRET_HEADER: &str = "x-admin-secret";

/// The admin router. /healthz and /metrics are open (no secrets in them);
/// everything under /admin needs the admin secret.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/admin/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/admin/tenants/{id}",
            get(get_tenant).patch(update_tenant).delete(delete_tenant),
        )
        .route("/admin/tenants/{id}/keys", post(upsert_keys))
        .route("/admin/tenants/{id}/keys/{provider}", delete(delete_key))
        .route(
            "/admin/tenants/{id}/virtual-keys",
            post(create_virtual_key).get(list_virtual_keys),
        )
        .route(
            "/admin/tenants/{id}/virtual-keys/{key_id}",
            delete(revoke_virtual_key),
        )
        .route("/admin/tenants/{id}/stats", get(stats))
        .route("/admin/models", get(list_models))
        .route("/admin/models/{id}", put(put_model))
        .route("/admin/penalties", get(list_penalties))
        .route("/admin/penalties/reset", post(reset_penalties))
        .route("/admin/route/explain", post(explain))
        .route("/admin/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_secret,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(|| async { Error::NotFound("no such route; see GET /admin/openapi.json".into()) })
        .with_state(state)
}

async fn require_secret(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(ADMIN_SECRET_HEADER)
        .map(HeaderValue::as_bytes);
    if state.admin_secret_ok(given) {
        next.run(req).await
    } else {
        Error::Unauthorized.into_response()
    }
}

// ---- validation shared with startup (env keys) --------------------------------

/// Tenant ids: 1–64 of `[a-z0-9_-]` (they appear in URLs, metrics labels, logs).
pub fn check_tenant_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "id: must be 1-64 characters of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

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

fn tenant_not_found(id: &str) -> Error {
    Error::NotFound(format!("tenant `{id}` does not exist"))
}

// ---- tenants -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

fn check_name(name: &str) -> Result<()> {
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name: at most 200 characters, no control characters".into(),
        ));
    }
    Ok(())
}

async fn create_tenant(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantView>)> {
    let new: NewTenant = parse_json(&body)?;
    check_tenant_id(&new.id)?;
    let name = new.name.unwrap_or_else(|| new.id.clone());
    check_name(&name)?;
    let t = state.db.create_tenant(new.id, name).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn list_tenants(State(state): State<AppState>) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({"tenants": state.db.list_tenants().await?})))
}

async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>> {
    let t = state.db.get_tenant(id.clone()).await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

async fn update_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TenantView>> {
    let patch: TenantPatch = parse_json(&body)?;
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    let t = state
        .db
        .update_tenant(id.clone(), patch.name, patch.disabled)
        .await?;
    t.map(Json).ok_or_else(|| tenant_not_found(&id))
}

async fn delete_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if state.db.delete_tenant(id.clone()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(tenant_not_found(&id))
    }
}

// ---- provider keys -------------------------------------------------------------

async fn upsert_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    let keys: BTreeMap<String, String> = parse_json(&body)?;
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
    Ok(Json(json!({"tenant": id, "providers": providers})))
}

async fn delete_key(
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewVirtualKey {
    #[serde(default)]
    name: String,
    /// Import an existing key (a migration, or the demo's fixed key) instead
    /// of generating one. Only its hash is stored, as for generated keys.
    #[serde(default)]
    key: Option<String>,
}

async fn create_virtual_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let new: NewVirtualKey = if body.iter().all(u8::is_ascii_whitespace) {
        NewVirtualKey::default()
    } else {
        parse_json(&body)?
    };
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
    // The only response that ever carries the key: shown once.
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": view.id,
            "key": key,
            "tenant": id,
            "name": view.name,
            "created_at": view.created_at,
        })),
    ))
}

async fn list_virtual_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let keys = state
        .db
        .list_virtual_keys(id.clone())
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    Ok(Json(json!({"virtual_keys": keys})))
}

async fn revoke_virtual_key(
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

// ---- catalog -----------------------------------------------------------------------

async fn list_models(State(state): State<AppState>) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({"models": state.db.models().await?})))
}

/// Validates a catalog the way the filter will: by compiling a routing table
/// with it (the filter's own code), so the message names the field.
fn check_catalog(models: Vec<Model>) -> Result<()> {
    Table::compile(RoutingTable {
        models,
        ..RoutingTable::default()
    })
    .map(|_| ())
    .map_err(|e| Error::Invalid(e.0))
}

async fn put_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Model>)> {
    let model: Model = parse_json(&body)?;
    if model.id != id {
        return Err(Error::Invalid(format!(
            "id: the body says `{}` but the path says `{id}`",
            model.id
        )));
    }
    let created = state.db.put_model(model.clone(), check_catalog).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(model)))
}

// ---- penalties ---------------------------------------------------------------------

async fn list_penalties(State(state): State<AppState>) -> Result<Json<crate::db::Penalties>> {
    Ok(Json(state.db.penalties().await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PenaltyReset {
    /// A catalog model id; absent or null = every model.
    #[serde(default)]
    model: Option<String>,
}

async fn reset_penalties(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<crate::db::PenaltyReset>> {
    let req: PenaltyReset = if body.iter().all(u8::is_ascii_whitespace) {
        PenaltyReset::default()
    } else {
        parse_json(&body)?
    };
    if let Some(m) = &req.model
        && m.trim().is_empty()
    {
        return Err(Error::Invalid(
            "model: must name a model (omit it to reset every model)".into(),
        ));
    }
    let model = req.model.clone();
    state
        .db
        .reset_penalties(req.model)
        .await?
        .map(Json)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "model `{}` is not in the catalog and has no penalty",
                model.unwrap_or_default()
            ))
        })
}

// ---- explain -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    tenant: String,
    request: serde_json::Value,
}

async fn explain(State(state): State<AppState>, body: Bytes) -> Result<Response> {
    let req: ExplainRequest = parse_json(&body)?;
    let table = routing::compile(routing::build(&state.db, &state.cipher).await?)?;
    let tenant = table
        .tenant_by_id(&req.tenant)
        .ok_or_else(|| tenant_not_found(&req.tenant))?;
    let chat = serde_json::to_vec(&req.request)?;
    let explanation = aipipe_core::route::explain(&table, tenant, &chat)
        .map_err(|e| Error::Invalid(format!("request: {}", e.message())))?;
    Ok(Json(explanation).into_response())
}

// ---- stats ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    since: Option<u64>,
    until: Option<u64>,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<crate::stats::Report>> {
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

// ---- documents ------------------------------------------------------------------------------

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = crate::metrics::render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
