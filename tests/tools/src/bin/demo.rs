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
//!
//! `demo --ha` (`make demo-ha`): the control plane as two replicas on one
//! PostgreSQL (control-plane/README.md, "Replicas") — a throwaway cluster in a
//! temporary directory on loopback, removed at the end — the second replica
//! on admin 127.0.0.1:8182, internal 127.0.0.1:8183; Envoy's control-plane
//! cluster lists both, health-checked.

use std::time::Duration;

use aipipe_tests::demo::{
    ADMIN, CP_ADMIN, CP_INTERNAL, CP2_ADMIN, CP2_INTERNAL, DEFAULT_KEY, HA_PORTS, LISTENER, MOCK,
    PORTS, env, seed,
};
use aipipe_tests::postgres::{self, Postgres};
use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, Launch, Mock, control_plane_endpoints, eventually, hex_hash,
    post_json, random_secret, render_envoy_config, repo_root, sibling_binary,
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
    let ha = std::env::args().skip(1).any(|a| a == "--ha");
    let key = env("AIPIPE_DEMO_KEY").unwrap_or_else(|| DEFAULT_KEY.to_owned());
    let admin_secret = env("AIPIPE_ADMIN_SECRET").unwrap_or_else(random_secret);
    let ports = PORTS
        .iter()
        .chain(if ha { HA_PORTS.iter() } else { [].iter() });
    for (what, port) in ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            return Err(format!(
                "127.0.0.1:{port} ({what}) is in use — is another demo running?"
            ));
        }
    }
    if ha && postgres::bin_dir().is_none() {
        return Err(
            "PostgreSQL's binaries are missing: `make demo-ha` installs Debian's postgresql".into(),
        );
    }

    let mock = Mock::start_with(&sibling_binary("mock-provider"), &[], Some(MOCK));
    let data = repo_root().join("data");
    let internal_token = random_secret();
    let launch = |admin_port, internal_port, env: Vec<(String, String)>, master_key| Launch {
        db: data.join("aipipe.db"),
        admin_port,
        internal_port,
        admin_secret: admin_secret.clone(),
        internal_token: internal_token.clone(),
        master_key,
        env,
    };
    let (pg, launches) = if ha {
        let pg = Postgres::start();
        let url = pg.create_database("aipipe");
        // The database lives as long as the demo: so may its master key.
        let master_key = Some(env("AIPIPE_MASTER_KEY").unwrap_or_else(random_secret));
        let env = vec![("AIPIPE_DATABASE_URL".to_owned(), url)];
        let launches = vec![
            launch(CP_ADMIN, CP_INTERNAL, env.clone(), master_key.clone()),
            launch(CP2_ADMIN, CP2_INTERNAL, env, master_key),
        ];
        (Some(pg), launches)
    } else {
        let master_key = env("AIPIPE_MASTER_KEY");
        (
            None,
            vec![launch(CP_ADMIN, CP_INTERNAL, Vec::new(), master_key)],
        )
    };
    // One after the other: the first applies the schema to a new database.
    let cps: Vec<ControlPlane> = launches.iter().map(ControlPlane::launch).collect();
    let cp = cps.first().ok_or("no control plane")?;
    seed(&cp.admin_url(""), &cp.admin_secret, &key)?;

    let mut yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port: LISTENER,
            admin_port: ADMIN,
            upstream_port: mock.port,
            plugin_config: None,
            with_filter: true,
            control_plane: Some((cp.internal_port, internal_token.clone())),
        },
    );
    if ha {
        yaml = control_plane_endpoints(&yaml, &[CP_INTERNAL, CP2_INTERNAL]);
    }
    // The bootstrap table (used until the control plane answers) knows the key too.
    yaml = yaml.replace(&hex_hash(DEFAULT_KEY), &hex_hash(&key));
    let envoy = Envoy::start_with_env(
        &yaml,
        LISTENER,
        ADMIN,
        2,
        &[("AIPIPE_INTERNAL_TOKEN", &internal_token)],
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
    match &pg {
        Some(pg) => {
            println!(
                "admin API: {a}/admin and http://127.0.0.1:{CP2_ADMIN}/admin — two replicas on one PostgreSQL ({}, removed at the end)",
                pg.url("aipipe")
            );
            println!(
                "  try: kill -9 one replica (`pkill -9 -f 'admin-listen 127.0.0.1:{CP_ADMIN}'`): Envoy and the admin API on the other go on; the demo starts it again"
            );
        }
        None => println!(
            "admin API: {a}/admin  (OpenAPI: {a}/admin/openapi.json; data in {})",
            data.display()
        ),
    }
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
        "    -d '{{\"model\":\"auto\",\"stream\":true,\"stream_options\":{{\"include_usage\":true}},\"messages\":[{{\"role\":\"user\",\"content\":\"Prove that R(3,3,3) >= 17, then analyze the complexity of checking a colouring.\"}}]}}'"
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

    wait(mock, cps, envoy, &launches, pg)
}

fn wait(
    mock: Mock,
    cps: Vec<ControlPlane>,
    envoy: Envoy,
    launches: &[Launch],
    pg: Option<Postgres>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal listener: {e}"))?;
    let parent = std::os::unix::process::parent_id();
    let (mut mock, mut cps, mut envoy, mut pg) = (mock, cps, envoy, pg);
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
                    for (cp, launch) in cps.iter_mut().zip(launches) {
                        if !cp.process.alive() {
                            // Envoy keeps routing with what it holds (and
                            // with the other replica, if any) and keeps the
                            // usage until a control plane takes it.
                            println!(
                                "demo: the control plane on {} exited; starting it again\n{}",
                                launch.admin_port,
                                cp.process.logs()
                            );
                            *cp = ControlPlane::launch(launch);
                        }
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
    for cp in &mut cps {
        cp.process.stop();
    }
    mock.process.stop();
    if let Some(pg) = &mut pg {
        pg.stop();
    }
    println!("demo: stopped");
    Ok(())
}
