//! What the mock provider said an answer used, read independently of the
//! filter's reader, and what the catalog's prices make of it: the
//! expectations the usage records are checked against.

use aipipe_core::table::Model;
use serde_json::Value;

/// Token counts of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub cache_write: u64,
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            prompt: self.prompt + o.prompt,
            completion: self.completion + o.completion,
            cached: self.cached + o.cached,
            cache_write: self.cache_write + o.cache_write,
        }
    }
}

/// What a `usage` object the mock sent says, read in that provider's own
/// format (independently of the filter's reader).
pub fn read_sent(provider: &str, u: &Value) -> Option<Counts> {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64);
    if provider == "anthropic" {
        // input_tokens excludes cache reads and writes; all three are prompt.
        let (input, read, write) = (
            n("/input_tokens")?,
            n("/cache_read_input_tokens").unwrap_or(0),
            n("/cache_creation_input_tokens").unwrap_or(0),
        );
        return Some(Counts {
            prompt: input + read + write,
            completion: n("/output_tokens")?,
            cached: read,
            cache_write: write,
        });
    }
    if let Some(input) = n("/input_tokens") {
        // OpenAI's Responses API: cached tokens are part of the input, and
        // reasoning tokens of the output.
        return Some(Counts {
            prompt: input,
            completion: n("/output_tokens")?,
            cached: n("/input_tokens_details/cached_tokens").unwrap_or(0),
            cache_write: 0,
        });
    }
    Some(Counts {
        prompt: n("/prompt_tokens")?,
        completion: n("/completion_tokens")?,
        // Moonshot puts it at the top level; the others in the details.
        cached: n("/prompt_tokens_details/cached_tokens")
            .or_else(|| n("/cached_tokens"))
            .unwrap_or(0),
        // OpenRouter's cache writes.
        cache_write: n("/prompt_tokens_details/cache_write_tokens").unwrap_or(0),
    })
}

/// Nano-dollars per token for a price in dollars per million tokens.
fn nusd(per_mtok: f64) -> u64 {
    (per_mtok * 1000.0).round() as u64
}

/// The cost the catalog's prices in force now give these counts, in
/// nano-dollars: a scheduled price change that has come into force (the
/// default catalog's gemini-3.8-flash from 2027-01-01) prices the requests
/// just sent, as the filter does (filter/README.md, "Scheduled price
/// changes").
pub fn expected_cost(m: &Model, c: &Counts) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let p = m.prices_at(now);
    let input = nusd(p.input_per_mtok);
    let read = p.cached_input_per_mtok.map_or(input, nusd);
    let write = p.cache_write_per_mtok.map_or(input, nusd);
    (c.prompt - c.cached - c.cache_write) * input
        + c.cached * read
        + c.cache_write * write
        + c.completion * nusd(p.output_per_mtok)
}

/// The cost the control plane's stats `totals` say, in nano-dollars.
pub fn stored_cost(totals: &Value) -> Option<u64> {
    totals["cost_usd"]
        .as_f64()
        .map(|d| (d * 1e9).round() as u64)
}
