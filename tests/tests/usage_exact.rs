//! Usage accounting is exact for every provider (issue #4): for each of the
//! seven providers, plain and streamed (with and without
//! `stream_options.include_usage`), with and without prompt-cache tokens, the
//! record the filter ships and the control plane stores carries the prompt,
//! completion, cached and cache-write tokens the mock actually sent — read
//! here from the mock's log of each answer's `usage` (`sent_usage`), in that
//! provider's own wire format — and the cost the catalog's prices give them.
//! An answer whose usage cannot be read is recorded as unparsed, never as a
//! silent $0.
//!
//! One stack: the mock, the real control plane (SQLite on disk), Envoy with
//! the singleton polling it. Between Envoy and the control plane's internal
//! port sits a tap that forwards everything and keeps a copy of each usage
//! record the filter ships (the stream flag and exact nano-dollar cost are
//! only visible there). Every request has its own tenant, so the control
//! plane's per-tenant stats are that one request's stored record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aipipe_core::contract::USAGE_PATH;
use aipipe_core::usage::{UsageRecord, UsageUpload};
use aipipe_tests::{ControlPlane, Mock, eventually, try_request};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use common::control_plane::{
    chat_as, envoy_polling, in_service_now, tenant_stats, tenant_with_own_keys, tenants_served,
};
use common::usage::{Counts, expected_cost, read_sent, stored_cost};
use serde_json::{Value, json};

// ------------------------------------------------------------------ the tap

/// A forwarding proxy in front of the control plane's internal API that
/// keeps every usage record shipped through it.
struct UsageTap {
    port: u16,
    records: Arc<Mutex<Vec<UsageRecord>>>,
    /// Taken on drop (below).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for UsageTap {
    /// Without waiting for the forwards in flight: one is Envoy's held table
    /// poll, which dropping the runtime would wait out (20-odd seconds).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Clone)]
struct TapState {
    upstream: u16,
    records: Arc<Mutex<Vec<UsageRecord>>>,
}

impl UsageTap {
    fn start(upstream: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let state = TapState {
            upstream,
            records: records.clone(),
        };
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(forward).with_state(state);
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            records,
            runtime: Some(runtime),
        }
    }

    /// Every record shipped so far, by tenant (a retried batch counts once).
    fn by_tenant(&self) -> BTreeMap<String, Vec<UsageRecord>> {
        let mut seen = BTreeMap::<String, UsageRecord>::new();
        for r in self.records.lock().unwrap().iter() {
            seen.insert(r.id.clone(), r.clone());
        }
        let mut out = BTreeMap::<String, Vec<UsageRecord>>::new();
        for r in seen.into_values() {
            out.entry(r.tenant.clone()).or_default().push(r);
        }
        out
    }
}

async fn forward(State(tap): State<TapState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    if parts.uri.path() == USAGE_PATH
        && let Ok(batch) = serde_json::from_slice::<UsageUpload>(&bytes)
    {
        tap.records.lock().unwrap().extend(batch.records);
    }
    let url = format!(
        "http://127.0.0.1:{}{}",
        tap.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| !is_hop_header(k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = parts.method.to_string();
    let reply = tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!bytes.is_empty()).then_some(&bytes[..]);
        try_request(&method, &url, &h, body)
    })
    .await
    .ok()
    .flatten();
    let Some(reply) = reply else {
        let mut r = Response::new(Body::from("control plane unreachable"));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        return r;
    };
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in reply.headers {
        if is_hop_header(&k) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

fn is_hop_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
    )
}

// ------------------------------------------------------------------ the cases

const PROVIDERS: [&str; 7] = [
    "openai",
    "anthropic",
    "gemini",
    "xai",
    "openrouter",
    "minimax",
    "moonshot",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    /// Streamed, the client asking for the usage chunk.
    StreamWithUsage,
    /// Streamed, the client not asking for it (the filter asks upstream).
    StreamQuiet,
}

impl Mode {
    fn stream(self) -> bool {
        self != Mode::Plain
    }
}

#[derive(Clone, Debug)]
struct Case {
    tenant: String,
    provider: &'static str,
    model: &'static str,
    mode: Mode,
    /// A long system prompt (cache reads); for Anthropic also a
    /// `cache_control` block in the user message (cache writes).
    cache: bool,
    /// The mock spoils the answer's `usage`.
    unreadable: bool,
}

/// The mock caches a leading system prompt of at least 1024 tokens (4096 chars).
fn long_system() -> String {
    "You are a careful assistant who answers briefly and cites the notes. ".repeat(64)
}

impl Case {
    fn body(&self) -> Value {
        let question = format!("case {}: what does a usage record hold?", self.tenant);
        let mut messages = Vec::new();
        if self.cache {
            messages.push(json!({"role": "system", "content": long_system()}));
        }
        if self.cache && self.provider == "anthropic" {
            messages.push(json!({"role": "user", "content": [
                {"type": "text", "text": "Reference notes on accounting. ".repeat(24),
                 "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": question}
            ]}));
        } else {
            messages.push(json!({"role": "user", "content": question}));
        }
        let mut body = json!({"model": self.model, "messages": messages});
        if self.model == LUNA {
            // Tools with an effort: what gpt-6-luna takes only over OpenAI's
            // Responses API (filter/README.md, "What a model accepts"), so
            // its usage comes in that API's own shape, reasoning tokens
            // billed as output.
            body["reasoning_effort"] = json!("low");
            body["tools"] = json!([{"type": "function", "function": {"name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
        }
        if self.mode.stream() {
            body["stream"] = json!(true);
        }
        if self.mode == Mode::StreamWithUsage {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |provider, model, mode, cache, unreadable| {
        let tenant = format!("u{:02}-{provider}", out.len());
        out.push(Case {
            tenant,
            provider,
            model,
            mode,
            cache,
            unreadable,
        });
    };
    for provider in PROVIDERS {
        // OpenRouter: one model without a cache price, one with.
        let (model, cached_model) = match provider {
            "openai" => ("gpt-4o-mini", "gpt-4o-mini"),
            "anthropic" => ("claude-opus-4-5", "claude-opus-4-5"),
            "gemini" => ("gemini-3.8-flash", "gemini-3.8-flash"),
            "xai" => ("grok-3-mini", "grok-3-mini"),
            "openrouter" => ("llama-3.3-70b-instruct", "deepseek-v3.2"),
            "minimax" => ("MiniMax-M2", "MiniMax-M2"),
            _ => ("kimi-k2.5", "kimi-k2.5"),
        };
        add(provider, model, Mode::Plain, false, false);
        add(provider, cached_model, Mode::Plain, true, false);
        add(provider, model, Mode::StreamWithUsage, true, false);
        add(provider, cached_model, Mode::StreamQuiet, true, false);
        add(provider, model, Mode::StreamQuiet, false, false);
    }
    add("openai", "gpt-4o-mini", Mode::Plain, false, true);
    add("openai", "gpt-4o-mini", Mode::StreamWithUsage, false, true);
    add("anthropic", "claude-opus-4-5", Mode::Plain, false, true);
    add(
        "anthropic",
        "claude-opus-4-5",
        Mode::StreamWithUsage,
        false,
        true,
    );
    add("gemini", "gemini-3.8-flash", Mode::StreamQuiet, false, true);
    add("openai", LUNA, Mode::Plain, false, false);
    add("openai", LUNA, Mode::StreamWithUsage, true, false);
    add("openai", LUNA, Mode::StreamQuiet, false, false);
    add("openai", LUNA, Mode::Plain, false, true);
    out
}

/// Enabled here (it enters service on 2027-01-14), asked with tools and an
/// effort: the cases of OpenAI's Responses API upstream.
const LUNA: &str = "gpt-6-luna";

// ------------------------------------------------------------------ expectations

/// The chunks of an SSE answer (`data:` payloads that are JSON).
fn chunks(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect()
}

/// What one case got: the client's answer and the usage the mock sent.
struct Outcome {
    status: u16,
    text: String,
    sent_usage: Value,
    upstream_requests: usize,
}

// ------------------------------------------------------------------ the test

#[test]
fn every_provider_plain_and_streamed_is_recorded_exactly() {
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let tap = UsageTap::start(cp.internal_port);
    let envoy = envoy_polling(&mock, "{}", tap.port, &cp.internal_token);
    let catalog = aipipe_core::catalog::default_models();
    let cases = cases();

    in_service_now(&cp, LUNA);
    // Every tenant has keys for all seven providers.
    let mut keys = BTreeMap::new();
    for case in &cases {
        let key = tenant_with_own_keys(&cp, &case.tenant, &PROVIDERS);
        keys.insert(case.tenant.clone(), key);
    }
    assert!(
        tenants_served(&cp, &envoy),
        "the routing table with the test tenants never reached Envoy"
    );

    // One request per case.
    let mut outcomes = Vec::new();
    for case in &cases {
        mock.clear_received();
        if case.unreadable {
            mock.fault(json!({"provider": case.provider, "unreadable_usage": true}));
        }
        let reply = chat_as(&envoy, &keys[&case.tenant], &case.body());
        mock.clear_faults();
        let received = mock.received();
        let mine: Vec<&Value> = received
            .iter()
            .filter(|r| r["body"].to_string().contains(&case.tenant))
            .collect();
        outcomes.push(Outcome {
            status: reply.status,
            text: reply.text(),
            sent_usage: mine.last().map_or(Value::Null, |r| r["sent_usage"].clone()),
            upstream_requests: mine.len(),
        });
    }

    // Wait until every record is shipped and stored.
    let stored = eventually(Duration::from_secs(20), || {
        let shipped = tap.by_tenant();
        if cases.iter().any(|c| !shipped.contains_key(&c.tenant)) {
            return None;
        }
        let mut stats = BTreeMap::new();
        for case in &cases {
            let st = tenant_stats(&cp, &case.tenant);
            if st["totals"]["requests"].as_u64() != Some(1) {
                return None;
            }
            stats.insert(case.tenant.clone(), st);
        }
        Some((shipped, stats))
    });
    let (shipped, stats) = stored.unwrap_or_else(|| {
        let shipped = tap.by_tenant();
        let missing: Vec<&str> = cases
            .iter()
            .filter(|c| !shipped.contains_key(&c.tenant))
            .map(|c| c.tenant.as_str())
            .collect();
        let stored: Vec<String> = cases
            .iter()
            .map(|c| {
                let st = tenant_stats(&cp, &c.tenant);
                format!("{}={}", c.tenant, st["totals"]["requests"])
            })
            .collect();
        let statuses: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
        panic!(
            "usage never arrived; no record shipped for {missing:?}; stored requests: {stored:?}; statuses {statuses:?}"
        )
    });

    // Check everything, then report every mismatch at once.
    let mut failures = Vec::new();
    let mut fail = |case: &Case, what: String| {
        failures.push(format!(
            "{} {} {:?}{}{}: {what}",
            case.provider,
            case.model,
            case.mode,
            if case.cache { " cached" } else { "" },
            if case.unreadable {
                " unreadable-usage"
            } else {
                ""
            },
        ));
    };
    let mut summary = Vec::new();
    for (case, out) in cases.iter().zip(&outcomes) {
        let model = catalog.iter().find(|m| m.id == case.model).unwrap();
        assert_eq!(model.provider, case.provider, "{case:?}");
        if out.status != 200 {
            fail(case, format!("status {}: {}", out.status, out.text));
            continue;
        }
        if out.upstream_requests != 1 {
            fail(
                case,
                format!("{} upstream requests, want 1", out.upstream_requests),
            );
        }
        let records = &shipped[&case.tenant];
        if records.len() != 1 {
            fail(
                case,
                format!("{} records shipped: {records:?}", records.len()),
            );
            continue;
        }
        let rec = &records[0];
        let st = &stats[&case.tenant];
        let totals = &st["totals"];
        let stored = |key: &str| totals[key].as_u64();
        let stored_cost = stored_cost(totals);

        // Who and how, as recorded.
        if (rec.provider.as_str(), rec.model.as_str()) != (case.provider, case.model)
            || rec.status != 200
            || rec.stream != case.mode.stream()
        {
            fail(
                case,
                format!(
                    "record says {}/{} status {} stream {}",
                    rec.provider, rec.model, rec.status, rec.stream
                ),
            );
        }
        let by_model = &st["by_model"][0];
        if by_model["provider"] != case.provider || by_model["model"] != case.model {
            fail(case, format!("stats by model: {by_model}"));
        }

        if case.unreadable {
            // Recorded as unparsed, and the stats say so.
            if rec.usage_parsed {
                fail(
                    case,
                    format!("usage_parsed true for unreadable usage: {rec:?}"),
                );
            }
            if stored("unparsed") != Some(1) {
                fail(case, format!("stats do not count it unparsed: {totals}"));
            }
            if !out.sent_usage.is_string() {
                fail(case, format!("the mock sent usage {}", out.sent_usage));
            }
            summary.push(format!(
                "{:<10} {:<22} {:<15} unreadable usage -> usage_parsed={} unparsed={:?}",
                case.provider,
                case.model,
                format!("{:?}", case.mode),
                rec.usage_parsed,
                stored("unparsed")
            ));
            // The client still gets the answer; a stream keeps its shape.
            check_client_stream_shape(case, out, &mut fail);
            continue;
        }

        let Some(sent) = read_sent(case.provider, &out.sent_usage) else {
            fail(
                case,
                format!("the mock sent no readable usage: {}", out.sent_usage),
            );
            continue;
        };
        // The cases exercise what they are meant to.
        if sent.completion == 0 || (case.cache && sent.cached == 0) {
            fail(case, format!("the mock sent no cache hit: {sent:?}"));
        }
        if case.cache && case.provider == "anthropic" && sent.cache_write == 0 {
            fail(case, format!("the mock sent no cache write: {sent:?}"));
        }
        let cost = expected_cost(model, &sent);
        let recorded = Counts {
            prompt: rec.prompt_tokens,
            completion: rec.completion_tokens,
            cached: rec.cached_tokens,
            cache_write: rec.cache_write_tokens,
        };
        if !rec.usage_parsed {
            fail(case, "usage_parsed false".into());
        }
        if recorded != sent {
            fail(
                case,
                format!("recorded {recorded:?}, the mock sent {sent:?}"),
            );
        }
        if rec.cost_nusd != cost {
            fail(
                case,
                format!("recorded cost {} n$, want {cost} n$", rec.cost_nusd),
            );
        }
        // Stored by the control plane as shipped.
        let stored_counts = Counts {
            prompt: stored("prompt_tokens").unwrap_or(u64::MAX),
            completion: stored("completion_tokens").unwrap_or(u64::MAX),
            cached: stored("cached_tokens").unwrap_or(u64::MAX),
            cache_write: match totals.get("cache_write_tokens") {
                Some(v) => v.as_u64().unwrap_or(u64::MAX),
                None => {
                    fail(case, "stats do not expose cache_write_tokens".into());
                    sent.cache_write
                }
            },
        };
        if stored_counts != sent {
            fail(
                case,
                format!("stats say {stored_counts:?}, the mock sent {sent:?}"),
            );
        }
        if stored_cost != Some(cost) || stored("unparsed") != Some(0) {
            fail(
                case,
                format!(
                    "stats cost {stored_cost:?} n$ unparsed {:?}, want {cost} n$ and 0",
                    stored("unparsed")
                ),
            );
        }
        check_client_usage(case, out, &sent, &mut fail);
        summary.push(format!(
            "{:<10} {:<22} {:<15} {:<6} prompt {:>5} completion {:>4} cached {:>5} write {:>3} cost {:>8} n$",
            case.provider,
            case.model,
            format!("{:?}", case.mode),
            if case.cache { "cache" } else { "" },
            sent.prompt,
            sent.completion,
            sent.cached,
            sent.cache_write,
            cost
        ));
    }
    println!("{}", summary.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What the client saw of the usage: the same numbers, and no usage chunk
/// in a stream that did not ask for one (not even from OpenRouter, which
/// always sends one: a client reading `chunk.choices[0]` breaks on it).
fn check_client_usage(
    case: &Case,
    out: &Outcome,
    sent: &Counts,
    fail: &mut impl FnMut(&Case, String),
) {
    let usage = match case.mode {
        Mode::Plain => serde_json::from_str::<Value>(&out.text)
            .map(|v| v["usage"].clone())
            .unwrap_or(Value::Null),
        _ => chunks(&out.text)
            .into_iter()
            .find(|c| c["usage"].is_object())
            .map_or(Value::Null, |c| c["usage"].clone()),
    };
    check_client_stream_shape(case, out, fail);
    if case.mode == Mode::StreamQuiet {
        return;
    }
    let seen = (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
        usage
            .pointer("/prompt_tokens_details/cached_tokens")
            .or_else(|| usage.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    );
    if seen != (Some(sent.prompt), Some(sent.completion), sent.cached) {
        fail(
            case,
            format!("the client saw usage {usage}, the mock sent {sent:?}"),
        );
    }
}

/// The client gets an OpenAI answer whatever the provider's usage said: a
/// `chat.completion` with the text, or `chat.completion.chunk`s spelling it
/// out and `[DONE]`; a stream the client did not ask usage for carries no
/// `usage` at all (the filter hides what it asked for).
fn check_client_stream_shape(case: &Case, out: &Outcome, fail: &mut impl FnMut(&Case, String)) {
    if !case.mode.stream() {
        let v: Value = serde_json::from_str(&out.text).unwrap_or(Value::Null);
        let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
        if v["object"] != "chat.completion" || !text.contains("Mock answer") {
            fail(
                case,
                format!("the client got no chat completion: {}", out.text),
            );
        }
        return;
    }
    let all = chunks(&out.text);
    let text: String = all
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    if all.iter().any(|c| c["object"] != "chat.completion.chunk") || !text.contains("Mock answer") {
        fail(
            case,
            format!("the client got no chat completion chunks: {}", out.text),
        );
    }
    if !out.text.trim_end().ends_with("data: [DONE]") {
        fail(
            case,
            format!("the stream did not end with [DONE]: {}", out.text),
        );
    }
    if chunks(&out.text).len() < 3 {
        fail(case, format!("the stream lost its chunks: {}", out.text));
    }
    if case.mode == Mode::StreamQuiet && out.text.contains("\"usage\"") {
        let leaked: Vec<Value> = chunks(&out.text)
            .into_iter()
            .filter(|c| c.get("usage").is_some())
            .collect();
        fail(
            case,
            format!("the client got usage it did not ask for: {leaked:?}"),
        );
    }
}
