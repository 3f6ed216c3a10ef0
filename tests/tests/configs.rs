//! Every config shipped in `envoy/` is a complete file that Envoy accepts as
//! it stands. `--mode validate` loads the filter and runs its `on_configure`,
//! so the bootstrap routing table inside is validated too. It also opens the
//! files a config names: `production.yaml` needs the system CA bundle at
//! `/etc/ssl/certs/ca-certificates.crt` (a missing one fails with "Invalid
//! path"). tls.rs runs that file's provider cluster shape against a real TLS
//! server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use aipipe_tests::{envoy_binary, native_path, repo_root, wasm_path};

#[test]
fn every_shipped_envoy_config_validates() {
    assert!(wasm_path().exists(), "run `make wasm` first");
    // The native build's configs (`*-native.yaml`) load the module too.
    assert!(native_path().exists(), "run `make native` first");
    let mut configs: Vec<_> = std::fs::read_dir(repo_root().join("envoy"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty());
    for config in configs {
        let out = Command::new(envoy_binary())
            .current_dir(repo_root())
            .args(["--mode", "validate", "--log-level", "error", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every shipped config bounds slow and idle clients and the connection
/// count, and carries no secret: the singleton's internal token comes from
/// Envoy's environment.
#[test]
fn every_shipped_envoy_config_bounds_clients_and_holds_no_secret() {
    for name in ["demo.yaml", "production.yaml", "compose.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("envoy").join(name)).unwrap();
        for needed in [
            "request_headers_timeout:",
            "request_timeout:",
            "stream_idle_timeout:",
            "max_active_downstream_connections:",
            "host_env_keys: [AIPIPE_INTERNAL_TOKEN]",
        ] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
        assert!(!text.contains("\"token\""), "{name} holds a token");
    }
    // The native build reads Envoy's own environment (no VM to pass it to).
    for name in ["demo-native.yaml", "production-native.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("envoy").join(name)).unwrap();
        for needed in [
            "request_headers_timeout:",
            "request_timeout:",
            "stream_idle_timeout:",
            "max_active_downstream_connections:",
        ] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
        assert!(!text.contains("\"token\""), "{name} holds a token");
    }
}

#[test]
fn a_bad_plugin_configuration_is_refused_naming_the_field() {
    // The same check on a rendered copy with a broken bootstrap table.
    let bad = r#"{"table": {"tenants": [{"id": "t", "virtual_key_hashes": ["xyz"]}]}}"#;
    let yaml = demo_config(aipipe_tests::filter_build(), Some(bad));
    let (ok, log) = validates(&yaml);
    assert!(!ok);
    assert!(
        log.contains("table.tenants[0] (t).virtual_key_hashes[0]: must be 64 hex digits"),
        "{log}"
    );
}

/// `filter.wasm` and `upstream.wasm` each serve their own roles: a config
/// that loads one for the other's is refused at validation, naming the
/// module to use, rather than running a filter that does nothing.
#[test]
fn each_wasm_module_refuses_the_other_ones_role() {
    // The Wasm build's config whichever build the suite runs against.
    let yaml = demo_config(aipipe_tests::FilterBuild::Wasm, None);
    let (filter, upstream) = (
        wasm_path().display().to_string(),
        aipipe_tests::upstream_wasm_path().display().to_string(),
    );
    assert!(yaml.contains(&filter) && yaml.contains(&upstream));
    let refuses = |yaml: &str, module: &str, message: &str| {
        let (ok, log) = validates(yaml);
        assert!(!ok, "{module} took the other role:\n{log}");
        assert!(log.contains(message), "{module}: {log}");
    };
    // The upstream filter on filter.wasm (the clusters load first) ...
    refuses(
        &yaml.replace(&upstream, &filter),
        "filter.wasm",
        "root id aipipe_upstream is upstream.wasm's",
    );
    // ... and the listener's filter on upstream.wasm.
    refuses(
        &yaml.replace(&filter, &upstream),
        "upstream.wasm",
        "upstream.wasm serves only root id aipipe_upstream",
    );
}

/// `envoy --mode validate` on `yaml`, written to a file of its own: (success, log).
fn validates(yaml: &str) -> (bool, String) {
    let dir = aipipe_tests::TempDir::new("config");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    common::ways::envoy_validates(&path)
}

/// `envoy/demo.yaml` rendered for `build` with the filter in, at the file's
/// own ports, its plugin configuration `plugin_config` (None: the file's).
fn demo_config(build: aipipe_tests::FilterBuild, plugin_config: Option<&str>) -> String {
    aipipe_tests::render_envoy_config_as(
        build,
        "demo.yaml",
        &aipipe_tests::EnvoyConfig {
            listener_port: 10000,
            admin_port: 9901,
            upstream_port: 18000,
            plugin_config: plugin_config.map(str::to_owned),
            with_filter: true,
            control_plane: None,
        },
    )
}

/// The lines of cluster `name` in `yaml`: from `  - name: <name>` to the
/// next item at that indentation.
fn cluster_block<'a>(yaml: &'a str, name: &str) -> Option<&'a str> {
    let start = yaml.find(&format!("\n  - name: {name}\n"))? + 1;
    let rest = &yaml[start..];
    let end = rest[1..].find("\n  - ").map_or(rest.len(), |i| i + 2);
    Some(&rest[..end])
}

#[test]
fn every_shipped_config_can_fail_over_by_redirect() {
    // What envoy/README.md, "What a config needs", says failover by redirect
    // needs: the upstream filter on each provider cluster, a route that
    // follows only failover redirects, and the route those come back to.
    for file in [
        "demo.yaml",
        "production.yaml",
        "compose.yaml",
        "demo-native.yaml",
        "production-native.yaml",
    ] {
        let yaml = std::fs::read_to_string(repo_root().join("envoy").join(file)).unwrap();
        // The upstream filter's own name in each build.
        let upstream_role: &[&str] = if file.ends_with("-native.yaml") {
            &["filter_name: aipipe_upstream"]
        } else {
            &["root_id: aipipe_upstream", "vm_id: aipipe_upstream"]
        };
        for p in aipipe_core::catalog::default_providers() {
            let block = cluster_block(&yaml, &p.cluster)
                .unwrap_or_else(|| panic!("{file} has no cluster `{}`", p.cluster));
            assert!(
                block.contains("aipipe_upstream"),
                "{file}: cluster `{}` lacks the upstream filter:\n{block}",
                p.cluster
            );
        }
        for needed in [
            "redirect_response_codes: [307]",
            "allow_cross_scheme_redirect: true",
            "allowed_route_names: [aipipe_failover]",
            &format!(
                "domains: [\"{}\"]",
                aipipe_core::contract::FAILOVER_AUTHORITY
            ),
            "- name: aipipe_failover",
            &format!(
                "header_name: {}",
                aipipe_core::contract::FAILOVER_LOCATION_HEADER
            ),
        ] {
            assert!(yaml.contains(needed), "{file} lacks `{needed}`");
        }
        for needed in upstream_role {
            assert!(yaml.contains(needed), "{file} lacks `{needed}`");
        }
    }
}

/// The fleet-wide rate-limit blocks (`envoy/ratelimit/`), pasted into each
/// build's demo config as their README says, validate; and every shipped
/// config keeps the rate-limit descriptor headers from the providers.
#[test]
fn the_fleet_rate_limit_blocks_validate_and_their_headers_never_reach_a_provider() {
    for build in [
        aipipe_tests::FilterBuild::Wasm,
        aipipe_tests::FilterBuild::Native,
    ] {
        let yaml = demo_config(build, None);
        for deny in [false, true] {
            let merged = aipipe_tests::with_fleet_rate_limits(&yaml, 8081, deny);
            let (ok, log) = validates(&merged);
            assert!(
                ok,
                "{build:?} with envoy/ratelimit/ does not validate:\n{log}"
            );
        }
    }
    use aipipe_core::contract::{RL_KEY_HEADER, RL_TENANT_HEADER};
    let filter =
        std::fs::read_to_string(repo_root().join("envoy/ratelimit/http-filter.yaml")).unwrap();
    for header in [RL_TENANT_HEADER, RL_KEY_HEADER] {
        assert!(filter.contains(&format!("header_name: {header}")));
        for file in [
            "demo.yaml",
            "production.yaml",
            "compose.yaml",
            "demo-native.yaml",
            "production-native.yaml",
            "snippets/routes.yaml",
            "snippets/virtual-hosts.yaml",
            "istio/envoyfilter.yaml",
        ] {
            let yaml = std::fs::read_to_string(repo_root().join("envoy").join(file)).unwrap();
            let removals = yaml.matches("request_headers_to_remove").count();
            assert!(removals > 0, "{file}");
            assert_eq!(
                yaml.matches(header).count(),
                removals,
                "{file}: every route removes {header}"
            );
        }
    }
}
