//! The answer cache in the request path (SPEC §11): look a request up in
//! Envoy shared data before it goes upstream, store a whole success answer
//! after. Keys, entries and eviction are the core's `cache` module.

use proxy_wasm::hostcalls;

use super::Http;
use crate::root::{Metrics, Shared, now_ms};
use aipipe_core::cache;
use aipipe_core::route::{Dialect, Routed};
use aipipe_core::table::Table;

/// What the cache says about a request.
pub(super) enum Lookup {
    /// Not looked up (streamed, non-deterministic, `no-cache`, cache off).
    Bypass,
    /// Not there: its key is kept to store the answer under.
    Miss,
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
            Lookup::Miss => "miss",
            Lookup::Hit { .. } => "hit",
        }
    }
}

impl Http {
    /// Looks the request up in the shared cache (SPEC §11).
    pub(super) fn cache_lookup(
        &mut self,
        shared: &Shared,
        table: &Table,
        routed: &Routed<'_>,
        body: &[u8],
    ) -> Lookup {
        if !shared.cache.enabled || self.no_cache || routed.stream || !routed.deterministic {
            return Lookup::Bypass;
        }
        let (Some(tenant), Some(model), Some(provider)) = (
            table.tenants.get(self.tenant),
            table.models.get(routed.model),
            table.providers.get(routed.provider),
        ) else {
            return Lookup::Bypass;
        };
        let Ok(prompt) = cache::prepare(body, false) else {
            return Lookup::Bypass;
        };
        // Answers differ by the client's dialect too.
        let model_key = match self.dialect {
            Dialect::Chat => std::borrow::Cow::Borrowed(model.id.as_str()),
            Dialect::Messages => std::borrow::Cow::Owned(format!("{}|messages", model.id)),
        };
        let key = prompt.key(&tenant.id, &provider.id, &model_key);
        let now = now_ms();
        for slot in cache::slots_for(&key, &shared.cache) {
            if let Ok((Some(value), _)) = hostcalls::get_shared_data(&cache::slot_name(slot))
                && let Some(e) = cache::lookup(&value, &key, &tenant.id, now)
            {
                return Lookup::Hit {
                    answer: e.body.to_vec(),
                    content_type: e.content_type.to_owned(),
                };
            }
        }
        self.cache_key = Some(key);
        Lookup::Miss
    }

    /// Stores a whole success answer under the miss's key, in whichever of
    /// its two slots `choose_victim` picks. Best effort: a race with another
    /// worker (CAS mismatch) just leaves the other's entry.
    pub(super) fn cache_store(&self, answer: &[u8]) {
        let (Some(key), Some(shared), Some(table)) = (&self.cache_key, &self.shared, &self.table)
        else {
            return;
        };
        let Some(tenant) = table.tenants.get(self.tenant) else {
            return;
        };
        let now = now_ms();
        let slots = cache::slots_for(key, &shared.cache);
        let read =
            |slot: u32| hostcalls::get_shared_data(&cache::slot_name(slot)).unwrap_or((None, None));
        let existing = [read(slots[0]), read(slots[1])];
        let victim = cache::choose_victim(
            [existing[0].0.as_deref(), existing[1].0.as_deref()],
            key,
            now,
        );
        let entry = cache::Entry {
            key: *key,
            tenant_id: &tenant.id,
            stored_ms: now,
            expires_ms: now.saturating_add(shared.cache.ttl_ms),
            status: 200,
            content_type: "application/json",
            body: answer,
        };
        let (Some(bytes), Some(&slot), Some((_, cas))) = (
            cache::encode_entry(&entry, shared.cache.max_entry_bytes),
            slots.get(victim),
            existing.get(victim),
        ) else {
            return;
        };
        match hostcalls::set_shared_data(&cache::slot_name(slot), Some(&bytes), *cas) {
            Ok(()) => {
                if let Some(m) = &shared.metrics {
                    let replaced = existing.get(victim).and_then(|e| e.0.as_ref());
                    Metrics::count(m.cache_stored_bytes, bytes.len() as u64);
                    Metrics::count(
                        m.cache_evicted_bytes,
                        replaced.map_or(0, |v| v.len() as u64),
                    );
                }
            }
            Err(s) => log::debug!("answer not cached: {s:?}"),
        }
    }
}
