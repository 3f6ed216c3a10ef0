//! `make scale`: what a tenant directory of 10k, 100k and 1M tenants costs
//! (control-plane/README.md, "Change log": a change should cost its own
//! entries, not the whole directory).
//!
//! One control plane, one Envoy with the filter (`envoy/demo.yaml`, two
//! workers, its singleton long-polling the control plane) and the mock
//! provider (`--fast`), all on 127.0.0.1. For each size (`--sizes`, default
//! 10000,100000,1000000) the store grows from the previous size through
//! `POST /admin/tenants/import` — each tenant with a key for each of the seven
//! providers and one virtual-key hash — and, once Envoy holds the control
//! plane's revision, the tool measures:
//!
//! - per change (`--changes`, default 200; a change is one new virtual key for
//!   an existing tenant, the next one only after Envoy's singleton logged the
//!   revision, so idle time stays out): control-plane and Envoy CPU
//!   (utime + stime from `/proc/<pid>/stat`) and the bytes of deltas sent
//!   (`aipipe_cp_delta_bytes_total`), averaged;
//! - propagation (`--samples`, default 200): from the admin call's answer to the
//!   first 200 from Envoy with the new key, polled every 2 ms;
//! - Envoy's and the control plane's RSS (`VmRSS`);
//! - request latency: `--requests` (default 500) sequential chat requests on
//!   one kept-alive connection with one key, p50 and p99;
//! - snapshot: a second Envoy started on the same control plane, timed from
//!   its start until it answers 200 for the last imported tenant's key (and
//!   its RSS then).
//!
//! Every wait has a deadline and the whole run has `--max-minutes` (default
//! 40): past it, the sizes not finished are reported as far as they got.
//! Everything it started is stopped at the end, on an error, on SIGTERM or
//! SIGINT and on a panic. It prints a table, one row per size, and a row per
//! size for the Performance table in README.md.

// A harness call that fails (Envoy not ready) panics with the reason; the
// panic hook below stops the children first.
#![allow(clippy::panic)]

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::process::Command;
use std::time::{Duration, Instant};

use aipipe_tests::{ControlPlane, Envoy, Mock, hex_hash, percentile, sibling_binary, try_request};
use serde_json::json;

const USAGE: &str = "usage: scale [--sizes 10000,100000,1000000] [--changes 200] [--samples 200] \
[--requests 500] [--batch 10000] [--max-minutes 40]";

struct Args {
    sizes: Vec<u64>,
    changes: u32,
    samples: u32,
    requests: u32,
    batch: u64,
    max_minutes: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![10_000, 100_000, 1_000_000],
        changes: 200,
        samples: 200,
        requests: 500,
        batch: 10_000,
        max_minutes: 40,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<u64, String> {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number\n{USAGE}"))
        };
        match flag.as_str() {
            "--sizes" => {
                a.sizes = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| num(s.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--changes" => a.changes = num(&value)?.try_into().unwrap_or(u32::MAX),
            "--samples" => a.samples = num(&value)?.try_into().unwrap_or(u32::MAX),
            "--requests" => a.requests = num(&value)?.try_into().unwrap_or(u32::MAX),
            "--batch" => a.batch = num(&value)?,
            "--max-minutes" => a.max_minutes = num(&value)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.sizes.is_empty() || a.sizes.windows(2).any(|w| w[0] >= w[1]) || a.sizes[0] == 0 {
        return Err("--sizes: give increasing tenant counts, e.g. 10000,50000".into());
    }
    if a.sizes.iter().any(|&s| s > 9_999_999) {
        return Err("--sizes: at most 9,999,999 tenants (ids are t + 7 digits)".into());
    }
    if a.changes == 0 || a.samples == 0 || a.requests == 0 || !(1..=20_000).contains(&a.batch) {
        return Err("--changes, --samples and --requests must be ≥ 1, --batch in 1..=20000".into());
    }
    Ok(a)
}

// ---------------------------------------------------------------- children

/// Kills every child of this process by its id. The release profile aborts
/// on panic, so the harness's `Drop`s would not run; a child started by a
/// harness call that then panicked (Envoy not ready) is not known to us by
/// any handle, so children are found by their parent id in `/proc`.
fn kill_own_children() {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces): state, ppid, …
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(me) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// The harness's scratch directories of this process (`aipipe-<tag>-<pid>-<n>`
/// in the temp directory: logs, configs, the database, which at 1M tenants
/// is large), removed after a panic or a signal, when no `Drop` runs.
fn remove_own_scratch() {
    let dir = std::env::temp_dir();
    let mine = format!("-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("aipipe-")
            && name
                .rsplit_once(&mine)
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if ours {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// SIGTERM or SIGINT (`timeout`, Ctrl-C): stop the children, then exit.
fn kill_children_on_signal() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("scale: stopped by a signal; stopping what it started");
            kill_own_children();
            remove_own_scratch();
            std::process::exit(130);
        });
    });
}

fn kill_children_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_own_children();
        remove_own_scratch();
        default(info);
    }));
}

// ---------------------------------------------------------------- /proc

/// Clock ticks per second for `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat (did it exit?): {e}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name: state(3) ppid(4) … utime(14) stime(15), 1-based.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(format!("/proc/{pid}/stat has no utime/stime")),
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status has no VmRSS"))
}

// ---------------------------------------------------------------- Envoy's log

/// Follows an Envoy's log for the singleton's "directory at revision N"
/// line, which it writes once a delta (the last page of one) is applied:
/// the tool learns that a change arrived without sending Envoy anything, so
/// the waiting costs Envoy no CPU. The log is the process's stderr, opened
/// through `/proc/<pid>/fd/2` (a file the harness writes).
struct LogTail {
    file: File,
    partial: String,
    revision: u64,
    last_warning: String,
}

const REVISION_LINE: &str = "singleton: directory at revision ";

impl LogTail {
    fn open(pid: u32) -> Result<Self, String> {
        let file = File::open(format!("/proc/{pid}/fd/2"))
            .map_err(|e| format!("cannot open Envoy's log through /proc/{pid}/fd/2: {e}"))?;
        Ok(Self {
            file,
            partial: String::new(),
            revision: 0,
            last_warning: String::new(),
        })
    }

    /// Reads what was appended; returns the highest revision seen so far.
    fn poll(&mut self) -> u64 {
        let mut bytes = Vec::new();
        if self.file.read_to_end(&mut bytes).is_err() {
            // A rotated or truncated log: start over at its end.
            let _ = self.file.seek(SeekFrom::End(0));
            return self.revision;
        }
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return self.revision;
        };
        let complete: String = self.partial.drain(..=end).collect();
        for line in complete.lines() {
            if let Some(rest) = line.split(REVISION_LINE).nth(1) {
                let n = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                self.revision = self.revision.max(n);
            } else if line.contains("singleton: ") && line.contains("][warning]") {
                line.clone_into(&mut self.last_warning);
            }
        }
        self.revision
    }

    /// Waits until the singleton holds a revision above `above`, polling the
    /// file every millisecond.
    fn wait_past(&mut self, above: u64, patience: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + patience;
        loop {
            let r = self.poll();
            if r > above {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "Envoy did not get past revision {above} within {patience:?} (it holds {r}){}",
                    if self.last_warning.is_empty() {
                        String::new()
                    } else {
                        format!("; its last warning: {}", self.last_warning)
                    }
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

// ---------------------------------------------------------------- control plane

/// A sample from the control plane's /metrics.
fn metric(cp: &ControlPlane, name: &str) -> Result<u64, String> {
    let r = try_request("GET", &cp.admin_url("/metrics"), &[], None)
        .ok_or("the control plane's /metrics did not answer")?;
    let text = r.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| format!("/metrics has no {name}"))
}

fn tenant_id(n: u64) -> String {
    format!("t{n:07}")
}

/// The virtual key each imported tenant gets (only its hash is imported).
fn imported_key(n: u64) -> String {
    format!("vk-scale-{}", tenant_id(n))
}

/// NDJSON for tenants `from..=to`: seven provider keys and one key hash each.
fn import_body(providers: &[String], from: u64, to: u64) -> String {
    let mut body = String::with_capacity(((to - from + 1) * 450) as usize);
    for n in from..=to {
        let id = tenant_id(n);
        let keys: serde_json::Map<String, serde_json::Value> = providers
            .iter()
            .map(|p| (p.clone(), json!(format!("sk-mock-{p}-{id}"))))
            .collect();
        let line = json!({
            "id": id,
            "provider_keys": keys,
            "virtual_key_hashes": [hex_hash(&imported_key(n))],
        });
        let _ = writeln!(body, "{line}");
    }
    body
}

/// One import request, allowed longer than the harness's 30 s per request.
fn import(agent: &ureq::Agent, cp: &ControlPlane, body: String) -> Result<u64, String> {
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(cp.admin_url("/admin/tenants/import"))
        .header("x-admin-secret", cp.admin_secret.as_str())
        .header("content-type", "application/x-ndjson")
        .body(body.into_bytes())
        .map_err(|e| format!("cannot build the import request: {e}"))?;
    let mut resp = agent
        .run(req)
        .map_err(|e| format!("import request failed: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read the import answer: {e}"))?;
    if status != 200 {
        return Err(format!("import answered {status}: {text}"));
    }
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("import answer is not JSON: {e}"))?;
    let refused = report["refused"].as_array().map_or(0, Vec::len);
    if refused > 0 {
        return Err(format!(
            "import refused {refused} lines, e.g. {}",
            report["refused"][0]
        ));
    }
    report["imported"]
        .as_u64()
        .ok_or_else(|| format!("import answer has no `imported`: {text}"))
}

/// A new virtual key for tenant `n`; returns the key.
fn new_virtual_key(cp: &ControlPlane, n: u64) -> Result<String, String> {
    let path = format!("/admin/tenants/{}/virtual-keys", tenant_id(n));
    let body = json!({"name": "scale"}).to_string();
    let r = try_request(
        "POST",
        &cp.admin_url(&path),
        &[
            ("x-admin-secret", cp.admin_secret.as_str()),
            ("content-type", "application/json"),
        ],
        Some(body.as_bytes()),
    )
    .ok_or_else(|| format!("POST {path}: connection failed"))?;
    if r.status != 201 {
        return Err(format!("POST {path} answered {}: {}", r.status, r.text()));
    }
    r.json()["key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("POST {path}: no key in {}", r.text()))
}

// ---------------------------------------------------------------- requests

const CHAT: &str = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;

/// One chat request with `key` on a fresh connection; its status (0: none).
fn chat_status(envoy_port: u16, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    try_request(
        "POST",
        &format!("http://127.0.0.1:{envoy_port}/v1/chat/completions"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        Some(CHAT.as_bytes()),
    )
    .map_or(0, |r| r.status)
}

/// Polls with `key` every `every` until Envoy answers 200; the time taken.
fn until_served(
    envoy_port: u16,
    key: &str,
    every: Duration,
    patience: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let attempt = Instant::now();
        let status = chat_status(envoy_port, key);
        if status == 200 {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= patience {
            return Err(format!(
                "Envoy did not serve the key within {patience:?} (last answer {status})"
            ));
        }
        if let Some(rest) = every.checked_sub(attempt.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// `n` sequential chat requests on one kept-alive connection; µs each.
fn request_latencies(envoy_port: u16, key: &str, n: u32) -> Result<Vec<f64>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{envoy_port}/v1/chat/completions");
    let auth = format!("Bearer {key}");
    let one = || -> Result<f64, String> {
        let start = Instant::now();
        let mut resp = agent
            .post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(CHAT)
            .map_err(|e| format!("chat request failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_vec()
            .map_err(|e| format!("cannot read the chat answer: {e}"))?;
        if status != 200 {
            return Err(format!(
                "chat request answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(start.elapsed().as_secs_f64() * 1e6)
    };
    for _ in 0..20 {
        one()?;
    }
    (0..n).map(|_| one()).collect()
}

// ---------------------------------------------------------------- one size

/// What was measured at one size (None: not reached before the deadline).
#[derive(Default)]
struct Row {
    tenants: u64,
    /// Tenants this size imported, and how long that took.
    imported: u64,
    import_s: f64,
    /// From the last import answer until Envoy held the control plane's revision.
    catch_up_s: f64,
    cp_cpu_ms: Option<f64>,
    envoy_cpu_ms: Option<f64>,
    bytes: Option<f64>,
    prop_p50_ms: Option<f64>,
    prop_p99_ms: Option<f64>,
    prop_max_ms: Option<f64>,
    envoy_rss_mib: Option<f64>,
    cp_rss_mib: Option<f64>,
    req_p50_us: Option<f64>,
    req_p99_us: Option<f64>,
    snapshot_s: Option<f64>,
    /// From its start until its admin `/ready`.
    ready_s: Option<f64>,
    /// CPU seconds until it served: the control plane's, the new Envoy's.
    snapshot_cpu_s: Option<(f64, f64)>,
    fresh_rss_mib: Option<f64>,
    snapshot_bytes: Option<f64>,
    /// Why the row is incomplete.
    stopped: Option<String>,
}

struct Stack {
    _mock: Mock,
    cp: ControlPlane,
    envoy: Envoy,
    log: LogTail,
    providers: Vec<String>,
    agent: ureq::Agent,
    ticks: f64,
    /// Tenants in the store.
    tenants: u64,
    deadline: Instant,
}

fn over(deadline: Instant, what: &str) -> Result<(), String> {
    if Instant::now() >= deadline {
        Err(format!("--max-minutes reached before {what}"))
    } else {
        Ok(())
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Stack {
    /// Imports tenants up to `size`, `batch` per request.
    fn grow(&mut self, size: u64, batch: u64, row: &mut Row) -> Result<(), String> {
        let start = Instant::now();
        while self.tenants < size {
            over(
                self.deadline,
                &format!("{size} tenants (at {})", self.tenants),
            )?;
            let from = self.tenants + 1;
            let to = (self.tenants + batch).min(size);
            let body = import_body(&self.providers, from, to);
            let n = import(&self.agent, &self.cp, body)?;
            if n != to - from + 1 {
                return Err(format!(
                    "import of tenants {from}..={to} imported {n}, not {}",
                    to - from + 1
                ));
            }
            self.tenants = to;
            row.imported += n;
            row.import_s = start.elapsed().as_secs_f64();
        }
        Ok(())
    }

    /// Waits until Envoy holds the control plane's current revision.
    fn catch_up(&mut self) -> Result<(), String> {
        // The deadline bounds the run, but a catch-up gets a fair chance.
        let patience = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(30));
        catch_up(
            &self.cp,
            &mut self.log,
            self.envoy.port,
            self.tenants,
            patience,
        )
    }

    /// `changes` new virtual keys, one at a time, each waited for in Envoy's
    /// log: CPU and delta bytes per change.
    fn per_change(&mut self, changes: u32, row: &mut Row) -> Result<(), String> {
        let (cp_pid, envoy_pid) = (self.cp.process.pid(), self.envoy.process.pid());
        self.catch_up()?;
        let mut held = self.log.poll();
        let bytes0 = metric(&self.cp, "aipipe_cp_delta_bytes_total")?;
        let (cp0, envoy0) = (cpu_ticks(cp_pid)?, cpu_ticks(envoy_pid)?);
        for i in 0..changes {
            over(self.deadline, "the per-change measurement")?;
            new_virtual_key(&self.cp, spread(i, self.tenants))?;
            held = self.log.wait_past(held, Duration::from_secs(30))?;
        }
        let (cp1, envoy1) = (cpu_ticks(cp_pid)?, cpu_ticks(envoy_pid)?);
        let bytes1 = metric(&self.cp, "aipipe_cp_delta_bytes_total")?;
        let per = |a: u64, b: u64| (b - a) as f64 * 1000.0 / self.ticks / f64::from(changes);
        row.cp_cpu_ms = Some(per(cp0, cp1));
        row.envoy_cpu_ms = Some(per(envoy0, envoy1));
        row.bytes = Some((bytes1 - bytes0) as f64 / f64::from(changes));
        Ok(())
    }

    /// From each new key's creation to its first 200 through Envoy.
    fn propagation(&mut self, samples: u32, row: &mut Row) -> Result<(), String> {
        let mut ms = Vec::new();
        for i in 0..samples {
            over(self.deadline, "the propagation measurement")?;
            // Other tenants than the per-change keys went to.
            let key = new_virtual_key(&self.cp, spread(i + 1000, self.tenants))?;
            let took = until_served(
                self.envoy.port,
                &key,
                Duration::from_millis(2),
                Duration::from_secs(10),
            )?;
            ms.push(took.as_secs_f64() * 1000.0);
        }
        row.prop_p50_ms = Some(percentile(&ms, 50.0));
        row.prop_p99_ms = Some(percentile(&ms, 99.0));
        row.prop_max_ms = Some(percentile(&ms, 100.0));
        Ok(())
    }

    fn memory(&mut self, row: &mut Row) -> Result<(), String> {
        self.catch_up()?;
        row.envoy_rss_mib = Some(mib(rss_kib(self.envoy.process.pid())?));
        row.cp_rss_mib = Some(mib(rss_kib(self.cp.process.pid())?));
        Ok(())
    }

    fn requests(&mut self, n: u32, row: &mut Row) -> Result<(), String> {
        over(self.deadline, "the request latency")?;
        let us = request_latencies(self.envoy.port, &imported_key(self.tenants), n)?;
        row.req_p50_us = Some(percentile(&us, 50.0));
        row.req_p99_us = Some(percentile(&us, 99.0));
        Ok(())
    }

    /// A second Envoy on the same control plane: from its start to a 200 for
    /// the last imported tenant.
    fn snapshot(&mut self, row: &mut Row) -> Result<(), String> {
        over(self.deadline, "the fresh Envoy's snapshot")?;
        let bytes0 = metric(&self.cp, "aipipe_cp_delta_bytes_total")?;
        let cp0 = cpu_ticks(self.cp.process.pid())?;
        let start = Instant::now();
        let mut fresh = Envoy::start_rendered_with(
            "demo.yaml",
            self._mock.port,
            None,
            true,
            Some((self.cp.internal_port, self.cp.internal_token.clone())),
            2,
        );
        row.ready_s = Some(start.elapsed().as_secs_f64());
        let patience = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(30));
        let served = until_served(
            fresh.port,
            &imported_key(self.tenants),
            Duration::from_millis(5),
            patience,
        )
        .map(|_| start.elapsed());
        let result = served.and_then(|took| {
            row.snapshot_s = Some(took.as_secs_f64());
            // Where the time went: the control plane reading and sealing
            // entries, or the new Envoy (startup included) writing them.
            let cp1 = cpu_ticks(self.cp.process.pid())?;
            let fresh_cpu = cpu_ticks(fresh.process.pid())?;
            row.snapshot_cpu_s = Some((
                cp1.saturating_sub(cp0) as f64 / self.ticks,
                fresh_cpu as f64 / self.ticks,
            ));
            // The whole directory, not only the last tenant, before its RSS.
            let mut log = LogTail::open(fresh.process.pid())?;
            catch_up(&self.cp, &mut log, fresh.port, self.tenants, patience)?;
            row.fresh_rss_mib = Some(mib(rss_kib(fresh.process.pid())?));
            let bytes1 = metric(&self.cp, "aipipe_cp_delta_bytes_total")?;
            row.snapshot_bytes = Some(bytes1.saturating_sub(bytes0) as f64);
            Ok(())
        });
        fresh.process.stop();
        result
    }
}

/// Waits until an Envoy holds the control plane's current revision. The
/// singleton logs the revision once the last page of a delta is applied,
/// but a catch-up whose last page is exactly full ends with an empty page
/// and no line; so, with tenants to spare, one new virtual key (a small
/// last change) is made first, and Envoy serving it also counts: entries
/// are applied in revision order, so everything before it is there.
fn catch_up(
    cp: &ControlPlane,
    log: &mut LogTail,
    envoy_port: u16,
    tenants: u64,
    patience: Duration,
) -> Result<(), String> {
    let probe = if tenants > 0 {
        Some(new_virtual_key(cp, spread(99_999, tenants))?)
    } else {
        None
    };
    let target = metric(cp, "aipipe_cp_table_version")?;
    let deadline = Instant::now() + patience;
    let mut asked = Instant::now();
    loop {
        if log.poll() >= target {
            return Ok(());
        }
        if let Some(key) = &probe
            && asked.elapsed() >= Duration::from_millis(250)
        {
            asked = Instant::now();
            if chat_status(envoy_port, key) == 200 {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Envoy did not reach revision {target} within {patience:?} (its log says {}){}",
                log.revision,
                if log.last_warning.is_empty() {
                    String::new()
                } else {
                    format!("; its last warning: {}", log.last_warning)
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `i`th tenant of `n`, spread over the whole range.
fn spread(i: u32, n: u64) -> u64 {
    (u64::from(i) * 7_919 + n / 2) % n + 1
}

// ---------------------------------------------------------------- output

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

fn bytes_text(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(rows: &[Row]) {
    println!(
        "| tenants | import + Envoy catch-up | cp CPU / change | Envoy CPU / change | sent / change | new key p50 / p99 (max) | Envoy RSS | cp RSS | fresh Envoy serves the last tenant | its RSS | request p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let rate = if r.import_s > 0.0 {
            format!(
                "{:.1} s ({:.0}/s) + {:.2} s",
                r.import_s,
                r.imported as f64 / r.import_s,
                r.catch_up_s
            )
        } else {
            "—".to_owned()
        };
        println!(
            "| {} | {rate} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(r.tenants),
            opt(r.cp_cpu_ms, |v| format!("{v:.2} ms")),
            opt(r.envoy_cpu_ms, |v| format!("{v:.2} ms")),
            opt(r.bytes, bytes_text),
            match (r.prop_p50_ms, r.prop_p99_ms, r.prop_max_ms) {
                (Some(a), Some(b), Some(c)) => format!("{a:.1} / {b:.1} ({c:.1}) ms"),
                _ => "—".to_owned(),
            },
            opt(r.envoy_rss_mib, |v| format!("{v:.0} MiB")),
            opt(r.cp_rss_mib, |v| format!("{v:.0} MiB")),
            match (r.snapshot_s, r.ready_s, r.snapshot_cpu_s) {
                (Some(s), Some(ready), Some((cp, envoy))) =>
                    format!("{s:.2} s (ready {ready:.2} s; CPU cp {cp:.1} s, Envoy {envoy:.1} s)"),
                _ => "—".to_owned(),
            },
            opt(r.fresh_rss_mib, |v| format!("{v:.0} MiB")),
            match (r.req_p50_us, r.req_p99_us) {
                (Some(a), Some(b)) => format!("{a:.0} / {b:.0} µs"),
                _ => "—".to_owned(),
            },
        );
    }
}

/// A row for README's Performance table (measured | result | goal), the
/// goals those of tests/README.md, "Performance goals".
fn readme_line(r: &Row) -> String {
    let f = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
    };
    let mut result = format!(
        "{} / {} ms, {} · {} / {} ms · {} / {} MiB · {} s · {} µs",
        f(r.cp_cpu_ms, 2),
        f(r.envoy_cpu_ms, 2),
        r.bytes.map_or_else(|| "—".to_owned(), bytes_text),
        f(r.prop_p50_ms, 1),
        f(r.prop_p99_ms, 1),
        f(r.envoy_rss_mib, 0),
        f(r.cp_rss_mib, 0),
        f(r.snapshot_s, 1),
        f(r.req_p50_us, 0),
    );
    if let Some(why) = &r.stopped {
        let _ = write!(result, " (incomplete: {why})");
    }
    format!(
        "| make scale, {} tenants: a change's CPU, control plane / Envoy, and bytes to each Envoy · a new key's first 200, p50 / p99 · RSS Envoy / control plane · a fresh Envoy serves the last tenant after · request p50 | {result} | ≤ 50 / ≤ 30 ms, ≤ 64 KiB · p50 ≤ 200 ms · ≤ 1.5 GiB / ≤ 1 GiB at 1M · — · unchanged |",
        thousands(r.tenants)
    )
}

// ---------------------------------------------------------------- main

fn main() {
    kill_children_on_panic();
    kill_children_on_signal();
    let code = match parse_args() {
        Ok(args) => run(&args),
        Err(why) => {
            eprintln!("scale: {why}");
            2
        }
    };
    std::process::exit(code);
}

fn run(args: &Args) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(args.max_minutes * 60);
    let mut rows: Vec<Row> = Vec::new();
    let result = measure(args, deadline, &mut rows);
    println!();
    print_table(&rows);
    println!();
    for r in &rows {
        println!("{}", readme_line(r));
    }
    match result {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("scale: {why}");
            1
        }
    }
}

/// Starts the stack, measures each size into `rows`; every process is
/// stopped when this returns (the harness stops them on drop).
fn measure(args: &Args, deadline: Instant, rows: &mut Vec<Row>) -> Result<(), String> {
    let mock = Mock::start_with(&sibling_binary("mock-provider"), &["--fast"], None);
    let cp = ControlPlane::start();
    let envoy = Envoy::start_rendered_with(
        "demo.yaml",
        mock.port,
        None,
        true,
        Some((cp.internal_port, cp.internal_token.clone())),
        2,
    );
    let log = LogTail::open(envoy.process.pid())?;
    let mut stack = Stack {
        _mock: mock,
        cp,
        envoy,
        log,
        providers: aipipe_core::catalog::default_providers()
            .into_iter()
            .map(|p| p.id)
            .collect(),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into(),
        ticks: clock_ticks(),
        tenants: 0,
        deadline,
    };
    println!(
        "scale: control plane pid {} (admin 127.0.0.1:{}), Envoy pid {} (127.0.0.1:{}), mock 127.0.0.1:{}; sizes {:?}, {} changes, {} propagation samples, {} requests",
        stack.cp.process.pid(),
        stack.cp.admin_port,
        stack.envoy.process.pid(),
        stack.envoy.port,
        stack._mock.port,
        args.sizes,
        args.changes,
        args.samples,
        args.requests,
    );
    // The singleton's first poll comes a tick after Envoy is ready: hold
    // the starting revision before the first import is timed.
    stack.catch_up()?;
    for &size in &args.sizes {
        rows.push(Row {
            tenants: size,
            ..Row::default()
        });
        let row = rows.last_mut().ok_or("no row")?;
        let outcome = one_size(&mut stack, args, size, row);
        if let Err(why) = outcome {
            row.stopped = Some(why.clone());
            if stack.tenants < size {
                row.tenants = stack.tenants;
            }
            return Err(format!("at {size} tenants: {why}"));
        }
        println!("{}", readme_line(row));
    }
    Ok(())
}

fn one_size(stack: &mut Stack, args: &Args, size: u64, row: &mut Row) -> Result<(), String> {
    println!("scale: importing up to {size} tenants");
    stack.grow(size, args.batch, row)?;
    let t = Instant::now();
    stack.catch_up()?;
    row.catch_up_s = t.elapsed().as_secs_f64();
    println!(
        "scale: {size} tenants imported in {:.1} s; Envoy caught up {:.2} s later",
        row.import_s, row.catch_up_s
    );
    stack.memory(row)?;
    stack.per_change(args.changes, row)?;
    stack.propagation(args.samples, row)?;
    stack.requests(args.requests, row)?;
    stack.snapshot(row)?;
    Ok(())
}
