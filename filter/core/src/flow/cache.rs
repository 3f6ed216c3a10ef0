//! The answer cache in the request flow: look a request up in the proxy's
//! shared data before it goes upstream, store a whole success answer after.
//! Keys, entries and eviction are `crate::cache`.

use super::RequestCtx;
use super::filter::Filter;
use super::host::{Host, now_ms};
use crate::cache::{self, Key};
use crate::plan::{Attempt, Plan};
use crate::table::Table;

/// What the cache says about a request.
pub(super) enum Lookup {
    /// Not looked up (streamed, non-deterministic, `no-cache`, cache off).
    Bypass,
    /// Not there: its key is kept to store the answer under.
    Miss(Key),
    Hit {
        answer: Vec<u8>,
        content_type: String,
    },
}

impl Lookup {
    /// The `x-aipipe-cache` value.
    pub(super) fn header(&self) -> &'static str {
        match self {
            Lookup::Bypass => "bypass",
            Lookup::Miss(_) => "miss",
            Lookup::Hit { .. } => "hit",
        }
    }

    /// The key a miss stores its answer under.
    pub(super) fn key(&self) -> Option<Key> {
        match self {
            Lookup::Miss(k) => Some(*k),
            _ => None,
        }
    }
}

/// Looks the request's first attempt up in the shared cache.
pub(super) fn lookup(
    filter: &Filter,
    host: &impl Host,
    ctx: &RequestCtx,
    table: &Table,
    plan: &Plan,
    attempt: &Attempt,
) -> Lookup {
    let config = &filter.config.cache;
    // The plan holds key material only for a cacheable request.
    let Some(prompt) = &plan.prompt else {
        return Lookup::Bypass;
    };
    // A model that refuses sampling parameters never sees the `temperature`
    // 0 that made the request deterministic: its answer is one sample, not
    // the answer, unless the tenant caches those anyway.
    if attempt.dropped.changes_the_answer() && !plan.cache_nondeterministic {
        return Lookup::Bypass;
    }
    let (Some(tenant), Some(model), Some(provider)) = (
        ctx.account.as_ref(),
        table.model(attempt.model),
        table.provider(attempt.provider),
    ) else {
        return Lookup::Bypass;
    };
    // Answers differ by the client's protocol too.
    let model_key = format!("{}{}", model.id, ctx.protocol.cache_tag());
    let key = prompt.key(&tenant.id, &provider.id, &model_key);
    let now = now_ms(host);
    for slot in cache::slots_for(&key, &tenant.id, config) {
        if let (Some(value), _) = host.shared_get(&cache::slot_name(slot))
            && let Some(e) = cache::lookup(&value, &key, &tenant.id, now)
        {
            return Lookup::Hit {
                answer: e.body.to_vec(),
                content_type: e.content_type.to_owned(),
            };
        }
    }
    Lookup::Miss(key)
}

/// Stores a whole success answer under `key`, in whichever of its two slots
/// `choose_victim` picks, for `ttl_ms` (the tenant's policy's) or the
/// configured lifetime. Best effort: a race with another worker (CAS
/// mismatch) just leaves the other's entry.
pub(super) fn store(
    filter: &Filter,
    host: &impl Host,
    key: &Key,
    tenant_id: &str,
    ttl_ms: Option<u64>,
    answer: &[u8],
) {
    let config = &filter.config.cache;
    let now = now_ms(host);
    let slots = cache::slots_for(key, tenant_id, config);
    let read = |slot: u32| host.shared_get(&cache::slot_name(slot));
    let existing = [read(slots[0]), read(slots[1])];
    let victim = cache::choose_victim(
        [existing[0].0.as_deref(), existing[1].0.as_deref()],
        key,
        now,
    );
    let entry = cache::Entry {
        key: *key,
        tenant_id,
        stored_ms: now,
        expires_ms: now.saturating_add(ttl_ms.unwrap_or(config.ttl_ms)),
        status: 200,
        content_type: "application/json",
        body: answer,
    };
    let (Some(bytes), Some(&slot), Some((replaced, cas))) = (
        cache::encode_entry(&entry, config.max_entry_bytes),
        slots.get(victim),
        existing.get(victim),
    ) else {
        return;
    };
    match host.shared_set(&cache::slot_name(slot), &bytes, *cas) {
        Ok(()) => {
            filter.count(host, |m| m.cache_stored_bytes, bytes.len() as u64);
            filter.count(
                host,
                |m| m.cache_evicted_bytes,
                replaced.as_ref().map_or(0, |v| v.len() as u64),
            );
        }
        Err(e) => log::debug!("answer not cached: {e:?}"),
    }
}
