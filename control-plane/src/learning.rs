//! Per-tenant routing (control-plane/README.md, "Per-tenant routing"): fits
//! a tenant's correction to the router model from its labelled requests
//! (db/learning.rs) and stores it, which publishes the tenant.
//!
//! The correction is `aipipe_core::tenant_router::Adjustment`: sparse rows
//! only, fitted together with a background sample of the global corpus
//! (`data/router-background.jsonl`, written by `make train-router`) labelled
//! by the global model itself, so what the tenant's examples do not look
//! like keeps the global model's answer. Imports refit at once; ratings and
//! the usage records they wait for are refitted by a task, a moment after
//! the last one, so fifty ratings make one fit, not fifty.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aipipe_core::classify::{self, Model};
use aipipe_core::request::ChatRequest;
use aipipe_core::score::Scorer;
use aipipe_core::tenant_router::{Adjustment, Example, FitOptions, decode_features};

use crate::AppState;
use crate::db::FittedRouter;
use crate::error::{Error, Result};

/// Requests of the global corpus (train split) the fit holds in place.
const BACKGROUND: &str = include_str!("../data/router-background.jsonl");
/// How much one of the tenant's own labelled requests counts against one
/// background request.
const TENANT_WEIGHT: f32 = 2.0;
/// The most labelled requests one fit reads: a fit's time stays bounded
/// whatever a tenant has stored.
pub const MAX_FIT_EXAMPLES: usize = 5_000;
/// A refit waits this long after the last rating that asked for it.
const SETTLE: Duration = Duration::from_millis(500);

/// The refits to do, and the background as the current model reads it.
#[derive(Default)]
pub struct Learner {
    /// One fit at a time: the last one to run read the newest examples.
    fitting: tokio::sync::Mutex<()>,
    dirty: Mutex<BTreeSet<String>>,
    wake: tokio::sync::Notify,
    /// (model version, background examples).
    background: Mutex<Option<(u32, Arc<Vec<Example>>)>>,
}

impl Learner {
    /// Asks for these tenants to be refitted soon.
    pub fn mark(&self, tenants: impl IntoIterator<Item = String>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        let before = dirty.len();
        dirty.extend(tenants);
        if dirty.len() > before {
            self.wake.notify_one();
        }
    }

    /// The background as `model` reads it, computed once per model version
    /// (every background request parsed, scored and predicted): call it from
    /// a blocking task.
    fn background(&self, model: &Model, scorer: &Scorer) -> Arc<Vec<Example>> {
        let mut slot = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((v, b)) = slot.as_ref()
            && *v == model.version
        {
            return b.clone();
        }
        let examples: Vec<Example> = BACKGROUND
            .lines()
            .filter_map(|line| {
                let req = ChatRequest::parse(line.as_bytes()).ok()?;
                let score = scorer.score(&req);
                let features = classify::features(&model.config, &req, &score);
                let p = model.predict_raw(&model.raw_logits(&features));
                Some(Example {
                    features,
                    tier: p.tier,
                    category: Some(p.category),
                    weight: 1.0,
                })
            })
            .collect();
        let b = Arc::new(examples);
        *slot = Some((model.version, b.clone()));
        b
    }
}

/// The features of an example request as `model` reads it (with the
/// table's scorer): what is stored and what the fit reads.
pub fn features_of(
    model: &Model,
    scorer: &Scorer,
    request: &ChatRequest<'_>,
) -> aipipe_core::classify::Features {
    let score = scorer.score(request);
    classify::features(&model.config, request, &score)
}

/// The router model and scorer of the current global table.
pub async fn current_router(
    state: &AppState,
) -> Result<(Arc<crate::routing::Compiled>, Arc<Model>)> {
    let built = state.table_cache.compiled(state.db.global_state().await?)?;
    let model = built
        .table
        .router
        .as_ref()
        .map(|r| r.model.clone())
        .ok_or_else(|| Error::internal("the global table names no router model", "none"))?;
    Ok((built, model))
}

/// Fits `tenant`'s correction from everything it has labelled and stores
/// it (none when it has nothing that the current model can read).
pub async fn refit(state: &AppState, tenant: &str) -> Result<Option<FittedRouter>> {
    let _one = state.learner.fitting.lock().await;
    let (built, model) = current_router(state).await?;
    let mut labelled = state.db.labelled_requests(tenant.to_owned()).await?;
    // Imported examples come oldest first, then the ratings: dropping from
    // the front keeps the ratings and the newest examples.
    let drop = labelled.len().saturating_sub(MAX_FIT_EXAMPLES);
    labelled.drain(..drop);
    let version = model.version;
    let app = state.clone();
    // Everything below reads requests and fits: seconds of CPU on a new
    // model (the background's features), so off the async runtime's threads.
    let fitted = tokio::task::spawn_blocking(move || {
        let scorer = &built.table.scorer;
        let background = app.learner.background(&model, scorer);
        let examples: Vec<Example> = labelled
            .into_iter()
            .filter_map(|l| {
                let features = match decode_features(&l.features) {
                    Ok((v, f)) if v == model.version => f,
                    // Read by another model: read the text again, if kept.
                    _ => {
                        let text = l.request?;
                        let req = ChatRequest::parse(text.as_bytes()).ok()?;
                        features_of(&model, scorer, &req)
                    }
                };
                Some(Example {
                    features,
                    tier: l.tier,
                    category: l.category,
                    weight: TENANT_WEIGHT,
                })
            })
            .collect();
        if examples.is_empty() {
            return None;
        }
        let adj = Adjustment::fit(&model, &examples, &background, FitOptions::default());
        Some((
            version,
            examples.len() as u64,
            adj.len() as u64,
            adj.encode(),
        ))
    })
    .await
    .map_err(|e| Error::internal("fitting a tenant's router", e))?;
    state
        .db
        .save_tenant_router(tenant.to_owned(), fitted)
        .await?;
    Ok(state
        .db
        .routing_state(tenant.to_owned())
        .await?
        .and_then(|s| s.router))
}

/// Refits the tenants marked dirty, a moment after the last mark, until the
/// process ends. A failure is logged; the tenant is tried again at its next
/// mark.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            state.learner.wake.notified().await;
            tokio::time::sleep(SETTLE).await;
            let due: Vec<String> = std::mem::take(
                &mut *state
                    .learner
                    .dirty
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
            .into_iter()
            .collect();
            for tenant in due {
                match refit(&state, &tenant).await {
                    Ok(r) => tracing::info!(
                        tenant = %tenant,
                        examples = r.as_ref().map_or(0, |r| r.examples),
                        "tenant router refitted"
                    ),
                    Err(e) => tracing::warn!(tenant = %tenant, "refitting the tenant router: {e}"),
                }
            }
        }
    });
}
