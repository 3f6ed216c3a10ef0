//! The plugin configuration (the JSON in Envoy's `plugin_config`), validated
//! once in `on_configure` into [`Config`]. Every error names the field.

use serde::Deserialize;

use crate::cache::CacheConfig;
use crate::contract::{DEFAULT_CLUSTER_HEADER, DEFAULT_CONTROL_PLANE_CLUSTER};
use crate::table::{RoutingTable, Table};

/// Bodies above this are refused with 413 unless configured otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster_header: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    /// The bootstrap routing table, used until a control plane answers.
    #[serde(default)]
    table: Option<RoutingTable>,
    #[serde(default)]
    trust_tenant_header: bool,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    attempt_timeout_ms: Option<u64>,
    #[serde(default)]
    penalty_decay_ms: Option<u64>,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    failover_redirect: Option<serde_json::Value>,
    #[serde(default)]
    budget: BudgetConfig,
    #[serde(default)]
    control_plane_cluster: Option<String>,
}

/// How this Envoy enforces budgets (control-plane/README.md, "Budgets").
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// How many Envoys share each budget: each admits up to this share of
    /// what remains. Set it to the fleet's size (or more).
    #[serde(default = "one")]
    pub fleet_size: u32,
    /// What a pass-through request reserves, in dollars (its cost is not
    /// known before the answer names a model and its usage).
    #[serde(default = "default_pass_through_reserve")]
    pub pass_through_reserve_usd: f64,
}

fn one() -> u32 {
    1
}

fn default_pass_through_reserve() -> f64 {
    0.10
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            fleet_size: 1,
            pass_through_reserve_usd: default_pass_through_reserve(),
        }
    }
}

impl BudgetConfig {
    /// A pass-through request's reservation in nano-dollars.
    pub fn pass_through_reserve_nusd(&self) -> u64 {
        (self.pass_through_reserve_usd * 1e9).round() as u64
    }
}

/// Which requests fail over by Envoy's internal redirect (the others, and
/// every Envoy-local failure, by `dispatch_http_call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverRedirect {
    /// Streamed requests: their next answer streams. The default: a whole
    /// answer fails over faster by call (`make bench`, `failover_*`).
    Streams,
    /// Every request.
    All,
    /// None: every failover is a call (no upstream filter needed).
    Off,
}

impl FailoverRedirect {
    fn parse(v: Option<&serde_json::Value>) -> Result<Self, String> {
        match v.map(|v| (v, v.as_str())) {
            None => Ok(FailoverRedirect::Streams),
            Some((_, Some("streams"))) => Ok(FailoverRedirect::Streams),
            Some((_, Some("all"))) => Ok(FailoverRedirect::All),
            Some((_, Some("off"))) => Ok(FailoverRedirect::Off),
            Some((v, _)) => Err(format!(
                "failover_redirect: must be \"streams\", \"all\" or \"off\", got {v}"
            )),
        }
    }

    /// Whether a request (streamed or not) fails over by redirect.
    pub fn applies(self, stream: bool) -> bool {
        match self {
            FailoverRedirect::Streams => stream,
            FailoverRedirect::All => true,
            FailoverRedirect::Off => false,
        }
    }
}

/// Upstream attempts per request, the first included (filter/README.md,
/// "Failover").
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most `max_attempts` may be.
pub const MAX_ATTEMPTS_LIMIT: usize = 10;
/// A failover attempt's timeout (the first attempt's is the Envoy route's).
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 120_000;

#[derive(Debug)]
pub struct Config {
    /// The request header Envoy's route reads the upstream cluster from
    /// (`route.cluster_header`). Always set by the filter, never by clients.
    pub cluster_header: String,
    pub max_body_bytes: usize,
    pub table: Option<Table>,
    /// Mesh mode (filter/README.md, "Authentication"): a trusted front already
    /// authenticated the caller and names the tenant in `x-tenant-id`. Off by
    /// default, when that header is ignored and stripped like every internal
    /// header.
    pub trust_tenant_header: bool,
    /// Upstream attempts per request, the first included: a failing model
    /// (429, 5xx, timeout, connection failure) hands the request to the next
    /// candidate until this many were tried.
    pub max_attempts: u32,
    /// Timeout of each failover attempt.
    pub attempt_timeout_ms: u64,
    /// Penalties halve once per this interval.
    pub penalty_decay_ms: u64,
    /// The answer cache (filter/README.md, "Cache").
    pub cache: CacheConfig,
    /// Which requests fail over by Envoy's internal redirect (the provider
    /// clusters run the upstream filter, [`crate::contract::UPSTREAM_ROOT_ID`], and the route
    /// has an `internal_redirect_policy`): the next candidate streams like
    /// the first. The others fail over by a buffered `dispatch_http_call`.
    pub failover_redirect: FailoverRedirect,
    pub budget: BudgetConfig,
    /// The control plane's cluster: where `GET /usage` is sent on.
    pub control_plane_cluster: String,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            RawConfig {
                cluster_header: None,
                max_body_bytes: None,
                table: None,
                trust_tenant_header: false,
                max_attempts: None,
                attempt_timeout_ms: None,
                penalty_decay_ms: None,
                cache: CacheConfig::default(),
                failover_redirect: None,
                budget: BudgetConfig::default(),
                control_plane_cluster: None,
            }
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("plugin configuration: {e}"))?
        };
        let cluster_header = raw
            .cluster_header
            .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_owned());
        if cluster_header.is_empty()
            || !cluster_header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "cluster_header: must be a lower-case header name, got {cluster_header:?}"
            ));
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > 64 * 1024 * 1024 {
            return Err(format!(
                "max_body_bytes: must be in 1..=67108864, got {max_body_bytes}"
            ));
        }
        let trust_tenant_header = raw.trust_tenant_header;
        let budget = raw.budget;
        let control_plane_cluster = raw
            .control_plane_cluster
            .unwrap_or_else(|| DEFAULT_CONTROL_PLANE_CLUSTER.to_owned());
        if control_plane_cluster.trim().is_empty() {
            return Err("control_plane_cluster: must not be empty".into());
        }
        if !(1..=100_000).contains(&budget.fleet_size) {
            return Err(format!(
                "budget.fleet_size: must be in 1..=100000, got {}",
                budget.fleet_size
            ));
        }
        if !(budget.pass_through_reserve_usd.is_finite()
            && (0.0..=1000.0).contains(&budget.pass_through_reserve_usd))
        {
            return Err(format!(
                "budget.pass_through_reserve_usd: must be from 0 to 1000, got {}",
                budget.pass_through_reserve_usd
            ));
        }
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT as u32).contains(&max_attempts) {
            return Err(format!(
                "max_attempts: must be in 1..=10, got {max_attempts}"
            ));
        }
        let attempt_timeout_ms = raw.attempt_timeout_ms.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT_MS);
        if !(1..=3_600_000).contains(&attempt_timeout_ms) {
            return Err(format!(
                "attempt_timeout_ms: must be in 1..=3600000, got {attempt_timeout_ms}"
            ));
        }
        let penalty_decay_ms = raw
            .penalty_decay_ms
            .unwrap_or(crate::penalty::DEFAULT_DECAY_MS);
        if penalty_decay_ms == 0 {
            return Err("penalty_decay_ms: must be at least 1".into());
        }
        raw.cache.validate().map_err(|e| format!("cache.{e}"))?;
        let failover_redirect = FailoverRedirect::parse(raw.failover_redirect.as_ref())?;
        let table = raw
            .table
            .map(Table::compile)
            .transpose()
            .map_err(|e| format!("table.{e}"))?;
        Ok(Self {
            cluster_header,
            max_body_bytes,
            table,
            trust_tenant_header,
            max_attempts,
            attempt_timeout_ms,
            penalty_decay_ms,
            cache: raw.cache,
            failover_redirect,
            budget,
            control_plane_cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_fail_over_by_redirect_unless_configured_otherwise() {
        let r = |json: &[u8]| Config::parse(json).map(|c| c.failover_redirect);
        assert_eq!(r(b""), Ok(FailoverRedirect::Streams));
        assert!(FailoverRedirect::Streams.applies(true));
        assert!(!FailoverRedirect::Streams.applies(false));
        assert_eq!(
            r(br#"{"failover_redirect": "all"}"#),
            Ok(FailoverRedirect::All)
        );
        assert!(FailoverRedirect::All.applies(false));
        assert_eq!(
            r(br#"{"failover_redirect": "off"}"#),
            Ok(FailoverRedirect::Off)
        );
        assert!(!FailoverRedirect::Off.applies(true));
        let e = r(br#"{"failover_redirect": true}"#).unwrap_err();
        assert_eq!(
            e,
            r#"failover_redirect: must be "streams", "all" or "off", got true"#
        );
    }

    #[test]
    fn defaults_and_errors_name_the_field() {
        let c = Config::parse(b"").unwrap();
        assert_eq!(c.cluster_header, DEFAULT_CLUSTER_HEADER);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(c.table.is_none());

        let c = Config::parse(br#"{"table":{"version":3,"tenants":[]}}"#).unwrap();
        assert_eq!(c.table.unwrap().version, 3);

        let e = |s: &str| Config::parse(s.as_bytes()).unwrap_err();
        assert!(e(r#"{"max_body_bytes":0}"#).starts_with("max_body_bytes:"));
        assert!(e(r#"{"max_attempts":0}"#).starts_with("max_attempts:"));
        assert!(e(r#"{"attempt_timeout_ms":0}"#).starts_with("attempt_timeout_ms:"));
        assert!(e(r#"{"penalty_decay_ms":0}"#).starts_with("penalty_decay_ms:"));
        assert!(e(r#"{"cache":{"slots":0}}"#).starts_with("cache.slots:"));
        assert!(e(r#"{"cache":{"slot":1}}"#).contains("unknown field `slot`"));
        assert!(e(r#"{"cluster_header":"X Bad"}"#).starts_with("cluster_header:"));
        assert!(e(r#"{"clustr_header":"x"}"#).contains("unknown field `clustr_header`"));
        assert!(e(r#"{"table":{"models":[{"id":"m","provider":"nope","input_per_mtok":1,"output_per_mtok":1,"quality":0.5,"context_window":10,"max_output_tokens":5}]}}"#)
            .starts_with("table.models[0] (m).provider: unknown provider"));
    }
}

/// Configuration of the singleton (the bootstrap Wasm service with root id
/// [`crate::contract::SINGLETON_ROOT_ID`]) that polls the control plane for the routing table
/// and publishes it to every worker VM through shared data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingletonConfig {
    pub control_plane: ControlPlane,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// The Envoy cluster of the control plane's internal listener.
    pub cluster: String,
    /// `:authority` sent with each call.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The internal API token (`x-aipipe-internal-token`), read from the
    /// environment variable `token_env` of the singleton's VM — never from
    /// the configuration, so Envoy's `/config_dump` and rendered configs
    /// hold no secret (filter/README.md, "Singleton configuration").
    #[serde(default, skip)]
    pub token: String,
    /// The environment variable holding the token; Envoy passes it to the
    /// VM when `vm_config.environment_variables.host_env_keys` names it.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// How often the singleton ticks: ships usage, and asks again for
    /// changes after a failed call.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// How long the control plane may hold a request for changes while
    /// nothing changed (a long poll); the call's timeout is this plus
    /// `timeout_ms`.
    #[serde(default = "default_wait_ms")]
    pub wait_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Usage records held while the control plane is unreachable; past this,
    /// new records are dropped and counted (`aipipe_usage_dropped`).
    #[serde(default = "default_max_buffered")]
    pub max_buffered_records: usize,
    /// Records per usage POST.
    #[serde(default = "default_batch")]
    pub batch_records: usize,
    /// The name this Envoy reports its usage queue under; default its node
    /// id (filter/README.md, "Singleton configuration").
    #[serde(default)]
    pub node: Option<String>,
}

fn default_token_env() -> String {
    "AIPIPE_INTERNAL_TOKEN".to_owned()
}
fn default_authority() -> String {
    "aipipe-control-plane".to_owned()
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_wait_ms() -> u64 {
    25_000
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_max_buffered() -> usize {
    100_000
}
fn default_batch() -> usize {
    500
}

impl SingletonConfig {
    /// Parses and validates the configuration, the token taken from the
    /// process environment.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        Self::parse_with(bytes, |name| std::env::var(name).ok())
    }

    /// As [`SingletonConfig::parse`], with the environment given.
    pub fn parse_with(bytes: &[u8], env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
            && v["control_plane"].get("token").is_some()
        {
            return Err(
                "control_plane.token: the internal token is never part of the configuration; set it in Envoy's environment and name the variable in vm_config.environment_variables.host_env_keys (control_plane.token_env, default AIPIPE_INTERNAL_TOKEN)"
                    .into(),
            );
        }
        let mut c: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("singleton configuration: {e}"))?;
        let cp = &mut c.control_plane;
        cp.token = env(&cp.token_env)
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        let cp = &c.control_plane;
        if cp.cluster.is_empty() {
            return Err("control_plane.cluster: must not be empty".into());
        }
        if cp.token.is_empty() {
            return Err(format!(
                "control_plane.token_env: the environment variable {} is not set for the singleton's VM (add it to vm_config.environment_variables.host_env_keys and to Envoy's environment)",
                cp.token_env
            ));
        }
        if !(100..=60_000).contains(&cp.poll_ms) {
            return Err(format!(
                "control_plane.poll_ms: must be in 100..=60000, got {}",
                cp.poll_ms
            ));
        }
        if !(100..=60_000).contains(&cp.timeout_ms) {
            return Err(format!(
                "control_plane.timeout_ms: must be in 100..=60000, got {}",
                cp.timeout_ms
            ));
        }
        if cp.wait_ms > 300_000 {
            return Err(format!(
                "control_plane.wait_ms: must be in 0..=300000, got {}",
                cp.wait_ms
            ));
        }
        if let Some(node) = &cp.node {
            crate::validate::node_name("control_plane.node", node).map_err(|e| e.0)?;
        }
        if cp.max_buffered_records == 0 || cp.batch_records == 0 {
            return Err("control_plane.max_buffered_records and batch_records: must be > 0".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod singleton_tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "AIPIPE_INTERNAL_TOKEN").then(|| "t0ken".to_owned())
    }

    #[test]
    fn singleton_config_defaults_and_errors() {
        let c = SingletonConfig::parse_with(br#"{"control_plane":{"cluster":"cp"}}"#, env).unwrap();
        assert_eq!(c.control_plane.poll_ms, 1000);
        assert_eq!(c.control_plane.token, "t0ken", "from the environment");
        let e = |s: &str| SingletonConfig::parse_with(s.as_bytes(), env).unwrap_err();
        assert!(e(r#"{"control_plane":{"cluster":""}}"#).starts_with("control_plane.cluster"));
        assert!(
            e(r#"{"control_plane":{"cluster":"c","poll_ms":5}}"#)
                .starts_with("control_plane.poll_ms")
        );
        let named = e(r#"{"control_plane":{"cluster":"c","token_env":"NOPE"}}"#);
        assert!(named.contains("NOPE is not set"), "{named}");
        // A secret in the configuration is refused, never used.
        let inline = e(r#"{"control_plane":{"cluster":"c","token":"t"}}"#);
        assert!(inline.starts_with("control_plane.token:"), "{inline}");
        assert!(!inline.contains("\"t\""), "{inline}");
    }
}
