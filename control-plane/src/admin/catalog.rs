//! `/admin/models`: the model catalog.

use aipipe_core::table::{Model, RoutingTable, Table};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E404, E422, ModelDoc};
use crate::routing;

#[derive(Serialize, ToSchema)]
pub(crate) struct ModelList {
    #[schema(value_type = Vec<ModelDoc>)]
    models: Vec<Model>,
    /// The ids of the models retired now (their `retires_at` has passed),
    /// in catalog order: listed above as stored, never routed to
    /// (control-plane/README.md, "Scheduled retirements").
    retired: Vec<String>,
}

#[utoipa::path(get, path = "/admin/models", summary = "The model catalog",
    responses((status = 200, description = "every model, in catalog order, priced as now: a \
        scheduled price change whose instant has passed is folded into its prices; `retired` \
        names the models whose retirement instant has passed", body = ModelList),
        (status = 401, response = E401)))]
pub(crate) async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>> {
    let now = crate::db::now_ms();
    let models = priced_now(state.db.models().await?);
    let retired = models
        .iter()
        .filter(|m| m.retired_at(now))
        .map(|m| m.id.clone())
        .collect();
    Ok(Json(ModelList { models, retired }))
}

/// The catalog as it is priced now (control-plane/README.md, "Scheduled
/// price changes"): each stored row with the changes whose instant has
/// passed folded into its prices, only the later ones still listed. The
/// rows stay as written; the filters resolve the same schedule by their
/// own clocks.
pub(crate) fn priced_now(models: Vec<Model>) -> Vec<Model> {
    let now = crate::db::now_ms();
    models.into_iter().map(|m| m.folded_at(now)).collect()
}

/// Validates a catalog the way the filter will: by compiling a routing table
/// with it (the filter's own code), so the message names the field.
pub(crate) fn check_catalog(models: Vec<Model>) -> Result<()> {
    Table::compile(RoutingTable {
        models,
        ..RoutingTable::default()
    })
    .map(|_| ())
    .map_err(|e| Error::Invalid(e.0))
}

#[utoipa::path(put, path = "/admin/models/{id}",
    summary = "Create or replace a model (validated by compiling the routing table)",
    params(("id" = String, Path, description = "catalog model id")), request_body = ModelDoc,
    responses((status = 200, description = "replaced", body = ModelDoc),
        (status = 201, description = "created", body = ModelDoc),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 422, response = E422)))]
pub(crate) async fn put_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(model): JsonBody<Model>,
) -> Result<(StatusCode, Json<Model>)> {
    // The core's rules, naming the body's fields; then the whole catalog
    // as the filter will compile it.
    aipipe_core::validate::model_id("id", &id)
        .and_then(|()| aipipe_core::validate::model("body", &model))
        .map_err(|e| Error::Invalid(e.0))?;
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

#[utoipa::path(delete, path = "/admin/models/{id}", summary = "Remove a model from the catalog",
    params(("id" = String, Path, description = "catalog model id")),
    responses((status = 204, description = "removed: no request is routed to it from the next change on"),
        (status = 401, response = E401), (status = 404, response = E404),
        (status = 409, description = "a tenant's policy names it", body = crate::error::ErrorBody)))]
pub(crate) async fn delete_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    match state.db.delete_model(id.clone()).await? {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(Error::NotFound(format!(
            "no model `{}` in the catalog",
            id.escape_debug()
        ))),
        Err(tenants) => Err(Error::Conflict(format!(
            "model `{}` is named by the policy of {}: change those first",
            id.escape_debug(),
            tenants.join(", ")
        ))),
    }
}

/// The router model the global table names (filter/README.md, "Router model").
#[derive(Serialize, ToSchema)]
pub(crate) struct RouterModelInfo {
    /// `builtin` (the filter's own) or `global` (set with PUT).
    model: String,
    /// The trainer's version stamp, hex.
    version: String,
    /// The blob's size in bytes.
    bytes: usize,
}

impl RouterModelInfo {
    fn of(router: &aipipe_core::classify::Router) -> Self {
        let model = match router.source {
            aipipe_core::classify::Source::Builtin => "builtin",
            // A table's router is never a tenant's.
            aipipe_core::classify::Source::Global | aipipe_core::classify::Source::Tenant => {
                "global"
            }
        };
        Self {
            model: model.into(),
            version: format!("{:08x}", router.model.version),
            bytes: router.model.encode().len(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterModelBody {
    /// A model blob (`make train-router`'s output) in standard base64;
    /// absent or null: the filter's built-in model.
    #[serde(default)]
    blob: Option<String>,
}

#[utoipa::path(get, path = "/admin/routing/model", summary = "The router model auto requests are routed by",
    responses((status = 200, description = "which model, its version and size", body = RouterModelInfo),
        (status = 401, response = E401)))]
pub(crate) async fn get_router_model(
    State(state): State<AppState>,
) -> Result<Json<RouterModelInfo>> {
    let built = routing::current(&state.db, &state.table_cache).await?;
    let router = built
        .table
        .router
        .as_ref()
        .ok_or_else(|| Error::internal("the global table names no router model", "none"))?;
    Ok(Json(RouterModelInfo::of(router)))
}

/// A blob as wide as the filter decodes (2^20 rows, ~12.6 MB; 16.8 MB in
/// base64) fits: axum's default 2 MB would refuse a 2^17-row model already.
pub fn router_model_body_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(
        aipipe_core::classify::MAX_BLOB_BYTES.div_ceil(3) * 4 + 4096,
    )
}

#[utoipa::path(put, path = "/admin/routing/model",
    summary = "Replace the router model (a blob is decoded and checked before it is stored)",
    request_body = RouterModelBody,
    responses((status = 200, description = "the model every Envoy now routes by", body = RouterModelInfo),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 422, response = E422)))]
pub(crate) async fn put_router_model(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RouterModelBody>,
) -> Result<Json<RouterModelInfo>> {
    use aipipe_core::classify::{Router, RouterModel};
    let blob = body.blob.map(|b| b.trim().to_owned());
    let wire = blob.clone().map_or(RouterModel::Builtin, RouterModel::Blob);
    // The filter's own decode: a blob it would refuse is never stored.
    let router = Router::compile(&wire).map_err(|e| Error::Invalid(format!("blob: {e}")))?;
    state.db.set_router_model(blob).await?;
    // Tenants' corrections were fitted against the old model: refit them.
    state.learner.mark(state.db.learning_tenants().await?);
    Ok(Json(RouterModelInfo::of(&router)))
}
