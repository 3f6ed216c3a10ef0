//! `make demo`: the mock providers on 127.0.0.1:18000 and Envoy with the aipipe
//! filter on 127.0.0.1:10000 (admin 127.0.0.1:9901), in the foreground until
//! Ctrl-C or SIGTERM, which stop everything it started.
//!
//! The demo tenant's virtual key is `$AIPIPE_DEMO_KEY` when set, otherwise the
//! key the shipped `envoy/demo.yaml` holds the hash of (`aipipe-demo-key`).

use std::time::Duration;

use aipipe_tests::{Envoy, EnvoyConfig, Mock, hex_hash, render_envoy_config, sibling_binary};

const DEFAULT_KEY: &str = "aipipe-demo-key";
const LISTENER: u16 = 10000;
const ADMIN: u16 = 9901;
const MOCK: u16 = 18000;

fn main() {
    let key = std::env::var("AIPIPE_DEMO_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_KEY.to_owned());

    for (what, port) in [
        ("Envoy listener", LISTENER),
        ("Envoy admin", ADMIN),
        ("mock provider", MOCK),
    ] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("demo: 127.0.0.1:{port} ({what}) is in use — is another demo running?");
            std::process::exit(1);
        }
    }

    let mock = Mock::start_with(&sibling_binary("mock-provider"), &[], Some(MOCK));
    let mut yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port: LISTENER,
            admin_port: ADMIN,
            upstream_port: mock.port,
            plugin_config: None,
            with_filter: true,
            control_plane: None,
        },
    );
    yaml = yaml.replace(&hex_hash(DEFAULT_KEY), &hex_hash(&key));
    let envoy = Envoy::start(&yaml, LISTENER, ADMIN, 2);

    println!("demo key: {key}");
    println!(
        "envoy: http://127.0.0.1:{LISTENER}  (admin http://127.0.0.1:{ADMIN}, mock providers http://127.0.0.1:{MOCK})"
    );
    println!();
    println!("Try it — the answer's headers say which model was chosen and why:");
    println!();
    println!("  curl -si http://127.0.0.1:{LISTENER}/v1/chat/completions \\");
    println!("    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\");
    println!(
        "    -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello!\"}}]}}'"
    );
    println!();
    println!("  # a hard one, streamed:");
    println!("  curl -sN http://127.0.0.1:{LISTENER}/v1/chat/completions \\");
    println!("    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\");
    println!(
        "    -d '{{\"model\":\"auto\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Prove by induction that every tree with n vertices has n-1 edges.\"}}]}}'"
    );
    println!();
    println!("  # OpenAI-API clients: base URL http://127.0.0.1:{LISTENER}/v1, API key {key}");
    println!();
    println!("aipipe demo ready");

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the signal listener: {e}");
            std::process::exit(1);
        }
    };
    let parent = std::os::unix::process::parent_id();
    let mut processes = (mock, envoy);
    let reason = runtime.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => return format!("cannot listen for SIGTERM: {e}"),
            };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return "interrupted".to_owned(),
                _ = term.recv() => return "terminated".to_owned(),
                _ = tick.tick() => {
                    // `make` gone (killed without passing the signal on): stop too.
                    if std::os::unix::process::parent_id() != parent {
                        return "parent exited".to_owned();
                    }
                    if !processes.0.process.alive() {
                        return format!("the mock provider exited:\n{}", processes.0.process.logs());
                    }
                    if !processes.1.process.alive() {
                        return format!("envoy exited:\n{}", processes.1.process.logs());
                    }
                }
            }
        }
    });
    println!("\ndemo: {reason}; stopping");
    processes.1.process.stop();
    processes.0.process.stop();
}
