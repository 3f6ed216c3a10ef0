//! The filter role's state in one proxy worker (one Wasm VM): the validated
//! configuration, the routing table in use, this Envoy's penalties as last
//! read, the failover state carried across internal redirects, metric ids
//! and request ids. Every request of the worker shares it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use super::host::{Host, HostError, MetricKind, now_ms};
use super::{Carried, Request};
use crate::carry::Carries;
use crate::config::Config;
use crate::contract::{PENALTIES_KEY, SHARED_TABLE_KEY, SHARED_VERSION_KEY};
use crate::directory::{self, KeyEntry, TenantEntry};
use crate::penalty::{self, Outcome, Penalties, Scope};
use crate::table::{Account, KeyHash, ModelIx, RoutingTable, Table};
use crate::usage::UsageRecord;

/// A tenant's policy from its entry, resolved against `table`; one that
/// does not parse (the control plane validated it: cannot happen) is logged
/// and the tenant may use nothing.
fn policy_of(json: &str, table: &Table, id: &str) -> Option<Arc<crate::policy::Compiled>> {
    if json.is_empty() {
        return None;
    }
    let p = serde_json::from_str::<crate::policy::Policy>(json)
        .inspect_err(|e| log::warn!("policy of tenant {id}: {e}"))
        .unwrap_or_else(|_| crate::policy::Policy {
            allow_models: vec![String::new()],
            ..Default::default()
        });
    Some(Arc::new(crate::policy::Compiled::compile(&p, table)))
}

/// A virtual key's own rate limits, and the key (hex SHA-256) they count
/// under.
#[derive(Debug, Clone)]
pub(super) struct KeyLimits {
    pub key: String,
    pub limits: crate::ratelimit::Limits,
}

/// What the directory says about the virtual key a request came with.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyFacts {
    pub limits: Option<KeyLimits>,
    /// Its id (`vk_…`); None for a bootstrap table's keys.
    pub id: Option<String>,
    /// It has a budget of its own (found by `id`).
    pub budgeted: bool,
}

/// The worker's counters (defined once per worker; a proxy sums them across
/// workers).
pub(super) struct Metrics {
    /// Answers whose usage could not be read (recorded, never as $0).
    pub usage_unparsed: u32,
    /// Requests answered by a failover candidate.
    pub failovers: u32,
    /// Failed upstream attempts (each failed-over or final failure).
    pub attempts_failed: u32,
    /// Attempts reached by Envoy's internal redirect (the streaming path).
    pub failover_redirects: u32,
    /// Failover redirects Envoy handed back instead of following (the
    /// route lacks the redirect policy, or its limit was reached): those
    /// failed over by call. Above 0 means the config needs a look.
    pub failover_unfollowed: u32,
    pub cache_hits: u32,
    pub cache_misses: u32,
    pub cache_bypasses: u32,
    /// Bytes written into cache slots, and bytes of the entries they
    /// replaced: their difference is what the cache holds (≤ slots ×
    /// max_entry_bytes).
    pub cache_stored_bytes: u32,
    pub cache_evicted_bytes: u32,
    /// Requests refused by their tenant's budget (429 budget_exceeded).
    pub budget_refused: u32,
    /// Requests refused by a rate limit (429 rate_limited).
    pub rate_limited: u32,
}

impl Metrics {
    fn define(host: &impl Host) -> Option<Self> {
        let counter = |name| host.define_metric(MetricKind::Counter, name);
        Some(Self {
            usage_unparsed: counter("aipipe.usage.unparsed")?,
            failovers: counter("aipipe.failovers")?,
            attempts_failed: counter("aipipe.attempts_failed")?,
            failover_redirects: counter("aipipe.failover.redirects")?,
            failover_unfollowed: counter("aipipe.failover.unfollowed")?,
            cache_hits: counter("aipipe.cache.hit")?,
            cache_misses: counter("aipipe.cache.miss")?,
            cache_bypasses: counter("aipipe.cache.bypass")?,
            cache_stored_bytes: counter("aipipe.cache.stored_bytes")?,
            cache_evicted_bytes: counter("aipipe.cache.evicted_bytes")?,
            budget_refused: counter("aipipe.budget.refused")?,
            rate_limited: counter("aipipe.rate_limited")?,
        })
    }
}

/// One model's metrics: attempts that succeeded / failed, and its local
/// penalty in thousandths (gauges hold integers).
struct ModelMetrics {
    ok: u32,
    failed: u32,
    penalty_milli: u32,
}

impl ModelMetrics {
    fn define(host: &impl Host, model_id: &str) -> Option<Self> {
        // Dots separate name parts for Envoy's tag extraction: none inside
        // the label value.
        let m = model_id.replace('.', "_");
        let def = |kind, what: &str| host.define_metric(kind, &format!("aipipe.model.{m}.{what}"));
        Some(Self {
            ok: def(MetricKind::Counter, "attempts_ok")?,
            failed: def(MetricKind::Counter, "attempts_failed")?,
            penalty_milli: def(MetricKind::Gauge, "penalty_milli")?,
        })
    }
}

/// Decoded directory tenants a worker keeps (each a few hundred bytes).
const ACCOUNT_CACHE: usize = 4096;

/// A directory tenant as decoded: the entry's CAS, the version of the table
/// it was resolved against, the account.
type CachedAccount = (u32, u64, Arc<Account>);

pub struct Filter {
    pub(super) config: Config,
    /// The table in use: the bootstrap table until a published one arrives.
    table: RefCell<Option<Rc<Table>>>,
    /// The published version this worker last loaded (raw bytes of the key).
    seen_version: RefCell<Vec<u8>>,
    /// Tenants read from the directory, by id: the entry's CAS (Envoy
    /// changes it on every write), the version of the table it was resolved
    /// against, the account. Bounded by `ACCOUNT_CACHE`.
    accounts: RefCell<HashMap<String, CachedAccount>>,
    /// The shared penalties as last read: (CAS token, decoded).
    penalties: RefCell<(Option<u32>, Penalties)>,
    /// Attempts in flight that may fail over by redirect.
    pub(super) carries: Carries<Carried>,
    pub(super) metrics: Option<Metrics>,
    /// The OpenTelemetry GenAI metrics.
    pub(super) genai: Option<super::genai::GenAi>,
    /// Per-model metric ids, defined on first use.
    model_metrics: RefCell<HashMap<String, ModelMetrics>>,
    /// Random per worker, so request ids differ across workers and restarts.
    id_seed: u64,
    next_id: Cell<u64>,
}

impl Filter {
    /// The filter role of one worker, from its validated configuration.
    pub fn new(mut config: Config, host: &impl Host) -> Rc<Self> {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u64(0x6169_7069_7065);
        let table = config.table.take().map(Rc::new);
        Rc::new(Self {
            config,
            table: RefCell::new(table),
            seen_version: RefCell::new(Vec::new()),
            accounts: RefCell::new(HashMap::new()),
            penalties: RefCell::new((None, Penalties::default())),
            carries: Carries::default(),
            metrics: Metrics::define(host),
            genai: super::genai::GenAi::define(host),
            model_metrics: RefCell::new(HashMap::new()),
            id_seed: seed.finish(),
            next_id: Cell::new(0),
        })
    }

    /// A request through this filter (one per HTTP stream).
    pub fn request(self: &Rc<Self>) -> Request {
        Request::new(self.clone())
    }

    /// The version of the table in use, if any (for the configure log line).
    pub fn table_version(&self) -> Option<u64> {
        self.table.borrow().as_ref().map(|t| t.version)
    }

    /// The current table, priced for a request that starts at `start_ms`.
    /// One cheap shared-data read per request notices a newly published
    /// version; only then is the table parsed and compiled. One comparison
    /// notices a scheduled price change that came into force or a model
    /// that retired; only then is the table repriced (a copy: requests in
    /// flight keep the table, and so the prices and models, they started
    /// with). filter/README.md, "Scheduled price changes" and "Scheduled
    /// retirements".
    pub(super) fn table(&self, host: &impl Host, start_ms: u64) -> Option<Rc<Table>> {
        if let (Some(version), _) = host.shared_get(SHARED_VERSION_KEY)
            && *self.seen_version.borrow() != version
        {
            self.load_published(host, version);
        }
        let mut slot = self.table.borrow_mut();
        if let Some(t) = slot.as_mut()
            && t.price_change_due(start_ms)
        {
            let mut repriced = Table::clone(t);
            repriced.reprice(start_ms);
            log::info!(
                "routing table version {} repriced: scheduled price changes and retirements as of {}",
                repriced.version,
                crate::timestamp::Timestamp(start_ms)
            );
            *t = Rc::new(repriced);
        }
        slot.clone()
    }

    fn load_published(&self, host: &impl Host, version: Vec<u8>) {
        let loaded = host
            .shared_get(SHARED_TABLE_KEY)
            .0
            .ok_or_else(|| "no table behind the published version".to_owned())
            .and_then(|bytes| {
                serde_json::from_slice::<RoutingTable>(&bytes).map_err(|e| e.to_string())
            })
            .and_then(|raw| Table::compile(raw).map_err(|e| e.to_string()));
        match loaded {
            Ok(table) => {
                log::info!("loaded routing table version {}", table.version);
                *self.table.borrow_mut() = Some(Rc::new(table));
            }
            // Keep routing with the table we have; do not retry every request.
            Err(e) => log::error!("ignoring published routing table: {e}"),
        }
        *self.seen_version.borrow_mut() = version;
    }

    /// The tenant of a virtual key: the table's own tenants (a bootstrap
    /// table's), then the directory's entry for the key's hash, in this
    /// Envoy's shared data.
    pub(super) fn account_by_key(
        &self,
        host: &impl Host,
        table: &Table,
        hash: &KeyHash,
    ) -> Option<(Arc<Account>, KeyFacts)> {
        if let Some(a) = table.account_by_key_hash(hash) {
            return Some((a, KeyFacts::default()));
        }
        let hex = crate::sha::hex(hash);
        let name = directory::key_key(&hex);
        let entry = KeyEntry::decode(&host.shared_get(&name).0?)
            .inspect_err(|e| log::warn!("directory entry {name}: {e}"))
            .ok()?;
        if entry.removed {
            return None;
        }
        let facts = KeyFacts {
            limits: (!entry.limits.is_none()).then_some(KeyLimits {
                key: hex,
                limits: entry.limits,
            }),
            budgeted: entry.budgeted && !entry.id.is_empty(),
            id: (!entry.id.is_empty()).then_some(entry.id),
        };
        Some((self.account_by_id(host, table, &entry.tenant)?, facts))
    }

    /// A tenant by id: the table's own, then the directory's. A decoded entry
    /// is kept while its shared-data CAS and the table stay the same.
    pub(super) fn account_by_id(
        &self,
        host: &impl Host,
        table: &Table,
        id: &str,
    ) -> Option<Arc<Account>> {
        if let Some(a) = table.account_by_id(id) {
            return Some(a);
        }
        let (bytes, cas) = host.shared_get(&directory::tenant_key(id));
        let bytes = bytes?;
        let cas = cas.unwrap_or(0);
        if let Some((c, v, a)) = self.accounts.borrow().get(id)
            && *c == cas
            && *v == table.version
        {
            return Some(a.clone());
        }
        let entry = TenantEntry::decode(&bytes)
            .inspect_err(|e| log::warn!("directory entry of tenant {id}: {e}"))
            .ok()?;
        if entry.removed {
            return None;
        }
        let account = Arc::new(
            table
                .account(
                    id.to_owned(),
                    entry.disabled,
                    entry.pass_through,
                    entry
                        .provider_keys
                        .iter()
                        .map(|(p, k)| (p.as_str(), k.as_str())),
                )
                .with_limits(entry.limits)
                .with_policy(policy_of(&entry.policy, table, id))
                .with_router(router_of(&entry.router, id)),
        );
        let mut cached = self.accounts.borrow_mut();
        if cached.len() >= ACCOUNT_CACHE && !cached.contains_key(id) {
            // Rarely hit (this many distinct tenants on one worker between
            // two clears); starting over keeps it simple and bounded.
            cached.clear();
        }
        cached.insert(id.to_owned(), (cas, table.version, account.clone()));
        Some(account)
    }

    /// A request id unique across this Envoy's workers.
    pub(super) fn request_id(&self) -> String {
        let n = self.next_id.get().wrapping_add(1);
        self.next_id.set(n);
        format!("{:016x}{:08x}", self.id_seed, n & 0xffff_ffff)
    }

    pub(super) fn count(&self, host: &impl Host, which: impl Fn(&Metrics) -> u32, n: u64) {
        if n > 0
            && let Some(m) = &self.metrics
        {
            host.increment_metric(which(m), n);
        }
    }

    /// Puts a usage record on the usage queue. Without a singleton (no
    /// control plane configured) there is nowhere to send it.
    pub(super) fn enqueue_usage(&self, host: &impl Host, record: &UsageRecord) {
        super::budget::settle(host, record);
        if let Ok(bytes) = serde_json::to_vec(record)
            && let Err(e) = host.enqueue_usage(&bytes)
        {
            log::debug!("usage record {} not queued: {e:?}", record.id);
        }
    }

    /// This Envoy's own penalties per model index of `table` for `tenant`
    /// (the model's, or that of the (model, key) pair when the tenant's key
    /// earned a worse one here or, as the table says, anywhere), or None
    /// when every model is healthy (the common case: nothing to apply).
    pub(super) fn local_penalties(
        &self,
        host: &impl Host,
        table: &Table,
        tenant: &Account,
    ) -> Option<Vec<f64>> {
        let (bytes, cas) = host.shared_get(PENALTIES_KEY);
        let mut cached = self.penalties.borrow_mut();
        if cas != cached.0 || cas.is_none() {
            *cached = (
                cas,
                bytes.map(|b| Penalties::decode(&b)).unwrap_or_default(),
            );
        }
        let p = &cached.1;
        // Empty, or from before an operator's reset: only the table's
        // key-scoped penalties can apply.
        let own = !p.models.is_empty() && p.epoch >= table.penalty_epoch;
        if !own && !table.has_key_penalties() {
            return None;
        }
        let now = now_ms(host);
        let decay = self.config.penalty_decay_ms;
        let keyed = own && p.has_key_scoped();
        let local: Vec<f64> = table
            .models_ix()
            .map(|(i, m)| {
                // The control plane's view of the pair, from every Envoy.
                let fleet = table.key_penalty(i, tenant);
                if !own {
                    return fleet;
                }
                let own = p.penalty(&m.id, now, decay).max(fleet);
                // The pair's entry is looked up only when some pair has one.
                let tag = keyed
                    .then(|| table.provider_of(i).and_then(|pi| tenant.key_tag(pi)))
                    .flatten();
                match tag {
                    Some(tag) => own.max(p.penalty(&penalty::key_scoped(&m.id, tag), now, decay)),
                    None => own,
                }
            })
            .collect();
        local.iter().any(|&x| x > 0.0).then_some(local)
    }

    /// Notes how an attempt on a model with the tenant's key went: its
    /// metrics, and its penalty in the value every worker shares
    /// (compare-and-swap, retried on a race) — the model's, or the (model,
    /// key) pair's when the answer was about the key (`penalty::classify`).
    pub(super) fn record_outcome(
        &self,
        host: &impl Host,
        table: &Table,
        tenant: Option<&Account>,
        model: ModelIx,
        status: u16,
    ) {
        let Some((outcome, scope)) = penalty::classify(status) else {
            return;
        };
        let Some(m) = table.model(model) else {
            return;
        };
        let model_id = m.id.as_str();
        // A success touches the pair's entry only when some pair has one:
        // the common case (a success, no key penalized) builds no name.
        let pair_may_matter =
            outcome == Outcome::Failure || self.penalties.borrow().1.has_key_scoped();
        let tag = pair_may_matter
            .then(|| table.provider_of(model).and_then(|p| tenant?.key_tag(p)))
            .flatten()
            .map(|t| penalty::key_scoped(model_id, t));
        let mut metrics = self.model_metrics.borrow_mut();
        if !metrics.contains_key(model_id)
            && let Some(m) = ModelMetrics::define(host, model_id)
        {
            metrics.insert(model_id.to_owned(), m);
        }
        let ids = metrics.get(model_id);
        if let Some(ids) = ids {
            let id = if outcome == Outcome::Success {
                ids.ok
            } else {
                ids.failed
            };
            host.increment_metric(id, 1);
        }
        // What the outcome moves: a success lowers the model's penalty and
        // the pair's; a failure raises the one who earned it.
        let entries: Vec<&str> = match (outcome, scope) {
            (Outcome::Success, _) => std::iter::once(model_id).chain(tag.as_deref()).collect(),
            (Outcome::Failure, Scope::Model) => vec![model_id],
            (Outcome::Failure, Scope::Key) => tag.as_deref().into_iter().collect(),
        };
        let now = now_ms(host);
        let decay = self.config.penalty_decay_ms;
        if outcome == Outcome::Success
            && entries
                .iter()
                .all(|e| self.penalties.borrow().1.penalty(e, now, decay) == 0.0)
        {
            // A success where this Envoy holds no penalty (as of this
            // request's read): nothing to lower, no shared write.
            return;
        }
        for _ in 0..8 {
            let (bytes, cas) = host.shared_get(PENALTIES_KEY);
            let mut p = bytes.map(|b| Penalties::decode(&b)).unwrap_or_default();
            let reset = p.sync_epoch(table.penalty_epoch);
            let mut changed = false;
            for e in &entries {
                changed |= p.record(e, outcome, now, decay);
            }
            if !changed && !reset {
                // A success on a healthy model: nothing worth a write.
                return;
            }
            p.retain(|id| table.resolve_model(id).is_some());
            match host.shared_set(PENALTIES_KEY, &p.encode(), cas) {
                Ok(()) => {
                    if let Some(ids) = ids {
                        let milli = p.penalty(model_id, now, decay) * 1000.0;
                        host.record_metric(ids.penalty_milli, milli as u64);
                    }
                    return;
                }
                // Another worker wrote first: read again and re-apply.
                Err(HostError::CasMismatch) => continue,
                Err(e) => {
                    log::warn!("penalty update failed: {e:?}");
                    return;
                }
            }
        }
    }
}

/// A tenant entry's correction to the router model; a malformed one is
/// logged and routing goes on with the global model.
fn router_of(bytes: &[u8], tenant: &str) -> Option<Arc<crate::tenant_router::Adjustment>> {
    if bytes.is_empty() {
        return None;
    }
    crate::tenant_router::Adjustment::decode(bytes)
        .inspect_err(|e| log::warn!("router adjustment of tenant {tenant} ignored: {}", e.0))
        .ok()
        .map(Arc::new)
}
