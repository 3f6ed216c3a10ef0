//! `docker-compose.yaml` is the demo stack as containers: no Docker engine
//! runs here, so this checks the files instead. The compose file is valid
//! against the Compose Specification's JSON schema (as shipped by the pinned
//! `check-jsonschema`); it publishes exactly `make demo`'s ports, on
//! 127.0.0.1 only; its Envoy runs a config of `envoy/` (so validated by
//! configs.rs) that differs from `envoy/demo.yaml` only in the addresses
//! containers need; it reads `make demo`'s settings, and its secrets only
//! from `.env`; the Dockerfile is lint-clean (the pinned hadolint), pins
//! every base image and runs every image as a non-root user. What `make
//! demo` does is taken from its code (`aipipe_tests::demo`), not copied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use aipipe_tests::demo;
use aipipe_tests::{TempDir, repo_root};
use common::ways::{differences, read, run, tool, yaml};
use serde_json::Value;

const COMPOSE: &str = "docker-compose.yaml";

fn services() -> serde_json::Map<String, Value> {
    yaml(COMPOSE)["services"]
        .as_object()
        .cloned()
        .expect("docker-compose.yaml has services")
}

fn check_compose(path: &std::path::Path) -> (bool, String) {
    run(
        &tool(".venv/bin/check-jsonschema"),
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            &path.to_string_lossy(),
        ],
    )
}

#[test]
fn the_compose_file_is_valid_against_the_compose_specification() {
    let (ok, log) = check_compose(&repo_root().join(COMPOSE));
    assert!(ok, "{COMPOSE} is not valid Compose:\n{log}");
    // The same check refuses a broken copy (ports must be a list).
    let dir = TempDir::new("compose");
    let broken = dir.path().join("docker-compose.yaml");
    let text = read(COMPOSE).replace(
        "ports: [\"127.0.0.1:18000:18000\"]",
        "ports: { mock: 18000 }",
    );
    assert_ne!(text, read(COMPOSE), "the mock's ports line moved");
    std::fs::write(&broken, text).unwrap();
    let (ok, log) = check_compose(&broken);
    assert!(!ok, "a broken compose file passed:\n{log}");
}

/// Which service publishes each of the demo's ports: the one named for
/// what listens there.
fn service_for(what: &str) -> &'static str {
    if what.starts_with("Envoy") {
        "envoy"
    } else if what.starts_with("mock") {
        "mock"
    } else if what.starts_with("control plane") {
        "control-plane"
    } else if what.starts_with("second control plane") {
        "control-plane-2"
    } else {
        panic!("no service for the demo's {what}")
    }
}

#[test]
fn compose_publishes_the_demos_ports_on_loopback_only() {
    let services = services();
    let mut published = BTreeSet::new();
    for (name, service) in &services {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().expect("ports in short syntax");
            let parts: Vec<&str> = port.split(':').collect();
            assert_eq!(
                parts.len(),
                3,
                "{name}: `{port}` does not name the host address"
            );
            assert_eq!(
                parts[0], "127.0.0.1",
                "{name}: `{port}` is not loopback only"
            );
            assert_eq!(parts[1], parts[2], "{name}: `{port}` moves the port");
            published.insert((name.clone(), parts[1].parse::<u16>().unwrap()));
        }
    }
    // The `ha` profile's second replica publishes make demo-ha's ports.
    let expected: BTreeSet<(String, u16)> = demo::PORTS
        .iter()
        .chain(demo::HA_PORTS.iter())
        .map(|(what, port)| (service_for(what).to_owned(), *port))
        .collect();
    assert_eq!(published, expected, "not make demo's (and demo-ha's) ports");
    // Each listens where it is published.
    for (service, admin, internal) in [
        ("control-plane", demo::CP_ADMIN, demo::CP_INTERNAL),
        ("control-plane-2", demo::CP2_ADMIN, demo::CP2_INTERNAL),
    ] {
        let cp = &services[service]["environment"];
        assert_eq!(cp["AIPIPE_ADMIN_LISTEN"], format!("0.0.0.0:{admin}"));
        assert_eq!(cp["AIPIPE_INTERNAL_LISTEN"], format!("0.0.0.0:{internal}"));
    }
    // Only the `ha` profile runs the second replica and PostgreSQL.
    for (name, service) in &services {
        let ha = ["control-plane-2", "postgres"].contains(&name.as_str());
        assert_eq!(
            service["profiles"]
                .as_array()
                .is_some_and(|p| p == &[Value::from("ha")]),
            ha,
            "{name}: profiles {}",
            service["profiles"]
        );
    }
    assert!(
        read("Dockerfile").contains(&format!(
            "CMD [\"/usr/local/bin/mock-provider\", \"--listen\", \"0.0.0.0:{}\"]",
            demo::MOCK
        )),
        "the mock image does not listen on {}",
        demo::MOCK
    );
}

/// The socket address (host, port) at `v`.
fn socket(v: &Value) -> (String, u64) {
    let s = &v["socket_address"];
    (
        s["address"].as_str().unwrap_or_default().to_owned(),
        s["port_value"].as_u64().unwrap_or_default(),
    )
}

#[test]
fn compose_runs_envoy_on_a_shipped_config_that_is_the_demos_but_for_addresses() {
    let envoy = &services()["envoy"];
    let command: Vec<&str> = envoy["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config = command
        .windows(2)
        .find(|w| w[0] == "-c")
        .map(|w| w[1])
        .expect("envoy's command names its config");
    // The image runs in /aipipe (the repository's layout): the config is a
    // file of envoy/, mounted from the repository.
    let mount = format!("./{config}:/aipipe/{config}:ro");
    assert!(
        envoy["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == &Value::from(mount.as_str())),
        "envoy does not mount {config} from the repository ({mount})"
    );
    assert!(config.starts_with("envoy/") && config.ends_with(".yaml"));
    assert!(
        read("Dockerfile").contains("WORKDIR /aipipe"),
        "the Envoy image does not run in /aipipe"
    );

    let ours = yaml(config);
    let theirs = yaml("envoy/demo.yaml");
    let services = services();
    for (path, demo_value, compose_value) in differences(&theirs, &ours) {
        // The second replica of the `ha` profile: an endpoint more.
        let second_replica = path.ends_with(".lb_endpoints[1]")
            && demo_value.is_null()
            && socket(&compose_value["endpoint"]["address"])
                == ("control-plane-2".to_owned(), u64::from(demo::CP2_INTERNAL));
        let allowed = second_replica
            || (path.ends_with(".socket_address.address")
                && demo_value == "127.0.0.1"
                && (compose_value == "0.0.0.0"
                    || compose_value
                        .as_str()
                        .is_some_and(|s| services.contains_key(s))))
            || (path.ends_with(".type") && demo_value == "STATIC" && compose_value == "STRICT_DNS");
        assert!(
            allowed,
            "{config} differs from envoy/demo.yaml at {path}: {demo_value} → {compose_value}"
        );
    }
    // And the addresses are the demo's ports on the right services.
    assert_eq!(
        socket(&ours["admin"]["address"]),
        ("0.0.0.0".to_owned(), u64::from(demo::ADMIN))
    );
    assert_eq!(
        socket(&ours["static_resources"]["listeners"][0]["address"]),
        ("0.0.0.0".to_owned(), u64::from(demo::LISTENER))
    );
    for cluster in ours["static_resources"]["clusters"].as_array().unwrap() {
        let name = cluster["name"].as_str().unwrap();
        let endpoint =
            &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        let expected = if name == "aipipe_control_plane" {
            ("control-plane".to_owned(), u64::from(demo::CP_INTERNAL))
        } else {
            ("mock".to_owned(), u64::from(demo::MOCK))
        };
        assert_eq!(socket(endpoint), expected, "cluster {name}");
    }
}

/// What only the `ha` profile reads: the database of both replicas and the
/// postgres service's password.
const HA_SETTINGS: [&str; 2] = ["AIPIPE_DATABASE_URL", "AIPIPE_PG_PASSWORD"];

/// Every `${NAME…}` the compose file interpolates.
fn interpolated(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn compose_reads_the_demos_settings_and_takes_secrets_only_from_env() {
    let text = read(COMPOSE);
    // make demo's own settings, and the internal token it generates for the
    // control plane and Envoy's singleton (demo.yaml's host_env_keys).
    let mut expected: BTreeSet<String> = demo::SETTINGS
        .iter()
        .chain(HA_SETTINGS.iter())
        .map(|s| (*s).to_owned())
        .collect();
    let demo_yaml = yaml("envoy/demo.yaml");
    let singleton = &demo_yaml["bootstrap_extensions"][0]["typed_config"]["config"];
    for key in singleton["vm_config"]["environment_variables"]["host_env_keys"]
        .as_array()
        .unwrap()
    {
        expected.insert(key.as_str().unwrap().to_owned());
    }
    assert_eq!(
        interpolated(&text),
        expected,
        "{COMPOSE} reads other settings"
    );
    let example: BTreeSet<String> = read(".env.example")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    assert_eq!(example, expected, ".env.example lists other settings");
    assert!(
        read(".gitignore").lines().any(|l| l == "/.env"),
        ".env (secrets) is not ignored by git"
    );
    // Every secret comes from the environment, never a literal.
    for (name, service) in services() {
        for (key, value) in service["environment"].as_object().into_iter().flatten() {
            if key.contains("SECRET") || key.contains("TOKEN") || key.contains("MASTER_KEY") {
                let v = value.as_str().unwrap_or_default();
                assert!(
                    v.starts_with(&format!("${{{key}")),
                    "{name}: {key} is not taken from .env"
                );
            }
            if key.contains("PASSWORD") {
                let v = value.as_str().unwrap_or_default();
                assert!(
                    v.starts_with("${AIPIPE_PG_PASSWORD"),
                    "{name}: {key} is not taken from .env"
                );
            }
        }
    }
    // The Envoy service gets the token its singleton reads.
    assert!(services()["envoy"]["environment"]["AIPIPE_INTERNAL_TOKEN"].is_string());
}

#[test]
fn the_dockerfile_is_lint_clean_pins_its_bases_and_runs_non_root() {
    let (ok, log) = run(&tool(".venv/bin/hadolint"), &["Dockerfile"]);
    assert!(ok, "hadolint:\n{log}");
    let text = read("Dockerfile");
    // Stages by name: (base image, USER of the stage).
    let mut stages: Vec<(String, String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["FROM", image, "AS", name] => {
                stages.push(((*name).to_owned(), (*image).to_owned(), None))
            }
            ["FROM", ..] => panic!("an unnamed stage: {line}"),
            ["USER", user] => {
                if let Some(last) = stages.last_mut() {
                    last.2 = Some((*user).to_owned());
                }
            }
            _ => {}
        }
    }
    let stage_names: Vec<&str> = stages.iter().map(|(n, _, _)| n.as_str()).collect();
    for (name, image, _) in &stages {
        if stage_names.contains(&image.as_str()) {
            continue; // built on an earlier stage
        }
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(
            tag.chars().any(|c| c.is_ascii_digit()) && tag != "latest",
            "stage {name}: {image} is not pinned to a version"
        );
    }
    // Every image compose builds is a final stage with a non-root user.
    for (service, def) in services() {
        let Some(target) = def["build"]["target"].as_str() else {
            continue;
        };
        let (_, _, user) = stages
            .iter()
            .find(|(n, _, _)| n == target)
            .unwrap_or_else(|| panic!("{service}: no stage `{target}` in the Dockerfile"));
        let user = user
            .as_deref()
            .unwrap_or_else(|| panic!("stage {target} sets no USER"));
        let uid = user.split(':').next().unwrap_or_default();
        assert!(uid != "0" && uid != "root", "stage {target} runs as root");
    }
    // The Envoy image is the official one, at the Envoy version the tests run.
    let envoy_version = read("Makefile")
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION := "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        stages
            .iter()
            .any(|(n, i, _)| n == "envoy" && *i == format!("envoyproxy/envoy:v{envoy_version}")),
        "the envoy stage is not envoyproxy/envoy:v{envoy_version}"
    );
    // The seed runs the image that carries demo-seed.
    assert_eq!(services()["seed"]["image"], services()["mock"]["image"]);
    assert!(text.contains("--bin demo-seed"));
}
