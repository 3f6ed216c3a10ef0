//! The snippets of `envoy/snippets/` drop into an Envoy config that is not
//! aipipe's: merged, as envoy/snippets/README.md says, into a plain
//! third-party config (its own listener, route, cluster and a header-adding
//! filter), the result validates, routes a chat request through the filter
//! with a tenant the control plane pushed, and the third party's own route
//! still reaches its own backend untouched by the filter. The snippets are
//! `envoy/production.yaml`'s blocks, so they cannot drift from it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aipipe_tests::{
    ControlPlane, Envoy, Mock, TempDir, eventually, free_port, get, post_json, upstream_wasm_path,
    wasm_path,
};
use common::ways::{differences, envoy_validates, yaml};
use serde_json::{Value, json};

fn snippet(name: &str) -> Value {
    yaml(&format!("envoy/snippets/{name}.yaml"))
}

/// A plain Envoy config of someone else's: one listener with its own
/// virtual host, a catch-all route to its own backend, a filter that adds
/// a response header, the router.
fn third_party(listener: u16, admin: u16, backend: u16) -> Value {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        // Its own stats settings: snippet 7 adds to them.
        "stats_config": {"stats_tags": [{"tag_name": "team", "fixed_value": "payments"}]},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "route_config": {
                            "name": "local",
                            "virtual_hosts": [{
                                "name": "app",
                                "domains": ["*"],
                                "routes": [{
                                    "name": "app",
                                    "match": {"prefix": "/"},
                                    "route": {"cluster": "app_backend"}
                                }]
                            }]
                        },
                        "http_filters": [
                            {
                                "name": "envoy.filters.http.header_mutation",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                                    "mutations": {"response_mutations": [
                                        {"append": {"header": {"key": "x-third-party", "value": "yes"}}}
                                    ]}
                                }
                            },
                            {
                                "name": "envoy.filters.http.router",
                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                            }
                        ]
                    }
                }]}]
            }],
            "clusters": [{
                "name": "app_backend",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "app_backend", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": backend}}}}
                ]}]}
            }]
        }
    })
}

fn array<'a>(v: &'a mut Value, what: &str) -> &'a mut Vec<Value> {
    v.as_array_mut()
        .unwrap_or_else(|| panic!("{what} is not a list"))
}

/// envoy/snippets/README.md's steps, one for one.
fn merge(config: &mut Value) {
    // 1. The singleton.
    let mut extensions = snippet("bootstrap-extensions")["bootstrap_extensions"].clone();
    let slot = &mut config["bootstrap_extensions"];
    if slot.is_null() {
        *slot = json!([]);
    }
    array(slot, "bootstrap_extensions").append(array(&mut extensions, "snippet"));
    // 2. The clusters.
    let clusters = snippet("clusters")["clusters"].clone();
    array(&mut config["static_resources"]["clusters"], "clusters")
        .extend(clusters.as_array().unwrap().iter().cloned());
    // 6. The listener's buffer limit.
    let listener = &mut config["static_resources"]["listeners"][0];
    listener["per_connection_buffer_limit_bytes"] =
        snippet("listener")["per_connection_buffer_limit_bytes"].clone();
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    // 3. The filter, before the router.
    let filters = array(&mut hcm["http_filters"], "http_filters");
    let router = filters
        .iter()
        .position(|f| f["name"] == "envoy.filters.http.router")
        .expect("a router");
    for (i, f) in snippet("http-filters")["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        filters.insert(router + i, f.clone());
    }
    // 4. The route, first in the virtual host.
    let vhosts = &mut hcm["route_config"]["virtual_hosts"];
    let routes = array(&mut vhosts[0]["routes"], "routes");
    for (i, r) in snippet("routes")["routes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        routes.insert(i, r.clone());
    }
    // 5. The failover virtual host.
    array(vhosts, "virtual_hosts").extend(
        snippet("virtual-hosts")["virtual_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    // 7. The metric labels and buckets, added to the host's own lists.
    let stats = snippet("stats-config")["stats_config"].clone();
    for list in ["stats_tags", "histogram_bucket_settings"] {
        let slot = &mut config["stats_config"][list];
        if slot.is_null() {
            *slot = json!([]);
        }
        array(slot, list).extend(stats[list].as_array().unwrap().iter().cloned());
    }
}

/// What the test changes on top, as a user would for their site: the
/// module's path, the control plane's port, and every provider cluster
/// pointed at the mock provider over plain HTTP (tls.rs runs the shipped
/// TLS shape against a TLS server).
fn point_at(config: &mut Value, mock: u16, control_plane: u16) {
    for cluster in array(&mut config["static_resources"]["clusters"], "clusters") {
        if cluster["name"] == "app_backend" {
            continue;
        }
        let port = if cluster["name"] == "aipipe_control_plane" {
            control_plane
        } else {
            cluster.as_object_mut().unwrap().remove("transport_socket");
            mock
        };
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] =
            json!({"address": "127.0.0.1", "port_value": port});
    }
    let text = config
        .to_string()
        .replace(
            "\"target/wasm32-wasip1/release/filter.wasm\"",
            &format!("\"{}\"", wasm_path().display()),
        )
        .replace(
            "\"target/wasm32-wasip1/release/upstream.wasm\"",
            &format!("\"{}\"", upstream_wasm_path().display()),
        );
    *config = serde_json::from_str(&text).unwrap();
}

#[test]
fn the_snippets_in_a_third_party_envoy_route_chat_and_leave_its_own_routes_alone() {
    assert!(wasm_path().exists(), "run `make wasm` first");
    let mock = Mock::start();
    let cp = ControlPlane::start();
    let key = cp.tenant(
        "acme",
        &[
            ("openai", "sk-acme-openai"),
            ("anthropic", "sk-acme-anthropic"),
        ],
    );
    let (listener, admin) = (free_port(), free_port());
    let mut config = third_party(listener, admin, mock.port);
    merge(&mut config);
    point_at(&mut config, mock.port, cp.internal_port);

    let dir = TempDir::new("snippets");
    let path = dir.path().join("third-party-with-aipipe.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let (ok, log) = envoy_validates(&path);
    assert!(ok, "the merged config does not validate:\n{log}");

    let envoy = Envoy::start_with_env(
        &serde_json::to_string_pretty(&config).unwrap(),
        listener,
        admin,
        2,
        &[("AIPIPE_INTERNAL_TOKEN", &cp.internal_token)],
    );
    let chat = envoy.url("/v1/chat/completions");
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hello!"}]});
    let auth = format!("Bearer {key}");
    // The tenant reaches Envoy through the singleton.
    let answer = eventually(Duration::from_secs(15), || {
        let r = post_json(&chat, &[("authorization", &auth)], &body);
        (r.status == 200).then_some(r)
    })
    .unwrap_or_else(|| {
        let r = post_json(&chat, &[("authorization", &auth)], &body);
        panic!(
            "no chat answer through the merged config: {} {}",
            r.status,
            r.text()
        )
    });
    assert_eq!(answer.header("x-aipipe-provider"), Some("openai"));
    assert_eq!(answer.header("x-aipipe-model"), Some("gpt-4o-mini"));
    assert_eq!(
        answer.header("x-third-party"),
        Some("yes"),
        "their filter ran too"
    );
    let sent = mock.received();
    let last = sent.last().expect("the mock got the request");
    assert_eq!(last["authorization"], "Bearer sk-acme-openai", "{last}");
    assert_eq!(last["authority"], "api.openai.com", "{last}");

    // Their own route: to their backend, without the filter (which would
    // answer a path it does not serve with 404 unknown_url).
    let theirs = get(&envoy.url("/_mock/received"), &[]);
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    assert!(theirs.json().is_array(), "{}", theirs.text());
    assert_eq!(theirs.header("x-third-party"), Some("yes"));
    assert!(
        theirs.header("x-aipipe-request-id").is_none(),
        "the filter ran on their route"
    );
    // Paths of the filter's without a key: the filter's own answer.
    let no_key = post_json(&chat, &[], &body);
    assert_eq!(no_key.status, 401, "{}", no_key.text());
}

#[test]
fn the_snippets_are_the_production_configs_blocks() {
    let prod = yaml("envoy/production.yaml");
    let same = |what: &str, a: &Value, b: &Value| {
        let d = differences(a, b);
        assert!(
            d.is_empty(),
            "{what} differs from envoy/production.yaml: {d:?}"
        );
    };
    same(
        "the singleton",
        &snippet("bootstrap-extensions")["bootstrap_extensions"],
        &prod["bootstrap_extensions"],
    );
    same(
        "the clusters",
        &snippet("clusters")["clusters"],
        &prod["static_resources"]["clusters"],
    );
    same(
        "the stats config",
        &snippet("stats-config")["stats_config"],
        &prod["stats_config"],
    );
    let listener = &prod["static_resources"]["listeners"][0];
    same(
        "the listener's buffer limit",
        &snippet("listener")["per_connection_buffer_limit_bytes"],
        &listener["per_connection_buffer_limit_bytes"],
    );
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    // The filter, behind a matcher that skips it on other paths.
    let filter = &snippet("http-filters")["http_filters"][0];
    same(
        "the filter",
        &filter["typed_config"]["extension_config"],
        &hcm["http_filters"][0],
    );
    // The routes: production's route action, the filter turned on.
    let prod_route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
    let route = &snippet("routes")["routes"][0];
    let failover = &snippet("virtual-hosts")["virtual_hosts"][0];
    same("the route", &route["route"], &prod_route["route"]);
    same(
        "the failover route",
        &failover["routes"][0]["route"],
        &prod_route["route"],
    );
    assert_eq!(failover["name"], "aipipe_failover");
    assert_eq!(failover["routes"][0]["name"], "aipipe_failover");
    // The route and the filter's matcher cover every provider's
    // pass-through path.
    let matcher = &filter["typed_config"]["xds_matcher"]["matcher_list"]["matchers"][0]["predicate"]
        ["not_matcher"]["single_predicate"]["value_match"]["safe_regex"]["regex"];
    for regex in [&route["match"]["safe_regex"]["regex"], matcher] {
        let regex = regex.as_str().unwrap();
        for p in aipipe_core::catalog::default_providers() {
            assert!(
                regex.contains(&format!("|{}", p.id)),
                "{regex} lacks /{}/",
                p.id
            );
        }
    }
}
