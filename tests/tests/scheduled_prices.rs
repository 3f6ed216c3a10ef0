//! A scheduled price change through real Envoy and the control plane
//! (control-plane/README.md and filter/README.md, "Scheduled price
//! changes"): the change is set through the admin API a few seconds ahead;
//! a request before its instant is costed at the old prices, one after it at
//! the new ones — the filter switches by its own clock, no table is pushed
//! at the instant — and the admin API then lists the new prices as the
//! model's own. Long-context rates the same way: a prompt past the
//! threshold costed at them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_core::catalog::Timestamp;
use aipipe_tests::{assert_eventually, eventually};
use common::control_plane::CpStack;
use common::{chat, now_ms};
use serde_json::{Value, json};

/// The usage the client saw: (prompt, completion).
fn usage_seen(reply: &aipipe_tests::Reply) -> (u64, u64) {
    let u = &reply.json()["usage"];
    (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    )
}

/// The tenant's stats once they count `requests` requests.
fn stats_at(s: &CpStack, requests: u64) -> Value {
    eventually(Duration::from_secs(15), || {
        let st = s.stats("acme");
        (st["totals"]["requests"].as_u64()? == requests).then_some(st)
    })
    .unwrap_or_else(|| panic!("usage did not arrive: {}", s.stats("acme")))
}

/// Nano-dollars of the tenant's stats so far.
fn cost_nusd(st: &Value) -> u64 {
    (st["totals"]["cost_usd"].as_f64().unwrap() * 1e9).round() as u64
}

/// A stack whose tenant `acme` has an OpenAI key and has had one request
/// answered by gpt-4o-mini: the stack, its key, and the cost so far.
fn acme_on_mini() -> (CpStack, String, u64) {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &chat("gpt-4o-mini", "warm up")).status == 200,
        "tenant never worked"
    );
    let base = cost_nusd(&stats_at(&s, 1));
    (s, key, base)
}

#[test]
fn a_scheduled_price_change_costs_requests_before_and_after_its_instant() {
    let (s, key, base) = acme_on_mini();
    let mini = |text: &str| chat("gpt-4o-mini", text);

    // gpt-4o-mini from $0.15 / $0.60 to $3.00 / $12.00, 4 s from now.
    let mut entry = s.listed_model("gpt-4o-mini");
    let at = (now_ms() / 1000 + 4) * 1000;
    let from = Timestamp(at).to_string();
    entry["price_changes"] =
        json!([{"from": from, "input_per_mtok": 3.0, "output_per_mtok": 12.0}]);
    let r = s.cp.admin("PUT", "/admin/models/gpt-4o-mini", Some(&entry));
    assert_eq!(r.status, 200, "{}", r.text());
    // Listed as scheduled, not yet in force. The table reaches Envoy
    // within milliseconds of the commit (control-plane/README.md, "Admin
    // API"); the pause leaves it 300 ms.
    let listed = s.listed_model("gpt-4o-mini");
    assert_eq!(listed["input_per_mtok"], json!(0.15), "{listed}");
    assert_eq!(listed["price_changes"][0]["from"], json!(from), "{listed}");
    std::thread::sleep(Duration::from_millis(300));

    // Before the instant: the old prices.
    let (mut p_before, mut c_before) = (0, 0);
    for i in 0..3 {
        let r = s.chat(&key, &mini(&"before the change ".repeat(i + 1)));
        assert_eq!(r.status, 200);
        let (p, c) = usage_seen(&r);
        p_before += p;
        c_before += c;
    }
    assert!(
        now_ms() + 200 < at,
        "the requests before the change took too long to test anything"
    );
    let before = stats_at(&s, 4);
    assert_eq!(
        cost_nusd(&before) - base,
        p_before * 150 + c_before * 600,
        "{before}"
    );

    // After it: the new prices, and no new table (the same version is
    // served before and after the instant: nothing was pushed).
    let version = s.table_version();
    while now_ms() < at + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut p_after, mut c_after) = (0, 0);
    for i in 0..3 {
        let r = s.chat(&key, &mini(&"after the change ".repeat(i + 1)));
        assert_eq!(r.status, 200);
        let (p, c) = usage_seen(&r);
        p_after += p;
        c_after += c;
    }
    assert_eq!(s.table_version(), version, "no table pushed at the instant");
    let after = stats_at(&s, 7);
    assert_eq!(
        cost_nusd(&after) - cost_nusd(&before),
        p_after * 3_000 + c_after * 12_000,
        "{after}"
    );

    // The admin API lists the prices in force: the change folded in.
    let listed = s.listed_model("gpt-4o-mini");
    assert_eq!(
        (&listed["input_per_mtok"], &listed["output_per_mtok"]),
        (&json!(3.0), &json!(12.0)),
        "{listed}"
    );
    assert_eq!(listed.get("price_changes"), None, "{listed}");
}

/// Long-context rates through real Envoy (filter/README.md, "Long-context
/// prices"): set through the admin API, they cost a request whose prompt —
/// as the provider counts it — is past the threshold at the higher rates,
/// the whole request, and one at or under it at the listed ones.
#[test]
fn a_prompt_past_the_long_context_threshold_is_billed_at_its_rates() {
    let (s, key, base) = acme_on_mini();
    let mini = |text: &str| chat("gpt-4o-mini", text);

    // gpt-4o-mini at 4× its input and 3× its output price above 100 tokens.
    let mut entry = s.listed_model("gpt-4o-mini");
    entry["long_context"] =
        json!({"above_tokens": 100, "input_multiplier": 4, "output_multiplier": 3});
    let r = s.cp.admin("PUT", "/admin/models/gpt-4o-mini", Some(&entry));
    assert_eq!(r.status, 200, "{}", r.text());
    // The table reaches Envoy within milliseconds of the commit
    // (control-plane/README.md, "Admin API"); the pause leaves it 500 ms.
    std::thread::sleep(Duration::from_millis(500));

    let short = s.chat(&key, &mini("a short question"));
    assert_eq!(short.status, 200);
    let (p_short, c_short) = usage_seen(&short);
    assert!(p_short <= 100, "the short prompt has {p_short} tokens");
    let after_short = stats_at(&s, 2);
    assert_eq!(
        cost_nusd(&after_short) - base,
        p_short * 150 + c_short * 600,
        "{after_short}"
    );

    let long = s.chat(&key, &mini(&"a longer question ".repeat(40)));
    assert_eq!(long.status, 200);
    let (p_long, c_long) = usage_seen(&long);
    assert!(p_long > 100, "the long prompt has {p_long} tokens");
    let after_long = stats_at(&s, 3);
    assert_eq!(
        cost_nusd(&after_long) - cost_nusd(&after_short),
        p_long * 600 + c_long * 1_800,
        "{after_long}"
    );
}
