//! Each Envoy's usage queue as its singleton last reported it (the `source`
//! of a usage batch: `aipipe_core::usage::UsageSource`), kept in memory for
//! `GET /admin/envoys` and `/metrics`. Bounded: past [`MAX_ENVOYS`] nodes the
//! one heard from least recently is forgotten. A restart forgets them all;
//! each Envoy reports again with its next batch.

use std::collections::HashMap;
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

#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mutex<HashMap<String, EnvoyView>>,
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
                .min_by_key(|v| (v.last_seen_ms, v.node.clone()))
                .map(|v| v.node.clone())
        {
            nodes.remove(&oldest);
        }
        nodes.insert(
            source.node.clone(),
            EnvoyView {
                node: source.node.clone(),
                queued: source.queued,
                dropped: source.dropped,
                sent: source.sent.saturating_add(records),
                last_seen_ms: now_ms,
            },
        );
    }

    /// Every Envoy remembered, by node.
    pub fn list(&self) -> Vec<EnvoyView> {
        let mut all: Vec<EnvoyView> = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
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
}
