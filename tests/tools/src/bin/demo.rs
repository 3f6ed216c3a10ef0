//! `make demo`: the whole stack on loopback, in the foreground until Ctrl-C or
//! SIGTERM, which stop everything it started in the order that loses no
//! usage (control-plane/README.md, "Stopping without losing usage"): Envoy
//! drained and its usage flushed, then Envoy, then the control plane. Each
//! child runs in its own process group, so the terminal's Ctrl-C reaches
//! only this supervisor; a control plane that dies is started again (Envoy
//! keeps serving meanwhile).
//!
//! - the mock providers on 127.0.0.1:18000;
//! - the control plane (admin 127.0.0.1:8082, internal 127.0.0.1:8083), its
//!   SQLite database under `./data/`;
//! - Envoy with the aipipe filter on 127.0.0.1:10000 (admin 127.0.0.1:9901),
//!   whose singleton fetches the routing table from the control plane.
//!
//! It seeds a `demo` tenant with mock provider keys and the virtual key
//! `$AIPIPE_DEMO_KEY` (default `aipipe-demo-key`). The admin secret is
//! `$AIPIPE_ADMIN_SECRET`, or generated and printed.

use std::time::Duration;

use aipipe_tests::demo::{
    ADMIN, CP_ADMIN, CP_INTERNAL, DEFAULT_KEY, LISTENER, MOCK, PORTS, env, seed,
};
use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, Launch, Mock, eventually, hex_hash, post_json, random_secret,
    render_envoy_config, repo_root, sibling_binary,
};
use serde_json::json;

fn main() {
    // Every process started is stopped when `run` returns (on drop), also on
    // a failure: no orphans on loopback ports.
    if let Err(why) = run() {
        eprintln!("demo: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    aipipe_tests::start_in_own_process_groups();
    let key = env("AIPIPE_DEMO_KEY").unwrap_or_else(|| DEFAULT_KEY.to_owned());
    let admin_secret = env("AIPIPE_ADMIN_SECRET").unwrap_or_else(random_secret);
    for (what, port) in PORTS {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(format!(
                "127.0.0.1:{port} ({what}) is in use — is another demo running?"
            ));
        }
    }

    let mock = Mock::start_with(&sibling_binary("mock-provider"), &[], Some(MOCK));
    let data = repo_root().join("data");
    let launch = Launch {
        db: data.join("aipipe.db"),
        admin_port: CP_ADMIN,
        internal_port: CP_INTERNAL,
        admin_secret: admin_secret.clone(),
        internal_token: random_secret(),
        master_key: env("AIPIPE_MASTER_KEY"),
        env: Vec::new(),
    };
    let cp = ControlPlane::launch(&launch);
    seed(&cp.admin_url(""), &cp.admin_secret, &key)?;

    let mut yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port: LISTENER,
            admin_port: ADMIN,
            upstream_port: mock.port,
            plugin_config: None,
            with_filter: true,
            control_plane: Some((cp.internal_port, cp.internal_token.clone())),
        },
    );
    // The bootstrap table (used until the control plane answers) knows the key too.
    yaml = yaml.replace(&hex_hash(DEFAULT_KEY), &hex_hash(&key));
    let envoy = Envoy::start_with_env(
        &yaml,
        LISTENER,
        ADMIN,
        2,
        &[("AIPIPE_INTERNAL_TOKEN", &launch.internal_token)],
    );
    // Ready once the control plane's table serves the demo key.
    let chat = envoy.url("/v1/chat/completions");
    let hi = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let served = eventually(Duration::from_secs(15), || {
        let r = post_json(&chat, &[("authorization", &format!("Bearer {key}"))], &hi);
        (r.status == 200).then_some(())
    });
    if served.is_none() {
        return Err("Envoy did not serve the demo key".into());
    }

    let a = format!("http://127.0.0.1:{CP_ADMIN}");
    println!("demo key: {key}");
    println!("admin secret: {admin_secret}");
    println!(
        "admin API: {a}/admin  (OpenAPI: {a}/admin/openapi.json; data in {})",
        data.display()
    );
    println!(
        "envoy: http://127.0.0.1:{LISTENER}  (admin http://127.0.0.1:{ADMIN}, mock providers http://127.0.0.1:{MOCK})"
    );
    println!("dashboard: {a}/dashboard  (sign in with the admin secret)");
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
        "    -d '{{\"model\":\"auto\",\"stream\":true,\"stream_options\":{{\"include_usage\":true}},\"messages\":[{{\"role\":\"user\",\"content\":\"Prove by induction that every tree with n vertices has n-1 edges.\"}}]}}'"
    );
    println!();
    println!("The admin API (every call needs the admin secret):");
    println!();
    println!("  curl -s {a}/admin/tenants/demo/stats -H 'X-Admin-Secret: {admin_secret}'");
    println!(
        "  curl -s {a}/admin/tenants -H 'X-Admin-Secret: {admin_secret}' -H 'Content-Type: application/json' -d '{{\"id\":\"acme\",\"name\":\"Acme\"}}'"
    );
    println!(
        "  curl -s {a}/admin/tenants/acme/keys -H 'X-Admin-Secret: {admin_secret}' -H 'Content-Type: application/json' -d '{{\"openai\":\"sk-acme\"}}'"
    );
    println!(
        "  curl -s {a}/admin/tenants/acme/virtual-keys -H 'X-Admin-Secret: {admin_secret}' -H 'Content-Type: application/json' -d '{{\"name\":\"ci\"}}'"
    );
    println!(
        "  curl -s {a}/admin/route/explain -H 'X-Admin-Secret: {admin_secret}' -H 'Content-Type: application/json' -d '{{\"tenant\":\"demo\",\"request\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}}}'"
    );
    println!();
    println!("aipipe demo ready");

    wait(mock, cp, envoy, &launch)
}

fn wait(mock: Mock, cp: ControlPlane, envoy: Envoy, launch: &Launch) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal listener: {e}"))?;
    let parent = std::os::unix::process::parent_id();
    let (mut mock, mut cp, mut envoy) = (mock, cp, envoy);
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
                    if !mock.process.alive() {
                        return format!("the mock provider exited:\n{}", mock.process.logs());
                    }
                    if !cp.process.alive() {
                        // Envoy keeps routing with what it holds and keeps
                        // the usage until the control plane is back.
                        println!(
                            "demo: the control plane exited; starting it again\n{}",
                            cp.process.logs()
                        );
                        cp = ControlPlane::launch(launch);
                    }
                    if !envoy.process.alive() {
                        return format!("envoy exited:\n{}", envoy.process.logs());
                    }
                }
            }
        }
    });
    println!("\ndemo: {reason}; stopping (draining Envoy, flushing usage)");
    if envoy.process.alive()
        && let Err(e) = envoy.drain_usage(Duration::from_millis(1500), Duration::from_secs(30))
    {
        println!("demo: {e}; stopping anyway");
    }
    envoy.process.stop();
    cp.process.stop();
    mock.process.stop();
    println!("demo: stopped");
    Ok(())
}
