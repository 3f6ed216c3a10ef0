//! Tenant evals (control-plane/README.md, "Evals"): `POST /admin/evals`
//! validates a suite, records it and runs it in the background (202 with its
//! id); `GET /admin/evals/{id}` and `GET /admin/tenants/{id}/evals[/{eval}]`
//! read it; `POST /admin/evals/{id}/apply` (or `"apply": true`) writes its
//! per-category quality into the tenant's policy through the policy's
//! validation and the change log, so every Envoy routes by it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{check_tenant_id, tenant_not_found};
use crate::AppState;
use crate::body::JsonBody;
use crate::db::EvalRow;
use crate::error::{Error, Result};
use crate::evals::run::{Outcome, TaskResult, VirtualKey};
use crate::evals::{self, EvalRequest, StoredSpec, Summary};
use crate::openapi::{E400, E401, E404, E409, E413, E422, TenantId};
use aipipe_core::policy::{MAX_POLICY_BYTES, Policy};

/// Evals `GET /admin/tenants/{id}/evals` lists (newest first).
const LISTED: u32 = 100;

pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(evals::MAX_BODY_BYTES)
}

/// An eval as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EvalView {
    id: String,
    tenant_id: String,
    /// `running`, `done` or `failed`.
    status: String,
    created_ms: u64,
    finished_ms: Option<u64>,
    models: Vec<String>,
    judge_model: Option<String>,
    /// Tasks in the suite.
    tasks: usize,
    apply: bool,
    /// When its figures were written into the tenant's policy.
    applied_ms: Option<u64>,
    /// Why they could not be.
    apply_error: Option<String>,
    /// Why the eval failed.
    error: Option<String>,
    /// Per (model, category): tasks, passed, errors, score, p50 latency.
    summary: Vec<Summary>,
    /// The `category_quality` the scores give (`evals::quality_from`).
    #[schema(value_type = Object)]
    quality: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per task and model (the list leaves them out).
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<TaskResult>>,
}

fn view(row: EvalRow, with_results: bool) -> Result<EvalView> {
    let spec: StoredSpec = serde_json::from_str(&row.spec)?;
    let outcome: Option<Outcome> = row
        .results
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?;
    let quality = outcome
        .as_ref()
        .map(|o| evals::quality_from(&o.summary))
        .unwrap_or_default();
    let (summary, results) = match outcome {
        Some(o) => (o.summary, Some(o.results)),
        None => (Vec::new(), None),
    };
    Ok(EvalView {
        id: row.id,
        tenant_id: row.tenant,
        status: row.status,
        created_ms: row.created_ms,
        finished_ms: row.finished_ms,
        models: spec.models,
        judge_model: spec.judge_model,
        tasks: spec.tasks.len(),
        apply: spec.apply,
        applied_ms: row.applied_ms,
        apply_error: row.apply_error,
        error: row.error,
        summary,
        quality,
        results: if with_results {
            Some(results.unwrap_or_default())
        } else {
            None
        },
    })
}

fn new_id() -> Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| Error::internal("eval id", e))?;
    Ok(format!("ev_{}", hex::encode(b)))
}

#[utoipa::path(post, path = "/admin/evals",
    summary = "Run a tenant's eval suite through the gateway against chosen models (async)",
    request_body = EvalRequest,
    responses((status = 202, description = "recorded and running: `{id, tenant_id, status}`; `Location` is its URL", body = Object),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 413, response = E413),
        (status = 422, response = E422)))]
pub(crate) async fn create_eval(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EvalRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Value>)> {
    check_tenant_id(&req.tenant_id).map_err(|_| {
        Error::Invalid("tenant_id: must be 1-64 characters of a-z, 0-9, '_' and '-'".into())
    })?;
    evals::check_virtual_key(&req.virtual_key).map_err(Error::Invalid)?;
    let table = crate::routing::current(&state.db, &state.table_cache).await?;
    let suite = evals::validate(&req, &table.table).map_err(Error::Invalid)?;
    let hash = aipipe_core::table::hex_hash(&req.virtual_key);
    match state
        .db
        .tenant_key_is_live(req.tenant_id.clone(), hash)
        .await?
    {
        None => return Err(tenant_not_found(&req.tenant_id)),
        Some(false) => {
            return Err(Error::Invalid(format!(
                "virtual_key: not a live virtual key of tenant `{}`",
                req.tenant_id
            )));
        }
        Some(true) => {}
    }
    let id = new_id()?;
    let spec = StoredSpec {
        models: req.models.clone(),
        judge_model: req.judge_model.clone(),
        apply: req.apply,
        tasks: req.tasks,
    };
    if !state
        .db
        .create_eval(
            id.clone(),
            req.tenant_id.clone(),
            serde_json::to_string(&spec)?,
        )
        .await?
    {
        return Err(tenant_not_found(&req.tenant_id));
    }
    tokio::spawn(run_eval(
        state.clone(),
        id.clone(),
        req.tenant_id.clone(),
        Arc::new(suite),
        VirtualKey::new(req.virtual_key),
        req.apply,
    ));
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/admin/evals/{id}")) {
        headers.insert(LOCATION, v);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(serde_json::json!({"id": id, "tenant_id": req.tenant_id, "status": "running"})),
    ))
}

/// Runs an eval to its end and records it; applies its figures when asked.
async fn run_eval(
    state: AppState,
    id: String,
    tenant: String,
    suite: Arc<evals::Suite>,
    key: VirtualKey,
    apply: bool,
) {
    let Some(outcome) = run_beating(&state, &id, suite, key).await else {
        return;
    };
    // Applied (or refused) before the eval is done: a client that sees
    // `done` sees `applied_ms` or `apply_error` with it.
    if apply && outcome.answered() {
        let applied = apply_quality(&state, &tenant, evals::quality_from(&outcome.summary))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Err(e) = state.db.eval_applied(id.clone(), applied).await {
            tracing::warn!(eval = %id, "recording an eval's apply: {e}");
        }
    }
    let finished = if outcome.answered() {
        match serde_json::to_string(&outcome) {
            Ok(json) => {
                state
                    .db
                    .finish_eval(id.clone(), "done", Some(json), None)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    } else {
        // Nothing was answered: the gateway, the key or the tenant is the
        // trouble, not the models. The first call's error says which.
        let why = outcome
            .results
            .first()
            .and_then(|r| r.detail.clone())
            .unwrap_or_else(|| "no call was answered".into());
        let json = serde_json::to_string(&outcome).ok();
        state
            .db
            .finish_eval(
                id.clone(),
                "failed",
                json,
                Some(format!("no call was answered: {why}")),
            )
            .await
    };
    if let Err(e) = finished {
        tracing::warn!(eval = %id, "recording an eval's results: {e}");
    }
}

/// Runs an eval while writing its heartbeat (`Runner::heartbeat_every`),
/// so no control plane takes it for interrupted (control-plane/README.md,
/// "Replicas"). None when it stopped running here — another control plane
/// failed it as interrupted (this one's heartbeat could not be written for
/// longer than the bound) — and its calls are abandoned: its results would
/// not be recorded.
async fn run_beating(
    state: &AppState,
    id: &str,
    suite: Arc<evals::Suite>,
    key: VirtualKey,
) -> Option<Outcome> {
    let run = state.evals.run(suite, key);
    tokio::pin!(run);
    let every = state.evals.heartbeat_every();
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            outcome = &mut run => return Some(outcome),
            _ = beat.tick() => match state.db.eval_heartbeat(id.to_owned()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(eval = %id, "eval no longer running here (failed as interrupted elsewhere): abandoned");
                    return None;
                }
                Err(e) => tracing::warn!(eval = %id, "writing an eval's heartbeat: {e}"),
            },
        }
    }
}

/// Merges per-category figures into the tenant's policy (each evaluated
/// (model, category) replaced, every other field kept), validated against
/// the current catalog as `PUT /policy` does, in one transaction that
/// records the change: every Envoy gets the new policy.
async fn apply_quality(
    state: &AppState,
    tenant: &str,
    quality: BTreeMap<String, BTreeMap<String, f64>>,
) -> Result<Policy> {
    let table = crate::routing::current(&state.db, &state.table_cache).await?;
    state
        .db
        .update_policy(tenant.to_owned(), move |current| {
            let mut p = current.unwrap_or_default();
            for (model, by_category) in quality {
                p.category_quality
                    .entry(model)
                    .or_default()
                    .extend(by_category);
            }
            aipipe_core::policy::validate(&p, &table.table).map_err(Error::Invalid)?;
            let bytes = serde_json::to_vec(&p)?.len();
            if bytes > MAX_POLICY_BYTES {
                return Err(Error::Invalid(format!(
                    "the policy with these figures is {bytes} bytes; at most {MAX_POLICY_BYTES}"
                )));
            }
            Ok(p)
        })
        .await?
        .ok_or_else(|| tenant_not_found(tenant))
}

#[utoipa::path(get, path = "/admin/evals/{id}", summary = "An eval: status, per-(model, category) scores, the quality they give, per-task results",
    params(("id" = String, Path, description = "eval id (`ev_…`)")),
    responses((status = 200, description = "the eval", body = EvalView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_eval(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EvalView>> {
    let row = state
        .db
        .eval(id.clone())
        .await?
        .ok_or_else(|| eval_not_found(&id))?;
    Ok(Json(view(row, true)?))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/evals/{eval_id}",
    summary = "One of the tenant's evals (another tenant's id is 404)",
    params(TenantId, ("eval_id" = String, Path, description = "eval id (`ev_…`)")),
    responses((status = 200, description = "the eval", body = EvalView),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_tenant_eval(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<EvalView>> {
    let row = state
        .db
        .eval(id.clone())
        .await?
        .filter(|r| r.tenant == tenant)
        .ok_or_else(|| eval_not_found(&id))?;
    Ok(Json(view(row, true)?))
}

#[utoipa::path(get, path = "/admin/tenants/{id}/evals",
    summary = "A tenant's evals, newest first (100; without per-task results)",
    params(TenantId),
    responses((status = 200, description = "`{evals: [...]}`", body = Object),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn list_evals(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>> {
    let rows = state
        .db
        .tenant_evals(tenant.clone(), LISTED)
        .await?
        .ok_or_else(|| tenant_not_found(&tenant))?;
    let views = rows
        .into_iter()
        .map(|r| view(r, false))
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(
        serde_json::json!({"tenant_id": tenant, "evals": views}),
    ))
}

#[utoipa::path(post, path = "/admin/evals/{id}/apply",
    summary = "Set the tenant policy's category_quality from a finished eval's scores",
    params(("id" = String, Path, description = "eval id (`ev_…`)")),
    responses((status = 200, description = "`{id, tenant_id, category_quality, policy}`: the figures written and the policy as stored", body = Object),
        (status = 401, response = E401), (status = 404, response = E404),
        (status = 409, response = E409), (status = 422, response = E422)))]
pub(crate) async fn apply_eval(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let row = state
        .db
        .eval(id.clone())
        .await?
        .ok_or_else(|| eval_not_found(&id))?;
    let tenant = row.tenant.clone();
    let v = view(row, false)?;
    if v.status != "done" {
        return Err(Error::Conflict(format!(
            "eval `{id}` is {}: only a done eval can be applied",
            v.status
        )));
    }
    let outcome = apply_quality(&state, &tenant, v.quality.clone()).await;
    state
        .db
        .eval_applied(
            id.clone(),
            outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
        )
        .await?;
    let policy = outcome?;
    Ok(Json(serde_json::json!({
        "id": id, "tenant_id": tenant, "category_quality": v.quality, "policy": policy
    })))
}

fn eval_not_found(id: &str) -> Error {
    Error::NotFound(format!("eval `{id}` does not exist"))
}
