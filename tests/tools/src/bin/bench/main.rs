//! `make bench`: what the filter costs, measured against plain Envoy in the
//! same run (tests/README.md, "Performance goals").
//!
//! Four Envoys (one worker each, so each is bound by one core's CPU) share one
//! upstream — the mock provider in `--fast` mode, answering a constant chat
//! completion. Plain Envoy (A) is `envoy/demo.yaml` without the filter (the
//! client names the cluster itself); F is plain Envoy plus Envoy's native
//! `envoy.filters.http.buffer` filter (what buffering a body costs natively:
//! the floor of any body-routing filter); N runs the native build of the
//! filter (`envoy/demo-native.yaml`), B the Wasm build. wrk sends the same
//! requests to all four, interleaved (the order rotates every round), five
//! rounds per body size, and the median of each round's ratio to A is
//! reported (this 2-core machine is noisy). Latency is measured at
//! concurrency 1. A native profile of the core's stages (parse, score,
//! select) shows what dominates the filter's own work.
//!
//! Then a second pair of Envoys on a second mock (the full one, whose faults
//! slow its streams down) measures, with a hand-written HTTP/1.1 client on a
//! kept-alive connection: time to the first body byte of a streamed answer
//! through each Envoy, interleaved (`ttft_*`), and a full exchange answered
//! from the filter's cache against a plain proxied one (`cache_hit_*`).
//!
//! Last, on a third mock where OpenAI answers 503, a request that fails over
//! twice (to Claude) through two Envoys with the filter: one failing over
//! every request by Envoy's internal redirect (`failover_redirect: "all"`),
//! one by `dispatch_http_call` (`"off"`). Streamed: time to the first body
//! byte; not streamed: time to the whole answer (`failover_*`). The default
//! (`"streams"`) takes the better of the two for each kind. And what being
//! ready to redirect costs a stream that does not fail: its first byte
//! through both (`stream_ttft_ms_*`).
//!
//! Then the peers (`peers.rs`): LiteLLM's proxy and Portkey's gateway on the
//! same mock, in rotated rounds beside plain Envoy and both builds.
//!
//! Environment: `AIPIPE_BENCH_SECONDS` (per run, default 5), `AIPIPE_BENCH_PAIRS`
//! (default 5), `AIPIPE_BENCH_CONNECTIONS` (throughput runs, default 32),
//! `AIPIPE_BENCH_TTFT_REQUESTS` (each way, default 200),
//! `AIPIPE_BENCH_TTFT_CHUNK_MS` (the mock's pause between events, default 10),
//! `AIPIPE_BENCH_CACHE_REQUESTS` (default 2000), `AIPIPE_BENCH_FAILOVER_REQUESTS`
//! (each way, default 100); `AIPIPE_WASM` measures another filter.wasm (an
//! older build, to compare two builds by their ratios to plain Envoy),
//! `AIPIPE_NATIVE` another native module.

// A benchmark whose setup fails (no wrk, a non-2xx answer) must stop with the
// reason rather than print numbers: panicking with a message is the point.
#![allow(clippy::panic)]

mod peers;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aipipe_core::plan::Plan;
use aipipe_core::protocol::Protocol;
use aipipe_core::request::ChatRequest;
use aipipe_core::route;
use aipipe_core::table::{RoutingTable, Table};
use aipipe_flow_bench::chat_body;
use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, FilterBuild, Mock, TempDir, free_port, percentile,
    plugin_config, post_json, render_envoy_config_as, sibling_binary,
};

const KEY: &str = "vk-bench";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A ~1 KB request that the heuristic and the trained router model both
/// send to the same model (a meeting note to thank for; the router of round
/// 8 sends a summary of it to the mid tier), so an A/B of
/// the two measures the classifier and not two different routes (the bench
/// body, `chat_body`, goes to Claude with the router). Checked at run time.
fn router_body() -> String {
    let turn = "Anna: we shipped the new onboarding flow last week and signups are up. \
        Ben: support tickets about passwords dropped too. Carla: next we should look at the \
        mobile layout, some buttons overlap on small screens. ";
    serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": format!("Reply to this meeting note with a short thanks:\n\n{}", turn.repeat(4))},
        ],
        "temperature": 0.2,
    })
    .to_string()
}

struct Run {
    rps: f64,
    /// Requests wrk completed.
    requests: f64,
    p50_us: f64,
    p99_us: f64,
}

fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1000.0,
        "s" => v * 1_000_000.0,
        _ => return None,
    })
}

fn wrk(port: u16, script: &std::path::Path, connections: u64, seconds: u64) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk (make bench installs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || !out.status.success() {
        panic!(
            "wrk saw errors:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_default()
    };
    Run {
        rps: field("Requests/sec:").trim().parse().unwrap_or(0.0),
        requests: text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or(0.0),
        p50_us: parse_duration_us(&field("50%")).unwrap_or(f64::NAN),
        p99_us: parse_duration_us(&field("99%")).unwrap_or(f64::NAN),
    }
}

/// CPU seconds (user + system, every thread) a process has used so far,
/// from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces): state is
    // the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / ticks
}

/// What a throughput run can aim at: an Envoy, or a peer gateway
/// (`peers.rs`). Its process's CPU is read around each run.
trait Target {
    fn port(&self) -> u16;
    fn pid(&self) -> u32;
}

impl Target for Envoy {
    fn port(&self) -> u16 {
        self.port
    }
    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A throughput run that also reads the target's CPU: µs of its CPU per
/// request, which the other processes on this machine (wrk, the mock, other
/// builds) do not move the way they move requests per second.
fn wrk_cpu<T: Target + ?Sized>(
    target: &T,
    script: &std::path::Path,
    connections: u64,
    seconds: u64,
) -> (Run, f64) {
    let pid = target.pid();
    let before = cpu_seconds(pid);
    let run = wrk(target.port(), script, connections, seconds);
    let used = cpu_seconds(pid) - before;
    let per = if run.requests > 0.0 {
        used * 1e6 / run.requests
    } else {
        f64::NAN
    };
    (run, per)
}

/// One round of throughput runs over N Envoys: requests per second and
/// Envoy CPU µs per request of each, in `envoys`' order.
fn rotated_round<const N: usize>(
    envoys: [&Envoy; N],
    script: &std::path::Path,
    connections: u64,
    seconds: u64,
    round: u64,
) -> ([f64; N], [f64; N]) {
    let targets = envoys.map(|e| (e as &dyn Target, script));
    let (rps, us) = rotated_runs(&targets, connections, seconds, round);
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    (
        std::array::from_fn(|i| at(&rps, i)),
        std::array::from_fn(|i| at(&us, i)),
    )
}

/// One round of throughput runs over any targets, each with its own request
/// script: requests per second and CPU µs per request of each, in
/// `targets`' order. Each round starts with another target, so none always
/// runs first (or last) on a machine whose speed drifts.
fn rotated_runs(
    targets: &[(&dyn Target, &std::path::Path)],
    connections: u64,
    seconds: u64,
    round: u64,
) -> (Vec<f64>, Vec<f64>) {
    let n = targets.len();
    let (mut rps, mut us) = (vec![f64::NAN; n], vec![f64::NAN; n]);
    for k in 0..n {
        let i = (k + round as usize) % n;
        if let Some(&(target, script)) = targets.get(i) {
            let (run, per) = wrk_cpu(target, script, connections, seconds);
            rps[i] = run.rps;
            us[i] = per;
        }
    }
    (rps, us)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn write_script(dir: &TempDir, name: &str, body: &str) -> std::path::PathBuf {
    // The same request for both Envoys: plain Envoy routes on the cluster
    // header; the filter strips it and sets its own.
    write_script_with(
        dir,
        name,
        body,
        &[
            ("Authorization", &format!("Bearer {KEY}")),
            ("x-aipipe-cluster", "openai"),
            ("Host", "api.openai.com"),
        ],
    )
}

/// A wrk script that POSTs `body` as JSON with `headers`.
fn write_script_with(
    dir: &TempDir,
    name: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> std::path::PathBuf {
    let body_path = dir.path().join(format!("{name}.json"));
    fs::write(&body_path, body).unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join(format!("{name}.lua"));
    let mut lua = format!(
        "local f = io.open(\"{}\", \"rb\")\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
        body_path.display()
    );
    for (name, value) in headers {
        lua.push_str(&format!("wrk.headers[\"{name}\"] = \"{value}\"\n"));
    }
    fs::write(&script, lua).unwrap_or_else(|e| panic!("{e}"));
    script
}

// ---------------------------------------------------------------- raw HTTP/1.1

/// The children of this run, killed by the panic hook: the release profile
/// aborts on panic, so their `Drop` would never run.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn track(pid: u32) {
    if let Ok(mut pids) = CHILDREN.lock() {
        pids.push(pid);
    }
}

fn kill_children_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(pids) = CHILDREN.lock() {
            for pid in pids.iter() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
        default(info);
    }));
}

/// One answer read off a kept-alive connection.
struct Exchange {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// From the first byte written to the end of the response head.
    head_at: Duration,
    /// From the first byte written to the first body byte read.
    first_body: Duration,
    /// From the first byte written to the end of the answer.
    total: Duration,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chat POST as wrk sends it: same headers for both Envoys.
fn chat_request(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer {KEY}\r\n\
         x-aipipe-cluster: openai\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Where a chunked body stands: `Some(end)` when complete (the offset just
/// past the last chunk), and whether a data byte has arrived yet.
fn chunked_progress(buf: &[u8], start: usize, body: &mut Vec<u8>) -> (Option<usize>, bool) {
    body.clear();
    let mut pos = start;
    let mut any_data = false;
    loop {
        let Some(line_len) = find(&buf[pos..], b"\r\n") else {
            return (None, any_data);
        };
        let line = String::from_utf8_lossy(&buf[pos..pos + line_len]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            panic!("bad chunk size line {line:?}");
        };
        let data = pos + line_len + 2;
        if size == 0 {
            // No trailers from Envoy here: the last chunk ends with a blank line.
            return match buf.get(data..data + 2) {
                Some(b"\r\n") => (Some(data + 2), any_data),
                _ => (None, any_data),
            };
        }
        if buf.len() > data {
            any_data = true;
        }
        if buf.len() < data + size + 2 {
            return (None, any_data);
        }
        body.extend_from_slice(&buf[data..data + size]);
        pos = data + size + 2;
    }
}

/// Sends one request and reads its whole answer (content-length or chunked).
fn exchange(conn: &mut TcpStream, request: &[u8]) -> Exchange {
    let start = Instant::now();
    conn.write_all(request)
        .unwrap_or_else(|e| panic!("cannot send the request: {e}"));
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let mut first_body = None;
    let mut head_at = None;
    let mut body = Vec::new();
    loop {
        let n = conn
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("cannot read the answer: {e}"));
        assert!(
            n > 0,
            "connection closed mid-answer after {} bytes: {}",
            buf.len(),
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some(head_end) = find(&buf, b"\r\n\r\n").map(|i| i + 4) else {
            continue;
        };
        let head_at = *head_at.get_or_insert_with(|| start.elapsed());
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let lower = head.to_ascii_lowercase();
        let (done, any_data) = if lower.contains("transfer-encoding: chunked") {
            chunked_progress(&buf, head_end, &mut body)
        } else {
            let len: usize = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let have = buf.len() - head_end;
            if have >= len {
                body = buf[head_end..head_end + len].to_vec();
            }
            ((have >= len).then_some(head_end + len), have > 0)
        };
        if any_data && first_body.is_none() {
            first_body = Some(start.elapsed());
        }
        if let Some(end) = done {
            assert_eq!(
                end,
                buf.len(),
                "bytes after the answer on a kept-alive connection"
            );
            let total = start.elapsed();
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            return Exchange {
                status,
                head,
                body,
                head_at,
                first_body: first_body.unwrap_or(total),
                total,
            };
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let conn = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"));
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    conn
}

/// Streamed answers through plain Envoy (A) and Envoy + filter (B), in ms:
/// to the first body byte, and to the end of the response head.
struct Ttft {
    a: Vec<f64>,
    b: Vec<f64>,
    a_head: Vec<f64>,
    b_head: Vec<f64>,
}

/// Time to the first byte of a streamed answer through plain Envoy (A) and
/// Envoy + filter (B), same mock, same request, interleaved.
fn measure_ttft(plain: &Envoy, filtered: &Envoy, requests: u64) -> Ttft {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "messages": [{"role": "user", "content": "Write one short sentence about rivers."}],
    })
    .to_string();
    let request = chat_request(&body);
    let (mut a_conn, mut b_conn) = (connect(plain.port), connect(filtered.port));
    let one = |conn: &mut TcpStream, who: &str| {
        let x = exchange(conn, &request);
        assert!(
            x.status == 200 && find(&x.body, b"data: [DONE]").is_some(),
            "{who}: the streamed answer is broken: {}\n{}",
            x.head,
            String::from_utf8_lossy(&x.body)
        );
        (
            x.first_body.as_secs_f64() * 1e3,
            x.head_at.as_secs_f64() * 1e3,
        )
    };
    let (a, b) = interleaved(
        10,
        requests,
        || one(&mut a_conn, "plain Envoy"),
        || one(&mut b_conn, "Envoy + filter"),
    );
    Ttft {
        a: a.iter().map(|x| x.0).collect(),
        a_head: a.iter().map(|x| x.1).collect(),
        b: b.iter().map(|x| x.0).collect(),
        b_head: b.iter().map(|x| x.1).collect(),
    }
}

/// Starts the full mock (OpenAI pacing its stream by `chunk_ms`) and plain
/// Envoy, the Wasm and the native build on it.
fn stream_envoys(config: &str, chunk_ms: u64) -> (Mock, Envoy, Envoy, Envoy) {
    let mock = Mock::start_with(&sibling_binary("mock-provider"), &["--threads", "1"], None);
    track(mock.process.pid());
    mock.fault(serde_json::json!({"provider": "openai", "stream_chunk_delay_ms": chunk_ms}));
    let plain = Envoy::start_rendered("demo.yaml", mock.port, None, false, 1);
    track(plain.process.pid());
    let wasm = Envoy::start_rendered("demo.yaml", mock.port, Some(config.to_string()), true, 1);
    track(wasm.process.pid());
    let native = start_envoy(FilterBuild::Native, mock.port, Some(config), |y| y);
    (mock, plain, wasm, native)
}

/// Measures and prints the time to first byte through plain Envoy and
/// `build` (`B` the Wasm build, `N` the native one); the medians, ms.
fn report_ttft(plain: &Envoy, build: &Envoy, name: char, requests: u64) -> (f64, f64) {
    let ttft = measure_ttft(plain, build, requests);
    let paired: Vec<f64> = ttft.b.iter().zip(&ttft.a).map(|(b, a)| b - a).collect();
    let (a, b) = (median(ttft.a.clone()), median(ttft.b.clone()));
    println!(
        "first body byte: A plain p50 {a:.3} ms p90 {:.3} ms; {name} p50 {b:.3} ms p90 {:.3} ms; median of paired {name}-A {:.3} ms",
        percentile(&ttft.a, 90.0),
        percentile(&ttft.b, 90.0),
        median(paired)
    );
    println!(
        "response head:   A plain p50 {:.3} ms; {name} p50 {:.3} ms",
        median(ttft.a_head),
        median(ttft.b_head)
    );
    (a, b)
}

/// `warmup` unmeasured rounds, then `requests` measured ones, each sending
/// one request through A and one through B, in turns (A first in even
/// rounds, B in odd ones), so the machine's drift hits both alike.
fn interleaved<T>(
    warmup: u64,
    requests: u64,
    mut a: impl FnMut() -> T,
    mut b: impl FnMut() -> T,
) -> (Vec<T>, Vec<T>) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in 0..requests {
        if i % 2 == 0 {
            xs.push(a());
            ys.push(b());
        } else {
            ys.push(b());
            xs.push(a());
        }
    }
    (xs, ys)
}

/// Full exchanges answered from the filter's cache, and (for comparison) the
/// same tiny request proxied by plain Envoy to the fast mock; in µs.
fn measure_cache_hits(plain: &Envoy, filtered: &Envoy, requests: u64) -> (Vec<f64>, Vec<f64>) {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string();
    let request = chat_request(&body);
    let mut b_conn = connect(filtered.port);
    let first = exchange(&mut b_conn, &request);
    assert_eq!(
        (first.status, first.header("x-aipipe-cache")),
        (200, Some("miss")),
        "the first deterministic request should fill the cache: {}",
        first.head
    );
    // The answer is stored as it passes; give the store a moment to land.
    let filled = (0..100).any(|_| {
        let x = exchange(&mut b_conn, &request);
        if x.header("x-aipipe-cache") == Some("hit") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
        false
    });
    assert!(filled, "the filter never answered from its cache");
    let mut a_conn = connect(plain.port);
    let (mut hits, mut proxied) = (Vec::new(), Vec::new());
    let block = 100;
    let mut left = requests + 200; // the first 200 of each warm up
    while left > 0 {
        let n = left.min(block);
        left -= n;
        for _ in 0..n {
            let x = exchange(&mut b_conn, &request);
            assert!(
                x.status == 200 && x.header("x-aipipe-cache") == Some("hit"),
                "a measured request was not a cache hit (x-aipipe-cache: {:?}, status {}): {}",
                x.header("x-aipipe-cache"),
                x.status,
                x.head
            );
            hits.push(x.total.as_secs_f64() * 1e6);
        }
        for _ in 0..n {
            let x = exchange(&mut a_conn, &request);
            assert_eq!(x.status, 200, "plain Envoy: {}", x.head);
            proxied.push(x.total.as_secs_f64() * 1e6);
        }
    }
    (hits.split_off(200), proxied.split_off(200))
}

/// Native time per request of each stage of the core, in microseconds.
fn profile_core(table: &Table, body: &str) -> (f64, f64, f64, f64) {
    let n = 2000;
    let bytes = body.as_bytes();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(ChatRequest::parse(std::hint::black_box(bytes)).is_ok());
    }
    let parse = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let Ok(req) = ChatRequest::parse(bytes) else {
        return (parse, 0.0, 0.0, 0.0);
    };
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(table.scorer.score(std::hint::black_box(&req)));
    }
    let score = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let s = table.scorer.score(&req);
    let needs = route::needs(&req, s.input_tokens);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            aipipe_core::select::rank(table, &table.accounts()[0], &needs, s.complexity).is_ok(),
        );
    }
    let select = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        // What the filter does with a body: plan it, take the first attempt.
        let plan = Plan::new(
            table,
            &table.accounts()[0],
            Protocol::Chat,
            std::hint::black_box(bytes).to_vec(),
            None,
            false,
        );
        std::hint::black_box(
            plan.is_ok_and(|mut p| p.next_attempt(table, &table.accounts()[0], 3).is_some()),
        );
    }
    let total = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    (parse, score, select, total)
}

/// The core's stages natively, µs per request: what the filter's own work
/// is made of (the wasm build runs the same code in V8).
fn print_core_profile(config: &str, sizes: &[(&str, usize)]) {
    println!("\nfilter core natively, µs per request:");
    let raw: RoutingTable = serde_json::from_str::<serde_json::Value>(config)
        .ok()
        .and_then(|v| serde_json::from_value(v["table"].clone()).ok())
        .unwrap_or_default();
    let Ok(table) = Table::compile(raw) else {
        return;
    };
    println!(
        "{:<5} {:>8} {:>8} {:>8} {:>8}",
        "size", "parse", "score", "select", "route"
    );
    for (name, size) in sizes {
        let (parse, score, select, total) = profile_core(&table, &chat_body(*size));
        println!("{name:<5} {parse:>8.2} {score:>8.2} {select:>8.2} {total:>8.2}");
    }
}

/// A request that fails over, through Envoy + filter failing over by
/// internal redirect (R) and by `dispatch_http_call` (C), interleaved: per
/// request, ms to the first body byte and to the end of the answer.
struct Failover {
    redirect: Vec<(f64, f64)>,
    call: Vec<(f64, f64)>,
}

fn measure_failover(
    redirect: &Envoy,
    call: &Envoy,
    model: &str,
    stream: bool,
    requests: u64,
) -> Failover {
    // Every OpenAI model fails on this mock: a request for one fails over.
    let fails_over = model.starts_with("gpt");
    let body = serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Write one short sentence about rivers."}],
    })
    .to_string();
    let request = chat_request(&body);
    let (mut r_conn, mut c_conn) = (connect(redirect.port), connect(call.port));
    let one = |conn: &mut TcpStream, who: &str| {
        let x = exchange(conn, &request);
        assert!(
            x.status == 200 && x.header("x-aipipe-failover").is_some() == fails_over,
            "{who}: not the answer expected: {}\n{}",
            x.head,
            String::from_utf8_lossy(&x.body)
        );
        (
            x.first_body.as_secs_f64() * 1e3,
            x.total.as_secs_f64() * 1e3,
        )
    };
    let (redirect, call) = interleaved(
        5,
        requests,
        || one(&mut r_conn, "redirect"),
        || one(&mut c_conn, "call"),
    );
    Failover { redirect, call }
}

/// `envoy/demo.yaml` on `upstream_port` for `build`, with the filter and
/// `config` or (None) without, one worker; `edit` changes the rendered
/// YAML first.
fn start_envoy(
    build: FilterBuild,
    upstream_port: u16,
    config: Option<&str>,
    edit: impl Fn(String) -> String,
) -> Envoy {
    start_envoy_with(build, upstream_port, config, None, edit)
}

/// As [`start_envoy`], with the singleton polling `control_plane` and
/// shipping usage to it (its internal port and token).
fn start_envoy_with(
    build: FilterBuild,
    upstream_port: u16,
    config: Option<&str>,
    control_plane: Option<&ControlPlane>,
    edit: impl Fn(String) -> String,
) -> Envoy {
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = render_envoy_config_as(
        build,
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port,
            plugin_config: config.map(str::to_owned),
            with_filter: config.is_some(),
            control_plane: control_plane.map(|cp| (cp.internal_port, cp.internal_token.clone())),
        },
    );
    let token = control_plane.map(|cp| cp.internal_token.as_str());
    let env: Vec<(&str, &str)> = token
        .map(|t| ("AIPIPE_INTERNAL_TOKEN", t))
        .into_iter()
        .collect();
    let envoy = Envoy::start_with_env(&edit(yaml), listener_port, admin_port, 1, &env);
    track(envoy.process.pid());
    envoy
}

/// Plain Envoy's filter chain with Envoy's own buffer filter before the
/// router: the whole request body held before it goes upstream, natively.
fn with_buffer_filter(yaml: String) -> String {
    let router = "          - name: envoy.filters.http.router\n";
    assert!(yaml.contains(router), "demo.yaml has no router filter");
    yaml.replacen(
        router,
        &format!(
            "          - name: envoy.filters.http.buffer\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n              max_request_bytes: 4194304\n{router}"
        ),
        1,
    )
}

/// A control plane whose directory holds the bench tenant (its key, and
/// keys for OpenAI and Anthropic), imported as an operator would.
fn control_plane_with_bench_tenant() -> ControlPlane {
    let cp = ControlPlane::start();
    track(cp.process.pid());
    let line = serde_json::json!({
        "id": "bench",
        "provider_keys": {"openai": "sk-bench-openai", "anthropic": "sk-bench-anthropic"},
        "virtual_key_hashes": [aipipe_core::table::hex_hash(KEY)],
    });
    // One NDJSON line is one JSON object.
    let r = cp.admin("POST", "/admin/tenants/import", Some(&line));
    assert_eq!(r.status, 200, "bench tenant import: {}", r.text());
    cp
}

/// `--ab FILE`: this build of the filter (X) against another (Y: FILE, a
/// filter.wasm or a native module, which says which build X is), on the 1 KB
/// body: Envoy CPU per request at c=connections over rotated rounds of X, Y,
/// X, Y, then added p50 at c=1. What a change to the filter's cost looks like
/// without the whole bench: build Y from the change, copy it aside, run this.
/// Both run as production does: the tenant in the directory a control plane
/// pushes, and every request's usage record shipped to it by the singleton —
/// or, given `bootstrap` (the bench's own table, `--ab-bootstrap`), as the
/// throughput rows run them: no control plane, the body routed to
/// gpt-4o-mini.
fn ab(
    other: &str,
    bootstrap: Option<&str>,
    upstream_port: u16,
    (seconds, pairs, connections): (u64, u64, u64),
) {
    let build = if other.ends_with(".wasm") {
        FilterBuild::Wasm
    } else {
        FilterBuild::Native
    };
    let cp = bootstrap.is_none().then(control_plane_with_bench_tenant);
    let config = bootstrap.map_or_else(|| plugin_config(&[], 4 * 1024 * 1024), str::to_owned);
    let mine = build.artifact().0.display().to_string();
    let x = start_envoy_with(build, upstream_port, Some(&config), cp.as_ref(), |y| y);
    let y = start_envoy_with(build, upstream_port, Some(&config), cp.as_ref(), |y| {
        loading_instead(build, y, other)
    });
    let dir = TempDir::new("bench-ab");
    // `AIPIPE_BENCH_MODEL`: the body names this model instead of `auto`.
    let mut request: serde_json::Value = serde_json::from_str(&chat_body(1024)).unwrap_or_default();
    if let Ok(model) = std::env::var("AIPIPE_BENCH_MODEL") {
        request["model"] = serde_json::json!(model);
    }
    let body = request.to_string();
    let headers = [
        ("authorization", "Bearer vk-bench"),
        ("x-aipipe-cluster", "openai"),
        ("host", "api.openai.com"),
    ];
    for e in [&x, &y] {
        let ready = (0..200).any(|_| {
            let ok = post_json(&e.url("/v1/chat/completions"), &headers, &request).status == 200;
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        });
        assert!(
            ready,
            "an Envoy never served the bench tenant from the directory"
        );
    }
    let r = post_json(&x.url("/v1/chat/completions"), &headers, &request);
    println!(
        "the 1 KB body goes to {} (complexity {})",
        r.header("x-aipipe-model").unwrap_or("?"),
        r.header("x-aipipe-complexity").unwrap_or("?")
    );
    let script = write_script(&dir, "ab", &body);
    for e in [&x, &y] {
        wrk(e.port, &script, connections, 1);
    }
    println!("X = {mine}\nY = {other}\nEnvoy CPU µs/request at c={connections}, 1 KB: X Y X Y");
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for round in 0..pairs {
        let (_, us) = rotated_round([&x, &y, &x, &y], &script, connections, seconds, round);
        println!(
            "{round:>5} {:.1} {:.1} {:.1} {:.1}",
            us[0], us[1], us[2], us[3]
        );
        xs.extend([us[0], us[2]]);
        ys.extend([us[1], us[3]]);
    }
    println!("c=1 p50, 1 KB (B = X)");
    let added = added_p50(x.port, (y.port, 'Y'), &script, pairs, seconds);
    println!(
        "ab: cpu_us_per_request X {:.1} Y {:.1}; added p50 at c=1 Y - X {:.1} µs",
        median(xs),
        median(ys),
        median(added)
    );
}

/// The native build's Envoy with the native floor (`make native-floor`,
/// filter/native/src/floor.rs) loaded in place of the module: what a
/// dynamic module that only holds and reads the request body costs, the
/// native counterpart of the Wasm floor. It runs the native build's
/// configuration, so the request reaches the provider the bench's
/// `x-aipipe-cluster` header names.
fn start_native_floor(upstream_port: u16, config: &str) -> Envoy {
    let floor = aipipe_tests::repo_root().join("target/floor/native/libaipipe_native.so");
    assert!(
        floor.exists(),
        "{} is missing: make native-floor (make bench builds it)",
        floor.display()
    );
    let floor = floor.display().to_string();
    start_envoy(FilterBuild::Native, upstream_port, Some(config), |y| {
        loading_instead(FilterBuild::Native, y, &floor)
    })
}

/// `yaml`, a rendered config of `build`, loading the filter from `other`
/// wherever it loads this build's artifact.
fn loading_instead(build: FilterBuild, yaml: String, other: &str) -> String {
    let mine = build.artifact().0.display().to_string();
    assert!(
        yaml.contains(&mine),
        "the rendered config does not load {mine}"
    );
    yaml.replace(&mine, other)
}

/// Plain Envoy's filter chain with the Wasm floor (`tests/wasm-floor`) before
/// the router: the least a body-routing proxy-wasm filter does, in V8. Like
/// aipipe's filter it holds the request headers until the body is whole
/// (envoy/README.md, Envoy fact 2: without `allow_on_headers_stop_iteration`
/// such a request hangs).
fn with_wasm_floor(yaml: String) -> String {
    let router = "          - name: envoy.filters.http.router\n";
    assert!(yaml.contains(router), "demo.yaml has no router filter");
    let floor = aipipe_tests::repo_root().join("target/wasm32-wasip1/release/wasm_floor.wasm");
    assert!(
        floor.exists(),
        "{} is missing: make wasm-floor (make bench builds it)",
        floor.display()
    );
    yaml.replacen(
        router,
        &format!(
            "          - name: wasm_floor\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n              config:\n                name: wasm_floor\n                vm_config:\n                  vm_id: wasm_floor\n                  runtime: envoy.wasm.runtime.v8\n                  code: {{ local: {{ filename: {} }} }}\n                allow_on_headers_stop_iteration: true\n{router}",
            floor.display()
        ),
        1,
    )
}

/// What Envoy `other` (named by its letter) adds to the bench Envoy B's p50
/// at concurrency 1, over `pairs` interleaved runs, each printed.
fn added_p50(
    b_port: u16,
    (port, name): (u16, char),
    script: &std::path::Path,
    pairs: u64,
    seconds: u64,
) -> Vec<f64> {
    (0..pairs)
        .map(|pair| {
            let b = wrk(b_port, script, 1, seconds);
            let o = wrk(port, script, 1, seconds);
            println!(
                "{pair:>4} B p50 {:>8.1} µs  {name} p50 {:>8.1} µs   (p99 {:.1} / {:.1})",
                b.p50_us, o.p50_us, b.p99_us, o.p99_us
            );
            o.p50_us - b.p50_us
        })
        .collect()
}

/// The router model's `bench:` lines: its added p50 at c=1 (Wasm, native)
/// and its added Envoy CPU per request (`[B, R, N, M]`: Wasm without and
/// with it, native without and with it).
fn print_router_lines(wasm_p50: Vec<f64>, native_p50: Vec<f64>, cpu: [f64; 4]) {
    println!("bench: router_added_p50_us_1k {:.1}", median(wasm_p50));
    println!(
        "bench: native_router_added_p50_us_1k {:.1}",
        median(native_p50)
    );
    let [b_cpu, r_cpu, n_cpu, m_cpu] = cpu;
    println!("bench: router_added_cpu_us_1k {:.1}", r_cpu - b_cpu);
    println!("bench: native_router_added_cpu_us_1k {:.1}", m_cpu - n_cpu);
}

fn main() {
    let seconds = env_num("AIPIPE_BENCH_SECONDS", 5);
    let pairs = env_num("AIPIPE_BENCH_PAIRS", 5);
    let connections = env_num("AIPIPE_BENCH_CONNECTIONS", 32);
    let sizes = [("1k", 1024usize), ("16k", 16 * 1024)];
    let config = plugin_config(
        &[(
            "bench",
            &[KEY],
            &[
                ("openai", "sk-bench-openai"),
                ("anthropic", "sk-bench-anthropic"),
            ],
            false,
        )],
        4 * 1024 * 1024,
    );

    if std::env::args().any(|a| a == "--core-only") {
        print_core_profile(&config, &sizes);
        return;
    }
    // `--ttft-only`: a streamed answer's first byte through plain Envoy and
    // each build, and nothing else.
    if std::env::args().any(|a| a == "--ttft-only") {
        kill_children_on_panic();
        let requests = env_num("AIPIPE_BENCH_TTFT_REQUESTS", 200);
        let (_mock, plain, wasm, native) =
            stream_envoys(&config, env_num("AIPIPE_BENCH_TTFT_CHUNK_MS", 10));
        let (a, b) = report_ttft(&plain, &wasm, 'B', requests);
        let (a_n, n) = report_ttft(&plain, &native, 'N', requests);
        println!("bench: ttft_added_ms {:.3}", b - a);
        println!("bench: native_ttft_added_ms {:.3}", n - a_n);
        return;
    }
    kill_children_on_panic();
    let mock = Mock::start_with(
        &sibling_binary("mock-provider"),
        &["--fast", "--threads", "1"],
        None,
    );
    track(mock.process.pid());
    let args: Vec<String> = std::env::args().collect();
    for flag in ["--ab", "--ab-bootstrap"] {
        if let Some(other) = args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
        {
            let bootstrap = (flag == "--ab-bootstrap").then_some(config.as_str());
            ab(other, bootstrap, mock.port, (seconds, pairs, connections));
            return;
        }
    }
    let plain = Envoy::start_rendered("demo.yaml", mock.port, None, false, 1);
    track(plain.process.pid());
    let filtered = Envoy::start_rendered("demo.yaml", mock.port, Some(config.clone()), true, 1);
    track(filtered.process.pid());
    let native = start_envoy(FilterBuild::Native, mock.port, Some(&config), |y| y);
    // `--peers-only`: the peers' section (peers.rs) and nothing else.
    if std::env::args().any(|a| a == "--peers-only") {
        let dir = TempDir::new("bench");
        let knobs = (seconds, pairs, connections);
        peers::run([&plain, &native, &filtered], mock.port, &dir, &sizes, knobs);
        return;
    }
    let buffered = start_envoy(FilterBuild::Wasm, mock.port, None, with_buffer_filter);
    let floor = start_envoy(FilterBuild::Wasm, mock.port, None, with_wasm_floor);
    let native_floor = start_native_floor(mock.port, &config);

    let dir = TempDir::new("bench");
    println!(
        "aipipe bench — {pairs} interleaved rounds per size, {seconds}s per run, 1 Envoy worker each, wrk -t1 -c{connections}"
    );
    println!(
        "A = plain Envoy (same listener and clusters, no filter), F = plain Envoy + Envoy's buffer filter, \
         N = Envoy + aipipe native build, B = Envoy + aipipe Wasm build, \
         W = plain Envoy + the Wasm floor (a proxy-wasm filter that only holds and reads the request body), \
         D = Envoy + the native floor (a dynamic module that only holds and reads the request body)\n"
    );

    // Sanity: both answer, and the filter really routes.
    let check_body: serde_json::Value = serde_json::from_str(&chat_body(1024)).unwrap_or_default();
    let headers = [
        ("authorization", "Bearer vk-bench"),
        ("x-aipipe-cluster", "openai"),
        ("host", "api.openai.com"),
    ];
    let a = post_json(&plain.url("/v1/chat/completions"), &headers, &check_body);
    let b = post_json(&filtered.url("/v1/chat/completions"), &headers, &check_body);
    let n = post_json(&native.url("/v1/chat/completions"), &headers, &check_body);
    let f = post_json(&buffered.url("/v1/chat/completions"), &headers, &check_body);
    let w = post_json(&floor.url("/v1/chat/completions"), &headers, &check_body);
    let d = post_json(
        &native_floor.url("/v1/chat/completions"),
        &headers,
        &check_body,
    );
    assert_eq!(
        (a.status, b.status, n.status, f.status, w.status, d.status),
        (200, 200, 200, 200, 200, 200),
        "bench setup is broken: {} / {} / {} / {} / {} / {}",
        a.text(),
        b.text(),
        n.text(),
        f.text(),
        w.text(),
        d.text()
    );
    assert_eq!(
        d.header("x-aipipe-model"),
        None,
        "the native floor routed: it is the real module"
    );
    assert_eq!(
        n.header("x-aipipe-model"),
        b.header("x-aipipe-model"),
        "the two builds routed the same request differently"
    );
    println!(
        "filter routed the 1 KB body to {} (complexity {})\n",
        b.header("x-aipipe-model").unwrap_or("?"),
        b.header("x-aipipe-complexity").unwrap_or("?")
    );

    println!(
        "{:<5} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7}   Envoy CPU µs/request A F N B W D",
        "size",
        "round",
        "A req/s",
        "F req/s",
        "N req/s",
        "B req/s",
        "W req/s",
        "D req/s",
        "F/A",
        "N/A",
        "B/A",
        "W/A",
        "D/A",
    );
    // Per size: the medians of the rounds' F/A, N/A, B/A, W/A and D/A, and
    // of each Envoy's CPU per request.
    let mut ratios = std::collections::BTreeMap::new();
    let mut native_ratios = std::collections::BTreeMap::new();
    let mut buffer_ratios = std::collections::BTreeMap::new();
    let mut floor_ratios = std::collections::BTreeMap::new();
    let mut native_floor_ratios = std::collections::BTreeMap::new();
    let mut cpu_per_request = std::collections::BTreeMap::new();
    let envoys = [&plain, &buffered, &native, &filtered, &floor, &native_floor];
    let ports = envoys.map(|e| e.port);
    // `--latency-only`: the c=1 latencies below and nothing else (a quick
    // A/B while working on the filter's cost).
    let latency_only = std::env::args().any(|a| a == "--latency-only");
    // `--router-only`: the router model's rows and nothing else (a quick
    // check of a new model's cost).
    let router_only = std::env::args().any(|a| a == "--router-only");
    for (name, size) in sizes.into_iter().filter(|_| !latency_only && !router_only) {
        let body = chat_body(size);
        let script = write_script(&dir, name, &body);
        // Warm them all (VM JIT, connection pools).
        for port in ports {
            wrk(port, &script, connections, 1);
        }
        let (mut f_r, mut n_r, mut b_r, mut w_r, mut d_r) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cpu: [Vec<f64>; 6] = Default::default();
        for round in 0..pairs {
            let (rps, us) = rotated_round(envoys, &script, connections, seconds, round);
            let [a, f, n, b, w, d] = rps;
            let [ua, uf, un, ub, uw, ud] = us;
            println!(
                "{name:<5} {round:>5} {a:>10.0} {f:>10.0} {n:>10.0} {b:>10.0} {w:>10.0} {d:>10.0} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3}   {ua:.1} {uf:.1} {un:.1} {ub:.1} {uw:.1} {ud:.1}",
                f / a,
                n / a,
                b / a,
                w / a,
                d / a,
            );
            f_r.push(f / a);
            n_r.push(n / a);
            b_r.push(b / a);
            w_r.push(w / a);
            d_r.push(d / a);
            for (v, u) in cpu.iter_mut().zip(us) {
                v.push(u);
            }
        }
        cpu_per_request.insert(name, cpu.map(median));
        ratios.insert(name, median(b_r));
        native_ratios.insert(name, median(n_r));
        buffer_ratios.insert(name, median(f_r));
        floor_ratios.insert(name, median(w_r));
        native_floor_ratios.insert(name, median(d_r));
    }

    if !router_only {
        println!("\nlatency at concurrency 1 (1 KB body)");
        // Each Envoy's CPU per request at c=1 too: one request at a time costs
        // more CPU than under load (tests/README.md, "The latest numbers"), and
        // the added latency follows the CPU at c=1, not at c=32.
        println!(
            "{:>4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}   Envoy CPU µs/request A N B",
            "pair", "A p50 µs", "N p50 µs", "B p50 µs", "A p99 µs", "N p99 µs", "B p99 µs"
        );
    }
    let script = write_script(&dir, "lat", &chat_body(1024));
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    let (mut native_p50, mut native_p99) = (Vec::new(), Vec::new());
    let mut c1_cpu: [Vec<f64>; 3] = Default::default();
    for pair in (0..pairs).filter(|_| !router_only) {
        let (a, a_cpu) = wrk_cpu(&plain, &script, 1, seconds);
        let (n, n_cpu) = wrk_cpu(&native, &script, 1, seconds);
        let (b, b_cpu) = wrk_cpu(&filtered, &script, 1, seconds);
        println!(
            "{pair:>4} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}   {a_cpu:.1} {n_cpu:.1} {b_cpu:.1}",
            a.p50_us, n.p50_us, b.p50_us, a.p99_us, n.p99_us, b.p99_us
        );
        p50.push(b.p50_us - a.p50_us);
        p99.push(b.p99_us - a.p99_us);
        native_p50.push(n.p50_us - a.p50_us);
        native_p99.push(n.p99_us - a.p99_us);
        for (v, c) in c1_cpu.iter_mut().zip([a_cpu, n_cpu, b_cpu]) {
            v.push(c);
        }
    }
    let c1_cpu = c1_cpu.map(median);
    if latency_only {
        let f = wrk(buffered.port, &script, 1, seconds);
        let w = wrk(floor.port, &script, 1, seconds);
        let d = wrk(native_floor.port, &script, 1, seconds);
        let a = wrk(plain.port, &script, 1, seconds);
        println!(
            "added p50: native {:.1} µs, wasm {:.1} µs (buffer filter alone: {:.1} µs, Wasm floor alone: {:.1} µs, native floor alone: {:.1} µs p50)",
            median(native_p50),
            median(p50),
            f.p50_us - a.p50_us,
            w.p50_us - a.p50_us,
            d.p50_us - a.p50_us
        );
        let [a, n, b] = c1_cpu;
        println!("Envoy CPU per request at c=1: plain {a:.1} µs, native {n:.1} µs, wasm {b:.1} µs");
        return;
    }
    drop(buffered);
    drop(floor);
    drop(native_floor);
    peers::run(
        [&plain, &native, &filtered],
        mock.port,
        &dir,
        &sizes,
        (seconds, pairs, connections),
    );

    // The trained router model vs the heuristic alone: the same bootstrap
    // table with and without `router_model: "builtin"`, on a body both send
    // to the same model.
    let router_json = router_body();
    let router_script = write_script(&dir, "router", &router_json);
    let router_request: serde_json::Value = serde_json::from_str(&router_json).unwrap_or_default();
    let with_router = {
        let mut c: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        c["table"]["router_model"] = serde_json::json!("builtin");
        c.to_string()
    };
    let router_wasm =
        Envoy::start_rendered("demo.yaml", mock.port, Some(with_router.clone()), true, 1);
    track(router_wasm.process.pid());
    let router_native = start_envoy(FilterBuild::Native, mock.port, Some(&with_router), |y| y);
    let mut router_model = String::new();
    for (without, with) in [(&filtered, &router_wasm), (&native, &router_native)] {
        let a = post_json(
            &without.url("/v1/chat/completions"),
            &headers,
            &router_request,
        );
        let r = post_json(&with.url("/v1/chat/completions"), &headers, &router_request);
        assert_eq!(
            (a.status, r.status),
            (200, 200),
            "{} / {}",
            a.text(),
            r.text()
        );
        assert_eq!(
            a.header("x-aipipe-model"),
            r.header("x-aipipe-model"),
            "the router body is routed differently with the router model (complexity {:?} vs {:?}): choose another",
            a.header("x-aipipe-complexity"),
            r.header("x-aipipe-complexity")
        );
        assert_ne!(
            a.header("x-aipipe-complexity"),
            r.header("x-aipipe-complexity"),
            "the router model did not score the request"
        );
        router_model = r.header("x-aipipe-model").unwrap_or("?").to_owned();
    }
    println!(
        "\nthe router model (R: Wasm, M: native) vs the heuristic alone (B, N), one ~1 KB body both route to {router_model}; c=1"
    );
    let router_added = added_p50(
        filtered.port,
        (router_wasm.port, 'R'),
        &router_script,
        pairs,
        seconds,
    );
    let native_router_added = added_p50(
        native.port,
        (router_native.port, 'M'),
        &router_script,
        pairs,
        seconds,
    );
    println!("Envoy CPU µs/request at c={connections}: B R N M");
    let router_envoys = [&filtered, &router_wasm, &native, &router_native];
    let mut router_cpu: [Vec<f64>; 4] = Default::default();
    for round in 0..pairs {
        let (_, us) = rotated_round(router_envoys, &router_script, connections, seconds, round);
        println!(
            "{round:>5} {:.1} {:.1} {:.1} {:.1}",
            us[0], us[1], us[2], us[3]
        );
        for (v, u) in router_cpu.iter_mut().zip(us) {
            v.push(u);
        }
    }
    let router_cpu = router_cpu.map(median);
    drop(router_native);
    if router_only {
        print_router_lines(router_added, native_router_added, router_cpu);
        return;
    }

    // The tenant as production finds it: in the tenant directory the control
    // plane pushes (two shared-data reads per request), not in a bootstrap
    // table. Same 1 KB request at concurrency 1, interleaved with B.
    println!(
        "\ntenant in the directory (D: pushed by a control plane) vs in the bootstrap table (R: with the router model as D has it), c=1, the router body"
    );
    let cp = control_plane_with_bench_tenant();
    let directory = Envoy::start_rendered_with(
        "demo.yaml",
        mock.port,
        Some(plugin_config(&[], 4 * 1024 * 1024)),
        true,
        Some((cp.internal_port, cp.internal_token.clone())),
        1,
    );
    track(directory.process.pid());
    let ready = (0..200).any(|_| {
        let ok = post_json(
            &directory.url("/v1/chat/completions"),
            &headers,
            &check_body,
        )
        .status
            == 200;
        if !ok {
            std::thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    assert!(ready, "the directory Envoy never served the bench tenant");
    // The control plane ships the router model too: D against R, on the
    // body both route alike.
    let d = post_json(
        &directory.url("/v1/chat/completions"),
        &headers,
        &router_request,
    );
    assert_eq!(
        d.header("x-aipipe-model"),
        Some(router_model.as_str()),
        "the directory Envoy routes the router body elsewhere"
    );
    let directory_added = added_p50(
        router_wasm.port,
        (directory.port, 'D'),
        &router_script,
        pairs,
        seconds,
    );
    drop(directory);
    drop(router_wasm);
    drop(cp);

    // Budgets and rate limits on the request path: the same tenant with a
    // budget (reserve before, settle after) and both rate limits (two
    // windows counted and settled), none ever reached, vs without.
    println!("\ntenant with a budget and rate limits (L) vs without (B), c=1, 1 KB");
    let mut governed: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    governed["table"]["tenants"][0]["limits"] = serde_json::json!({"requests_per_minute": 4_000_000_000u32, "tokens_per_minute": 1_000_000_000_000u64});
    governed["table"]["budget_default"] =
        serde_json::json!({"limit_nusd": 1_000_000_000_000_000u64, "days": 30});
    let limited =
        Envoy::start_rendered("demo.yaml", mock.port, Some(governed.to_string()), true, 1);
    track(limited.process.pid());
    let probe = post_json(&limited.url("/v1/chat/completions"), &headers, &check_body);
    assert_eq!(probe.status, 200, "the governed Envoy: {}", probe.text());
    assert!(
        probe.header("x-ratelimit-limit-requests").is_some(),
        "the governed Envoy does not count requests"
    );
    let governance_added = added_p50(filtered.port, (limited.port, 'L'), &script, pairs, seconds);
    drop(limited);

    // Streams and the cache need the full mock (`--fast` ignores faults and
    // streams): a second pair of Envoys on it.
    let ttft_requests = env_num("AIPIPE_BENCH_TTFT_REQUESTS", 200);
    let chunk_ms = env_num("AIPIPE_BENCH_TTFT_CHUNK_MS", 10);
    let cache_requests = env_num("AIPIPE_BENCH_CACHE_REQUESTS", 2000);
    let (_full_mock, plain_full, filtered_full, native_full) = stream_envoys(&config, chunk_ms);

    println!(
        "\ntime to first body byte of a streamed answer (gpt-4o-mini, the mock pausing {chunk_ms} ms \
         between events), {ttft_requests} requests each way, interleaved, one kept-alive connection each"
    );
    let (ttft_plain, ttft_wasm) = report_ttft(&plain_full, &filtered_full, 'B', ttft_requests);
    let (ttft_plain_n, ttft_native) = report_ttft(&plain_full, &native_full, 'N', ttft_requests);

    println!(
        "\ncache hit: {cache_requests} sequential requests (temperature 0) on one kept-alive connection, \
         in blocks of 100 alternating with the same request through plain Envoy to the fast mock"
    );
    let (hits, proxied) = measure_cache_hits(&plain, &filtered_full, cache_requests);
    println!(
        "B cache hit p50 {:.1} µs p99 {:.1} µs; A plain Envoy → mock p50 {:.1} µs p99 {:.1} µs",
        percentile(&hits, 50.0),
        percentile(&hits, 99.0),
        percentile(&proxied, 50.0),
        percentile(&proxied, 99.0)
    );
    let (native_hits, native_proxied) = measure_cache_hits(&plain, &native_full, cache_requests);
    println!(
        "N cache hit p50 {:.1} µs p99 {:.1} µs; A plain Envoy → mock p50 {:.1} µs p99 {:.1} µs",
        percentile(&native_hits, 50.0),
        percentile(&native_hits, 99.0),
        percentile(&native_proxied, 50.0),
        percentile(&native_proxied, 99.0)
    );
    drop(native_full);

    // Failover: OpenAI answers 503, so gpt-4o-mini and gpt-4o fail and
    // Claude answers (its stream paced like the TTFT one), through two
    // Envoys with the filter, one failing over by redirect, one by call.
    let failover_requests = env_num("AIPIPE_BENCH_FAILOVER_REQUESTS", 100);
    let fault_mock = Mock::start_with(&sibling_binary("mock-provider"), &["--threads", "1"], None);
    track(fault_mock.process.pid());
    fault_mock.fault(serde_json::json!({"provider": "openai", "status": 503}));
    fault_mock
        .fault(serde_json::json!({"provider": "anthropic", "stream_chunk_delay_ms": chunk_ms}));
    let with_failover = |how: &str| {
        let mut c: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        c["failover_redirect"] = serde_json::json!(how);
        c.to_string()
    };
    let redirecting = Envoy::start_rendered(
        "demo.yaml",
        fault_mock.port,
        Some(with_failover("all")),
        true,
        1,
    );
    track(redirecting.process.pid());
    let calling = Envoy::start_rendered(
        "demo.yaml",
        fault_mock.port,
        Some(with_failover("off")),
        true,
        1,
    );
    track(calling.process.pid());
    println!(
        "\nfailover: gpt-4o-mini and gpt-4o answer 503, Claude answers (the mock pausing {chunk_ms} ms \
         between stream events); {failover_requests} requests each way, interleaved; \
         R = failover by internal redirect, C = by dispatch_http_call"
    );
    let streamed = measure_failover(
        &redirecting,
        &calling,
        "gpt-4o-mini",
        true,
        failover_requests,
    );
    let plain_answer = measure_failover(
        &redirecting,
        &calling,
        "gpt-4o-mini",
        false,
        failover_requests,
    );
    // What being ready to fail over by redirect costs a stream that does
    // not fail (its state carried, the upstream filter run).
    let ready = measure_failover(
        &redirecting,
        &calling,
        "claude-opus-4-5",
        true,
        failover_requests,
    );
    // Medians of the first-byte and whole-answer times.
    let first = |v: &[(f64, f64)]| percentile(&v.iter().map(|x| x.0).collect::<Vec<_>>(), 50.0);
    let total = |v: &[(f64, f64)]| percentile(&v.iter().map(|x| x.1).collect::<Vec<_>>(), 50.0);
    println!(
        "streamed: first body byte R p50 {:.2} ms, C p50 {:.2} ms; whole answer R p50 {:.2} ms, C p50 {:.2} ms",
        first(&streamed.redirect),
        first(&streamed.call),
        total(&streamed.redirect),
        total(&streamed.call)
    );
    println!(
        "a stream that does not fail (Claude): first body byte R p50 {:.3} ms, C p50 {:.3} ms",
        first(&ready.redirect),
        first(&ready.call)
    );
    println!(
        "not streamed: whole answer R p50 {:.3} ms, C p50 {:.3} ms",
        total(&plain_answer.redirect),
        total(&plain_answer.call)
    );

    print_core_profile(&config, &sizes);
    println!();
    println!(
        "bench: throughput_ratio_1k {:.3}",
        ratios.get("1k").copied().unwrap_or(f64::NAN)
    );
    println!(
        "bench: throughput_ratio_16k {:.3}",
        ratios.get("16k").copied().unwrap_or(f64::NAN)
    );
    println!("bench: added_p50_us_1k {:.1}", median(p50));
    println!("bench: added_p99_us_1k {:.1}", median(p99));
    for (line, map) in [
        ("native_throughput_ratio", &native_ratios),
        ("buffer_filter_ratio", &buffer_ratios),
        ("wasm_floor_ratio", &floor_ratios),
        ("native_floor_ratio", &native_floor_ratios),
    ] {
        for size in ["1k", "16k"] {
            println!(
                "bench: {line}_{size} {:.3}",
                map.get(size).copied().unwrap_or(f64::NAN)
            );
        }
    }
    // Envoy's own CPU per request, and plain Envoy's over each build's: the
    // throughput ratio Envoy would reach if it alone were the bottleneck.
    for size in ["1k", "16k"] {
        let Some([a, f, n, b, w, d]) = cpu_per_request.get(size).copied() else {
            continue;
        };
        for (who, v) in [
            ("plain", a),
            ("buffer", f),
            ("native", n),
            ("wasm", b),
            ("wasm_floor", w),
            ("native_floor", d),
        ] {
            println!("bench: cpu_us_per_request_{who}_{size} {v:.1}");
        }
        println!("bench: native_cpu_ratio_{size} {:.3}", a / n);
        println!("bench: wasm_cpu_ratio_{size} {:.3}", a / b);
    }
    for (who, v) in ["plain", "native", "wasm"].iter().zip(c1_cpu) {
        println!("bench: cpu_us_per_request_c1_{who}_1k {v:.1}");
    }
    println!("bench: native_added_p50_us_1k {:.1}", median(native_p50));
    println!("bench: native_added_p99_us_1k {:.1}", median(native_p99));
    println!(
        "bench: native_cache_hit_p50_us {:.1}",
        percentile(&native_hits, 50.0)
    );
    print_router_lines(router_added, native_router_added, router_cpu);
    println!(
        "bench: directory_lookup_added_p50_us {:.1}",
        median(directory_added)
    );
    println!(
        "bench: budget_and_rate_limits_added_p50_us {:.1}",
        median(governance_added)
    );
    println!("bench: ttft_plain_ms {ttft_plain:.3}");
    println!("bench: ttft_filter_ms {ttft_wasm:.3}");
    println!("bench: ttft_added_ms {:.3}", ttft_wasm - ttft_plain);
    println!("bench: native_ttft_ms {ttft_native:.3}");
    println!(
        "bench: native_ttft_added_ms {:.3}",
        ttft_native - ttft_plain_n
    );
    println!("bench: cache_hit_p50_us {:.1}", percentile(&hits, 50.0));
    println!("bench: cache_hit_p99_us {:.1}", percentile(&hits, 99.0));
    println!("bench: plain_tiny_p50_us {:.1}", percentile(&proxied, 50.0));
    println!(
        "bench: failover_stream_first_byte_ms_redirect {:.2}",
        first(&streamed.redirect)
    );
    println!(
        "bench: failover_stream_first_byte_ms_call {:.2}",
        first(&streamed.call)
    );
    println!(
        "bench: stream_ttft_ms_ready_to_redirect {:.3}",
        first(&ready.redirect)
    );
    println!("bench: stream_ttft_ms_not_ready {:.3}", first(&ready.call));
    println!(
        "bench: failover_answer_ms_redirect {:.3}",
        total(&plain_answer.redirect)
    );
    println!(
        "bench: failover_answer_ms_call {:.3}",
        total(&plain_answer.call)
    );
}
