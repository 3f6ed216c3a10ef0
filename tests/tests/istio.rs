//! The Istio manifests of `envoy/istio/` are valid against Istio's own CRD
//! schemas (the pinned `@kubernetes-models/istio`, generated from Istio
//! 1.29's CRDs, run by `tests/istio/validate.mjs`), name the same provider
//! hosts as `envoy/production.yaml`, and the Envoy config their patches
//! amount to on the gateway passes `envoy --mode validate` (which also runs
//! the filter's and the singleton's configuration checks). No Kubernetes
//! runs here: what Istio itself does with them is not tested
//! (envoy/istio/README.md says what was tried where).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use aipipe_tests::{TempDir, repo_root, upstream_wasm_path, wasm_path};
use common::ways::{envoy_validates, tool, yaml, yaml_docs};
use serde_json::{Value, json};

const FILES: [&str; 3] = [
    "envoy/istio/providers.yaml",
    "envoy/istio/gateway.yaml",
    "envoy/istio/envoyfilter.yaml",
];

fn manifests() -> Vec<Value> {
    FILES.iter().flat_map(|f| yaml_docs(f)).collect()
}

/// Each manifest's verdict from Istio's schemas: (kind/name, error if any).
fn validate(docs: &[Value]) -> Vec<(String, Option<String>)> {
    let node_modules = tool(".node/node_modules");
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/istio/validate.mjs"))
        .env("AIPIPE_NODE_MODULES", node_modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (make ways-tools installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(docs.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validate.mjs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                format!("{}/{}", v["kind"].as_str().unwrap_or("?"), v["name"]),
                v["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn every_istio_manifest_is_valid_against_istios_crd_schemas() {
    let docs = manifests();
    let verdicts = validate(&docs);
    assert_eq!(verdicts.len(), docs.len(), "a manifest got no verdict");
    for (what, error) in &verdicts {
        assert!(
            error.is_none(),
            "{what}: {}",
            error.as_deref().unwrap_or("")
        );
    }
    // The same schemas refuse a broken copy of each kind.
    let mut broken = Vec::new();
    for doc in &docs {
        if broken.iter().any(|b: &Value| b["kind"] == doc["kind"]) {
            continue;
        }
        let mut b = doc.clone();
        match doc["kind"].as_str().unwrap() {
            "ServiceEntry" => b["spec"]["resolution"] = json!("SOMETIMES"),
            "DestinationRule" => b["spec"]["trafficPolicy"]["tls"]["mode"] = json!("ALMOST"),
            "Gateway" => b["spec"]["servers"][0]["port"]["number"] = json!("eighty"),
            "VirtualService" => b["spec"]["http"] = json!("everything"),
            "EnvoyFilter" => b["spec"]["configPatches"][0]["applyTo"] = json!("EVERYTHING"),
            other => panic!("no broken form for {other}"),
        }
        broken.push(b);
    }
    for (what, error) in validate(&broken) {
        assert!(error.is_some(), "a broken {what} passed");
    }
}

/// The EnvoyFilter's patches, by what they apply to.
fn patches(apply_to: &str) -> Vec<Value> {
    let filter = yaml_docs("envoy/istio/envoyfilter.yaml")
        .into_iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .unwrap();
    filter["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["applyTo"] == apply_to)
        .cloned()
        .collect()
}

/// Each provider cluster of production.yaml: (cluster name, host).
fn production_providers() -> Vec<(String, String)> {
    yaml("envoy/production.yaml")["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] != "aipipe_control_plane")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["transport_socket"]["typed_config"]["sni"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_provider_has_its_service_entry_tls_origination_and_cluster_name() {
    let docs = manifests();
    let providers = production_providers();
    for p in aipipe_core::catalog::default_providers() {
        let (_, host) = providers
            .iter()
            .find(|(name, _)| *name == p.cluster)
            .unwrap_or_else(|| panic!("production.yaml has no cluster {}", p.cluster));
        let se = docs
            .iter()
            .find(|d| d["kind"] == "ServiceEntry" && d["spec"]["hosts"][0] == host.as_str())
            .unwrap_or_else(|| panic!("no ServiceEntry for {host}"));
        assert_eq!(se["spec"]["location"], "MESH_EXTERNAL");
        assert_eq!(se["spec"]["ports"][0]["number"], 443);
        let dr = docs
            .iter()
            .find(|d| d["kind"] == "DestinationRule" && d["spec"]["host"] == host.as_str())
            .unwrap_or_else(|| panic!("no DestinationRule for {host}"));
        let tls = &dr["spec"]["trafficPolicy"]["tls"];
        assert_eq!(tls["mode"], "SIMPLE", "{host}");
        assert_eq!(tls["sni"], host.as_str());
        assert_eq!(tls["subjectAltNames"][0], host.as_str());
        // The cluster the routing table names, over Istio's.
        let added = patches("CLUSTER")
            .into_iter()
            .find(|c| c["patch"]["value"]["name"] == p.cluster.as_str())
            .unwrap_or_else(|| panic!("no cluster `{}` in envoyfilter.yaml", p.cluster));
        assert_eq!(
            added["patch"]["value"]["cluster_type"]["typed_config"]["clusters"][0],
            format!("outbound|443||{host}")
        );
    }
}

/// Applies a MERGE patch as Istio does (a proto merge): objects merge, and
/// a route's `cluster_header` replaces its `cluster` (one oneof).
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            if b.contains_key("cluster_header") {
                a.remove("cluster");
            }
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The Envoy config the gateway runs once Istio applied providers.yaml,
/// gateway.yaml and envoyfilter.yaml: Istio's clusters for the providers
/// (TLS origination from the DestinationRules) and the control plane, the
/// gateway's listener and route, then every patch.
fn gateway_config() -> Value {
    let docs = manifests();
    let control_plane = "outbound|8083||aipipe-control-plane.aipipe.svc.cluster.local";
    let mut clusters = vec![json!({
        "name": control_plane, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": control_plane, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8083}}}}]}]}
    })];
    for dr in docs.iter().filter(|d| d["kind"] == "DestinationRule") {
        let host = dr["spec"]["host"].as_str().unwrap();
        let tls = &dr["spec"]["trafficPolicy"]["tls"];
        let name = format!("outbound|443||{host}");
        clusters.push(json!({
            "name": name, "type": "STRICT_DNS", "connect_timeout": "10s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": 443}}}}]}]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": tls["sni"],
                "common_tls_context": {"validation_context": {
                    "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": tls["subjectAltNames"][0]}}]
                }}
            }}
        }));
    }
    // The gateway's listener and the VirtualService's route `aipipe`.
    let vs = docs.iter().find(|d| d["kind"] == "VirtualService").unwrap();
    let destination = &vs["spec"]["http"][0]["route"][0]["destination"];
    let mut route = json!({
        "name": vs["spec"]["http"][0]["name"],
        "match": {"prefix": "/"},
        "route": {"cluster": format!("outbound|{}||{}", destination["port"]["number"], destination["host"].as_str().unwrap())}
    });
    let mut listener = json!({
        "name": "0.0.0.0_8080",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "outbound_0.0.0.0_8080",
                "route_config": {"name": "http.8080", "virtual_hosts": []},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    });
    let mut config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {"listeners": [], "clusters": clusters}
    });
    for p in patches("BOOTSTRAP") {
        merge(&mut config, &p["patch"]["value"]);
    }
    for p in patches("LISTENER") {
        merge(&mut listener, &p["patch"]["value"]);
    }
    for p in patches("HTTP_ROUTE") {
        merge(&mut route, &p["patch"]["value"]);
    }
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["route_config"]["virtual_hosts"] =
        json!([{"name": "*:8080", "domains": ["*"], "routes": [route]}]);
    for p in patches("VIRTUAL_HOST") {
        hcm["route_config"]["virtual_hosts"]
            .as_array_mut()
            .unwrap()
            .push(p["patch"]["value"].clone());
    }
    for p in patches("HTTP_FILTER") {
        assert_eq!(p["patch"]["operation"], "INSERT_BEFORE");
        hcm["http_filters"]
            .as_array_mut()
            .unwrap()
            .insert(0, p["patch"]["value"].clone());
    }
    config["static_resources"]["listeners"] = json!([listener]);
    for p in patches("CLUSTER") {
        assert_eq!(p["patch"]["operation"], "ADD");
        config["static_resources"]["clusters"]
            .as_array_mut()
            .unwrap()
            .push(p["patch"]["value"].clone());
    }
    config
}

#[test]
fn the_envoy_config_the_istio_patches_amount_to_validates() {
    assert!(wasm_path().exists(), "run `make wasm` first");
    // The module is an image volume of the gateway pod; here, the build's.
    let text = gateway_config()
        .to_string()
        .replace(
            "/var/lib/aipipe/filter.wasm",
            &wasm_path().to_string_lossy(),
        )
        .replace(
            "/var/lib/aipipe/upstream.wasm",
            &upstream_wasm_path().to_string_lossy(),
        );
    let dir = TempDir::new("istio");
    let path = dir.path().join("gateway.json");
    std::fs::write(&path, &text).unwrap();
    let (ok, log) = envoy_validates(&path);
    assert!(ok, "the gateway's Envoy config does not validate:\n{log}");
    // It is the filter as shipped: the header pause allowed, the
    // singleton's vm_id, the route reading the cluster header.
    for needed in [
        "\"allow_on_headers_stop_iteration\":true",
        "\"vm_id\":\"aipipe\"",
        "\"root_id\":\"aipipe_singleton\"",
        "\"cluster_header\":\"x-aipipe-cluster\"",
        "\"allowed_route_names\":[\"aipipe_failover\"]",
        "\"root_id\":\"aipipe_upstream\"",
    ] {
        assert!(text.contains(needed), "the gateway config lacks {needed}");
    }
}
