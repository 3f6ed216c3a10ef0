//! `classify-bench`: how long the trained classifier (`aipipe_core::classify`)
//! takes per request natively, next to the heuristic score it builds on, for
//! 1 KB and 16 KB chat bodies; and how long the model blob takes to decode.
//! Prints numbers only (no assertions): build with `--release`.
//!
//! `cargo run --release -p aipipe-tools --bin classify-bench`
//!
//! `--spin score|classify` runs only that step on the 1 KB chat body for
//! five seconds and prints nothing else: a loop for `perf record`.

use std::hint::black_box;
use std::time::Instant;

use aipipe_core::classify;
use aipipe_core::request::ChatRequest;
use aipipe_core::score::{Scorer, ScoringConfig};

/// A short agentic request with `n` tool definitions (name, a 200-byte
/// description, a schema): what reading tool definitions costs.
fn tools_body(n: usize) -> String {
    let tools: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"type": "function", "function": {
                "name": format!("lookup_order_{i}"),
                "description": "Look up an order by its number and return its status, items, \
                    shipping address and tracking events, newest first. Use it whenever the \
                    customer asks where an order is or what it contains.",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"]}}})
        })
        .collect();
    serde_json::json!({"model": "auto", "tools": tools, "messages": [
        {"role": "user", "content": "where is my order 88213? it should have arrived on monday"}]})
    .to_string()
}

fn body(bytes: usize) -> String {
    let para = "Here is the incident log from last night; the checkout service timed out \
                while the payment provider answered slowly, and retries piled up. ";
    let mut text =
        String::from("Can you find out why the p99 latency went up and what we should change? ");
    while text.len() < bytes.saturating_sub(120) {
        text.push_str(para);
    }
    text.push_str(" Please answer with the root cause first.");
    serde_json::json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a senior SRE."},
        {"role": "user", "content": text}]})
    .to_string()
}

/// The fastest of `rounds` rounds of `iters` calls, in µs per call: on a
/// shared machine the other rounds measure the neighbours too.
fn time(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let per: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    per.into_iter().fold(f64::INFINITY, f64::min)
}

fn main() {
    // --model PATH: a blob train-router wrote (default: the bundled one).
    let args: Vec<String> = std::env::args().collect();
    let blob = match args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
    {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("classify-bench: {path}: {e}");
                std::process::exit(1);
            }
        },
        None => classify::BUNDLED.to_vec(),
    };
    let model = match classify::Model::decode(&blob) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("classify-bench: {e}");
            std::process::exit(1);
        }
    };
    let Ok(scorer) = Scorer::compile(&ScoringConfig::default()) else {
        eprintln!("classify-bench: default scoring config does not compile");
        std::process::exit(1);
    };
    println!(
        "model: {} bytes, 2^{} buckets, version {:08x}",
        blob.len(),
        model.config.bits,
        model.version
    );
    let decode = time(9, 200, || {
        black_box(classify::Model::decode(black_box(&blob)).ok());
    });
    println!("decode: {decode:.1} µs");
    if let Some(what) = args
        .iter()
        .position(|a| a == "--spin")
        .and_then(|i| args.get(i + 1))
    {
        spin(what, &scorer, &model);
        return;
    }
    let bodies = [
        ("chat", body(1024)),
        ("chat", body(16 * 1024)),
        ("4 tools", tools_body(4)),
        ("64 tools", tools_body(64)),
    ];
    for (what, b) in bodies {
        let Ok(req) = ChatRequest::parse(b.as_bytes()) else {
            continue;
        };
        let score = scorer.score(&req);
        let parse = time(25, 1000, || {
            black_box(ChatRequest::parse(black_box(b.as_bytes())).ok());
        });
        let heuristic = time(25, 1000, || {
            black_box(scorer.score(black_box(&req)));
        });
        let classify = time(25, 1000, || {
            black_box(model.predict(black_box(&req), black_box(&score)));
        });
        println!(
            "{what:<8} body {:>6} bytes: parse {parse:.2} µs, heuristic score {heuristic:.2} µs, classifier {classify:.2} µs (score + classifier {:.2} µs)",
            b.len(),
            heuristic + classify
        );
    }
}

fn spin(what: &str, scorer: &Scorer, model: &classify::Model) {
    let b = body(1024);
    let Ok(req) = ChatRequest::parse(b.as_bytes()) else {
        return;
    };
    let score = scorer.score(&req);
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs() < 5 {
        for _ in 0..1000 {
            match what {
                "score" => {
                    black_box(scorer.score(black_box(&req)));
                }
                _ => {
                    black_box(model.predict(black_box(&req), black_box(&score)));
                }
            }
        }
        n += 1000;
    }
    println!(
        "{what}: {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
