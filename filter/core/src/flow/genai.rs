//! The OpenTelemetry GenAI semantic-convention metrics of one worker:
//! `gen_ai.client.token.usage` (by `gen_ai.token.type`),
//! `gen_ai.server.request.duration` and `gen_ai.server.time_to_first_token`,
//! labelled with `gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model` and `gen_ai.response.model`
//! (filter/README.md, "Metrics", has the mapping and the units).
//!
//! Each is a metric family of the host (`Host::define_family`): the Wasm
//! host flattens a member's label values into its dotted name, which the
//! Envoy config's `stats_tags` turn back into labels; the native host gives
//! them to Envoy as labels. Either way a member is made on first use and
//! kept: a request costs one map lookup and six host calls. Beside them,
//! `aipipe.gen_ai.tokens` counts the same tokens exactly.
//!
//! The number of members is bounded: label values are catalog ids (a model
//! the catalog does not know is `other`), and past [`MAX_SERIES`] label
//! combinations a worker records new ones under `other` for all three.

use std::cell::RefCell;
use std::collections::HashMap;

use super::host::{Host, MetricKind};
use crate::usage::UsageRecord;

/// Family names, as OpenTelemetry names them (durations in milliseconds:
/// a proxy's histograms hold integers).
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const REQUEST_DURATION: &str = "gen_ai.server.request.duration";
pub const TIME_TO_FIRST_TOKEN: &str = "gen_ai.server.time_to_first_token";
/// The same tokens as `gen_ai.client.token.usage`, as a counter: a proxy's
/// histogram sums are approximate (Envoy's keep about two significant
/// digits per value), this is exact.
pub const TOKENS: &str = "aipipe.gen_ai.tokens";

/// Label names, in the order members' values are given.
pub const LABELS: [&str; 4] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
];
pub const TOKEN_TYPE: &str = "gen_ai.token.type";

/// Label combinations one worker keeps apart; later ones are `other`.
pub const MAX_SERIES: usize = 256;

/// The value of a label that is not one of the catalog's.
pub const OTHER: &str = "other";

/// What a request asked for, as `gen_ai.request.model`.
pub const AUTO: &str = "auto";

/// `gen_ai.operation.name` of a routed chat request (whichever protocol the
/// client speaks), and of a provider path forwarded as it is (what it does
/// is the provider's business: embeddings, files, …).
pub const CHAT: &str = "chat";
pub const PASS_THROUGH: &str = "pass_through";

/// The labels of one request's metrics.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub operation: &'a str,
    pub provider: &'a str,
    pub request_model: &'a str,
    pub response_model: &'a str,
}

/// A label value as both builds show it: a `.` separates name parts for
/// Envoy's tag extraction, so it becomes `_` (`gpt-4.1` → `gpt-4_1`).
pub fn label_value(v: &str) -> String {
    if v.is_empty() {
        OTHER.to_owned()
    } else {
        v.replace('.', "_")
    }
}

/// One label combination's metric ids.
#[derive(Debug, Clone, Copy, Default)]
struct Members {
    input: Option<u32>,
    output: Option<u32>,
    input_total: Option<u32>,
    output_total: Option<u32>,
    duration: Option<u32>,
    ttft: Option<u32>,
}

pub struct GenAi {
    tokens: u32,
    token_totals: u32,
    duration: u32,
    ttft: u32,
    /// By `operation \0 provider \0 request \0 response`.
    members: RefCell<HashMap<String, Members>>,
}

impl GenAi {
    /// Defines the three families (where the host allows definitions).
    pub fn define(host: &impl Host) -> Option<Self> {
        let [op, provider, request, response] = LABELS;
        let with_type = [op, provider, request, response, TOKEN_TYPE];
        Some(Self {
            tokens: host.define_family(MetricKind::Histogram, TOKEN_USAGE, &with_type)?,
            token_totals: host.define_family(MetricKind::Counter, TOKENS, &with_type)?,
            duration: host.define_family(MetricKind::Histogram, REQUEST_DURATION, &LABELS)?,
            ttft: host.define_family(MetricKind::Histogram, TIME_TO_FIRST_TOKEN, &LABELS)?,
            members: RefCell::new(HashMap::new()),
        })
    }

    fn members(&self, host: &impl Host, labels: Labels<'_>) -> Members {
        // The common case, a combination seen before, builds one string.
        let key = [
            labels.operation,
            labels.provider,
            labels.request_model,
            labels.response_model,
        ]
        .join("\0");
        if let Some(m) = self.members.borrow().get(&key) {
            return *m;
        }
        let values = [
            label_value(labels.operation),
            label_value(labels.provider),
            label_value(labels.request_model),
            label_value(labels.response_model),
        ];
        let mut members = self.members.borrow_mut();
        if members.len() >= MAX_SERIES {
            // Past the cap: this combination shares `other` (its own key
            // is not kept, so the map stays bounded).
            let other = [labels.operation, OTHER, OTHER, OTHER].join("\0");
            if let Some(m) = members.get(&other) {
                return *m;
            }
            let values = [values[0].clone(), OTHER.into(), OTHER.into(), OTHER.into()];
            let m = self.make(host, &values);
            members.insert(other, m);
            return m;
        }
        let m = self.make(host, &values);
        members.insert(key, m);
        m
    }

    /// The members of one combination of (sanitized) label values.
    fn make(&self, host: &impl Host, values: &[String; 4]) -> Members {
        let v: Vec<&str> = values.iter().map(String::as_str).collect();
        let with = |family: u32, t: &'static str| {
            let mut v = v.clone();
            v.push(t);
            host.family_member(family, &v)
        };
        Members {
            input: with(self.tokens, "input"),
            output: with(self.tokens, "output"),
            input_total: with(self.token_totals, "input"),
            output_total: with(self.token_totals, "output"),
            duration: host.family_member(self.duration, &v),
            ttft: host.family_member(self.ttft, &v),
        }
    }

    /// Records one request from its usage record: its duration when a
    /// provider answered it (any status; not a cache hit), its time to first
    /// byte when that answer succeeded, and its tokens when the answer's
    /// usage was read.
    pub fn record(&self, host: &impl Host, labels: Labels<'_>, r: &UsageRecord) {
        if r.cache_hit {
            return;
        }
        let m = self.members(host, labels);
        let ms = |v: f64| v.round().max(0.0) as u64;
        if let Some(id) = m.duration {
            host.record_metric(id, ms(r.latency_ms));
        }
        if r.status < 400
            && let (Some(id), Some(t)) = (m.ttft, r.ttft_ms)
        {
            host.record_metric(id, ms(t));
        }
        if r.usage_parsed {
            for (histogram, counter, n) in [
                (m.input, m.input_total, r.prompt_tokens),
                (m.output, m.output_total, r.completion_tokens),
            ] {
                if let Some(id) = histogram {
                    host.record_metric(id, n);
                }
                if let Some(id) = counter {
                    host.increment_metric(id, n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::flow::fake::FakeHost;

    fn record(latency: f64, ttft: Option<f64>, status: u16) -> UsageRecord {
        UsageRecord {
            id: "r".into(),
            tenant: "t".into(),
            provider: "openai".into(),
            model: "gpt-4.1".into(),
            status,
            prompt_tokens: 12,
            completion_tokens: 34,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_nusd: 0,
            latency_ms: latency,
            ttft_ms: ttft,
            complexity: None,
            stream: false,
            usage_parsed: status < 400,
            ts_ms: 0,
            failed_attempts: Vec::new(),
            cache_hit: false,
            estimated: false,
            key_tag: None,
            reserved_nusd: None,
            virtual_key: None,
            key_reserved_nusd: None,
            router_features: None,
        }
    }

    const L: Labels<'static> = Labels {
        operation: "chat",
        provider: "openai",
        request_model: "auto",
        response_model: "gpt-4.1",
    };

    #[test]
    fn a_request_records_duration_ttft_and_both_token_counts_under_its_labels() {
        let host = FakeHost::new();
        let g = GenAi::define(&host).unwrap();
        g.record(&host, L, &record(250.4, Some(40.6), 200));
        g.record(&host, L, &record(100.0, None, 502));
        let base = "chat.openai.auto.gpt-4_1";
        assert_eq!(
            host.samples(&format!("{REQUEST_DURATION}.{base}")),
            [250, 100]
        );
        assert_eq!(host.samples(&format!("{TIME_TO_FIRST_TOKEN}.{base}")), [41]);
        assert_eq!(host.samples(&format!("{TOKEN_USAGE}.{base}.input")), [12]);
        assert_eq!(host.samples(&format!("{TOKEN_USAGE}.{base}.output")), [34]);
        assert_eq!(host.metric(&format!("{TOKENS}.{base}.input")), 12);
        assert_eq!(host.metric(&format!("{TOKENS}.{base}.output")), 34);
    }

    #[test]
    fn cache_hits_are_not_provider_answers() {
        let host = FakeHost::new();
        let g = GenAi::define(&host).unwrap();
        let mut hit = record(1.0, Some(1.0), 200);
        hit.cache_hit = true;
        g.record(&host, L, &hit);
        assert!(host.all_samples().is_empty());
    }

    #[test]
    fn label_combinations_past_the_cap_share_one_other_series() {
        let host = FakeHost::new();
        let g = GenAi::define(&host).unwrap();
        let names: Vec<String> = (0..MAX_SERIES + 10).map(|i| format!("m{i}")).collect();
        for n in &names {
            let l = Labels {
                response_model: n,
                ..L
            };
            g.record(&host, l, &record(5.0, None, 200));
        }
        let other = format!("{REQUEST_DURATION}.chat.other.other.other");
        assert_eq!(host.samples(&other).len(), 10);
        // Members made: MAX_SERIES combinations and the one `other`, each
        // six metrics.
        assert_eq!(host.family_members(), (MAX_SERIES + 1) * 6);
    }
}
