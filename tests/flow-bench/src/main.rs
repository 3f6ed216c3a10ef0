//! `flow-bench`: one routed chat request after another through the whole
//! request flow (`aipipe_core::flow` on its in-memory host: the request's
//! headers and body, the provider's answer, the log), timed by phase.
//! Envoy is not in it: what is left is the filter's own work, natively or
//! compiled to wasm32-wasip1 and run in Node's V8 (`flow-bench.mjs`), where
//! `node --cpu-prof` shows it function by function.
//!
//! `flow-bench [--router] [--named MODEL] [--seconds N] [--cold MB]`:
//! `--named` names MODEL instead of `auto`; with `--cold`, MB
//! megabytes are written between requests (outside the timed phases), so
//! each request finds the caches as a lone request at concurrency 1 finds
//! them after the load generator, the provider and the kernel ran.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aipipe_core::config::Config;
use aipipe_core::flow::fake::FakeHost;
use aipipe_core::flow::{Action, Filter};
use aipipe_core::table::hex_hash;
use aipipe_flow_bench::chat_body;

const KEY: &str = "vk-bench";

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"It appends each tenant's event to the store."},"finish_reason":"stop"}],"usage":{"prompt_tokens":260,"completion_tokens":12,"total_tokens":272}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let router = args.iter().any(|a| a == "--router");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    let cold_mb: usize = args
        .iter()
        .position(|a| a == "--cold")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let named: Option<&String> = args
        .iter()
        .position(|a| a == "--named")
        .and_then(|i| args.get(i + 1));
    let mut evict = vec![0u8; cold_mb << 20];
    let table = format!(
        r#"{{"table": {{"version": 1 {}, "tenants": [{{"id": "bench",
            "virtual_key_hashes": ["{}"],
            "provider_keys": {{"openai": "sk-bench", "anthropic": "ak-bench"}}}}]}}}}"#,
        if router {
            r#", "router_model": "builtin""#
        } else {
            ""
        },
        hex_hash(KEY)
    );
    let config = match Config::parse(table.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flow-bench: {e}");
            std::process::exit(1);
        }
    };
    let host = FakeHost::new();
    let filter = Filter::new(config, &host);
    let mut body = chat_body(1024);
    if let Some(model) = named {
        body = body.replacen(r#""model":"auto""#, &format!(r#""model":"{model}""#), 1);
    }
    let auth = format!("Bearer {KEY}");
    // Time in each phase: request headers, request body (the routing
    // decision), the answer (headers and body), the log.
    let mut phases = [Duration::ZERO; 4];
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed().as_secs() < seconds {
        for _ in 0..100 {
            if !evict.is_empty() {
                // A new value each time, so no page stays as it was.
                let v = (n as u8).wrapping_add(1);
                for line in evict.chunks_mut(64) {
                    if let Some(b) = line.first_mut() {
                        *b = v;
                    }
                }
                black_box(&evict);
            }
            host.request(
                "POST",
                "/v1/chat/completions",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            );
            let t0 = Instant::now();
            let mut r = filter.request();
            let a = r.on_request_headers(&host, false);
            let t1 = Instant::now();
            let size = host.request_body.borrow().len();
            let b = r.on_request_body(&host, size, true);
            let t2 = Instant::now();
            if a != Action::Pause || b != Action::Continue {
                eprintln!("flow-bench: the request was not routed");
                std::process::exit(1);
            }
            host.answer(
                200,
                &[("content-type", "application/json")],
                ANSWER.as_bytes(),
            );
            let t3 = Instant::now();
            black_box(r.on_response_headers(&host, false));
            let size = host.response_body.borrow().len();
            black_box(r.on_response_body(&host, size, true));
            let t4 = Instant::now();
            r.on_log(&host);
            drop(r);
            let t5 = Instant::now();
            phases[0] += t1 - t0;
            phases[1] += t2 - t1;
            phases[2] += t4 - t3;
            phases[3] += t5 - t4;
            host.queue.borrow_mut().clear();
        }
        n += 100;
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let total: Duration = phases.iter().sum();
    println!(
        "flow-bench{}{}{}: {n} requests, µs a request: total {:.2} = request headers {:.2} + body {:.2} + answer {:.2} + log {:.2}",
        if router { " --router" } else { "" },
        named.map(|m| format!(" --named {m}")).unwrap_or_default(),
        if cold_mb > 0 {
            format!(" --cold {cold_mb}")
        } else {
            String::new()
        },
        us(total),
        us(phases[0]),
        us(phases[1]),
        us(phases[2]),
        us(phases[3]),
    );
}
