//! `/admin/models`: the model catalog.

use aipipe_core::table::{Model, RoutingTable, Table};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{Error, Result};

#[derive(Serialize)]
pub(crate) struct ModelList {
    models: Vec<Model>,
}

pub(crate) async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>> {
    Ok(Json(ModelList {
        models: state.db.models().await?,
    }))
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

pub(crate) async fn put_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(model): JsonBody<Model>,
) -> Result<(StatusCode, Json<Model>)> {
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
