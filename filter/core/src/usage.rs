//! Usage records: one per request, built by the filter when the answer ends,
//! shipped in batches to the control plane, which stores and aggregates them.
//! The same type on both sides, so nothing is lost in translation.
//!
//! Cost is an integer number of nano-dollars (1e-9 USD): catalog prices are
//! dollars per million tokens with at most three decimals, so every token's
//! price is a whole number of nano-dollars and sums are exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Prices;
use crate::protocol::Tokens;
use crate::table::Model;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// Unique per request (the filter's request id); the idempotency key.
    pub id: String,
    pub tenant: String,
    pub provider: String,
    /// Catalog id of the model that answered (or was asked for).
    pub model: String,
    /// HTTP status the client got (0 when the stream broke before one).
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache (priced lower).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (priced higher).
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub cost_nusd: u64,
    /// Request start to the end of the answer.
    pub latency_ms: f64,
    /// Request start to the first byte of the answer.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Present when the model was chosen by complexity.
    #[serde(default)]
    pub complexity: Option<f64>,
    #[serde(default)]
    pub stream: bool,
    /// False when the answer's usage could not be read: then tokens and cost
    /// are unknown, never silently zero.
    pub usage_parsed: bool,
    /// Unix time of the request start, milliseconds.
    pub ts_ms: u64,
    /// Attempts that failed before `model` answered (filter/README.md,
    /// "Failover"): each counts against its model's success rate and
    /// penalty, never in tokens or cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<FailedAttempt>,
    /// Answered from the filter's answer cache (filter/README.md, "Cache"):
    /// no provider was called, so tokens and cost are 0 and the latency is
    /// the filter's own. Counted as a request and a cache hit in stats,
    /// never in latency or TTFT percentiles, success rates or penalties (it
    /// says nothing about the provider). Absent (false) in records from
    /// older filters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_hit: bool,
    /// Tokens and cost are an estimate (filter/README.md, "Usage and
    /// accounting"): a stream cut before the provider's usage arrived.
    /// Such a record also says `usage_parsed: false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    /// The tag of the provider key that answered (`Account::key_tag`): a
    /// 401/402/403/429 penalizes that (model, key) pair, a success lowers
    /// it (filter/README.md, "Penalties"). Absent without a tenant key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_tag: Option<String>,
    /// What the request reserved against its tenant's budget in the Envoy
    /// (`crate::budget`); absent when it had none. The Envoy settles the
    /// reservation with `cost_nusd` and, once this record is acknowledged,
    /// waits for the control plane's entry to show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_nusd: Option<u64>,
    /// The id of the virtual key the caller used (`vk_…`, no secret), when
    /// it came from the control plane's directory: what the key's budget
    /// and the usage by key count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_key: Option<String>,
    /// What the request reserved against its virtual key's own budget, as
    /// `reserved_nusd` does against its tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_reserved_nusd: Option<u64>,
    /// The router's features of an auto request (standard base64 of
    /// `tenant_router::encode_features`), when its tenant's policy learns
    /// from feedback: what `POST /v1/feedback` on it teaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_features: Option<String>,
}

/// One upstream attempt that failed (429, 5xx, timeout, connection failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedAttempt {
    pub provider: String,
    pub model: String,
    /// The upstream status; 504 for a timeout, 503 for a connection failure.
    pub status: u16,
    /// The tag of the provider key the attempt was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    pub records: Vec<UsageRecord>,
}

/// What a filter's singleton POSTs: a batch, and (from filters that send
/// it) the sender's account of its usage queue. A [`UsageBatch`] is the
/// same without `source`, which older filters do not send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageUpload {
    pub records: Vec<UsageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<UsageSource>,
}

/// One Envoy's usage queue as its singleton saw it when it posted a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSource {
    /// The Envoy (its node id, `node_name`).
    pub node: String,
    /// Records held behind this batch (not yet sent).
    pub queued: u64,
    /// Records dropped since the singleton started (its buffer was full).
    pub dropped: u64,
    /// Records acknowledged since the singleton started (before this
    /// batch).
    pub sent: u64,
    /// Budget reservations of this Envoy's requests in flight, by tenant:
    /// spend no record shows yet (`GET …/budget` reports the sum over
    /// Envoys as `reserved_usd`). Every upload carries the whole picture;
    /// absent: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved_nusd: BTreeMap<String, u64>,
    /// …and by virtual key id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_reserved_nusd: BTreeMap<String, u64>,
}

/// The most bytes of a node name.
pub const MAX_NODE_NAME: usize = 128;

/// Whether a byte may be in a node name (`crate::validate::node_name`):
/// what Envoy and Istio node ids are made of (`sidecar~10.0.0.1~pod.ns~…`).
pub fn node_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:/@~+=-".contains(&b)
}

/// A node name the control plane accepts, from whatever a proxy calls
/// itself: other bytes become `_`, at most [`MAX_NODE_NAME`] bytes.
pub fn node_name(raw: &str) -> String {
    raw.bytes()
        .take(MAX_NODE_NAME)
        .map(|b| if node_name_byte(b) { b as char } else { '_' })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageAck {
    /// Records newly stored.
    pub accepted: u64,
    /// Records already stored before (a retried batch).
    pub duplicates: u64,
    /// Records refused and not stored (impossible values, a tenant that
    /// never existed); counted in the control plane's `/metrics`. A batch
    /// is acknowledged whatever it held, so one bad record never blocks
    /// the records queued behind it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u64,
    /// The directory revision that shows the stored records' spend: budget
    /// entries written at it or later count them (`crate::budget`). 0 from
    /// a control plane that does not say.
    #[serde(default)]
    pub revision: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Nano-dollars per token for a price in dollars per million tokens.
fn nusd_per_token(per_mtok: f64) -> u64 {
    // $/Mtok × 1e9 n$/$ ÷ 1e6 tok/Mtok = $/Mtok × 1000; rounded so 0.15 is 150.
    (per_mtok * 1000.0).round().max(0.0) as u64
}

/// Exact cost of a request on a model, in nano-dollars. Prompt tokens read
/// from or written to the provider's cache are priced at the catalog's cache
/// read / write rates where it has them (else at the input price); a prompt
/// past the model's long-context threshold at its long-context rates.
pub fn cost_nusd(model: &Model, t: &Tokens) -> u64 {
    cost_at(&model.rates(t.prompt), t)
}

/// The cost of `t` at `prices`, in nano-dollars.
pub fn cost_at(prices: &Prices, t: &Tokens) -> u64 {
    let cached = t.cached.min(t.prompt);
    let written = t.cache_write.min(t.prompt - cached);
    let read_price = prices
        .cached_input_per_mtok
        .unwrap_or(prices.input_per_mtok);
    let write_price = prices.cache_write_per_mtok.unwrap_or(prices.input_per_mtok);
    // Token counts come from the provider's answer: absurd ones saturate
    // (and stand out in stats) instead of wrapping into a plausible bill.
    (t.prompt - cached - written)
        .saturating_mul(nusd_per_token(prices.input_per_mtok))
        .saturating_add(cached.saturating_mul(nusd_per_token(read_price)))
        .saturating_add(written.saturating_mul(nusd_per_token(write_price)))
        .saturating_add(
            t.completion
                .saturating_mul(nusd_per_token(prices.output_per_mtok)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::default_models;

    #[test]
    fn costs_are_exact_nano_dollars() {
        let models = default_models();
        let mini = models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
        // 1000 prompt tokens at $0.15/M + 500 completion at $0.60/M = $0.00045.
        let t = |prompt, cached, cache_write, completion| Tokens {
            prompt,
            completion,
            cached,
            cache_write,
        };
        assert_eq!(cost_nusd(mini, &t(1000, 0, 0, 500)), 450_000);
        // 400 of the prompt tokens cached at $0.075/M.
        assert_eq!(
            cost_nusd(mini, &t(1000, 400, 0, 500)),
            600 * 150 + 400 * 75 + 500 * 600
        );
        // Cached tokens never exceed the prompt.
        assert_eq!(cost_nusd(mini, &t(10, 99, 0, 0)), 10 * 75);
        // No write price in the catalog: writes cost the input price.
        assert_eq!(cost_nusd(mini, &t(10, 0, 10, 0)), 10 * 150);
        // Absurd counts from a provider saturate rather than wrap.
        assert_eq!(cost_nusd(mini, &t(u64::MAX, 0, 0, u64::MAX)), u64::MAX);

        // Claude Sonnet 5.5: $2 input, $0.10 cache read, $2.50 cache write
        // (5-minute cache, 1.25x), $10 output.
        let sonnet = models.iter().find(|m| m.id == "claude-sonnet-5-5").unwrap();
        assert_eq!(
            cost_nusd(sonnet, &t(1000, 200, 300, 100)),
            500 * 2000 + 200 * 100 + 300 * 2500 + 100 * 10000
        );
        // Reads and writes together never exceed the prompt.
        assert_eq!(cost_nusd(sonnet, &t(100, 80, 80, 0)), 80 * 100 + 20 * 2500);
    }

    /// A prompt past the long-context threshold — cache reads and writes
    /// counted — is billed whole at the higher rates: every input-side
    /// price times the input multiplier, the answer at the output one.
    #[test]
    fn a_long_prompt_is_billed_at_the_long_context_rates() {
        let mut sonnet = default_models()
            .into_iter()
            .find(|m| m.id == "claude-sonnet-5-5")
            .unwrap();
        sonnet.long_context = Some(crate::catalog::LongContext {
            above_tokens: 1000,
            input_multiplier: 2.0,
            output_multiplier: 1.5,
        });
        let t = |prompt, cached, cache_write| Tokens {
            prompt,
            completion: 100,
            cached,
            cache_write,
        };
        // At the threshold: the listed rates.
        assert_eq!(
            cost_nusd(&sonnet, &t(1000, 200, 300)),
            500 * 2000 + 200 * 100 + 300 * 2500 + 100 * 10000
        );
        // One token past it, through the cache alone: everything moves.
        assert_eq!(
            cost_nusd(&sonnet, &t(1001, 201, 300)),
            500 * 4000 + 201 * 200 + 300 * 5000 + 100 * 15000
        );
        // A model without long-context rates: one rate at every length.
        sonnet.long_context = None;
        assert_eq!(
            cost_nusd(&sonnet, &t(1_000_000, 0, 0)),
            1_000_000 * 2000 + 100 * 10000
        );
    }

    #[test]
    fn records_round_trip_and_refuse_unknown_fields() {
        let r = UsageRecord {
            id: "r1".into(),
            tenant: "acme".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            status: 200,
            prompt_tokens: 10,
            completion_tokens: 20,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 13_500,
            latency_ms: 12.5,
            ttft_ms: Some(3.0),
            complexity: Some(0.42),
            stream: true,
            usage_parsed: true,
            ts_ms: 1_795_000_000_000,
            failed_attempts: vec![FailedAttempt {
                provider: "anthropic".into(),
                model: "claude-sonnet-5-5".into(),
                status: 529,
                key_tag: None,
            }],
            cache_hit: false,
            estimated: false,
            key_tag: None,
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: None,
        };
        let json = serde_json::to_string(&UsageBatch {
            records: vec![r.clone()],
        })
        .unwrap();
        let back: UsageBatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back.records, vec![r.clone()]);
        assert!(!json.contains("cache_hit"), "false is left out: {json}");
        let hit = UsageRecord {
            cache_hit: true,
            estimated: false,
            failed_attempts: Vec::new(),
            ..r
        };
        let json = serde_json::to_string(&hit).unwrap();
        assert!(json.contains(r#""cache_hit":true"#), "{json}");
        assert_eq!(serde_json::from_str::<UsageRecord>(&json).unwrap(), hit);
        assert!(serde_json::from_str::<UsageBatch>(r#"{"records":[],"x":1}"#).is_err());
    }
}
