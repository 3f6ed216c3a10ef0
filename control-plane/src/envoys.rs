//! Each Envoy's usage queue as its singleton last reported it (the `source`
//! of a usage batch: `aipipe_core::usage::UsageSource`), kept in memory for
//! `GET /admin/envoys` and `/metrics`. Bounded: past [`MAX_ENVOYS`] nodes the
//! one heard from least recently is forgotten. A restart forgets them all;
//! each Envoy reports again with its next batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use aipipe_core::usage::UsageSource;
use serde::Serialize;
use utoipa::ToSchema;

/// The most Envoys remembered.
pub const MAX_ENVOYS: usize = 1000;

/// One Envoy's usage queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EnvoyView {
    /// Its node id (or the name its singleton configuration gives it).
    pub node: String,
    /// Usage records it held behind the last batch it sent (its fail-static
    /// queue: records wait there while the control plane is unreachable).
    pub queued: u64,
    /// Records it dropped since its singleton started (the queue was full).
    pub dropped: u64,
    /// Records the control plane acknowledged since its singleton started
    /// (the last batch's included).
    pub sent: u64,
    /// When its last batch arrived (unix ms).
    pub last_seen_ms: u64,
}

/// An Envoy's in-flight budget reservations count this long after its last
/// report (it reports them every `RESERVATIONS_EVERY`, 10 s, while any are
/// held): then they are taken for gone with it.
pub const RESERVATIONS_FRESH_MS: u64 = 30_000;

#[derive(Debug)]
struct Node {
    view: EnvoyView,
    /// Its in-flight budget reservations by tenant and by virtual key id.
    reserved: BTreeMap<String, u64>,
    key_reserved: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mutex<HashMap<String, Node>>,
}

impl Registry {
    /// Notes what `source` reported with a batch of `records`, once the
    /// batch is acknowledged at `now_ms`: its `sent` then counts them too.
    pub fn report(&self, source: &UsageSource, records: u64, now_ms: u64) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if nodes.len() >= MAX_ENVOYS
            && !nodes.contains_key(&source.node)
            && let Some(oldest) = nodes
                .values()
                .min_by_key(|n| (n.view.last_seen_ms, n.view.node.clone()))
                .map(|n| n.view.node.clone())
        {
            nodes.remove(&oldest);
        }
        nodes.insert(
            source.node.clone(),
            Node {
                view: EnvoyView {
                    node: source.node.clone(),
                    queued: source.queued,
                    dropped: source.dropped,
                    sent: source.sent.saturating_add(records),
                    last_seen_ms: now_ms,
                },
                reserved: source.reserved_nusd.clone(),
                key_reserved: source.key_reserved_nusd.clone(),
            },
        );
    }

    /// What Envoys that reported lately hold reserved in flight of a
    /// tenant's budget (`key` None) or of one virtual key's.
    pub fn reserved(&self, tenant: &str, key: Option<&str>, now_ms: u64) -> u64 {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes
            .values()
            .filter(|n| n.view.last_seen_ms.saturating_add(RESERVATIONS_FRESH_MS) >= now_ms)
            .filter_map(|n| match key {
                Some(k) => n.key_reserved.get(k),
                None => n.reserved.get(tenant),
            })
            .fold(0u64, |a, v| a.saturating_add(*v))
    }

    /// Every Envoy remembered, by node.
    pub fn list(&self) -> Vec<EnvoyView> {
        let mut all: Vec<EnvoyView> = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|n| n.view.clone())
            .collect();
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(node: &str, queued: u64) -> UsageSource {
        UsageSource {
            node: node.into(),
            queued,
            dropped: 0,
            sent: 1,
            reserved_nusd: Default::default(),
            key_reserved_nusd: Default::default(),
        }
    }

    #[test]
    fn the_latest_report_per_node_is_kept_and_the_least_recent_node_goes_first() {
        let r = Registry::default();
        for i in 0..MAX_ENVOYS as u64 {
            r.report(&source(&format!("n{i}"), 0), 1, 1_000 + i);
        }
        r.report(&source("n0", 7), 2, 5_000);
        assert_eq!(r.list().len(), MAX_ENVOYS);
        // A new node: n1 was heard from least recently (n0 just reported).
        r.report(&source("new", 1), 1, 6_000);
        let all = r.list();
        assert_eq!(all.len(), MAX_ENVOYS);
        assert!(!all.iter().any(|v| v.node == "n1"));
        let n0 = all.iter().find(|v| v.node == "n0").cloned();
        assert_eq!(
            n0,
            Some(EnvoyView {
                node: "n0".into(),
                queued: 7,
                dropped: 0,
                sent: 3,
                last_seen_ms: 5_000
            })
        );
    }

    #[test]
    fn reservations_are_summed_over_envoys_that_reported_lately() {
        let r = Registry::default();
        let mut a = source("a", 0);
        a.reserved_nusd.insert("acme".into(), 100);
        a.key_reserved_nusd.insert("vk_1".into(), 40);
        let mut b = source("b", 0);
        b.reserved_nusd.insert("acme".into(), 20);
        r.report(&a, 0, 1_000);
        r.report(&b, 0, 20_000);
        assert_eq!(r.reserved("acme", None, 20_000), 120);
        assert_eq!(r.reserved("acme", Some("vk_1"), 20_000), 40);
        assert_eq!(r.reserved("other", None, 20_000), 0);
        // a has not reported for longer than reservations stay fresh.
        assert_eq!(
            r.reserved("acme", None, 1_000 + RESERVATIONS_FRESH_MS + 1),
            20
        );
        // A report without reservations clears the node's.
        r.report(&source("b", 0), 0, 21_000);
        assert_eq!(r.reserved("acme", None, 21_000), 100);
    }
}
