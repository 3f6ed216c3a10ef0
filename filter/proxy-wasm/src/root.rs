//! The root context. The same module serves three roles, chosen by the root
//! id: the filter (parses its configuration once, hands every request
//! context a shared view of it, and picks up tables the singleton
//! publishes), the singleton (see `singleton`) and the upstream filter (see
//! `upstream`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Bytes, ContextType, MetricType};

use super::http::{Carry, Http};
use super::singleton::Singleton;
use super::upstream::Upstream;
use aipipe_core::config::{
    Config, SHARED_TABLE_KEY, SHARED_VERSION_KEY, SINGLETON_ROOT_ID, SingletonConfig,
    UPSTREAM_ROOT_ID, USAGE_QUEUE,
};
use aipipe_core::penalty::{self, Outcome, Penalties};
use aipipe_core::table::{RoutingTable, Table};

/// The worker metrics (ENVOY-NOTES 11, 13: defined once per VM; counters
/// are summed across workers on Envoy's `/stats/prometheus`).
pub struct Metrics {
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
}

impl Metrics {
    fn define() -> Option<Self> {
        let counter = |name| hostcalls::define_metric(MetricType::Counter, name).ok();
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
        })
    }

    pub fn count(id: u32, n: u64) {
        if n > 0 {
            let _ = hostcalls::increment_metric(id, n as i64);
        }
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
    fn define(model_id: &str) -> Option<Self> {
        // Dots separate name parts for Envoy's tag extraction (ENVOY-NOTES 12).
        let m = model_id.replace('.', "_");
        let def = |kind, what: &str| {
            hostcalls::define_metric(kind, &format!("aipipe.model.{m}.{what}")).ok()
        };
        Some(Self {
            ok: def(MetricType::Counter, "attempts_ok")?,
            failed: def(MetricType::Counter, "attempts_failed")?,
            penalty_milli: def(MetricType::Gauge, "penalty_milli")?,
        })
    }
}

/// Milliseconds since the Unix epoch, from the host clock.
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// What every request of this VM shares.
pub struct Shared {
    pub cluster_header: String,
    pub trust_tenant_header: bool,
    pub max_body_bytes: usize,
    pub max_attempts: u32,
    pub attempt_timeout_ms: u64,
    pub penalty_decay_ms: u64,
    pub cache: aipipe_core::cache::CacheConfig,
    pub failover_redirect: aipipe_core::config::FailoverRedirect,
    /// Attempts in flight that may fail over by redirect.
    pub carries: aipipe_core::carry::Carries<Carry>,
    pub metrics: Option<Metrics>,
    /// The shared penalties as last read: (CAS token, decoded).
    penalties: RefCell<(Option<u32>, Penalties)>,
    /// Per-model metric ids, defined on first use.
    model_metrics: RefCell<HashMap<String, ModelMetrics>>,
    /// The table in use: the bootstrap table until the singleton publishes one.
    table: RefCell<Option<Rc<Table>>>,
    /// The published version this VM last loaded (raw bytes of the key).
    seen_version: RefCell<Bytes>,
    /// This VM's id (the usage queue is looked up under it).
    vm_id: String,
    /// The singleton's usage queue, once resolved.
    usage_queue: std::cell::Cell<Option<u32>>,
    /// Requests since the last failed lookup of the queue.
    usage_queue_misses: std::cell::Cell<u32>,
    /// Random per VM, so request ids differ across workers and restarts.
    id_seed: u64,
    next_id: std::cell::Cell<u64>,
}

impl Shared {
    /// The current table. One cheap shared-data read per request notices a
    /// newly published version; only then is the table parsed and compiled.
    pub fn table(&self) -> Option<Rc<Table>> {
        if let Ok((Some(version), _)) = hostcalls::get_shared_data(SHARED_VERSION_KEY)
            && *self.seen_version.borrow() != version
        {
            self.load_published(version);
        }
        self.table.borrow().clone()
    }

    /// Puts a usage record on the singleton's queue. Without a singleton
    /// (no control plane configured) there is nowhere to send it.
    pub fn enqueue_usage(&self, record: &aipipe_core::usage::UsageRecord) {
        let queue = match self.usage_queue.get() {
            Some(q) => q,
            None => {
                // Look again now and then: the singleton may start later.
                let misses = self.usage_queue_misses.get();
                self.usage_queue_misses.set(misses.wrapping_add(1));
                if !misses.is_multiple_of(256) {
                    return;
                }
                match hostcalls::resolve_shared_queue(&self.vm_id, USAGE_QUEUE) {
                    Ok(Some(q)) => {
                        self.usage_queue.set(Some(q));
                        q
                    }
                    _ => return,
                }
            }
        };
        if let Ok(bytes) = serde_json::to_vec(record)
            && let Err(s) = hostcalls::enqueue_shared_queue(queue, Some(&bytes))
        {
            log::warn!("usage record {} not queued: {s:?}", record.id);
        }
    }

    fn load_published(&self, version: Bytes) {
        let loaded = hostcalls::get_shared_data(SHARED_TABLE_KEY)
            .ok()
            .and_then(|(bytes, _)| bytes)
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

    /// This Envoy's own penalties per model index of `table`, or None when
    /// every model is healthy here (the common case: nothing to apply).
    pub fn local_penalties(&self, table: &Table) -> Option<Vec<f64>> {
        let Ok((bytes, cas)) = hostcalls::get_shared_data(penalty::SHARED_KEY) else {
            return None;
        };
        let mut cached = self.penalties.borrow_mut();
        if cas != cached.0 || cas.is_none() {
            *cached = (
                cas,
                bytes.map(|b| Penalties::decode(&b)).unwrap_or_default(),
            );
        }
        let p = &cached.1;
        if p.models.is_empty() || p.epoch < table.penalty_epoch {
            // Empty, or from before an operator's reset.
            return None;
        }
        let now = now_ms();
        let local: Vec<f64> = table
            .models
            .iter()
            .map(|m| p.penalty(&m.id, now, self.penalty_decay_ms))
            .collect();
        local.iter().any(|&x| x > 0.0).then_some(local)
    }

    /// Notes how an attempt on a model went: its metrics, and its penalty in
    /// the value every worker shares (compare-and-swap, retried on a race).
    pub fn record_outcome(&self, table: &Table, model_id: &str, status: u16) {
        let Some(outcome) = Outcome::of_status(status) else {
            return;
        };
        let mut metrics = self.model_metrics.borrow_mut();
        if !metrics.contains_key(model_id)
            && let Some(m) = ModelMetrics::define(model_id)
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
            let _ = hostcalls::increment_metric(id, 1);
        }
        let now = now_ms();
        if outcome == Outcome::Success
            && self
                .penalties
                .borrow()
                .1
                .penalty(model_id, now, self.penalty_decay_ms)
                == 0.0
        {
            // A success on a model this Envoy holds no penalty for (as of
            // this request's read): nothing to lower, no shared write.
            return;
        }
        for _ in 0..8 {
            let Ok((bytes, cas)) = hostcalls::get_shared_data(penalty::SHARED_KEY) else {
                return;
            };
            let mut p = bytes.map(|b| Penalties::decode(&b)).unwrap_or_default();
            let reset = p.sync_epoch(table.penalty_epoch);
            let changed = p.record(model_id, outcome, now, self.penalty_decay_ms);
            if !changed && !reset {
                // A success on a healthy model: nothing worth a write.
                return;
            }
            p.retain(|id| table.resolve_model(id).is_some());
            match hostcalls::set_shared_data(penalty::SHARED_KEY, Some(&p.encode()), cas) {
                Ok(()) => {
                    if let Some(ids) = ids {
                        let milli = p.penalty(model_id, now, self.penalty_decay_ms) * 1000.0;
                        let _ = hostcalls::record_metric(ids.penalty_milli, milli as u64);
                    }
                    return;
                }
                // Another worker wrote first: read again and re-apply.
                Err(proxy_wasm::types::Status::CasMismatch) => continue,
                Err(s) => {
                    log::warn!("penalty update failed: {s:?}");
                    return;
                }
            }
        }
    }

    /// A request id unique across this Envoy's VMs.
    pub fn request_id(&self) -> String {
        let n = self.next_id.get().wrapping_add(1);
        self.next_id.set(n);
        format!("{:016x}{:08x}", self.id_seed, n & 0xffff_ffff)
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    singleton: Option<Singleton>,
    /// Configured as the upstream filter.
    upstream: bool,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(s) = &mut self.singleton {
            s.on_response(token_id, body_size);
        }
    }
}

impl Root {
    fn configure_singleton(&mut self, bytes: &[u8]) -> bool {
        match SingletonConfig::parse(bytes) {
            Ok(config) => {
                let mut singleton = Singleton::new(config.control_plane);
                let started = singleton.start();
                self.singleton = Some(singleton);
                started
            }
            Err(e) => {
                log::error!("refusing singleton configuration: {e}");
                false
            }
        }
    }
}

impl RootContext for Root {
    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(s) = &mut self.singleton {
            s.drain(queue_id);
        }
    }

    fn on_tick(&mut self) {
        if let Some(s) = &mut self.singleton {
            s.poll();
        }
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let root_id = hostcalls::get_property(vec!["plugin_root_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        if root_id == SINGLETON_ROOT_ID.as_bytes() {
            return self.configure_singleton(&bytes);
        }
        if root_id == UPSTREAM_ROOT_ID.as_bytes() {
            // Everything it needs comes with each request.
            self.upstream = true;
            return true;
        }
        match Config::parse(&bytes) {
            Ok(config) => {
                let mut seed = RandomState::new().build_hasher();
                seed.write_u64(0x6169_7069_7065);
                self.shared = Some(Rc::new(Shared {
                    cluster_header: config.cluster_header,
                    trust_tenant_header: config.trust_tenant_header,
                    max_body_bytes: config.max_body_bytes,
                    max_attempts: config.max_attempts,
                    attempt_timeout_ms: config.attempt_timeout_ms,
                    penalty_decay_ms: config.penalty_decay_ms,
                    cache: config.cache,
                    failover_redirect: config.failover_redirect,
                    carries: Default::default(),
                    penalties: RefCell::new((None, Penalties::default())),
                    model_metrics: RefCell::new(HashMap::new()),
                    metrics: Metrics::define(),
                    table: RefCell::new(config.table.map(Rc::new)),
                    seen_version: RefCell::new(Vec::new()),
                    vm_id: hostcalls::get_property(vec!["plugin_vm_id"])
                        .ok()
                        .flatten()
                        .and_then(|v| String::from_utf8(v).ok())
                        .unwrap_or_default(),
                    usage_queue: std::cell::Cell::new(None),
                    usage_queue_misses: std::cell::Cell::new(0),
                    id_seed: seed.finish(),
                    next_id: std::cell::Cell::new(0),
                }));
                log::info!(
                    "configured (bootstrap table version {})",
                    self.shared
                        .as_ref()
                        .and_then(|s| s.table.borrow().as_ref().map(|t| t.version))
                        .map_or_else(|| "none".to_owned(), |v| v.to_string())
                );
                true
            }
            Err(e) => {
                log::error!("refusing plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.upstream {
            return Some(Box::new(Upstream::default()));
        }
        Some(Box::new(Http::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
