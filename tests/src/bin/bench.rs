//! `make bench`: what the filter costs, measured against plain Envoy in the
//! same run (SPEC §16).
//!
//! Two Envoys (one worker each, so each is bound by one core's CPU) share one
//! upstream — the mock provider in `--fast` mode, answering a constant chat
//! completion. Plain Envoy is `envoy/demo.yaml` without the filter (the client
//! names the cluster itself); the other runs the filter. wrk sends the same
//! requests to both, interleaved A/B, five pairs per body size, and the median
//! of the pair ratios is reported (this 2-core machine is noisy). Latency is
//! measured at concurrency 1. A native profile of the core's stages (parse,
//! score, select) shows what dominates the filter's own work.
//!
//! Environment: `AIPIPE_BENCH_SECONDS` (per run, default 5), `AIPIPE_BENCH_PAIRS`
//! (default 5), `AIPIPE_BENCH_CONNECTIONS` (throughput runs, default 32).

// A benchmark whose setup fails (no wrk, a non-2xx answer) must stop with the
// reason rather than print numbers: panicking with a message is the point.
#![allow(clippy::panic)]

use std::fs;
use std::process::Command;
use std::time::Instant;

use aipipe_tests::{Envoy, Mock, TempDir, plugin_config, post_json, sibling_binary};
use filter::request::ChatRequest;
use filter::route;
use filter::table::{RoutingTable, Table};

const KEY: &str = "vk-bench";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic chat body of about `size` bytes: a system prompt and a user
/// turn of prose with a code block, as an assistant integration sends.
fn chat_body(size: usize) -> String {
    let prose = "Our service ingests events from many tenants and writes them to a log; \
        please look at the handler below and explain what it does, then suggest a clearer name \
        for each function and point out anything that looks wrong. ";
    let code = "```python\ndef handle(event, store):\n    if not event.get(\"tenant\"):\n        return None\n    store.append(event[\"tenant\"], event)\n    return len(store)\n```\n";
    let mut text = String::new();
    while text.len() + 200 < size {
        text.push_str(prose);
        if text.len().is_multiple_of(3) {
            text.push_str(code);
        }
    }
    serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful senior engineer."},
            {"role": "user", "content": text},
        ],
        "temperature": 0.2,
    })
    .to_string()
}

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1000.0,
        "s" => v * 1_000_000.0,
        _ => return None,
    })
}

fn wrk(port: u16, script: &std::path::Path, connections: u64, seconds: u64) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk (make bench installs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || !out.status.success() {
        panic!(
            "wrk saw errors:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_default()
    };
    Run {
        rps: field("Requests/sec:").trim().parse().unwrap_or(0.0),
        p50_us: parse_duration_us(&field("50%")).unwrap_or(f64::NAN),
        p99_us: parse_duration_us(&field("99%")).unwrap_or(f64::NAN),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn write_script(dir: &TempDir, name: &str, body: &str) -> std::path::PathBuf {
    let body_path = dir.path().join(format!("{name}.json"));
    fs::write(&body_path, body).unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join(format!("{name}.lua"));
    // The same request for both Envoys: plain Envoy routes on the cluster
    // header; the filter strips it and sets its own.
    let lua = format!(
        "local f = io.open(\"{}\", \"rb\")\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {KEY}\"\n\
         wrk.headers[\"x-aipipe-cluster\"] = \"openai\"\nwrk.headers[\"Host\"] = \"api.openai.com\"\n",
        body_path.display()
    );
    fs::write(&script, lua).unwrap_or_else(|e| panic!("{e}"));
    script
}

/// Native time per request of each stage of the core, in microseconds.
fn profile_core(table: &Table, body: &str) -> (f64, f64, f64, f64) {
    let n = 2000;
    let bytes = body.as_bytes();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(ChatRequest::parse(std::hint::black_box(bytes)).is_ok());
    }
    let parse = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let Ok(req) = ChatRequest::parse(bytes) else {
        return (parse, 0.0, 0.0, 0.0);
    };
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(table.scorer.score(std::hint::black_box(&req)));
    }
    let score = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let s = table.scorer.score(&req);
    let needs = route::needs(&req, s.input_tokens);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(filter::select::rank(table, 0, &needs, s.complexity).is_ok());
    }
    let select = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(route::route(table, 0, std::hint::black_box(bytes)).is_ok());
    }
    let total = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    (parse, score, select, total)
}

/// The core's stages natively, µs per request: what the filter's own work
/// is made of (the wasm build runs the same code in V8).
fn print_core_profile(config: &str, sizes: &[(&str, usize)]) {
    println!("\nfilter core natively, µs per request:");
    let raw: RoutingTable = serde_json::from_str::<serde_json::Value>(config)
        .ok()
        .and_then(|v| serde_json::from_value(v["table"].clone()).ok())
        .unwrap_or_default();
    let Ok(table) = Table::compile(raw) else {
        return;
    };
    println!(
        "{:<5} {:>8} {:>8} {:>8} {:>8}",
        "size", "parse", "score", "select", "route"
    );
    for (name, size) in sizes {
        let (parse, score, select, total) = profile_core(&table, &chat_body(*size));
        println!("{name:<5} {parse:>8.2} {score:>8.2} {select:>8.2} {total:>8.2}");
    }
}

fn main() {
    let seconds = env_num("AIPIPE_BENCH_SECONDS", 5);
    let pairs = env_num("AIPIPE_BENCH_PAIRS", 5);
    let connections = env_num("AIPIPE_BENCH_CONNECTIONS", 32);
    let sizes = [("1k", 1024usize), ("16k", 16 * 1024)];
    let config = plugin_config(
        &[(
            "bench",
            &[KEY],
            &[
                ("openai", "sk-bench-openai"),
                ("anthropic", "sk-bench-anthropic"),
            ],
            false,
        )],
        4 * 1024 * 1024,
    );

    if std::env::args().any(|a| a == "--core-only") {
        print_core_profile(&config, &sizes);
        return;
    }
    let mock = Mock::start_with(
        &sibling_binary("mock-provider"),
        &["--fast", "--threads", "1"],
        None,
    );
    let plain = Envoy::start_rendered("demo.yaml", mock.port, None, false, 1);
    let filtered = Envoy::start_rendered("demo.yaml", mock.port, Some(config.clone()), true, 1);

    let dir = TempDir::new("bench");
    println!(
        "aipipe bench — {pairs} interleaved A/B pairs per size, {seconds}s per run, 1 Envoy worker each, wrk -t1 -c{connections}"
    );
    println!(
        "A = plain Envoy (same listener and clusters, no filter), B = Envoy + aipipe filter\n"
    );

    // Sanity: both answer, and the filter really routes.
    let check_body: serde_json::Value = serde_json::from_str(&chat_body(1024)).unwrap_or_default();
    let headers = [
        ("authorization", "Bearer vk-bench"),
        ("x-aipipe-cluster", "openai"),
        ("host", "api.openai.com"),
    ];
    let a = post_json(&plain.url("/v1/chat/completions"), &headers, &check_body);
    let b = post_json(&filtered.url("/v1/chat/completions"), &headers, &check_body);
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "bench setup is broken: {} / {}",
        a.text(),
        b.text()
    );
    println!(
        "filter routed the 1 KB body to {} (complexity {})\n",
        b.header("x-aipipe-model").unwrap_or("?"),
        b.header("x-aipipe-complexity").unwrap_or("?")
    );

    println!(
        "{:<5} {:>4} {:>12} {:>12} {:>7}",
        "size", "pair", "A req/s", "B req/s", "B/A"
    );
    let mut ratios = std::collections::BTreeMap::new();
    for (name, size) in sizes {
        let body = chat_body(size);
        let script = write_script(&dir, name, &body);
        // Warm both (VM JIT, connection pools).
        wrk(plain.port, &script, connections, 1);
        wrk(filtered.port, &script, connections, 1);
        let mut r = Vec::new();
        for pair in 0..pairs {
            let (a, b) = if pair % 2 == 0 {
                let a = wrk(plain.port, &script, connections, seconds);
                (a, wrk(filtered.port, &script, connections, seconds))
            } else {
                let b = wrk(filtered.port, &script, connections, seconds);
                (wrk(plain.port, &script, connections, seconds), b)
            };
            let ratio = b.rps / a.rps;
            println!(
                "{name:<5} {pair:>4} {:>12.0} {:>12.0} {ratio:>7.3}",
                a.rps, b.rps
            );
            r.push(ratio);
        }
        ratios.insert(name, median(r));
    }

    println!("\nlatency at concurrency 1 (1 KB body)");
    println!(
        "{:>4} {:>10} {:>10} {:>10} {:>10}",
        "pair", "A p50 µs", "B p50 µs", "A p99 µs", "B p99 µs"
    );
    let script = write_script(&dir, "lat", &chat_body(1024));
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        let a = wrk(plain.port, &script, 1, seconds);
        let b = wrk(filtered.port, &script, 1, seconds);
        println!(
            "{pair:>4} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            a.p50_us, b.p50_us, a.p99_us, b.p99_us
        );
        p50.push(b.p50_us - a.p50_us);
        p99.push(b.p99_us - a.p99_us);
    }

    print_core_profile(&config, &sizes);
    println!();
    println!(
        "bench: throughput_ratio_1k {:.3}",
        ratios.get("1k").copied().unwrap_or(f64::NAN)
    );
    println!(
        "bench: throughput_ratio_16k {:.3}",
        ratios.get("16k").copied().unwrap_or(f64::NAN)
    );
    println!("bench: added_p50_us_1k {:.1}", median(p50));
    println!("bench: added_p99_us_1k {:.1}", median(p99));
}
