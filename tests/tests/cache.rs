//! The answer cache (filter/README.md, "Cache") through real Envoy: shared
//! by the workers, keyed per tenant, bypassed when it must be, bounded in
//! memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aipipe_tests::{Envoy, Mock, post_json};
use common::{ACME, BETA, Stack, test_plugin_config};
use serde_json::{Value, json};

/// A deterministic request (temperature 0): cacheable.
fn fixed(text: &str) -> Value {
    json!({"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

#[test]
fn repeated_questions_are_answered_from_the_cache_per_tenant() {
    let s = Stack::start();
    let body = fixed("What is the capital of France?");
    let first = post_json(&s.chat_url(), &ACME.auth(), &body);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-aipipe-cache"), Some("miss"));
    assert_eq!(s.mock.received().len(), 1);

    // Again, many times: every worker answers from the one shared cache and
    // nothing reaches the provider.
    for _ in 0..6 {
        let r = post_json(&s.chat_url(), &ACME.auth(), &body);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-aipipe-cache"), Some("hit"));
        assert_eq!(r.header("x-aipipe-model"), first.header("x-aipipe-model"));
        assert_eq!(r.json(), first.json());
    }
    assert_eq!(s.mock.received().len(), 1);

    // Another tenant never sees ACME's entry.
    let r = post_json(&s.chat_url(), &BETA.auth(), &body);
    assert_eq!(r.header("x-aipipe-cache"), Some("miss"));
    assert_eq!(s.mock.received().len(), 2);
    assert_eq!(
        s.mock.received().last().unwrap()["authorization"],
        "Bearer sk-beta-openai"
    );

    // Whitespace and key order do not matter; a parameter does.
    let reordered: Value = serde_json::from_str(
        r#"{ "messages": [{"content": "What is the capital of France?", "role": "user"}],
             "temperature": 0, "model": "auto" }"#,
    )
    .unwrap();
    let r = post_json(&s.chat_url(), &ACME.auth(), &reordered);
    assert_eq!(r.header("x-aipipe-cache"), Some("hit"));
    let mut capped = body.clone();
    capped["max_tokens"] = json!(5);
    let r = post_json(&s.chat_url(), &ACME.auth(), &capped);
    assert_eq!(r.header("x-aipipe-cache"), Some("miss"));

    // Anthropic clients get their own entries (the answer's shape differs).
    let mut messages = json!({"model": "gpt-4o-mini", "max_tokens": 100, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let url = s.envoy.url("/v1/messages");
    let key = [("x-api-key", "vk-acme")];
    assert_eq!(
        post_json(&url, &key, &messages).header("x-aipipe-cache"),
        Some("miss")
    );
    let hit = post_json(&url, &key, &messages);
    assert_eq!(hit.header("x-aipipe-cache"), Some("hit"));
    assert_eq!(hit.json()["type"], "message");
    messages["stream"] = json!(true);
    assert_eq!(
        post_json(&url, &key, &messages).header("x-aipipe-cache"),
        Some("bypass")
    );
}

#[test]
fn the_cache_is_bypassed_when_it_must_be() {
    let s = Stack::start();
    let body = fixed("Name three primary colours.");
    assert_eq!(
        post_json(&s.chat_url(), &ACME.auth(), &body).header("x-aipipe-cache"),
        Some("miss")
    );
    for value in ["no-cache", "no-store", "max-age=0, No-Store"] {
        let mut headers = ACME.auth();
        headers.push(("cache-control", value));
        let r = post_json(&s.chat_url(), &headers, &body);
        assert_eq!(r.header("x-aipipe-cache"), Some("bypass"), "{value}");
    }
    // Streamed, and non-deterministic (default temperature, no seed).
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post_json(&s.chat_url(), &ACME.auth(), &streamed);
    assert_eq!(r.header("x-aipipe-cache"), Some("bypass"));
    let r = post_json(
        &s.chat_url(),
        &ACME.auth(),
        &json!({"messages": [{"role": "user", "content": "Name three primary colours."}]}),
    );
    assert_eq!(r.header("x-aipipe-cache"), Some("bypass"));
    // With a seed it is deterministic again.
    let mut seeded = json!({"messages": [{"role": "user", "content": "x"}], "seed": 7});
    assert_eq!(
        post_json(&s.chat_url(), &ACME.auth(), &seeded).header("x-aipipe-cache"),
        Some("miss")
    );
    assert_eq!(
        post_json(&s.chat_url(), &ACME.auth(), &seeded).header("x-aipipe-cache"),
        Some("hit")
    );
    seeded["seed"] = json!(8);
    assert_eq!(
        post_json(&s.chat_url(), &ACME.auth(), &seeded).header("x-aipipe-cache"),
        Some("miss")
    );
    // An error is never cached.
    s.mock
        .fault(json!({"provider": "openai", "status": 400, "times": 1}));
    let failing = fixed("This one fails once.");
    assert_eq!(post_json(&s.chat_url(), &ACME.auth(), &failing).status, 400);
    let r = post_json(&s.chat_url(), &ACME.auth(), &failing);
    assert_eq!((r.status, r.header("x-aipipe-cache")), (200, Some("miss")));
}

#[test]
fn a_flood_of_distinct_requests_stays_within_the_memory_bound() {
    let mock = Mock::start();
    let mut config: Value = serde_json::from_str(&test_plugin_config()).unwrap();
    let (slots, max_entry) = (8u64, 4096u64);
    config["cache"] = json!({"slots": slots, "max_entry_bytes": max_entry});
    let envoy = Envoy::start_rendered("demo.yaml", mock.port, Some(config.to_string()), true, 2);
    let url = envoy.url("/v1/chat/completions");
    let first = fixed("question number 0");
    post_json(&url, &ACME.auth(), &first);
    for i in 1..300 {
        let r = post_json(&url, &ACME.auth(), &fixed(&format!("question number {i}")));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-aipipe-cache"), Some("miss"), "{i}");
    }
    let stat = |name: &str| envoy.stat(&aipipe_tests::custom_stat(name)).unwrap_or(0);
    let (stored, evicted) = (
        stat("aipipe.cache.stored_bytes"),
        stat("aipipe.cache.evicted_bytes"),
    );
    let held = stored - evicted;
    assert!(stored > 300 * 100, "{stored} bytes stored");
    assert!(
        held <= slots * max_entry,
        "the cache holds {held} bytes, bound {}",
        slots * max_entry
    );
    assert!(held > 0);
    // The oldest entry was evicted: asking again goes upstream.
    let r = post_json(&url, &ACME.auth(), &first);
    assert_eq!(r.header("x-aipipe-cache"), Some("miss"));
}
