//! `POST /admin/tenants/import`: many tenants at once, for operators moving
//! from another gateway. NDJSON, one tenant per line with its provider keys
//! and the SHA-256 hashes of its virtual keys (the keys themselves never
//! need to leave the old system). Each line is validated on its own; the
//! valid ones are written a batch per transaction; the answer reports every
//! refused line by number (never echoing a key).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::keys::check_provider_key;
use super::{check_name, check_tenant_id};
use crate::AppState;
use crate::crypto;
use crate::db::ImportTenant;
use crate::error::{Error, Result};
use crate::openapi::{E400, E401, E413};

/// Tenants per transaction.
const BATCH: usize = 1000;
/// The largest import body (about 100k tenants with seven keys each).
pub const MAX_IMPORT_BYTES: usize = 128 * 1024 * 1024;

/// One line of an import.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportLine {
    /// 1-64 of a-z, 0-9, `_` and `-`.
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: bool,
    /// false: the provider pass-through paths answer 403 for it.
    #[serde(default = "yes")]
    pass_through: bool,
    /// provider id → key.
    #[serde(default)]
    provider_keys: BTreeMap<String, String>,
    /// Lower-case hex SHA-256 of each of its virtual keys.
    #[serde(default)]
    virtual_key_hashes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Refused {
    /// 1-based line number.
    line: usize,
    error: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ImportReport {
    imported: usize,
    refused: Vec<Refused>,
}

fn yes() -> bool {
    true
}

fn check_hash(h: &str) -> Result<()> {
    if h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::Invalid(
            "virtual_key_hashes: each must be 64 lower-case hex digits (SHA-256)".into(),
        ))
    }
}

/// Validates and seals one line.
fn prepare(state: &AppState, line: usize, text: &str) -> Result<ImportTenant> {
    // serde's message can quote a value (a key): say where, not what.
    let l: ImportLine = serde_json::from_str(text).map_err(|e| {
        Error::Invalid(format!(
            "not a tenant record (at column {}): expected {{\"id\", \"name\"?, \"disabled\"?, \"pass_through\"?, \"provider_keys\"?, \"virtual_key_hashes\"?}}",
            e.column()
        ))
    })?;
    check_tenant_id(&l.id)?;
    let name = l.name.unwrap_or_else(|| l.id.clone());
    check_name(&name)?;
    let mut sealed_keys = Vec::with_capacity(l.provider_keys.len());
    for (provider, key) in &l.provider_keys {
        check_provider_key(provider, key)?;
        sealed_keys.push((provider.clone(), state.cipher.seal(&l.id, provider, key)?));
    }
    let mut key_hashes = Vec::with_capacity(l.virtual_key_hashes.len());
    for h in l.virtual_key_hashes {
        check_hash(&h)?;
        if key_hashes.iter().any(|(_, k)| *k == h) {
            return Err(Error::Invalid("virtual_key_hashes: listed twice".into()));
        }
        key_hashes.push((crypto::new_id("vk_")?, h));
    }
    Ok(ImportTenant {
        line,
        id: l.id,
        name,
        disabled: l.disabled,
        pass_through: l.pass_through,
        sealed_keys,
        key_hashes,
    })
}

#[utoipa::path(post, path = "/admin/tenants/import",
    summary = "Import tenants with their provider keys and virtual-key hashes (NDJSON)",
    request_body(content = ImportLine, content_type = "application/x-ndjson",
        description = "one tenant per line"),
    responses((status = 200, description = "how many were imported, and every refused line", body = ImportReport),
        (status = 400, response = E400), (status = 401, response = E401),
        (status = 413, response = E413)))]
pub(crate) async fn import(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ImportReport>> {
    let text =
        std::str::from_utf8(&body).map_err(|_| Error::BadRequest("body: not UTF-8 text".into()))?;
    let mut report = ImportReport {
        imported: 0,
        refused: Vec::new(),
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut seen = std::collections::HashSet::new();
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    for (line, l) in lines {
        match prepare(&state, line, l) {
            Ok(t) if !seen.insert(t.id.clone()) => report.refused.push(Refused {
                line,
                error: format!("tenant `{}` appears on an earlier line", t.id),
            }),
            Ok(t) => batch.push(t),
            Err(e) => report.refused.push(Refused {
                line,
                error: e.to_string(),
            }),
        }
        if batch.len() >= BATCH {
            flush(&state, &mut batch, &mut report).await?;
        }
    }
    flush(&state, &mut batch, &mut report).await?;
    report.refused.sort_by_key(|r| r.line);
    Ok(Json(report))
}

async fn flush(
    state: &AppState,
    batch: &mut Vec<ImportTenant>,
    report: &mut ImportReport,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len();
    let refused = state.db.import_tenants(std::mem::take(batch)).await?;
    report.imported += n - refused.len();
    report.refused.extend(
        refused
            .into_iter()
            .map(|(line, error)| Refused { line, error }),
    );
    Ok(())
}
