//! A scheduled retirement through real Envoy and the control plane
//! (control-plane/README.md and filter/README.md, "Scheduled
//! retirements"): gpt-4o-mini's `retires_at` is set through the admin API
//! a few seconds ahead; before the instant it is routed to (the cheapest
//! for `auto`) and its answers carry `Sunset`; from the instant the next
//! `auto` request goes elsewhere, a request naming it gets 404
//! `model_not_found` with the date, a pass-through body naming it 403
//! `model_disabled`, `/v1/models` no longer lists it — the filter switches
//! by its own clock, no table is pushed at the instant — and the admin API
//! lists it as retired. A replacement dated to enter service at that
//! instant (`enabled_from`, as the catalog dates gpt-6-luna) takes over
//! there, so a tenant with one provider is never without a model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_core::catalog::Timestamp;
use aipipe_tests::assert_eventually;
use common::control_plane::CpStack;
use common::{chat, now_ms};
use serde_json::json;

/// The ids `GET /v1/models` lists to the tenant, through Envoy.
fn listed(s: &CpStack, key: &str) -> Vec<String> {
    let r = aipipe_tests::get(
        &s.envoy.url("/v1/models"),
        &[("authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits past the instant `at` (ms since the epoch), after checking that
/// the requests meant for before it were all made before it; the table
/// version served then, for the caller to see that none was pushed.
fn cross(s: &CpStack, at: u64) -> u64 {
    assert!(
        now_ms() + 200 < at,
        "the requests before the instant took too long to test anything"
    );
    let version = s.table_version();
    while now_ms() < at + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    version
}

#[test]
fn a_model_retires_at_its_instant() {
    let s = CpStack::start();
    let key =
        s.cp.tenant("acme", &[("openai", "sk-acme"), ("anthropic", "ak-acme")]);
    // A model without a date: its answers carry no Sunset.
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &chat("claude-sonnet-5-5", "warm up")).status == 200,
        "tenant never worked"
    );
    let r = s.chat(&key, &chat("claude-sonnet-5-5", "no date"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("sunset"), None);

    // gpt-4o-mini retires 4 s from now.
    let mut entry = s.listed_model("gpt-4o-mini");
    let at = (now_ms() / 1000 + 4) * 1000;
    let instant = Timestamp(at);
    entry["retires_at"] = json!(instant.to_string());
    let r = s.cp.admin("PUT", "/admin/models/gpt-4o-mini", Some(&entry));
    assert_eq!(r.status, 200, "{}", r.text());
    let listed_admin = s.cp.admin("GET", "/admin/models", None).json();
    assert!(
        !listed_admin["retired"]
            .as_array()
            .unwrap()
            .contains(&json!("gpt-4o-mini")),
        "{}",
        listed_admin["retired"]
    );
    // The table reaches Envoy within milliseconds of the commit.
    std::thread::sleep(Duration::from_millis(300));

    // Before the instant: named and auto reach it, with its Sunset.
    let r = s.chat(&key, &chat("gpt-4o-mini", "before"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("sunset"), Some(instant.http_date().as_str()));
    let r = s.chat(&key, &chat("auto", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    assert!(listed(&s, &key).contains(&"gpt-4o-mini".to_owned()));
    // From the instant: retired, with no new table.
    let version = cross(&s, at);
    let r = s.chat(&key, &chat("auto", "hi"));
    assert_eq!(r.status, 200, "{}", r.text());
    let routed = r.header("x-aipipe-model").unwrap_or_default().to_owned();
    assert!(!routed.is_empty() && routed != "gpt-4o-mini", "{routed}");
    assert_eq!(
        r.header("sunset").is_some(),
        routed == "gpt-4o" || routed == "claude-opus-4-5"
    );

    let r = s.chat(&key, &chat("gpt-4o-mini", "after"));
    assert_eq!(r.status, 404, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "`gpt-4o-mini` was retired by its provider at {instant}"
        )),
        "{message}"
    );
    assert!(!message.contains("sk-acme"), "{message}");

    let r = aipipe_tests::request(
        "POST",
        &s.envoy.url("/openai/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
        ],
        Some(chat("gpt-4o-mini", "pass").to_string().as_bytes()),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_disabled", "{}", r.text());
    assert!(r.text().contains("retired by its provider"), "{}", r.text());

    assert!(!listed(&s, &key).contains(&"gpt-4o-mini".to_owned()));
    assert_eq!(s.table_version(), version, "no table pushed at the instant");
    let listed_admin = s.cp.admin("GET", "/admin/models", None).json();
    assert!(
        listed_admin["retired"]
            .as_array()
            .unwrap()
            .contains(&json!("gpt-4o-mini")),
        "{}",
        listed_admin["retired"]
    );
}

/// A replacement scheduled for its predecessors' retirement takes over at
/// that one instant (filter/README.md, "Scheduled retirements": what the
/// catalog does with gpt-6-luna on 2027-01-14): for a tenant with only an
/// OpenAI key, before the instant `auto` reaches gpt-4o-mini and a request
/// naming gpt-6-luna is refused with the instant it enters service (404 on
/// the routed API, 403 in a pass-through body); from the instant `auto`
/// and the name reach gpt-6-luna, `/v1/models` lists it instead of the
/// retired ones, and no table was pushed — never a moment without a model.
#[test]
fn a_replacement_enters_service_as_its_predecessors_retire() {
    let s = CpStack::start();
    let key = s.cp.tenant("acme", &[("openai", "sk-acme")]);
    assert_eventually!(
        Duration::from_secs(10),
        s.chat(&key, &chat("auto", "warm up")).status == 200,
        "tenant never worked"
    );
    let at = (now_ms() / 1000 + 4) * 1000;
    let instant = Timestamp(at);
    for id in ["gpt-4o-mini", "gpt-4o"] {
        let mut entry = s.listed_model(id);
        entry["retires_at"] = json!(instant.to_string());
        let r =
            s.cp.admin("PUT", &format!("/admin/models/{id}"), Some(&entry));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut luna = s.listed_model("gpt-6-luna");
    luna["enabled"] = json!(true);
    luna["enabled_from"] = json!(instant.to_string());
    let r = s.cp.admin("PUT", "/admin/models/gpt-6-luna", Some(&luna));
    assert_eq!(r.status, 200, "{}", r.text());
    std::thread::sleep(Duration::from_millis(300));

    let r = s.chat(&key, &chat("auto", "before"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-aipipe-model"), Some("gpt-4o-mini"));
    let r = s.chat(&key, &chat("gpt-6-luna", "too early"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found", "{}", r.text());
    let says = format!("`gpt-6-luna` enters service in this gateway at {instant}");
    assert!(r.text().contains(&says), "{}", r.text());
    let pass = || {
        aipipe_tests::request(
            "POST",
            &s.envoy.url("/openai/v1/chat/completions"),
            &[
                ("authorization", &format!("Bearer {key}")),
                ("content-type", "application/json"),
            ],
            Some(chat("gpt-6-luna", "pass").to_string().as_bytes()),
        )
    };
    let r = pass();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_disabled", "{}", r.text());
    assert!(r.text().contains(&says), "{}", r.text());
    let models = listed(&s, &key);
    assert!(
        models.contains(&"gpt-4o-mini".to_owned()) && !models.contains(&"gpt-6-luna".to_owned()),
        "{models:?}"
    );
    let version = cross(&s, at);
    for model in ["auto", "gpt-6-luna"] {
        let r = s.chat(&key, &chat(model, "after"));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("x-aipipe-model"), Some("gpt-6-luna"), "{model}");
    }
    assert_eq!(pass().status, 200);
    assert_eq!(listed(&s, &key), ["auto", "gpt-6-luna"]);
    assert_eq!(s.table_version(), version, "no table pushed at the instant");
}
