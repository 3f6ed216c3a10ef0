//! The singleton role: one instance per Envoy (in the proxy-wasm host, a
//! root context on the main thread: a bootstrap Wasm service with
//! `singleton: true` and the filter's `vm_id`). It keeps this Envoy's copy of
//! the routing state current (filter/README.md, "Tenant directory"): one
//! request for changes always waits at the control plane, which answers as
//! soon as something changed after the revision held; the singleton writes
//! the global table and each changed directory entry into shared data, where
//! every worker VM reads what a request needs (envoy/README.md, Envoy facts
//! 11–12: asking from the filter's own roots would ask once per worker). A
//! new Envoy starts at revision 0 and receives everything, page by page.
//!
//! It also ships usage: worker VMs put one record per request on a shared
//! queue; the singleton drains it into a bounded buffer and posts batches,
//! keeping every record until the control plane acknowledged it. While the
//! control plane is down records wait; past the bound new ones are dropped
//! and counted.

use std::collections::VecDeque;
use std::time::Duration;

use super::host::{Host, HostError, MetricKind};
use crate::config::ControlPlane;
use crate::contract::{
    AWAITING_NOTICE, CHANGES_PATH, DIRECTORY_REVISION_KEY, KEY_RESERVATIONS_PREFIX,
    RESERVATION_NOTICE, RESERVATIONS_PREFIX, SHARED_TABLE_KEY, SHARED_VERSION_KEY, TOKEN_HEADER,
    USAGE_PATH,
};
use crate::directory::{self, BudgetEntry, Delta, KeyEntry, Kind, TenantEntry};
use crate::table::{RoutingTable, Table};
use crate::usage::{UsageAck, UsageSource};

use super::budget::{Scope, update_held};

pub struct Singleton {
    cp: ControlPlane,
    /// The directory revision this Envoy holds; read from shared data at the
    /// first call.
    revision: Option<u64>,
    /// The changes request waiting at the control plane, and when it was
    /// sent.
    pending: Option<(u32, std::time::SystemTime)>,
    /// Whether the last call answered, and why not; logged on change only.
    reachable: Option<bool>,
    last_failure: String,
    /// Usage records (JSON) not yet acknowledged, oldest first.
    buffered: VecDeque<Vec<u8>>,
    /// The usage POST in flight and how many records it carries.
    posting: Option<(u32, usize)>,
    /// Held spend (by its shared-data key, `Scope::held_key`) acknowledged
    /// and waiting for a directory revision.
    awaiting: std::collections::BTreeSet<String>,
    metrics: Option<Metrics>,
    /// What each batch says about this Envoy's queue (`UsageSource`): the
    /// name it goes by, records dropped and acknowledged since it started.
    node: String,
    dropped: u64,
    sent: u64,
    /// Budget scopes (their held spend's shared-data key) the workers said
    /// hold something, until nothing is held; bounded by
    /// [`crate::validate::MAX_REPORTED_RESERVATIONS`].
    watched: std::collections::BTreeSet<String>,
    /// The reservations last sent and when; None: send them again.
    reported: Option<(Reservations, std::time::SystemTime)>,
}

/// Reservations are sent when they change, and this often while any are
/// held (the control plane forgets an Envoy's after three times as long).
pub const RESERVATIONS_EVERY: Duration = Duration::from_secs(10);

/// In-flight reservations by tenant and by virtual key id.
type Reservations = (
    std::collections::BTreeMap<String, u64>,
    std::collections::BTreeMap<String, u64>,
);

struct Metrics {
    dropped: u32,
    buffered: u32,
    sent: u32,
}

impl Metrics {
    fn define(host: &impl Host) -> Option<Self> {
        Some(Self {
            dropped: host.define_metric(MetricKind::Counter, "aipipe.usage.dropped")?,
            buffered: host.define_metric(MetricKind::Gauge, "aipipe.usage.buffered")?,
            sent: host.define_metric(MetricKind::Counter, "aipipe.usage.sent")?,
        })
    }
}

impl Singleton {
    /// The singleton role, its metrics defined. The host ticks it every
    /// [`Singleton::poll_interval`] and hands it the workers' usage records;
    /// the first poll waits for the first tick (during configuration the
    /// cluster manager is not ready and a call would fail).
    pub fn new(cp: ControlPlane, host: &impl Host) -> Self {
        let node = node_name(&cp.node, host);
        log::info!("singleton: this Envoy reports its usage queue as node {node}");
        Self {
            cp,
            revision: None,
            pending: None,
            reachable: None,
            last_failure: String::new(),
            buffered: VecDeque::new(),
            posting: None,
            awaiting: Default::default(),
            metrics: Metrics::define(host),
            node,
            dropped: 0,
            sent: 0,
            watched: Default::default(),
            // Nothing held: nothing to send until something is.
            reported: Some((Reservations::default(), std::time::UNIX_EPOCH)),
        }
    }

    /// The name this Envoy's usage queue is reported under.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records dropped before they reached the singleton (a host whose
    /// queue to it was full).
    pub fn count_dropped(&mut self, host: &impl Host, n: u64) {
        self.dropped = self.dropped.saturating_add(n);
        if let Some(m) = &self.metrics {
            host.increment_metric(m.dropped, n);
        }
    }

    /// How often the host should call [`Singleton::poll`].
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.cp.poll_ms)
    }

    /// Takes the usage records the workers queued into the buffer (bounded:
    /// past it, records are dropped and counted).
    pub fn take_records(&mut self, host: &impl Host, records: impl IntoIterator<Item = Vec<u8>>) {
        let mut dropped = 0u64;
        for record in records {
            match record.split_first() {
                Some((&RESERVATION_NOTICE, key)) => {
                    self.watch(key);
                    continue;
                }
                Some((&AWAITING_NOTICE, key)) => {
                    self.await_revision(key);
                    continue;
                }
                _ => {}
            }
            if self.buffered.len() < self.cp.max_buffered_records {
                self.buffered.push_back(record);
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.count_dropped(host, dropped);
        }
        if let Some(m) = &self.metrics {
            host.record_metric(m.buffered, self.buffered.len() as u64);
        }
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage(host);
        }
    }

    /// Usage records held and not yet acknowledged (a batch in flight
    /// included).
    pub fn unacknowledged(&self) -> usize {
        self.buffered.len()
    }

    /// Everything this singleton still owes the control plane, for the one
    /// that takes its place when its configuration is replaced inside a
    /// running Envoy (the native build's singleton is a listener's filter
    /// configuration): every record not acknowledged, oldest first (a batch
    /// in flight included: the control plane ignores a record it already
    /// has), then a reservation notice for each budget scope it watches, as
    /// the workers send them. It holds none of it afterwards.
    pub fn hand_over(&mut self) -> Vec<Vec<u8>> {
        self.posting = None;
        let mut out: Vec<Vec<u8>> = self.buffered.drain(..).collect();
        let notice = |kind: u8, key: String| {
            let mut notice = Vec::with_capacity(1 + key.len());
            notice.push(kind);
            notice.extend_from_slice(key.as_bytes());
            notice
        };
        let watched = std::mem::take(&mut self.watched);
        out.extend(watched.into_iter().map(|k| notice(RESERVATION_NOTICE, k)));
        let awaiting = std::mem::take(&mut self.awaiting);
        out.extend(awaiting.into_iter().map(|k| notice(AWAITING_NOTICE, k)));
        out
    }

    /// A replaced singleton's notice: acknowledged spend under `key` waits
    /// for a directory revision (settled by `reflect_budgets`).
    fn await_revision(&mut self, key: &[u8]) {
        if let Some(key) = budget_scope(key)
            && self.awaiting.len() < crate::validate::MAX_REPORTED_RESERVATIONS
        {
            self.awaiting.insert(key.to_owned());
        }
    }

    /// A worker's notice: the held spend under `key` is no longer empty.
    fn watch(&mut self, key: &[u8]) {
        if let Some(key) = budget_scope(key)
            && self.watched.len() < crate::validate::MAX_REPORTED_RESERVATIONS
        {
            self.watched.insert(key.to_owned());
        }
    }

    /// The in-flight reservations of the scopes watched; a scope with
    /// nothing held any more is no longer watched.
    fn reservations(&mut self, host: &impl Host) -> Reservations {
        let mut out = Reservations::default();
        self.watched.retain(|key| {
            let held = host
                .shared_get(key)
                .0
                .and_then(|b| crate::budget::Held::decode(&b))
                .unwrap_or_default();
            if held.inflight_nusd > 0 {
                if let Some(t) = key.strip_prefix(RESERVATIONS_PREFIX) {
                    out.0.insert(t.to_owned(), held.inflight_nusd);
                } else if let Some(k) = key.strip_prefix(KEY_RESERVATIONS_PREFIX) {
                    out.1.insert(k.to_owned(), held.inflight_nusd);
                }
            }
            held.outstanding() > 0
        });
        out
    }

    /// Posts the oldest buffered records unless a post is in flight, with
    /// this Envoy's reservations; with no records, only when those changed
    /// (or are held and were last sent [`RESERVATIONS_EVERY`] ago).
    fn post_usage(&mut self, host: &impl Host) {
        if self.posting.is_some() {
            return;
        }
        let reservations = self.reservations(host);
        let now = host.now();
        let due = match &self.reported {
            None => true,
            Some((sent, at)) => {
                *sent != reservations
                    || (!(reservations.0.is_empty() && reservations.1.is_empty())
                        && now.duration_since(*at).unwrap_or_default() >= RESERVATIONS_EVERY)
            }
        };
        if self.buffered.is_empty() && !due {
            return;
        }
        let n = self.buffered.len().min(self.cp.batch_records);
        let mut body = Vec::with_capacity(n * 320 + 16);
        body.extend_from_slice(b"{\"records\":[");
        for (i, r) in self.buffered.iter().take(n).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(r);
        }
        body.extend_from_slice(b"],\"source\":");
        let source = UsageSource {
            node: self.node.clone(),
            queued: self.buffered.len().saturating_sub(n) as u64,
            dropped: self.dropped,
            sent: self.sent,
            reserved_nusd: reservations.0.clone(),
            key_reserved_nusd: reservations.1.clone(),
        };
        self.reported = Some((reservations, now));
        if serde_json::to_writer(&mut body, &source).is_err() {
            body.extend_from_slice(b"null");
        }
        body.push(b'}');
        let headers = [
            (":method", "POST"),
            (":path", USAGE_PATH),
            (":authority", self.cp.authority.as_str()),
            ("content-type", "application/json"),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        match host.dispatch(
            &self.cp.cluster,
            &headers,
            &body,
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.posting = Some((token, n)),
            Err(s) => {
                self.reported = None;
                self.mark(false, &format!("cannot post usage: {s:?}"));
            }
        }
    }

    /// Ships usage, and asks for changes unless a request for them is
    /// already waiting at the control plane.
    pub fn poll(&mut self, host: &impl Host) {
        self.post_usage(host);
        if self.pending.is_none() {
            self.ask(host);
        }
    }

    /// Asks for every change after the revision this Envoy holds; the
    /// control plane holds the request until there is one (or `wait_ms`).
    fn ask(&mut self, host: &impl Host) {
        let since = *self.revision.get_or_insert_with(|| held_revision(host));
        let path = format!("{CHANGES_PATH}?since={since}&wait_ms={}", self.cp.wait_ms);
        let headers = [
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", self.cp.authority.as_str()),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        let timeout = Duration::from_millis(self.cp.wait_ms.saturating_add(self.cp.timeout_ms));
        match host.dispatch(&self.cp.cluster, &headers, &[], timeout) {
            Ok(token) => self.pending = Some((token, host.now())),
            Err(s) => self.mark(
                false,
                &format!("cannot call cluster {}: {s:?}", self.cp.cluster),
            ),
        }
    }

    /// The answer to one of its calls.
    pub fn on_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        if let Some((posting, n)) = self.posting
            && posting == token
        {
            self.posting = None;
            return self.on_usage_response(host, n, body_size);
        }
        let Some((pending, asked)) = self.pending else {
            return;
        };
        if pending != token {
            return;
        }
        self.pending = None;
        let status = host.call_response_header(":status").unwrap_or_default();
        if status.as_slice() != b"200" {
            return self.mark(
                false,
                &format!(
                    "changes request answered {}",
                    String::from_utf8_lossy(&status)
                ),
            );
        }
        let body = host.call_response_body(body_size);
        match self.apply(host, &body) {
            // More may be waiting (another page), or the control plane held
            // the call until now: ask again at once. A quick empty answer
            // waits for the next tick, so a control plane that does not hold
            // calls is never asked in a loop.
            Ok(busy) => {
                let held = host.now().duration_since(asked).unwrap_or_default()
                    >= Duration::from_millis(self.cp.wait_ms / 2);
                if busy || held {
                    self.ask(host);
                }
            }
            Err(why) => self.mark(false, &why),
        }
    }

    /// Only an acknowledged batch leaves the buffer; anything else is retried
    /// (the control plane ignores records it already has).
    fn on_usage_response(&mut self, host: &impl Host, n: usize, body_size: usize) {
        let status = host.call_response_header(":status").unwrap_or_default();
        if status.as_slice() != b"200" {
            self.reported = None;
            return self.mark(
                false,
                &format!(
                    "usage batch answered {:?}",
                    String::from_utf8_lossy(&status)
                ),
            );
        }
        let body = host.call_response_body(body_size);
        let acked_at = serde_json::from_slice::<UsageAck>(&body).map_or(0, |a| a.revision);
        let acked: Vec<Vec<u8>> = self.buffered.drain(..n.min(self.buffered.len())).collect();
        self.budgets_acknowledged(host, &acked, acked_at);
        self.sent = self.sent.saturating_add(n as u64);
        if let Some(m) = &self.metrics {
            host.increment_metric(m.sent, n as u64);
            host.record_metric(m.buffered, self.buffered.len() as u64);
        }
        self.mark(true, "");
        if self.buffered.len() >= self.cp.batch_records {
            self.post_usage(host);
        }
    }

    /// Applies a delta: only one that starts at the revision held, and only
    /// once every record in it is valid (the global table compiles as the
    /// workers will compile it, every entry decodes); then the global table
    /// first, each entry under its own key unless the one there is as new
    /// (so a delta applied twice, or an entry older than the one held,
    /// changes nothing), the revision last. True when it carried anything.
    fn apply(&mut self, host: &impl Host, body: &[u8]) -> Result<bool, String> {
        let delta = Delta::parse(body).map_err(|e| format!("malformed changes: {e}"))?;
        let held = self.revision.unwrap_or(0);
        if delta.since != held {
            return Err(format!(
                "changes since revision {} do not apply to revision {held}; asking again",
                delta.since
            ));
        }
        let mut global = None;
        let mut removals = Vec::with_capacity(delta.records.len());
        for r in &delta.records {
            match r.kind {
                Kind::Global => {
                    let raw: RoutingTable = serde_json::from_slice(r.value)
                        .map_err(|e| format!("table is not valid JSON: {e}"))?;
                    let version = raw.version;
                    Table::compile(raw)
                        .map_err(|e| format!("table version {version} refused: {e}"))?;
                    global = Some((r.value, version));
                }
                Kind::Tenant => removals.push(
                    TenantEntry::decode(r.value)
                        .map_err(|e| format!("tenant entry {}: {e}", r.name))?
                        .removed,
                ),
                Kind::Key => removals.push(
                    KeyEntry::decode(r.value)
                        .map_err(|e| format!("key entry {}: {e}", r.name))?
                        .removed,
                ),
                Kind::Budget | Kind::KeyBudget => removals.push(
                    BudgetEntry::decode(r.value)
                        .map_err(|e| format!("budget entry {}: {e}", r.name))?
                        .removed,
                ),
            }
        }
        if let Some((json, version)) = global {
            // The table first, its version last: a worker that sees the new
            // version finds the table behind it.
            host.shared_set(SHARED_TABLE_KEY, json, None)
                .and_then(|()| {
                    host.shared_set(SHARED_VERSION_KEY, version.to_string().as_bytes(), None)
                })
                .map_err(|s| format!("cannot publish the table: {s:?}"))?;
            log::info!("singleton: published routing table version {version}");
        }
        let mut written = 0usize;
        let entries = delta.records.iter().filter(|r| r.kind != Kind::Global);
        for (r, &removal) in entries.zip(&removals) {
            let name = match r.kind {
                Kind::Tenant => directory::tenant_key(r.name),
                Kind::Budget => directory::budget_key(r.name),
                Kind::KeyBudget => directory::key_budget_key(r.name),
                _ => directory::key_key(r.name),
            };
            if write_entry(host, &name, r.value, removal)? {
                written += 1;
            }
        }
        host.shared_set(
            DIRECTORY_REVISION_KEY,
            delta.revision.to_string().as_bytes(),
            None,
        )
        .map_err(|s| format!("cannot record the directory revision: {s:?}"))?;
        self.revision = Some(delta.revision);
        self.reflect_budgets(host, delta.revision);
        self.mark(true, "");
        if !delta.records.is_empty() && !delta.more {
            log::info!(
                "singleton: directory at revision {} ({written} entries written)",
                delta.revision
            );
        }
        Ok(!delta.records.is_empty() || delta.more)
    }

    /// The control plane stored these records at revision `at`: the costs
    /// of those that were reserved against a budget move from `unacked` to
    /// waiting for that revision (`budget::Held`).
    fn budgets_acknowledged(&mut self, host: &impl Host, records: &[Vec<u8>], at: u64) {
        /// The fields of a usage record this needs (the rest skipped).
        #[derive(serde::Deserialize)]
        struct Budgeted {
            tenant: String,
            cost_nusd: u64,
            reserved_nusd: Option<u64>,
            virtual_key: Option<String>,
            key_reserved_nusd: Option<u64>,
        }
        const RESERVED: &[u8] = b"reserved_nusd\"";
        let mut by_scope: std::collections::BTreeMap<String, u64> = Default::default();
        let mut add = |key: String, nusd: u64| {
            let sum = by_scope.entry(key).or_default();
            *sum = sum.saturating_add(nusd);
        };
        // Most records reserved nothing (no budget): not parsed at all.
        let budgeted = records
            .iter()
            .filter(|r| r.windows(RESERVED.len()).any(|w| w == RESERVED));
        for r in budgeted {
            let Ok(r) = serde_json::from_slice::<Budgeted>(r) else {
                continue;
            };
            if r.reserved_nusd.is_some() {
                add(Scope::Tenant(&r.tenant).held_key(), r.cost_nusd);
            }
            if let (Some(_), Some(k)) = (r.key_reserved_nusd, &r.virtual_key) {
                add(Scope::Key(k).held_key(), r.cost_nusd);
            }
        }
        let held = self.revision.unwrap_or(0);
        let now = super::host::now_ms(host);
        for (key, nusd) in by_scope {
            update_held(host, &key, |h| h.acknowledged(nusd, at, held, now));
            if at > held {
                self.awaiting.insert(key);
            }
        }
    }

    /// This Envoy now holds `revision`: acknowledged spend the budget
    /// entries written by then show leaves the held state.
    fn reflect_budgets(&mut self, host: &impl Host, revision: u64) {
        let keys: Vec<String> = self.awaiting.iter().cloned().collect();
        for key in keys {
            let mut waiting = false;
            let now = super::host::now_ms(host);
            update_held(host, &key, |h| {
                h.reflected(revision, now);
                waiting = !h.acked.is_empty();
            });
            if !waiting {
                self.awaiting.remove(&key);
            }
        }
    }

    fn mark(&mut self, ok: bool, why: &str) {
        if ok && self.reachable != Some(true) {
            log::info!("singleton: control plane reachable");
            self.last_failure.clear();
        } else if !ok && self.last_failure != why {
            log::warn!("singleton: {why}; filters keep routing with the last table");
            why.clone_into(&mut self.last_failure);
        }
        self.reachable = Some(ok);
    }
}

/// The budget scope's shared-data key a notice names, if it names one.
fn budget_scope(key: &[u8]) -> Option<&str> {
    let key = std::str::from_utf8(key).ok()?;
    (key.starts_with(RESERVATIONS_PREFIX) || key.starts_with(KEY_RESERVATIONS_PREFIX))
        .then_some(key)
}

/// The name a singleton reports its Envoy's usage queue under: the
/// configuration's `node`, else the proxy's node id, else a random one
/// (`envoy-<16 hex digits>`, new at each start) — never empty, and only
/// characters the control plane accepts.
fn node_name(configured: &Option<String>, host: &impl Host) -> String {
    configured
        .clone()
        .or_else(|| host.node_id())
        .map(|n| crate::usage::node_name(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(crate::flow::host::now_ms(host));
            format!("envoy-{:016x}", h.finish())
        })
}

/// The directory revision this Envoy's shared data holds: a singleton
/// restarted inside a running Envoy (a configuration reload) resumes from
/// it; a new Envoy starts at 0 and gets everything.
fn held_revision(host: &impl Host) -> u64 {
    host.shared_get(DIRECTORY_REVISION_KEY)
        .0
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
        .unwrap_or(0)
}

/// Writes one directory entry unless the entry there is as new or newer;
/// a removal of an entry this Envoy never held is not written (shared data
/// cannot drop a key, so tombstones cost memory). True when written.
fn write_entry(host: &impl Host, name: &str, value: &[u8], removal: bool) -> Result<bool, String> {
    let rev = directory::entry_rev(value).unwrap_or(0);
    // Only the singleton writes entries; the CAS guards the read-compare-write
    // all the same.
    for _ in 0..4 {
        let (current, cas) = host.shared_get(name);
        if current.is_none() && removal {
            return Ok(false);
        }
        if current.as_deref().and_then(directory::entry_rev) >= Some(rev) {
            return Ok(false);
        }
        match host.shared_set(name, value, cas) {
            Ok(()) => return Ok(true),
            Err(HostError::CasMismatch) => continue,
            Err(e) => return Err(format!("cannot write directory entry {name}: {e:?}")),
        }
    }
    Err(format!(
        "directory entry {name} kept changing under the singleton"
    ))
}
