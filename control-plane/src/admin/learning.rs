//! `/admin/tenants/{id}/routing…`: a tenant's labelled requests and the
//! correction to the router model fitted from them (control-plane/README.md,
//! "Per-tenant routing").

use aipipe_core::classify::{Category, Tier};
use aipipe_core::request::ChatRequest;
use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::tenant_not_found;
use crate::AppState;
use crate::body::JsonBody;
use crate::db::{NewExample, RoutingState};
use crate::error::{Error, Result};
use crate::learning;
use crate::openapi::{E400, E401, E404, E422, TenantId};

/// Examples one call may import.
pub const MAX_EXAMPLES: usize = 1000;
/// Examples a tenant may keep (a fit reads the newest
/// `learning::MAX_FIT_EXAMPLES`).
pub const MAX_STORED_EXAMPLES: u64 = 50_000;
/// The largest request an example may hold (its JSON).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_EXAMPLES * (MAX_REQUEST_BYTES / 8))
}

/// One labelled request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExampleBody {
    /// A Chat Completions request body (`messages`, and `tools` etc. as
    /// sent).
    #[schema(value_type = Object)]
    request: Value,
    /// The tier it needs: cheap, mid or frontier.
    tier: String,
    /// Its task category (chat, factual_qa, summarise_rewrite, translation,
    /// creative, coding, math_reasoning, analysis_planning, agentic_tools).
    #[serde(default)]
    category: Option<String>,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Imported {
    /// Examples added by this call.
    added: u64,
    /// The tenant's examples now.
    examples: u64,
    /// The tenant's routing state after the refit.
    #[schema(value_type = Object)]
    routing: RoutingState,
}

/// Checks every example before anything is stored; the error names the
/// first bad one.
fn read_examples(
    body: Vec<ExampleBody>,
    model: &aipipe_core::classify::Model,
    scorer: &aipipe_core::score::Scorer,
    keep_text: bool,
) -> Result<Vec<NewExample>> {
    if body.is_empty() {
        return Err(Error::Invalid("send at least one example".into()));
    }
    if body.len() > MAX_EXAMPLES {
        return Err(Error::Invalid(format!(
            "at most {MAX_EXAMPLES} examples a call, got {}",
            body.len()
        )));
    }
    body.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let tier = Tier::from_name(&e.tier).ok_or_else(|| {
                Error::Invalid(format!(
                    "[{i}].tier: must be cheap, mid or frontier, got {:?}",
                    e.tier
                ))
            })?;
            let category = match &e.category {
                None => None,
                Some(c) => Some(Category::from_name(c).ok_or_else(|| {
                    Error::Invalid(format!("[{i}].category: unknown category {c:?}"))
                })?),
            };
            let text = serde_json::to_string(&e.request)?;
            if text.len() > MAX_REQUEST_BYTES {
                return Err(Error::Invalid(format!(
                    "[{i}].request: at most {MAX_REQUEST_BYTES} bytes of JSON"
                )));
            }
            let req = ChatRequest::parse(text.as_bytes())
                .map_err(|err| Error::Invalid(format!("[{i}].request: {}", err.0)))?;
            let f = learning::features_of(model, scorer, &req);
            Ok(NewExample {
                tier,
                category,
                request: keep_text.then_some(text),
                features: aipipe_core::tenant_router::encode_features(model.version, &f),
            })
        })
        .collect()
}

/// Whether the tenant's policy lets its prompts be kept.
async fn stores_prompts(state: &AppState, id: &str) -> Result<bool> {
    let Some(policy) = state.db.policy(id.to_owned()).await? else {
        return Err(tenant_not_found(id));
    };
    Ok(policy
        .and_then(|json| serde_json::from_str::<aipipe_core::policy::Policy>(&json).ok())
        .and_then(|p| p.learning)
        .is_some_and(|l| l.store_prompts))
}

#[utoipa::path(post, path = "/admin/tenants/{id}/routing/examples",
    summary = "Import labelled requests of a tenant; its router correction is refitted and shipped",
    params(TenantId), request_body = Vec<ExampleBody>,
    responses((status = 200, description = "stored and refitted", body = Imported),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 404, response = E404), (status = 422, response = E422)))]
pub(crate) async fn post_examples(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Vec<ExampleBody>>,
) -> Result<Json<Imported>> {
    let keep_text = stores_prompts(&state, &id).await?;
    let (built, model) = learning::current_router(&state).await?;
    let examples = read_examples(body, &model, &built.table.scorer, keep_text)?;
    let added = examples.len() as u64;
    let stored = state
        .db
        .routing_state(id.clone())
        .await?
        .map_or(0, |s| s.examples);
    if stored + added > MAX_STORED_EXAMPLES {
        return Err(Error::Invalid(format!(
            "tenant `{id}` keeps at most {MAX_STORED_EXAMPLES} examples ({stored} stored): \
             DELETE /admin/tenants/{id}/routing/examples first"
        )));
    }
    let total = state
        .db
        .add_routing_examples(id.clone(), examples)
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    learning::refit(&state, &id).await?;
    let routing = state
        .db
        .routing_state(id.clone())
        .await?
        .ok_or_else(|| tenant_not_found(&id))?;
    Ok(Json(Imported {
        added,
        examples: total,
        routing,
    }))
}

#[utoipa::path(delete, path = "/admin/tenants/{id}/routing/examples",
    summary = "Forget a tenant's examples and ratings; it is routed by the global model again",
    params(TenantId),
    responses((status = 204, description = "forgotten"),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn delete_examples(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if !state.db.clear_routing_examples(id.clone()).await? {
        return Err(tenant_not_found(&id));
    }
    learning::refit(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/tenants/{id}/routing",
    summary = "A tenant's examples, ratings and router correction",
    params(TenantId),
    responses((status = 200, description = "its routing state", body = Object),
        (status = 401, response = E401), (status = 404, response = E404)))]
pub(crate) async fn get_routing(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RoutingState>> {
    state
        .db
        .routing_state(id.clone())
        .await?
        .map(Json)
        .ok_or_else(|| tenant_not_found(&id))
}
