//! The dashboard (control-plane/README.md, "Dashboard") in a real browser:
//! headless Chromium (Debian's `chromium` and `chromium-driver`) driven by the
//! pinned Selenium of `.venv/` (`tests/dashboard/drive.py`), against the real
//! control plane with traffic recorded through real Envoy, the filter and the
//! mock providers. The script reports what the page showed; this test holds
//! it against what the admin API answers for the same data:
//!
//! - a wrong secret is refused and the page stays signed out;
//! - signed in, the numbers and the charts show the recorded traffic (non-zero,
//!   and equal to the API's), for all tenants and for each tenant, and change
//!   when the tenant does; the page refreshes by itself;
//! - the page asks its own origin only, sends the secret only to `/admin/`,
//!   never in a URL, and keeps it in sessionStorage only, until sign-out.
//!
//! A screenshot of each view is left in a temporary directory whose path is
//! printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aipipe_tests::{ControlPlane, TempDir, eventually, get, repo_root};
use common::chat;
use common::control_plane::{CpStack, chat_as, tenant_with_own_keys, tenants_served};
use common::scripts::python;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the browser session may take (it waits ≤ 20 s per step).
const PATIENCE: Duration = Duration::from_secs(180);

const HARD_PROMPT: &str = "Prove by induction that every finite tree with n vertices has exactly n-1 edges. \
     Then give a formal proof that a connected graph with n-1 edges is a tree, and show the bound is tight.";

#[test]
fn the_dashboard_shows_recorded_traffic_in_a_real_browser_and_talks_only_to_its_own_origin() {
    let python = python().unwrap_or_else(|e| panic!("{e}"));
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `make integration` (it installs Debian's chromium and chromium-driver)"
        );
    }
    let s = CpStack::start();
    let acme = tenant_with_own_keys(&s.cp, "acme", &["openai", "anthropic"]);
    let beta = tenant_with_own_keys(&s.cp, "beta", &["openai"]);
    assert!(
        tenants_served(&s.cp, &s.envoy),
        "Envoy never served the tenants"
    );
    put(
        &s.cp,
        "/admin/tenants/acme/budget",
        json!({"limit_usd": 10, "days": 30}),
    );
    put(
        &s.cp,
        "/admin/tenants/acme/limits",
        json!({"requests_per_minute": 600, "tokens_per_minute": 1_000_000}),
    );
    // A key of acme's with a budget of its own (its id is no secret).
    let r = s.cp.admin(
        "POST",
        "/admin/tenants/acme/virtual-keys",
        Some(&json!({"name": "ci-bot"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let bot = r.json()["id"].as_str().unwrap().to_owned();
    put(
        &s.cp,
        &format!("/admin/tenants/acme/virtual-keys/{bot}/budget"),
        json!({"limit_usd": 2, "days": 7}),
    );
    let sent = record_traffic(&s, &acme, &beta);

    // Every request recorded before the browser looks; then what the admin
    // API says of them is what the page must show.
    let stats = |tenant: Option<&str>| -> Value {
        let q = tenant.map_or(String::new(), |t| format!("&tenant={t}"));
        let r = s.cp.admin("GET", &format!("/admin/stats?since=0{q}"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    for (tenant, n) in [("acme", sent.acme), ("beta", sent.beta)] {
        eventually(Duration::from_secs(30), || {
            (stats(Some(tenant))["totals"]["requests"].as_u64() == Some(n)).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{tenant}'s {n} requests never all arrived: {}",
                stats(Some(tenant))
            )
        });
    }
    let (all_stats, acme_stats, beta_stats) =
        (stats(None), stats(Some("acme")), stats(Some("beta")));
    let all_requests = all_stats["totals"]["requests"].as_u64().unwrap();
    // acme, beta and the probe tenant that showed Envoy had the table.
    assert!(all_requests > sent.acme + sent.beta, "{all_stats}");

    let shots = screenshot_dir();
    let report = drive(&python, &s.cp, &shots);
    let step = |name: &str| -> &Value {
        report["steps"]
            .get(name)
            .unwrap_or_else(|| panic!("the script reported no step {name}: {report}"))
    };

    // A wrong secret: refused, signed out, nothing stored.
    let wrong = step("wrong_secret");
    assert_eq!(wrong["state"], "signed-out", "{wrong}");
    assert_eq!(wrong["error"], "Wrong admin secret.", "{wrong}");
    assert_eq!(wrong["app_hidden"], true, "{wrong}");
    assert!(wrong["stored"].is_null(), "{wrong}");

    // All tenants: the recorded traffic, as the API counts it.
    let all = step("all");
    assert_eq!(all["state"], "signed-in");
    assert_eq!(
        all["field_after_sign_in"], "",
        "the secret was left in the field"
    );
    assert!(all["banner"].is_null(), "{}", all["banner"]);
    assert_eq!(kpi(all, "requests"), all_requests as f64, "{}", all["kpis"]);
    assert!(kpi(all, "cost") > 0.0, "{}", all["kpis"]);
    assert!(
        (kpi(all, "cost") - all_stats["totals"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
        "{} vs {}",
        all["kpis"],
        all_stats["totals"]
    );
    // Complexity bands: the API's counts, in its order.
    let bands = &all_stats["totals"]["bands"];
    let want: Vec<f64> = ["cheap", "mid", "frontier", "unscored"]
        .iter()
        .map(|b| bands[b].as_f64().unwrap())
        .collect();
    assert_eq!(dataset(all, "chart-bands", ""), want, "{bands}");
    assert!(
        want[0] > 0.0 && want[2] > 0.0,
        "easy and hard prompts: {bands}"
    );
    // The saving against the most expensive model chosen.
    let saved = all_stats["saving"]["saved_usd"].as_f64().unwrap();
    assert!(saved > 0.0, "{}", all_stats["saving"]);
    assert!((kpi(all, "saved") - saved).abs() < 1e-9, "{}", all["kpis"]);
    // Latency percentiles across every tenant.
    let p50 = dataset(all, "chart-latency", "p50");
    assert!(!p50.is_empty() && p50.iter().all(|v| *v > 0.0), "{p50:?}");
    assert!(kpi(all, "tokens") > 0.0, "{}", all["kpis"]);
    assert!(kpi(all, "cache") > 0.0, "{}", all["kpis"]);
    assert_eq!(
        all["tenant_options"],
        json!(["", "acme", "beta", "probe"]),
        "the tenant picker"
    );
    // requests/s, or requests/min under one a second.
    let traffic = &all["charts"]["chart-traffic"]["datasets"][0];
    assert!(
        traffic["label"].as_str().unwrap().starts_with("requests/"),
        "{traffic}"
    );
    assert!(
        traffic["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|y| y.as_f64().unwrap_or(0.0) > 0.0),
        "{traffic}"
    );
    assert!(dataset(all, "chart-spend", "cost").iter().any(|y| *y > 0.0));
    assert!(
        dataset(all, "chart-provider-cost", "")
            .iter()
            .any(|y| *y > 0.0)
    );
    // The failover's failed attempt and the penalty it earned.
    let row = all["penalties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "gpt-4o-mini")
        .unwrap_or_else(|| panic!("no gpt-4o-mini row in {}", all["penalties"]));
    assert!(
        row[4].as_str().unwrap().parse::<u64>().unwrap() >= 1,
        "{row}"
    );
    // Each Envoy's usage queue: its node, and the records it sent (all of
    // them: the traffic is over).
    let envoys = s.cp.admin("GET", "/admin/envoys", None);
    assert_eq!(envoys.status, 200, "{}", envoys.text());
    let listed = envoys.json()["envoys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!listed.is_empty(), "no Envoy reported its queue");
    assert_eq!(all["envoys_empty"], false, "{}", all["envoys"]);
    let rows = all["envoys"].as_array().unwrap();
    assert_eq!(rows.len(), listed.len(), "{rows:?} vs {listed:?}");
    for e in &listed {
        let row = rows
            .iter()
            .find(|r| r[0] == e["node"])
            .unwrap_or_else(|| panic!("no row for {e} in {rows:?}"));
        let sent: String = row[3]
            .as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert_eq!(sent, e["sent"].to_string(), "{row} vs {e}");
        assert!(e["sent"].as_u64().unwrap() > 0, "{e}");
    }

    let auto = step("auto_refresh");
    assert_eq!(auto["same_page"], true, "the page reloaded: {auto}");
    assert!(
        auto["seconds"].as_f64().unwrap() <= 7.0,
        "no refresh within 5 s: {auto}"
    );

    // Each tenant: its own numbers, the API's, and different from the other's.
    for (tenant, st) in [("acme", &acme_stats), ("beta", &beta_stats)] {
        let view = step(&format!("tenant:{tenant}"));
        assert_eq!(view["tenant"], tenant);
        assert_eq!(
            kpi(view, "requests"),
            st["totals"]["requests"].as_f64().unwrap(),
            "{tenant}: {}",
            view["kpis"]
        );
        assert!(
            (kpi(view, "cost") - st["totals"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
            "{tenant}: {} vs {}",
            view["kpis"],
            st["totals"]
        );
        // Cost and tokens by model: every model the API lists, with its cost.
        let chart = &view["charts"]["chart-model-cost"];
        for m in st["by_model"].as_array().unwrap() {
            let model = m["model"].as_str().unwrap();
            let i = labels(chart)
                .iter()
                .position(|l| l == model)
                .unwrap_or_else(|| panic!("{tenant}: no {model} in {chart}"));
            let cost = dataset(view, "chart-model-cost", "cost")[i];
            assert!(
                (cost - m["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
                "{tenant} {model}: {cost} vs {m}"
            );
        }
        // Latency percentiles per model, from real provider calls.
        let p50 = dataset(view, "chart-latency", "p50");
        assert!(!p50.is_empty() && p50.iter().all(|v| *v > 0.0), "{p50:?}");
        assert!(view["tenant_card"].is_object(), "no tenant card: {view}");
    }
    let (acme_view, beta_view) = (step("tenant:acme"), step("tenant:beta"));
    assert_ne!(kpi(acme_view, "requests"), kpi(beta_view, "requests"));
    // acme streamed: time to first token; its budget and limits.
    assert!(
        dataset(acme_view, "chart-ttft", "p50")
            .iter()
            .any(|v| *v > 0.0)
    );
    let card = &acme_view["tenant_card"];
    assert!(
        card["budget"]
            .as_str()
            .unwrap()
            .contains("of $10.00 over 30 days"),
        "{card}"
    );
    let keys = card["key_budgets"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{card}");
    assert_eq!(keys[0]["key"], bot.as_str());
    assert_eq!(keys[0]["name"], format!("ci-bot ({bot})"));
    assert!(
        keys[0]["text"]
            .as_str()
            .unwrap()
            .contains("of $2.00 over 7 days"),
        "{card}"
    );
    assert!(
        beta_view["tenant_card"]["key_budgets"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(card["rpm"].as_str().unwrap().contains("of 600"), "{card}");
    assert!(card["tpm"].as_str().unwrap().contains("of 1.00M"), "{card}");
    assert_eq!(
        kpi(step("all_again"), "requests"),
        all_requests as f64,
        "back to all tenants"
    );
    assert!(kpi(step("window_15m"), "requests") > 0.0);

    // The secret: in this tab's session storage only, and gone after sign-out.
    let places = step("secret_places");
    assert_eq!(
        places,
        &json!({"session": true, "local": 0, "cookie": "", "in_html": false, "in_url": false})
    );
    let out = step("signed_out");
    assert_eq!(out["state"], "signed-out");
    assert!(out["stored"].is_null(), "{out}");

    // Only its own origin, the secret only to /admin/ and never in a URL.
    let origin = format!("http://127.0.0.1:{}/", s.cp.admin_port);
    let requests = report["requests"].as_array().unwrap();
    assert!(requests.len() > 10, "{requests:?}");
    for r in requests {
        let url = r["url"].as_str().unwrap();
        assert!(url.starts_with(&origin), "a request to another origin: {r}");
        assert!(!url.contains(&s.cp.admin_secret), "the secret in a URL");
        if r["secret_header"] == true {
            assert!(url.starts_with(&format!("{origin}admin/")), "{r}");
        }
    }
    assert!(requests.iter().any(
        |r| r["secret_header"] == true && r["url"].as_str().unwrap().contains("/admin/tenants")
    ));
    // No script error and nothing the CSP blocked.
    for line in report["console"].as_array().unwrap() {
        let message = line["message"].as_str().unwrap();
        assert!(
            !message.contains("Content Security Policy") && !message.contains("Uncaught"),
            "{message}"
        );
    }
    for shot in report["screenshots"].as_array().unwrap() {
        let path = shot.as_str().unwrap();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{path}: {size} bytes");
        println!("dashboard screenshot: {path}");
    }
}

/// What was sent through Envoy, per tenant.
struct Sent {
    acme: u64,
    beta: u64,
}

/// acme: easy and hard prompts (two models), streamed answers (time to first
/// token), a repeated deterministic question (a cache hit) and a failover
/// (a failed attempt and a penalty); beta: a few plain requests.
fn record_traffic(s: &CpStack, acme: &str, beta: &str) -> Sent {
    let ok = |key: &str, body: &Value| {
        let r = chat_as(&s.envoy, key, body);
        assert_eq!(r.status, 200, "{}", r.text());
        r
    };
    let mut sent = Sent { acme: 0, beta: 0 };
    for i in 0..6 {
        ok(
            acme,
            &chat("auto", &format!("hello number {i}, how are you?")),
        );
        sent.acme += 1;
    }
    for i in 0..2 {
        let r = ok(acme, &chat("auto", &format!("{HARD_PROMPT} ({i})")));
        assert_eq!(r.header("x-aipipe-model"), Some("claude-sonnet-5-5"));
        sent.acme += 1;
    }
    for i in 0..2 {
        let mut body = chat("gpt-4o-mini", &format!("stream a short answer {i}"));
        body["stream"] = json!(true);
        common::complete_stream(
            &s.envoy.url("/v1/chat/completions"),
            &[("authorization", &format!("Bearer {acme}"))],
            &body,
        );
        sent.acme += 1;
    }
    let cached = json!({"model": "auto", "temperature": 0,
        "messages": [{"role": "user", "content": "capital of France?"}]});
    ok(acme, &cached);
    assert_eq!(ok(acme, &cached).header("x-aipipe-cache"), Some("hit"));
    sent.acme += 2;
    s.mock
        .fault(json!({"provider": "openai", "status": 503, "times": 1}));
    let r = ok(acme, &chat("gpt-4o-mini", "fail over, please"));
    assert!(r.header("x-aipipe-failover").is_some(), "no failover");
    s.mock.clear_faults();
    sent.acme += 1;
    for i in 0..3 {
        ok(beta, &chat("gpt-4o-mini", &format!("beta says hi {i}")));
        sent.beta += 1;
    }
    sent
}

fn put(cp: &ControlPlane, path: &str, body: Value) {
    let r = cp.admin("PUT", path, Some(&body));
    assert_eq!(r.status, 200, "PUT {path}: {}", r.text());
}

/// A directory for the screenshots that outlives the test, so that the
/// printed paths can be opened.
fn screenshot_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aipipe-dashboard-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the browser session; its report (see tests/dashboard/drive.py).
fn drive(python: &Path, cp: &ControlPlane, shots: &Path) -> Value {
    // The page itself is open and says where its files are; checked here
    // before a browser is started for nothing.
    let page = get(&cp.admin_url("/dashboard"), &[]);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("/dashboard/app.js"));
    let scratch = TempDir::new("dashboard-driver");
    let (out_path, err_path) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let mut child = Command::new(python)
        .arg(repo_root().join("tests/dashboard/drive.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        // Selenium Manager must not look for a driver online: the path is given.
        .env("SE_OFFLINE", "true")
        .env("AIPIPE_CHROMIUM", CHROMIUM)
        .env("AIPIPE_CHROMEDRIVER", CHROMEDRIVER)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let spec = json!({
        "url": cp.admin_url(""),
        "secret": cp.admin_secret,
        "wrong_secret": "not-the-admin-secret",
        "tenants": ["acme", "beta"],
        "out": shots,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let status = eventually(PATIENCE, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    match (status, serde_json::from_str::<Value>(stdout.trim())) {
        (Some(st), Ok(report)) if st.success() => report,
        (status, _) => panic!(
            "drive.py failed ({status:?}):\n{stdout}\n{stderr}\ncontrol plane:\n{}",
            cp.process.logs()
        ),
    }
}

fn kpi(view: &Value, name: &str) -> f64 {
    view["kpis"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no number in KPI {name}: {}", view["kpis"]))
}

fn labels(chart: &Value) -> Vec<String> {
    chart["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The values of `chart`'s dataset labelled `label` ("" for an unlabelled
/// one); nulls (no value) are left out.
fn dataset(view: &Value, chart: &str, label: &str) -> Vec<f64> {
    let c = &view["charts"][chart];
    let set = c["datasets"]
        .as_array()
        .and_then(|sets| {
            sets.iter()
                .find(|d| d["label"].as_str().unwrap_or("") == label)
        })
        .unwrap_or_else(|| panic!("{chart} has no dataset {label:?}: {c}"));
    set["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}
