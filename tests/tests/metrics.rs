//! Metrics, end to end (issue 12): known requests — plain and streamed, two
//! models, a failover — through Envoy with the filter and the control plane,
//! then:
//!
//! - Envoy's `/stats/prometheus` has the OpenTelemetry GenAI series
//!   (`gen_ai_client_token_usage`, `gen_ai_server_request_duration`,
//!   `gen_ai_server_time_to_first_token`) with exactly the labels and
//!   counts those requests make, token sums equal to the usage the mock
//!   sent, the configured buckets, and today's `aipipe_*` series beside
//!   them — the same series from both builds;
//! - the control plane's `/metrics` has per provider/model latency and TTFT
//!   histograms and outcome counters, the ingest queue and batch latency,
//!   and this Envoy's usage queue (`aipipe_cp_envoy_usage_*{node}`), which
//!   `GET /admin/envoys` also lists under the Envoy's node id;
//! - every metric the Grafana dashboard (`envoy/grafana/aipipe.json`)
//!   queries is in one of those two scrapes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, FilterBuild, Mock, eventually, filter_build, free_port, get,
    post_json, render_envoy_config, repo_root,
};
use common::control_plane::{tenant_with_own_keys, tenants_served};
use common::usage::read_sent;
use serde_json::{Value, json};

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text (what Envoy and prometheus-client write).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rfind('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => line.split_once(' ').unwrap(),
        };
        let value = value.split_whitespace().next().unwrap_or("nan");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        // Label values here never hold `,` or `"`.
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.trim().to_owned(), v.trim_matches('"').to_owned());
        }
        out.push(Sample {
            name: name.to_owned(),
            labels: map,
            value,
        });
    }
    out
}

fn scrape_envoy(envoy: &Envoy) -> String {
    get(
        &format!("http://127.0.0.1:{}/stats/prometheus", envoy.admin_port),
        &[],
    )
    .text()
}

/// The value of the sample `name` whose labels include all of `want`
/// (0 when there is none).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

/// What one label combination of the gen_ai series should show.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    requests: u64,
    input: u64,
    output: u64,
}

/// Envoy with the filter, its singleton polling `cp`, and a node id of its
/// own (the Wasm singleton reports its queue under it).
fn envoy_with_node(mock: &Mock, cp: &ControlPlane, node: &str) -> Envoy {
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some("{}".into()),
            with_filter: true,
            control_plane: Some((cp.internal_port, cp.internal_token.clone())),
        },
    );
    let yaml = format!("node: {{ id: {node}, cluster: aipipe-test }}\n{yaml}");
    Envoy::start_with_env(
        &yaml,
        listener_port,
        admin_port,
        2,
        &[("AIPIPE_INTERNAL_TOKEN", &cp.internal_token)],
    )
}

#[test]
fn genai_series_and_the_queues_show_exactly_the_requests_sent() {
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let node = "edge-metrics-1";
    let envoy = envoy_with_node(&mock, &cp, node);
    let key = tenant_with_own_keys(&cp, "acme", &["openai", "anthropic"]);
    let r = cp.admin(
        "PUT",
        "/admin/tenants/acme/budget",
        Some(&json!({"limit_usd": 100, "days": 30})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        tenants_served(&cp, &envoy),
        "Envoy never served the tenants"
    );
    let before = parse(&scrape_envoy(&envoy));
    mock.clear_received();

    // The requests, each with what the client asked and (from its headers)
    // who answered.
    let url = envoy.url("/v1/chat/completions");
    let auth = format!("Bearer {key}");
    let send = |body: Value| {
        let r = post_json(&url, &[("authorization", auth.as_str())], &body);
        assert_eq!(r.status, 200, "{}", r.text());
        (
            r.header("x-aipipe-provider").unwrap().to_owned(),
            r.header("x-aipipe-model").unwrap().to_owned(),
            r.header("x-aipipe-failover").map(str::to_owned),
        )
    };
    let greeting = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream,
               "messages": [{"role": "user", "content": "hello there, how are you?"}]})
    };
    let mut asked = vec![
        ("auto", send(greeting("auto", false))),
        ("auto", send(greeting("auto", true))),
        ("claude-opus-4-5", send(greeting("claude-opus-4-5", false))),
    ];
    // A failover: Anthropic fails once, the streamed request goes on to the
    // next candidate (by Envoy's internal redirect).
    mock.fault(json!({"provider": "anthropic", "status": 529, "times": 1}));
    let failed_over = send(greeting("claude-opus-4-5", true));
    assert_eq!(failed_over.2.as_deref(), Some("claude-opus-4-5"));
    assert_ne!(failed_over.1, "claude-opus-4-5");
    asked.push(("claude-opus-4-5", failed_over));
    mock.clear_faults();
    assert_ne!(asked[0].1.1, asked[2].1.1, "two models answered");

    // Expected per (provider, request model, response model): the mock's
    // answers that carried usage, in the order the requests were sent.
    let answers: Vec<Value> = mock
        .received()
        .into_iter()
        .filter(|r| !r["sent_usage"].is_null())
        .collect();
    assert_eq!(answers.len(), asked.len(), "{answers:?}");
    let mut expected: BTreeMap<(String, String, String), Expected> = BTreeMap::new();
    for ((request_model, (provider, model, _)), answer) in asked.iter().zip(&answers) {
        assert_eq!(answer["provider"].as_str(), Some(provider.as_str()));
        let c = read_sent(provider, &answer["sent_usage"]).unwrap();
        let e = expected
            .entry((provider.clone(), (*request_model).to_owned(), model.clone()))
            .or_default();
        e.requests += 1;
        e.input += c.prompt;
        e.output += c.completion;
    }

    // Envoy merges histograms on its stats flush (every 5 s): wait for it.
    let series = |s: &[Sample],
                  name: &str,
                  (p, req, resp): &(String, String, String),
                  extra: &[(&str, &str)]| {
        let mut want = vec![
            ("gen_ai_operation_name", "chat"),
            ("gen_ai_provider_name", p.as_str()),
            ("gen_ai_request_model", req.as_str()),
            ("gen_ai_response_model", resp.as_str()),
        ];
        want.extend_from_slice(extra);
        value(s, name, &want) - value(&before, name, &want)
    };
    let text = eventually(Duration::from_secs(20), || {
        let text = scrape_envoy(&envoy);
        let s = parse(&text);
        expected
            .iter()
            .all(|(k, e)| {
                series(&s, "gen_ai_server_request_duration_count", k, &[]) == e.requests as f64
            })
            .then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "no gen_ai series for {expected:?}:\n{}",
            scrape_envoy(&envoy)
        )
    });
    let s = parse(&text);
    for (k, e) in &expected {
        let n = e.requests as f64;
        assert_eq!(
            series(&s, "gen_ai_server_request_duration_count", k, &[]),
            n,
            "{k:?}"
        );
        assert_eq!(
            series(&s, "gen_ai_server_time_to_first_token_count", k, &[]),
            n,
            "{k:?}"
        );
        for (kind, tokens) in [("input", e.input), ("output", e.output)] {
            let t = [("gen_ai_token_type", kind)];
            let tokens = tokens as f64;
            assert_eq!(
                series(&s, "gen_ai_client_token_usage_count", k, &t),
                n,
                "{k:?} {kind}"
            );
            // Exactly the tokens the mock sent, in the counter beside the
            // histogram…
            assert_eq!(
                series(&s, "aipipe_gen_ai_tokens", k, &t),
                tokens,
                "{k:?} {kind}: the tokens the mock sent\n{text}"
            );
            // …and in the histogram's sum as closely as Envoy's histograms
            // keep values: two significant digits (a bin of width 1 below
            // 100, of 10 below 1,000), the sum made of bin midpoints.
            let sum = series(&s, "gen_ai_client_token_usage_sum", k, &t);
            assert!(
                (sum - tokens).abs() <= n + tokens * 0.1,
                "{k:?} {kind}: histogram sum {sum}, tokens sent {tokens}"
            );
        }
        // The configured buckets (ms): a minutes-long answer has one.
        assert_eq!(
            series(
                &s,
                "gen_ai_server_request_duration_bucket",
                k,
                &[("le", "600000")]
            ),
            n,
            "{k:?}"
        );
    }
    // Every gen_ai sample carries exactly these labels (and `le` on buckets).
    let genai = |name: &str| name.starts_with("gen_ai_") || name == "aipipe_gen_ai_tokens";
    assert!(s.iter().filter(|x| genai(&x.name)).count() > 0);
    for x in s.iter().filter(|x| genai(&x.name)) {
        let mut names: BTreeSet<&str> = x.labels.keys().map(String::as_str).collect();
        names.remove("le");
        let mut want: BTreeSet<&str> = [
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "gen_ai_response_model",
        ]
        .into();
        if x.name.starts_with("gen_ai_client_token_usage") || x.name == "aipipe_gen_ai_tokens" {
            want.insert("gen_ai_token_type");
        }
        assert_eq!(names, want, "{x:?}");
    }
    // Today's series are still there.
    for name in [
        "aipipe_usage_sent",
        "aipipe_failovers",
        "aipipe_cache_bypass",
    ] {
        assert!(s.iter().any(|x| x.name == name), "{name} missing:\n{text}");
    }
    assert_eq!(value(&s, "aipipe_failovers", &[]), 1.0);

    // The control plane stored the same records: its histograms count
    // each model's answers as Envoy's do.
    let envoy_sent = |s: &[Sample]| value(s, "aipipe_usage_sent", &[]);
    let cp_text = eventually(Duration::from_secs(15), || {
        let e = parse(&scrape_envoy(&envoy));
        let text = get(&cp.admin_url("/metrics"), &[]).text();
        let c = parse(&text);
        let done = value(&e, "aipipe_usage_buffered", &[]) == 0.0
            && value(&c, "aipipe_cp_request_duration_seconds_count", &[]) == envoy_sent(&e)
            && envoy_sent(&e) > 0.0;
        done.then_some(text)
    })
    .expect("the control plane never stored every record");
    let c = parse(&cp_text);
    let e = parse(&scrape_envoy(&envoy));
    for model in ["gpt-4o-mini", "claude-opus-4-5"] {
        let answered = value(
            &e,
            "gen_ai_server_request_duration_count",
            &[("gen_ai_response_model", model)],
        );
        assert!(answered > 0.0, "{model}");
        let m = [("model", model)];
        assert_eq!(
            value(&c, "aipipe_cp_request_duration_seconds_count", &m),
            answered,
            "{model}"
        );
        assert_eq!(
            value(&c, "aipipe_cp_time_to_first_token_seconds_count", &m),
            answered,
            "{model}"
        );
        assert_eq!(
            value(
                &c,
                "aipipe_cp_request_outcomes_total",
                &[("model", model), ("outcome", "ok")]
            ),
            answered,
            "{model}\n{cp_text}"
        );
    }
    assert_eq!(value(&c, "aipipe_cp_ingest_queue_depth", &[]), 0.0);
    assert!(value(&c, "aipipe_cp_ingest_batch_duration_seconds_count", &[]) >= 1.0);
    let budget = cp.admin("GET", "/admin/tenants/acme/budget", None).json();
    assert_eq!(
        value(&c, "aipipe_cp_budget_limit_usd", &[("tenant", "acme")]),
        100.0
    );
    let spent = value(&c, "aipipe_cp_budget_spent_usd", &[("tenant", "acme")]);
    assert!(
        spent > 0.0 && Some(spent) == budget["spent_usd"].as_f64(),
        "{spent} {budget}"
    );

    // This Envoy's usage queue, under its node id (the native build reads
    // none: the host's name stands in), empty, everything acknowledged.
    let node = match filter_build() {
        FilterBuild::Wasm => node.to_owned(),
        FilterBuild::Native => aipipe_core::usage::node_name(
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim(),
        ),
    };
    let sent = envoy_sent(&e);
    let listed = cp.admin("GET", "/admin/envoys", None).json();
    let envoys = listed["envoys"].as_array().unwrap();
    assert_eq!(envoys.len(), 1, "{listed}");
    assert_eq!(envoys[0]["node"], node.as_str(), "{listed}");
    assert_eq!(
        (
            envoys[0]["queued"].as_f64(),
            envoys[0]["dropped"].as_f64(),
            envoys[0]["sent"].as_f64()
        ),
        (Some(0.0), Some(0.0), Some(sent)),
        "{listed}"
    );
    let n = [("node", node.as_str())];
    assert_eq!(
        value(&c, "aipipe_cp_envoy_usage_sent", &n),
        sent,
        "{cp_text}"
    );
    assert_eq!(value(&c, "aipipe_cp_envoy_usage_queued", &n), 0.0);

    // Every metric the Grafana dashboard asks for is in these scrapes.
    let scraped: BTreeSet<String> = e.iter().chain(&c).map(|x| x.name.clone()).collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("grafana/aipipe.json")).unwrap(),
    )
    .expect("grafana/aipipe.json is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    let mut asked = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "no metric in {q}");
        asked.extend(names);
    }
    let missing: Vec<&String> = asked.iter().filter(|n| !scraped.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for {missing:?}, not scraped"
    );
    for needed in [
        "gen_ai_server_request_duration_bucket",
        "gen_ai_server_time_to_first_token_bucket",
        "gen_ai_client_token_usage_bucket",
        "aipipe_gen_ai_tokens",
        "aipipe_cp_request_duration_seconds_bucket",
        "aipipe_cp_envoy_usage_queued",
    ] {
        assert!(
            asked.contains(needed),
            "the dashboard has no panel for {needed}"
        );
    }
}

/// Every PromQL query of a Grafana dashboard: its panels' targets (rows'
/// panels included) and its query variables.
fn dashboard_queries(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("a target has an expr").to_owned());
        }
        if p["type"] != "row" {
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "{p}"
            );
            assert!(p["datasource"]["uid"].is_string(), "{p}");
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push(v["query"]["query"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// The metric names a PromQL expression reads: identifiers that are not
/// functions (followed by `(`), keywords, label names (inside `{…}` and
/// the parentheses of `by`, `without`, `on`, `ignoring`, `group_left`,
/// `group_right`), ranges (`[…]`) or strings.
fn metric_names(q: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 18] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Grafana's label_values(metric, label): the metric only.
    let q = match q.strip_prefix("label_values(") {
        Some(rest) => rest.split(',').next().unwrap_or_default().to_owned(),
        None => q.to_owned(),
    };
    let chars: Vec<char> = q.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        match chars[i] {
            '{' => skip_to(&mut i, '}'),
            '[' => skip_to(&mut i, ']'),
            '"' => {
                i += 1;
                skip_to(&mut i, '"');
            }
            c if c.is_ascii_alphabetic() || "_:$".contains(c) => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_:$".contains(chars[i]))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) {
                    if call {
                        i = j;
                        skip_to(&mut i, ')');
                    }
                } else if !call && !word.starts_with('$') && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (and a unit suffix such as `5m`).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_metric_names_are_read_as_grafana_queries_use_them() {
    let q = r#"sum by (le, model) (rate(aipipe_cp_x_bucket{tenant=~"$tenant"}[$__rate_interval])) / ignoring(model) group_left sum(rate(a_b[5m])) * 3600 > bool 0.5e3"#;
    assert_eq!(
        metric_names(q),
        ["a_b", "aipipe_cp_x_bucket"].map(String::from).into()
    );
    assert_eq!(
        metric_names("label_values(aipipe_requests_total, tenant)"),
        ["aipipe_requests_total".to_owned()].into()
    );
}
