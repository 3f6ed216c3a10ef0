//! The peers (tests/README.md, "Peers"): gateways a user would pick instead
//! of aipipe, measured the same way in the same run — LiteLLM's proxy
//! (PyPI) and Portkey's gateway (npm), pinned in `tests/peers/` and
//! installed into `.peers/` by `make peers`. Each runs as one process, as
//! the Envoys run one worker, in front of the same mock, and gets the same
//! chat body (naming `gpt-4o-mini`, since neither routes `auto`): rotated
//! throughput rounds beside plain Envoy and aipipe's two builds, each
//! process's CPU per request, then latency at concurrency 1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aipipe_flow_bench::chat_body;
use aipipe_tests::{Envoy, Process, TempDir, eventually, free_port, repo_root, try_request};

use super::{Target, median, rotated_runs, track, write_script, write_script_with, wrk};

/// LiteLLM refuses to start without a master key (a request without it is
/// a 401), as aipipe asks for a virtual key.
const LITELLM_MASTER_KEY: &str = "sk-bench-litellm-master-key";
/// The width of the section's table columns.
const COLUMN: usize = 14;
/// The model the peers are asked for: one their configuration names.
const MODEL: &str = "gpt-4o-mini";

pub(super) struct Peer {
    name: &'static str,
    version: String,
    process: Process,
    port: u16,
    /// What its requests carry besides the body.
    headers: Vec<(&'static str, String)>,
}

impl Target for Peer {
    fn port(&self) -> u16 {
        self.port
    }
    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Peer {
    fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// Starts `cmd` listening on `port` and waits until it answers a chat
    /// request from the mock (the mock's own answer, not an error of the peer's).
    fn start(
        name: &'static str,
        version: String,
        cmd: Command,
        port: u16,
        headers: Vec<(&'static str, String)>,
    ) -> Self {
        let process =
            Process::spawn(name, cmd).unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        track(process.pid());
        let peer = Peer {
            name,
            version,
            process,
            port,
            headers,
        };
        let body = peer_body(64);
        let answered = eventually(Duration::from_secs(120), || {
            let reply = try_request(
                "POST",
                &format!("http://127.0.0.1:{port}/v1/chat/completions"),
                &[
                    &[("content-type", "application/json")][..],
                    &peer.header_pairs(),
                ]
                .concat(),
                Some(body.as_bytes()),
            )?;
            (reply.status == 200 && reply.text().contains("Mock answer")).then_some(())
        });
        if answered.is_none() {
            panic!(
                "{name} did not answer a chat request from the mock:\n{}",
                peer.process.logs()
            );
        }
        peer
    }
}

/// A process's resident memory now, MiB (`VmRSS`).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn peers_dir() -> PathBuf {
    repo_root().join(".peers")
}

/// The bench's chat body, naming the peers' model instead of `auto`.
fn peer_body(size: usize) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&chat_body(size)).unwrap_or_default();
    body["model"] = serde_json::json!(MODEL);
    body.to_string()
}

/// The version a pin file gives `package` (`name==1.2.3` or `"name": "1.2.3"`).
fn pinned(file: &str, package: &str) -> String {
    let text =
        std::fs::read_to_string(repo_root().join("tests/peers").join(file)).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix(&format!("{package}=="))
                .or_else(|| l.strip_prefix(&format!("\"{package}\": \"")))
                .map(|v| v.trim_end_matches([',', '"']).to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// LiteLLM's proxy, one uvicorn worker (what its docs advise per pod), with
/// the settings of its own benchmark page (no callbacks, no retries), no
/// access log (Envoy here keeps none) and the price list it ships instead
/// of one fetched at start.
fn start_litellm(mock_port: u16, dir: &TempDir) -> Option<Peer> {
    let bin = peers_dir().join("venv/bin/litellm");
    if !bin.exists() {
        println!("bench-info: LiteLLM is not installed (make peers): skipped");
        return None;
    }
    let config = dir.path().join("litellm.yaml");
    let config_text = format!(
        "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      \
         api_base: http://127.0.0.1:{mock_port}/openai/v1\n      api_key: sk-bench-openai\n\
         litellm_settings:\n  callbacks: []\n  num_retries: 0\n  request_timeout: 30\n\
         general_settings:\n  master_key: {LITELLM_MASTER_KEY}\n"
    );
    std::fs::write(&config, config_text).unwrap_or_else(|e| panic!("{e}"));
    let log_config = dir.path().join("litellm-log.json");
    std::fs::write(
        &log_config,
        r#"{"version": 1, "disable_existing_loggers": false, "loggers": {"uvicorn.access": {"level": "WARNING"}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            "1",
        ])
        .arg("--log_config")
        .arg(&log_config)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .current_dir(dir.path());
    Some(Peer::start(
        "litellm",
        pinned("requirements.txt", "litellm"),
        cmd,
        port,
        vec![("Authorization", format!("Bearer {LITELLM_MASTER_KEY}"))],
    ))
}

/// Portkey's gateway as its package starts it (`start-server.js`, one Node
/// process), pinned to loopback by `tests/peers/loopback.cjs`; the provider
/// and its address go in each request's headers, as Portkey takes them.
fn start_portkey(mock_port: u16) -> Option<Peer> {
    let server = peers_dir().join("node/node_modules/@portkey-ai/gateway/build/start-server.js");
    if !server.exists() {
        println!("bench-info: Portkey's gateway is not installed (make peers): skipped");
        return None;
    }
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg("--require")
        .arg(repo_root().join("tests/peers/loopback.cjs"))
        .arg(&server)
        .arg(format!("--port={port}"))
        .arg("--headless");
    Some(Peer::start(
        "portkey",
        pinned("package.json", "@portkey-ai/gateway"),
        cmd,
        port,
        vec![
            ("Authorization", "Bearer sk-bench-openai".into()),
            ("x-portkey-provider", "openai".into()),
            (
                "x-portkey-custom-host",
                format!("http://127.0.0.1:{mock_port}/openai/v1"),
            ),
        ],
    ))
}

/// A, N, B and each peer, named as the section prints them, with the
/// request script each gets for a `size`-byte body (the Envoys the bench's
/// `auto` body, the peers theirs). The scripts are written into `dir`.
fn aimed<'a>(
    [plain, native, wasm]: [&'a Envoy; 3],
    peers: &'a [Peer],
    dir: &TempDir,
    (size_name, size): (&str, usize),
) -> Vec<(&'a str, &'a dyn Target, PathBuf)> {
    let envoy_script = write_script(dir, &format!("peers-envoy-{size_name}"), &chat_body(size));
    let mut targets: Vec<(&str, &dyn Target, PathBuf)> = vec![
        ("A", plain, envoy_script.clone()),
        ("N", native, envoy_script.clone()),
        ("B", wasm, envoy_script),
    ];
    for p in peers {
        let name = format!("peers-{}-{size_name}", p.name);
        let script = write_script_with(dir, &name, &peer_body(size), &p.header_pairs());
        targets.push((p.name, p, script));
    }
    targets
}

/// The peers' section: `plain`, `native` and `wasm` are the bench's Envoys
/// A, N and B (with the bench's `auto` body), the peers beside them.
pub(super) fn run(
    envoys: [&Envoy; 3],
    mock_port: u16,
    dir: &TempDir,
    sizes: &[(&str, usize)],
    (seconds, pairs, connections): (u64, u64, u64),
) {
    let peers: Vec<Peer> = [start_litellm(mock_port, dir), start_portkey(mock_port)]
        .into_iter()
        .flatten()
        .collect();
    if peers.is_empty() {
        return;
    }
    println!(
        "\npeers: the same mock, one process each, the same body naming {MODEL} (A, N, B with `auto` as above)"
    );
    for p in &peers {
        println!("  {} {}", p.name, p.version);
    }
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    // Columns: requests per second of A, N, B and each peer, then each one's
    // ratio to A, then CPU µs per request of all.
    let mut head = format!("{:<5} {:>5}", "size", "round");
    for n in ["A", "N", "B"].into_iter().chain(names.iter().copied()) {
        head.push_str(&format!(" {:>w$}", format!("{n} req/s"), w = COLUMN));
    }
    for n in ["N", "B"].into_iter().chain(names.iter().copied()) {
        head.push_str(&format!(" {:>w$}", format!("{n}/A"), w = COLUMN));
    }
    println!("{head}   CPU µs/request A N B {}", names.join(" "));
    for &(size_name, size) in sizes {
        let aimed = aimed(envoys, &peers, dir, (size_name, size));
        let targets: Vec<(&dyn Target, &Path)> =
            aimed.iter().map(|(_, t, s)| (*t, s.as_path())).collect();
        for &(t, s) in &targets {
            wrk(t.port(), s, connections, 1);
        }
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for round in 0..pairs {
            let (rps, us) = rotated_runs(&targets, connections, seconds, round);
            let a = rps.first().copied().unwrap_or(f64::NAN);
            let fmt = |xs: &[f64], w: usize, p: usize| {
                xs.iter()
                    .map(|x| format!(" {x:>w$.p$}"))
                    .collect::<String>()
            };
            let r: Vec<f64> = rps.iter().map(|x| x / a).collect();
            println!(
                "{size_name:<5} {round:>5}{}{}  {}",
                fmt(&rps, COLUMN, 0),
                fmt(r.get(1..).unwrap_or_default(), COLUMN, 3),
                fmt(&us, 1, 1),
            );
            for (v, x) in ratios.iter_mut().zip(r) {
                v.push(x);
            }
            for (v, u) in cpu.iter_mut().zip(us) {
                v.push(u);
            }
        }
        for (i, p) in peers.iter().enumerate() {
            let at = i + 3;
            let ratio = median(ratios.get(at).cloned().unwrap_or_default());
            let cpu_us = median(cpu.get(at).cloned().unwrap_or_default());
            println!(
                "bench: peer_{}_throughput_ratio_{size_name} {ratio:.4}",
                p.name
            );
            println!(
                "bench: peer_{}_cpu_us_per_request_{size_name} {cpu_us:.0}",
                p.name
            );
        }
        for (at, build) in [(1, "native"), (2, "wasm")] {
            let ratio = median(ratios.get(at).cloned().unwrap_or_default());
            println!("bench-info: peers_round_{build}_throughput_ratio_{size_name} {ratio:.3}");
        }
    }

    println!("\npeers: latency at concurrency 1 (1 KB body): A, N, B, then each peer");
    let targets = aimed(envoys, &peers, dir, ("1k", 1024));
    // What each adds to A's p50, pair by pair.
    let mut added: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for pair in 0..pairs {
        let mut line = format!("{pair:>4}");
        let mut a_p50 = f64::NAN;
        for ((name, t, s), v) in targets.iter().zip(added.iter_mut()) {
            let run = wrk(t.port(), s, 1, seconds);
            if *name == "A" {
                a_p50 = run.p50_us;
            }
            line.push_str(&format!(
                "  {name} p50 {:.0} µs (p99 {:.0})",
                run.p50_us, run.p99_us
            ));
            v.push(run.p50_us - a_p50);
        }
        println!("{line}");
    }
    for ((name, ..), v) in targets.iter().zip(added) {
        match *name {
            "A" => {}
            "N" | "B" => {
                let build = if *name == "N" { "native" } else { "wasm" };
                println!(
                    "bench-info: peers_round_{build}_added_p50_us_1k {:.0}",
                    median(v)
                );
            }
            peer => println!("bench: peer_{peer}_added_p50_us_1k {:.0}", median(v)),
        }
    }
    let rss: Vec<String> = targets
        .iter()
        .map(|(name, t, _)| format!("{name} {:.0}", rss_mib(t.pid())))
        .collect();
    println!("bench-info: RSS after the runs, MiB: {}", rss.join(", "));
}
