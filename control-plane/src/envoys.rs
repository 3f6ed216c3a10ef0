//! Each Envoy's usage queue as its singleton last reported it (the `source`
//! of a usage batch: `aipipe_core::usage::UsageSource`), for
//! `GET /admin/envoys`, `/metrics` and the budgets' `reserved_usd`. Stored
//! in the database with the batch (`db/envoys.rs`), so every control plane
//! on it answers the same (control-plane/README.md, "Replicas"). Bounded:
//! past [`MAX_ENVOYS`] nodes the one heard from least recently is
//! forgotten.

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
