//! `make soak`: the streaming and memory goals (tests/README.md,
//! "Performance goals"), measured on one Envoy with the filter (not part of
//! `make test`).
//!
//! One mock provider (the full one: its faults slow streams down) and one
//! Envoy with the filter (`envoy/demo.yaml` rendered as the tests render it,
//! two workers, a tenant with OpenAI and Anthropic keys; the clusters'
//! circuit breakers raised, since Envoy's default of 1024 requests per
//! cluster would refuse most of the streams). Optionally (`--control-plane`)
//! the real control plane too, so the singleton ships every usage record.
//!
//! - Requests: `--requests` small non-streamed chats (`"model": "auto"`) over
//!   `--connections` kept-alive connections, each body distinct (nothing is
//!   answered from the cache), with `--samples` memory samples along the
//!   way. It runs first, on fresh VMs: held streams grow the VMs' heaps,
//!   and a leak would then hide in the free space they leave.
//! - Streams: `--streams` concurrent streamed chats (`"stream": true`), the
//!   mock pausing `--chunk-delay-ms` between its ~14 events, opened at
//!   `--ramp-per-sec`, multiplexed over `--h2-connections` HTTP/2 client
//!   connections (h2c, prior knowledge: how a load balancer in front of
//!   Envoy connects), or with `--http1` each on its own HTTP/1.1
//!   connection; a stream counts as held when it answered 200 and ended
//!   with `data: [DONE]` and the last chunk (HTTP/1.1's empty chunk,
//!   HTTP/2's END_STREAM); anything else is dropped, with the reason.
//!
//! Memory, at every sample: Envoy's RSS (`/proc/<pid>/status`), tcmalloc's
//! `allocated` and `heap_size` (admin `/memory`), and each Wasm VM's linear
//! memory — Envoy exposes no per-VM memory stat, so it is read from
//! `/proc/<pid>/smaps`: V8 reserves 8 GiB of address space per Wasm memory
//! and makes its first `memory.size` bytes read-write, so each such
//! reservation is one VM, its read-write part the VM's linear memory and its
//! `Rss` the part of it in RAM. Linear memory never shrinks: growth after the
//! warm-up is what a leak in the filter would look like.
//!
//! Everything binds 127.0.0.1, every phase is bounded, and a watchdog kills
//! Envoy, the mock and the control plane and exits at `--deadline-secs`. It
//! raises its own `RLIMIT_NOFILE` (children inherit it) with `prlimit`: Envoy
//! needs a descriptor per stream for its upstream connection (the mock
//! speaks HTTP/1.1), and over HTTP/1.1 one more for the client's. With a
//! hard limit of 20,000 and no `CAP_SYS_RESOURCE` to raise it, 10,000
//! HTTP/1.1 streams do not fit in one Envoy (9,981 at most); over HTTP/2
//! they take 10,000 descriptors plus one per client connection.
//!
//! Output: human lines, and `soak: <name> <value>` lines to grep.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aipipe_tests::{
    ControlPlane, Envoy, EnvoyConfig, Mock, free_port, plugin_config, render_envoy_config,
    sibling_binary, try_request,
};
use tokio::net::TcpStream;

/// The virtual key (imported into the control plane with `--control-plane`).
const KEY: &str = "vk-soak-0123456789";
const USAGE: &str = "usage: soak [--streams N] [--requests N] [--connections N] \
    [--h2-connections N | --http1] [--chunk-delay-ms N] [--ramp-per-sec N] [--samples N] \
    [--deadline-secs N] [--control-plane]";

#[derive(Debug, Clone)]
struct Options {
    streams: u64,
    requests: u64,
    connections: u64,
    /// HTTP/2 connections the streams share (unless `http1`).
    h2_connections: u64,
    /// Streams each on their own HTTP/1.1 connection instead.
    http1: bool,
    chunk_delay_ms: u64,
    ramp_per_sec: u64,
    samples: u64,
    deadline_secs: u64,
    control_plane: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        streams: 10_000,
        requests: 1_000_000,
        connections: 64,
        h2_connections: 64,
        http1: false,
        chunk_delay_ms: 2000,
        ramp_per_sec: 2000,
        samples: 10,
        deadline_secs: 30 * 60,
        control_plane: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        if flag == "--control-plane" {
            o.control_plane = true;
            continue;
        }
        if flag == "--http1" {
            o.http1 = true;
            continue;
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{flag} {value}: {e}"))?;
        let slot = match flag.as_str() {
            "--streams" => &mut o.streams,
            "--requests" => &mut o.requests,
            "--connections" => &mut o.connections,
            "--h2-connections" => &mut o.h2_connections,
            "--chunk-delay-ms" => &mut o.chunk_delay_ms,
            "--ramp-per-sec" => &mut o.ramp_per_sec,
            "--samples" => &mut o.samples,
            "--deadline-secs" => &mut o.deadline_secs,
            _ => return Err(format!("unknown argument '{flag}'")),
        };
        *slot = n;
    }
    if o.connections == 0
        || o.h2_connections == 0
        || o.ramp_per_sec == 0
        || o.samples == 0
        || o.deadline_secs == 0
    {
        return Err(
            "--connections, --h2-connections, --ramp-per-sec, --samples, \
             --deadline-secs: each must be > 0"
                .into(),
        );
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------- processes

/// Children to kill when this process ends abnormally: the release profile
/// aborts on panic (no `Drop`), and the watchdog exits without unwinding.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn track(pid: u32) {
    if let Ok(mut pids) = CHILDREN.lock() {
        pids.push(pid);
    }
}

fn kill_children() {
    if let Ok(pids) = CHILDREN.lock() {
        for pid in pids.iter() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn install_guards(deadline: Duration) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_children();
        default(info);
    }));
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        println!(
            "soak: deadline_exceeded {} (killing Envoy and the mock)",
            deadline.as_secs()
        );
        kill_children();
        std::process::exit(3);
    });
}

/// (soft, hard) `Max open files` of a process.
fn nofile(pid: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .map(|v| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        });
    Some((it.next()??, it.next()??))
}

/// Raises this process's descriptor limit to at least `want` if it can
/// (the hard limit only as root): `prlimit` on itself, inherited by every
/// child started afterwards. Returns the limits in force.
fn raise_nofile(want: u64) -> (u64, u64) {
    let me = std::process::id().to_string();
    let Some((soft, hard)) = nofile(&me) else {
        return (0, 0);
    };
    if soft >= want {
        return (soft, hard);
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let target = want.min(nr_open);
    for (s, h) in [(target, hard.max(target)), (hard.min(target), hard)] {
        let ok = Command::new("prlimit")
            .arg(format!("--pid={me}"))
            .arg(format!("--nofile={s}:{h}"))
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        if ok {
            break;
        }
    }
    nofile(&me).unwrap_or((soft, hard))
}

// ---------------------------------------------------------------- memory

#[derive(Debug, Clone, Default)]
struct Memory {
    rss_kb: u64,
    allocated: u64,
    heap_size: u64,
    /// Per Wasm VM: (linear memory kB, of which resident kB), largest first.
    vms: Vec<(u64, u64)>,
}

impl Memory {
    fn linear_kb(&self) -> u64 {
        self.vms.iter().map(|v| v.0).sum()
    }

    fn resident_kb(&self) -> u64 {
        self.vms.iter().map(|v| v.1).sum()
    }

    fn line(&self) -> String {
        let vms: Vec<String> = self
            .vms
            .iter()
            .map(|(size, rss)| format!("{size}/{rss}"))
            .collect();
        format!(
            "rss_kb {} allocated {} heap_size {} vm_linear_kb {} vm_resident_kb {} per_vm_linear/resident_kb [{}]",
            self.rss_kb,
            self.allocated,
            self.heap_size,
            self.linear_kb(),
            self.resident_kb(),
            vms.join(" ")
        )
    }
}

/// The Wasm memories in `/proc/<pid>/smaps`: an anonymous read-write mapping
/// directly followed by an inaccessible one, 4–16 GiB together (V8's
/// reservation for one 32-bit Wasm memory with its guard region).
fn wasm_memories(pid: u32) -> Vec<(u64, u64)> {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    // (start, end, perms, anonymous, rss kB)
    let mut maps: Vec<(u64, u64, String, bool, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or("").to_owned();
            let path = f.nth(3).unwrap_or("");
            maps.push((start, end, perms, path.is_empty(), 0));
        } else if first == "Rss:"
            && let Some(last) = maps.last_mut()
        {
            last.4 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    let mut vms: Vec<(u64, u64)> = maps
        .windows(2)
        .filter_map(|w| {
            let (rw, guard) = (&w[0], &w[1]);
            let total = guard.1 - rw.0;
            (rw.2.starts_with("rw")
                && guard.2.starts_with("---")
                && rw.3
                && guard.3
                && rw.1 == guard.0
                && ((4u64 << 30)..=(16u64 << 30)).contains(&total))
            .then_some(((rw.1 - rw.0) / 1024, rw.4))
        })
        .collect();
    vms.sort_by(|a, b| b.cmp(a));
    vms
}

/// Open descriptors of a process.
fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn admin_get(admin_port: u16, path: &str) -> String {
    try_request(
        "GET",
        &format!("http://127.0.0.1:{admin_port}{path}"),
        &[],
        None,
    )
    .map(|r| r.text())
    .unwrap_or_default()
}

fn memory(envoy: &Envoy) -> Memory {
    let pid = envoy.process.pid();
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let json: serde_json::Value =
        serde_json::from_str(&admin_get(envoy.admin_port, "/memory")).unwrap_or_default();
    let num = |k: &str| {
        json[k]
            .as_str()
            .and_then(|v| v.parse().ok())
            .or_else(|| json[k].as_u64())
            .unwrap_or(0)
    };
    Memory {
        rss_kb,
        allocated: num("allocated"),
        heap_size: num("heap_size"),
        vms: wasm_memories(pid),
    }
}

/// Stats whose names match `regex`, as name → value (gauges and counters).
fn stats(envoy: &Envoy, regex: &str) -> BTreeMap<String, u64> {
    admin_get(envoy.admin_port, &format!("/stats?filter={regex}"))
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    stats(envoy, &format!("^{}$", name.replace('.', "\\.")))
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Envoy counters: how much was served, and what was refused or failed.
const TROUBLE: &str = "(overflow|_5xx|cx_destroy_local_with_active_rq|cx_destroy_remote_with_active_rq|rq_timeout|rq_reset|cx_connect_fail|vm_reload|downstream_cx_total|downstream_rq_total)";

fn trouble(envoy: &Envoy) -> String {
    let mut out = String::new();
    for (k, v) in stats(envoy, TROUBLE) {
        if v > 0
            && (k.starts_with("http.aipipe.")
                || k.starts_with("cluster.")
                || k.starts_with("wasm.")
                || k.starts_with("listener."))
        {
            let _ = write!(out, "{k}={v} ");
        }
    }
    out
}

/// With `--control-plane`: the requests it has recorded for the tenant,
/// once the count reaches `expected` or stops moving (the singleton ships
/// records every second).
fn recorded(cp: Option<&ControlPlane>, expected: u64) {
    let Some(cp) = cp else { return };
    let count = || {
        let json = cp.admin("GET", "/admin/tenants/soak/stats", None).json();
        json["totals"]["requests"]
            .as_u64()
            .or_else(|| json["totals"]["numbers"]["requests"].as_u64())
            .unwrap_or(0)
    };
    let mut last = (count(), Instant::now());
    while last.0 < expected && last.1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(500));
        let n = count();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
    println!(
        "soak: control_plane_recorded {} (requests sent so far {expected})",
        last.0
    );
}

// ---------------------------------------------------------------- HTTP/1.1

// The workspace asks tokio for no `io-util` (h2 turns it on for itself):
// reads and writes go through the socket's readiness and `try_read` /
// `try_write`.
async fn write_all(conn: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        conn.writable().await?;
        match conn.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends what the socket has to `buf`; 0 at end of stream.
async fn read_some(conn: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        conn.readable().await?;
        match conn.try_read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn chat_request(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: aipipe\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Connect,
    Write,
    Read,
    /// The peer closed before the answer ended.
    Closed,
    Timeout,
    Status(u16),
    /// A 200 stream that ended without `data: [DONE]`.
    NoDone,
    Malformed,
    /// The HTTP/2 connection preface could not be sent.
    Handshake,
    /// An HTTP/2 stream reset (`RST_STREAM`), with its reason code.
    Reset(u32),
    /// The HTTP/2 connection ended (`GOAWAY`), with its reason code.
    GoAway(u32),
    /// Any other HTTP/2 error (h2 refusing a misuse, say).
    Protocol,
}

/// How `failures_text` names a failure: HTTP/2 reason codes by name
/// (`Reset(REFUSED_STREAM)`), the rest as declared.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Reset(code) => write!(f, "Reset({:?})", h2::Reason::from(code)),
            Self::GoAway(code) => write!(f, "GoAway({:?})", h2::Reason::from(code)),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The parsed head of an answer: (status, body framing).
enum Framing {
    Length(usize),
    Chunked,
}

fn parse_head(head: &[u8]) -> Option<(u16, Framing)> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let mut framing = Framing::Length(0);
    for line in text.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(v.parse().ok()?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            framing = Framing::Chunked;
            break;
        }
    }
    Some((status, framing))
}

/// Offset just past a complete chunked body starting at `start`, if complete.
fn chunked_end(buf: &[u8], start: usize) -> Result<Option<usize>, Failure> {
    let mut pos = start;
    loop {
        let Some(n) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + n]).map_err(|_| Failure::Malformed)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| Failure::Malformed)?;
        let data = pos + n + 2;
        if size == 0 {
            return Ok((buf.get(data..data + 2) == Some(b"\r\n")).then_some(data + 2));
        }
        if buf.len() < data + size + 2 {
            return Ok(None);
        }
        pos = data + size + 2;
    }
}

/// Sends `request` and reads one whole answer into `buf` (cleared first).
/// `on_first_body` runs when the first body byte arrives. Returns the status
/// and where the body starts.
async fn exchange(
    conn: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    mut on_first_body: impl FnMut(),
) -> Result<(u16, usize), Failure> {
    buf.clear();
    write_all(conn, request).await.map_err(|_| Failure::Write)?;
    let mut head: Option<(u16, Framing, usize)> = None;
    let mut seen_body = false;
    let mut scanned = 0usize;
    loop {
        let n = read_some(conn, buf).await.map_err(|_| Failure::Read)?;
        if n == 0 {
            return Err(Failure::Closed);
        }
        if head.is_none() {
            let from = scanned.saturating_sub(3);
            scanned = buf.len();
            let Some(i) = find(&buf[from..], b"\r\n\r\n") else {
                continue;
            };
            let end = from + i + 4;
            let (status, framing) = parse_head(&buf[..end]).ok_or(Failure::Malformed)?;
            head = Some((status, framing, end));
        }
        let Some((status, framing, body_at)) = &head else {
            continue;
        };
        if !seen_body && buf.len() > *body_at {
            seen_body = true;
            on_first_body();
        }
        let done = match framing {
            Framing::Length(len) => buf.len() >= body_at + len,
            // Cheap check first: a chunked body ends with an empty chunk.
            Framing::Chunked => {
                buf.ends_with(b"0\r\n\r\n") && chunked_end(buf, *body_at)?.is_some()
            }
        };
        if done {
            return Ok((*status, *body_at));
        }
    }
}

// ---------------------------------------------------------------- streams

#[derive(Default)]
struct StreamStats {
    started: AtomicU64,
    /// Streams between their first body byte and their end.
    open: AtomicU64,
    peak_open: AtomicU64,
    completed: AtomicU64,
    failures: Mutex<BTreeMap<Failure, u64>>,
    /// HTTP/2 connections opened (more than `--h2-connections` if some ended).
    h2_opened: AtomicU64,
    /// HTTP/2 connections that ended with an error, by error.
    h2_ended: Mutex<BTreeMap<Failure, u64>>,
    /// The smallest SETTINGS_MAX_CONCURRENT_STREAMS Envoy announced.
    h2_server_max_streams: AtomicU64,
}

impl StreamStats {
    fn fail(&self, f: Failure) {
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(f).or_default() += 1;
        }
    }

    /// Runs one stream, given `patience`, and counts how it ended.
    async fn settle(&self, patience: Duration, run: impl Future<Output = Result<(), Failure>>) {
        match tokio::time::timeout(patience, run).await {
            Ok(Ok(())) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(f)) => self.fail(f),
            Err(_) => self.fail(Failure::Timeout),
        }
    }
}

/// A stream that ended counts as held if it answered 200 and its body says
/// `data: [DONE]`.
fn held(status: u16, body: &[u8]) -> Result<(), Failure> {
    if status != 200 {
        return Err(Failure::Status(status));
    }
    if find(body, b"data: [DONE]").is_none() {
        return Err(Failure::NoDone);
    }
    Ok(())
}

async fn one_stream(port: u16, request: Arc<Vec<u8>>, patience: Duration, s: Arc<StreamStats>) {
    let run = async {
        let mut conn = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = conn.set_nodelay(true);
        s.started.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::with_capacity(8 * 1024);
        let mut opened = false;
        let result = exchange(&mut conn, &request, &mut buf, || {
            opened = true;
            let now = s.open.fetch_add(1, Ordering::Relaxed) + 1;
            s.peak_open.fetch_max(now, Ordering::Relaxed);
        })
        .await;
        if opened {
            s.open.fetch_sub(1, Ordering::Relaxed);
        }
        let (status, body_at) = result?;
        held(status, &buf[body_at..])
    };
    s.settle(patience, run).await;
}

/// Receive windows far above one answer (a few KB): flow control never holds
/// a stream back, whatever Envoy sends at once. h2 returns the window (a
/// `WINDOW_UPDATE`) as `release_capacity` frees half of it.
const H2_STREAM_WINDOW: u32 = 1 << 20;
const H2_CONNECTION_WINDOW: u32 = 16 << 20;

/// One shared HTTP/2 connection: its request handle, and whether the task
/// driving it still runs.
struct H2Connection {
    send: h2::client::SendRequest<bytes::Bytes>,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// The streams' HTTP/2 connections, as a load balancer would hold them in
/// front of Envoy: stream `i` goes on connection `i % n`, opened on first use
/// and opened again if it has ended (its streams then fail on their own).
struct H2Pool {
    port: u16,
    slots: Vec<tokio::sync::Mutex<Option<H2Connection>>>,
    s: Arc<StreamStats>,
}

impl H2Pool {
    /// A handle on connection `slot`. The slot's lock makes the streams
    /// waiting on a connection share one connect.
    async fn handle(&self, slot: usize) -> Result<h2::client::SendRequest<bytes::Bytes>, Failure> {
        let mut conn = self.slots[slot % self.slots.len()].lock().await;
        if let Some(c) = conn.as_ref()
            && c.alive.load(Ordering::Relaxed)
        {
            return Ok(c.send.clone());
        }
        let c = self.connect().await?;
        let send = c.send.clone();
        *conn = Some(c);
        Ok(send)
    }

    /// h2c with prior knowledge: the client preface straight away, which
    /// Envoy's `codec_type: AUTO` (the default) tells from HTTP/1.1.
    async fn connect(&self) -> Result<H2Connection, Failure> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .map_err(|_| Failure::Handshake)?;
        self.s.h2_opened.fetch_add(1, Ordering::Relaxed);
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (flag, s) = (alive.clone(), self.s.clone());
        // The connection does nothing unless polled; it ends once every
        // handle is dropped and its streams are done.
        tokio::spawn(async move {
            if let Err(e) = connection.await
                && let Ok(mut m) = s.h2_ended.lock()
            {
                *m.entry(h2_failure(&e)).or_default() += 1;
            }
            flag.store(false, Ordering::Relaxed);
        });
        Ok(H2Connection { send, alive })
    }
}

fn h2_failure(e: &h2::Error) -> Failure {
    match e.reason() {
        Some(reason) if e.is_go_away() => Failure::GoAway(reason.into()),
        Some(reason) if e.is_reset() => Failure::Reset(reason.into()),
        _ if e.is_io() => Failure::Read,
        _ => Failure::Protocol,
    }
}

/// One stream over HTTP/2, held to the same test as over HTTP/1.1: 200, and a
/// body that ends (END_STREAM, no reset) after `data: [DONE]`.
async fn one_h2_stream(
    pool: Arc<H2Pool>,
    slot: usize,
    body: bytes::Bytes,
    patience: Duration,
    s: Arc<StreamStats>,
) {
    let run = async {
        // `ready` waits while the connection has as many streams open as
        // Envoy's SETTINGS_MAX_CONCURRENT_STREAMS allows.
        let mut send = pool
            .handle(slot)
            .await?
            .ready()
            .await
            .map_err(|e| h2_failure(&e))?;
        s.started.fetch_add(1, Ordering::Relaxed);
        let request = http::Request::post("http://aipipe/v1/chat/completions")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(())
            .map_err(|_| Failure::Malformed)?;
        let (response, mut upload) = send
            .send_request(request, false)
            .map_err(|e| h2_failure(&e))?;
        upload.send_data(body, true).map_err(|e| h2_failure(&e))?;
        let response = response.await.map_err(|e| h2_failure(&e))?;
        // Envoy's SETTINGS came before its answer.
        s.h2_server_max_streams
            .fetch_min(send.current_max_send_streams() as u64, Ordering::Relaxed);
        let status = response.status().as_u16();
        let mut answer = response.into_body();
        let mut buf = Vec::with_capacity(8 * 1024);
        let mut opened = false;
        let result = async {
            while let Some(chunk) = answer.data().await {
                let chunk = chunk.map_err(|e| h2_failure(&e))?;
                if !opened && !chunk.is_empty() {
                    opened = true;
                    let now = s.open.fetch_add(1, Ordering::Relaxed) + 1;
                    s.peak_open.fetch_max(now, Ordering::Relaxed);
                }
                let _ = answer.flow_control().release_capacity(chunk.len());
                buf.extend_from_slice(&chunk);
            }
            Ok(())
        }
        .await;
        if opened {
            s.open.fetch_sub(1, Ordering::Relaxed);
        }
        result?;
        held(status, &buf)
    };
    s.settle(patience, run).await;
}

/// Opens `n` streams at `per_sec` — over `h2_connections` shared HTTP/2
/// connections, or (`None`) each on its own HTTP/1.1 connection; returns
/// when all ended.
async fn hold_streams(
    port: u16,
    n: u64,
    per_sec: u64,
    h2_connections: Option<u64>,
    patience: Duration,
    s: Arc<StreamStats>,
) {
    let body = serde_json::json!({
        "model": "auto",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Tell me a short story about a lighthouse."}],
    })
    .to_string();
    let request = Arc::new(chat_request(&body));
    let body = bytes::Bytes::from(body);
    let pool = h2_connections.map(|c| {
        s.h2_server_max_streams.store(u64::MAX, Ordering::Relaxed);
        Arc::new(H2Pool {
            port,
            slots: (0..c).map(|_| tokio::sync::Mutex::new(None)).collect(),
            s: s.clone(),
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    let tick = Duration::from_millis(50);
    let per_tick = (per_sec / 20).max(1);
    let mut interval = tokio::time::interval(tick);
    let mut launched = 0;
    while launched < n {
        interval.tick().await;
        for _ in 0..per_tick.min(n - launched) {
            match &pool {
                Some(pool) => tasks.spawn(one_h2_stream(
                    pool.clone(),
                    launched as usize,
                    body.clone(),
                    patience,
                    s.clone(),
                )),
                None => tasks.spawn(one_stream(port, request.clone(), patience, s.clone())),
            };
            launched += 1;
        }
    }
    while tasks.join_next().await.is_some() {}
    // The last handles go: each connection's task then sees it end.
}

// ---------------------------------------------------------------- requests

/// Request latency histogram: 10 µs buckets up to 100 ms, then one more.
struct Histogram(Vec<AtomicU64>);

impl Histogram {
    const BUCKETS: usize = 10_000;

    fn new() -> Self {
        Self((0..=Self::BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    fn record(&self, d: Duration) {
        let i = usize::try_from(d.as_micros() / 10)
            .unwrap_or(Self::BUCKETS)
            .min(Self::BUCKETS);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding quantile `q`, in µs.
    fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let want = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return (i as u64 + 1) * 10;
            }
        }
        0
    }
}

#[derive(Default)]
struct LoadStats {
    issued: AtomicU64,
    done: AtomicU64,
    ok: AtomicU64,
    failures: Mutex<BTreeMap<Failure, u64>>,
}

async fn load_worker(
    port: u16,
    total: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
    s: Arc<LoadStats>,
    h: Arc<Histogram>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let i = s.issued.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let body = format!(
            r#"{{"model":"auto","temperature":0.7,"messages":[{{"role":"user","content":"Soak request {i}: reply with one friendly word."}}]}}"#
        );
        let request = chat_request(&body);
        let start = Instant::now();
        let result = async {
            if conn.is_none() {
                let c = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|_| Failure::Connect)?;
                let _ = c.set_nodelay(true);
                conn = Some(c);
            }
            let Some(c) = conn.as_mut() else {
                return Err(Failure::Connect);
            };
            match tokio::time::timeout(
                Duration::from_secs(30),
                exchange(c, &request, &mut buf, || {}),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            }
        }
        .await;
        match result {
            Ok((200, _)) => {
                h.record(start.elapsed());
                s.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, _)) => {
                if let Ok(mut m) = s.failures.lock() {
                    *m.entry(Failure::Status(status)).or_default() += 1;
                }
            }
            Err(f) => {
                conn = None;
                if let Ok(mut m) = s.failures.lock() {
                    *m.entry(f).or_default() += 1;
                }
            }
        }
        s.done.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- main

fn failures_text(m: &Mutex<BTreeMap<Failure, u64>>) -> String {
    m.lock()
        .map(|m| {
            m.iter()
                .map(|(f, n)| format!("{f}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn failures_total(m: &Mutex<BTreeMap<Failure, u64>>) -> u64 {
    m.lock().map(|m| m.values().sum()).unwrap_or(0)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> Result<(), String> {
    let started = Instant::now();
    let deadline = Duration::from_secs(o.deadline_secs);
    install_guards(deadline);
    let left = || deadline.saturating_sub(started.elapsed());

    // Envoy holds a descriptor a stream for its upstream side, and over
    // HTTP/1.1 one more for the client's; the mock holds one a stream, and
    // so does this process over HTTP/1.1.
    let fds_per_stream: u64 = if o.http1 { 2 } else { 1 };
    let want = o.streams * fds_per_stream + 4096;
    let (soft, hard) = raise_nofile(want);
    println!("soak: nofile_limit {soft} (hard {hard}, wanted {want})");

    let config = plugin_config(
        &[(
            "soak",
            &[KEY],
            &[
                ("openai", "sk-soak-openai"),
                ("anthropic", "sk-soak-anthropic"),
            ],
            false,
        )],
        4 * 1024 * 1024,
    );
    let mock = Mock::start_with(&sibling_binary("mock-provider"), &["--threads", "2"], None);
    track(mock.process.pid());
    let cp = if o.control_plane {
        let cp = ControlPlane::start();
        track(cp.process.pid());
        Some(cp)
    } else {
        None
    };
    let (listener_port, admin_port) = (free_port(), free_port());
    let mut yaml = render_envoy_config(
        "demo.yaml",
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port: mock.port,
            plugin_config: Some(config),
            with_filter: true,
            control_plane: cp
                .as_ref()
                .map(|cp| (cp.internal_port, cp.internal_token.clone())),
        },
    );
    // Envoy's default circuit breakers allow 1024 connections, pending and
    // active requests per cluster: far fewer than the streams to hold.
    let breakers = "    connect_timeout: 2s\n    circuit_breakers: { thresholds: [{ max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000, max_retries: 1000000 }] }\n";
    let clusters = yaml.matches("    connect_timeout: 2s\n").count();
    if clusters < 7 {
        return Err(format!(
            "envoy/demo.yaml changed: found {clusters} provider clusters to raise the circuit breakers of"
        ));
    }
    yaml = yaml.replace("    connect_timeout: 2s\n", breakers);
    let token = cp.as_ref().map(|cp| cp.internal_token.clone());
    let env: Vec<(&str, &str)> = token
        .as_deref()
        .map(|t| ("AIPIPE_INTERNAL_TOKEN", t))
        .into_iter()
        .collect();
    let envoy = Envoy::start_with_env(&yaml, listener_port, admin_port, 2, &env);
    track(envoy.process.pid());
    let envoy_pid = envoy.process.pid();
    let (esoft, _) = nofile(&envoy_pid.to_string()).unwrap_or((0, 0));
    println!("soak: envoy_nofile_limit {esoft}");
    if esoft < o.streams * fds_per_stream + 256 {
        println!(
            "warning: Envoy may open {esoft} descriptors; {} streams need about {} ({fds_per_stream} each)",
            o.streams,
            o.streams * fds_per_stream + 256
        );
    }

    if let Some(cp) = &cp {
        // The same tenant and key as the bootstrap table, so requests pass
        // before and after the singleton's first table.
        let calls = [
            (
                "/admin/tenants",
                serde_json::json!({"id": "soak", "name": "soak"}),
            ),
            (
                "/admin/tenants/soak/keys",
                serde_json::json!({"openai": "sk-soak-openai", "anthropic": "sk-soak-anthropic"}),
            ),
            (
                "/admin/tenants/soak/virtual-keys",
                serde_json::json!({"name": "soak", "key": KEY}),
            ),
        ];
        for (path, body) in calls {
            let r = cp.admin("POST", path, Some(&body));
            if !(200..300).contains(&r.status) {
                return Err(format!("control plane {path}: {} {}", r.status, r.text()));
            }
        }
        // The singleton polls every second.
        std::thread::sleep(Duration::from_secs(3));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;

    // Warm up: every worker's VM, the JIT, the upstream pool.
    let warm = Arc::new(LoadStats::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hist = Arc::new(Histogram::new());
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            set.spawn(load_worker(
                listener_port,
                2000,
                stop.clone(),
                warm.clone(),
                hist.clone(),
            ));
        }
        while set.join_next().await.is_some() {}
    });
    if warm.ok.load(Ordering::Relaxed) != 2000 {
        return Err(format!(
            "warm-up failed: {} of 2000 answered 200 ({})",
            warm.ok.load(Ordering::Relaxed),
            failures_text(&warm.failures)
        ));
    }
    // Requests sent after the warm-up (what the control plane should record).
    let mut sent = 2000;
    let m0 = memory(&envoy);
    println!("soak: memory_start {}", m0.line());
    // Each stream holds an upstream connection, and over HTTP/1.1 its own
    // client-side one.
    let fds0 = fds(envoy_pid);
    let h2_fds = if o.http1 { 0 } else { o.h2_connections };
    let streams_possible = esoft.saturating_sub(fds0 + h2_fds) / fds_per_stream;
    println!("soak: envoy_fds_idle {fds0} streams_possible_by_nofile {streams_possible}");

    // ---- requests first: on fresh VMs, whose linear memory has not yet been
    // grown by 10,000 held streams, a leak shows as growth sooner.
    if o.requests > 0 {
        println!(
            "\nrequests: {} requests over {} kept-alive connections, {} samples",
            o.requests, o.connections, o.samples
        );
        let s = Arc::new(LoadStats::default());
        let hist = Arc::new(Histogram::new());
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..o.connections {
            set.spawn_on(
                load_worker(
                    listener_port,
                    o.requests,
                    stop.clone(),
                    s.clone(),
                    hist.clone(),
                ),
                rt.handle(),
            );
        }
        let task = rt.spawn(async move { while set.join_next().await.is_some() {} });
        let mut samples: Vec<(u64, Memory)> = vec![(0, memory(&envoy))];
        println!("soak: sample 0 requests 0 {}", samples[0].1.line());
        let step = (o.requests / o.samples).max(1);
        let mut next = step;
        let mut last = (Instant::now(), 0u64);
        while !task.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let done = s.done.load(Ordering::Relaxed);
            if left() < Duration::from_secs(30) {
                stop.store(true, Ordering::Relaxed);
            }
            if done >= next && next <= o.requests {
                let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), done);
                let m = memory(&envoy);
                println!(
                    "soak: sample {} requests {done} rate {rate:.0} {}",
                    samples.len(),
                    m.line()
                );
                samples.push((done, m));
                next += step;
            }
        }
        rt.block_on(task).map_err(|e| format!("requests: {e}"))?;
        let elapsed = t.elapsed().as_secs_f64();
        let done = s.done.load(Ordering::Relaxed);
        let ok = s.ok.load(Ordering::Relaxed);
        let end = memory(&envoy);
        if samples.last().map(|x| x.0) != Some(done) {
            println!(
                "soak: sample {} requests {done} {}",
                samples.len(),
                end.line()
            );
            samples.push((done, end.clone()));
        }
        println!("envoy stats: {}", trouble(&envoy));
        println!(
            "soak: requests {done} ok {ok} errors {} ({})",
            done - ok,
            failures_text(&s.failures)
        );
        println!("soak: requests_per_s {:.0}", done as f64 / elapsed);
        println!(
            "soak: request_latency_p50_us {} p99_us {}",
            hist.quantile_us(0.5),
            hist.quantile_us(0.99)
        );
        // The trend after the first sample (the first 10 % warm the VMs).
        let first = samples.get(1).map_or(&samples[0].1, |x| &x.1);
        println!(
            "soak: vm_linear_kb_before {} after {} (first sample {})",
            samples[0].1.linear_kb(),
            end.linear_kb(),
            first.linear_kb()
        );
        println!(
            "soak: vm_resident_kb_before {} after {}",
            samples[0].1.resident_kb(),
            end.resident_kb()
        );
        println!(
            "soak: envoy_rss_kb_before {} after {}",
            samples[0].1.rss_kb, end.rss_kb
        );
        println!(
            "soak: envoy_allocated_before {} after {}",
            samples[0].1.allocated, end.allocated
        );
        if stop.load(Ordering::Relaxed) {
            println!("soak: deadline_hit 1 (the requests stopped early)");
        }
        sent += done;
        recorded(cp.as_ref(), sent);
    }
    // ---- streams
    if o.streams > 0 {
        let m_before = memory(&envoy);
        println!("soak: memory_before_streams {}", m_before.line());
        let mut m_peak = m_before.clone();
        for provider in ["openai", "anthropic"] {
            mock.fault(serde_json::json!({"provider": provider, "stream_chunk_delay_ms": o.chunk_delay_ms}));
        }
        let per_stream = Duration::from_millis(o.chunk_delay_ms * 16);
        let ramp = Duration::from_secs_f64(o.streams as f64 / o.ramp_per_sec as f64);
        let patience = per_stream + ramp + Duration::from_secs(120);
        let over = if o.http1 {
            "each on its own HTTP/1.1 connection".to_owned()
        } else {
            format!("over {} HTTP/2 connections", o.h2_connections)
        };
        println!(
            "\nstreams: {} streams at {}/s (ramp {:.1} s) {over}, the mock pausing {} ms between events (~{:.0} s a stream)",
            o.streams,
            o.ramp_per_sec,
            ramp.as_secs_f64(),
            o.chunk_delay_ms,
            (o.chunk_delay_ms * 13) as f64 / 1000.0
        );
        if patience + Duration::from_secs(60) > left() {
            return Err("not enough time left before the deadline for the streams".into());
        }
        let s = Arc::new(StreamStats::default());
        let t = Instant::now();
        let h2_before = stat(&envoy, "http.aipipe.downstream_cx_http2_total");
        let task = rt.spawn(hold_streams(
            listener_port,
            o.streams,
            o.ramp_per_sec,
            (!o.http1).then_some(o.h2_connections),
            patience,
            s.clone(),
        ));
        let mut peak_open_seen = 0;
        let mut peak_envoy_rq = 0;
        let mut peak_fds = 0;
        let mut next_print = Instant::now();
        while !task.is_finished() {
            std::thread::sleep(Duration::from_millis(500));
            let open = s.open.load(Ordering::Relaxed);
            let envoy_rq = stat(&envoy, "http.aipipe.downstream_rq_active");
            peak_envoy_rq = peak_envoy_rq.max(envoy_rq);
            peak_fds = peak_fds.max(fds(envoy_pid));
            if open > peak_open_seen {
                peak_open_seen = open;
                m_peak = memory(&envoy);
            } else if open > 0 && open == peak_open_seen {
                // Held streams still grow (their answers arrive): keep the largest.
                let m = memory(&envoy);
                if m.rss_kb > m_peak.rss_kb {
                    m_peak = m;
                }
            }
            if Instant::now() >= next_print {
                next_print += Duration::from_secs(5);
                println!(
                    "  t={:>5.1}s started {} open {} completed {} failed {} envoy downstream_rq_active {} upstream_cx_active {}",
                    t.elapsed().as_secs_f64(),
                    s.started.load(Ordering::Relaxed),
                    open,
                    s.completed.load(Ordering::Relaxed),
                    failures_total(&s.failures),
                    envoy_rq,
                    stats(
                        &envoy,
                        "^cluster\\.(openai|anthropic)\\.upstream_cx_active$"
                    )
                    .values()
                    .sum::<u64>()
                );
            }
        }
        rt.block_on(task).map_err(|e| format!("streams: {e}"))?;
        for provider in ["openai", "anthropic"] {
            mock.fault(serde_json::json!({"provider": provider, "stream_chunk_delay_ms": 0}));
        }
        let completed = s.completed.load(Ordering::Relaxed);
        let dropped = o.streams - completed;
        let m_after_a = memory(&envoy);
        println!(
            "streams took {:.1} s; failures: {}",
            t.elapsed().as_secs_f64(),
            failures_text(&s.failures)
        );
        println!("envoy stats: {}", trouble(&envoy));
        let emfile = envoy
            .process
            .logs()
            .lines()
            .filter(|l| l.contains("Too many open files"))
            .count();
        println!("soak: streams_held {completed} dropped {dropped}");
        if dropped > 0 && emfile > 0 {
            println!(
                "soak: drops_cause Envoy ran out of descriptors (RLIMIT_NOFILE {esoft}: {fds_per_stream} per stream, \
                 {streams_possible} streams at most; raising the hard limit needs CAP_SYS_RESOURCE)"
            );
        }
        if !o.http1 {
            // Envoy counted them as HTTP/2: h2c reached its HTTP/2 codec.
            println!(
                "soak: h2_connections {} opened {} envoy_downstream_cx_http2 {} ended_with_error {} ({})",
                o.h2_connections,
                s.h2_opened.load(Ordering::Relaxed),
                stat(&envoy, "http.aipipe.downstream_cx_http2_total").saturating_sub(h2_before),
                failures_total(&s.h2_ended),
                failures_text(&s.h2_ended)
            );
            println!(
                "soak: h2_server_max_concurrent_streams {}",
                s.h2_server_max_streams.load(Ordering::Relaxed)
            );
        }
        println!("soak: envoy_fds_peak {peak_fds} (limit {esoft}) envoy_log_emfile_lines {emfile}");
        println!(
            "soak: streams_peak_open {} (client side) envoy_downstream_rq_active_peak {}",
            s.peak_open.load(Ordering::Relaxed),
            peak_envoy_rq
        );
        println!("soak: memory_at_stream_peak {}", m_peak.line());
        println!("soak: memory_after_streams {}", m_after_a.line());
        sent += o.streams;
        recorded(cp.as_ref(), sent);
    }

    println!("soak: wall_s {:.0}", started.elapsed().as_secs_f64());
    drop(envoy);
    drop(cp);
    drop(mock);
    Ok(())
}
