//! rls: a small rate-limit service for the integration tests, speaking
//! Envoy's global rate-limit protocol (`envoy.service.ratelimit.v3.
//! RateLimitService/ShouldRateLimit`, gRPC over HTTP/2) the way
//! envoyproxy/ratelimit does, with its counters in memory instead of Redis.
//! The real service cannot be installed here; this one reads the same YAML
//! config (`envoy/ratelimit/service-config.yaml`), so the tests exercise the
//! shipped example.
//!
//! `rls --config FILE [--listen 127.0.0.1:PORT] [--admin 127.0.0.1:PORT]`
//!
//! - Each request descriptor (`tenant=acme`, `tenant=acme,key=vk_1`) is
//!   looked up as envoyproxy/ratelimit does: entry by entry, a child with
//!   the entry's key and value first, else one with the key alone (then
//!   each value counts apart); the limit is the last entry's node's.
//! - Fixed windows of the limit's unit; every descriptor of a request is
//!   counted (by its `hits_addend`, else the request's, else 1), and the
//!   request is over the limit when any descriptor is. Unlike the real
//!   service, a counter's window starts at its first hit (not at the
//!   clock's whole minute), so a test's burst never straddles two windows.
//! - The admin side (HTTP/1.1 JSON): `GET /hits` — every descriptor seen
//!   and how many hits it took, limited or not; `POST /reset` — forget all.
//! - Prints `rls listening on <grpc addr> admin <admin addr>` once ready.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tonic::codegen::{BoxFuture, Service, StdError, http};

const USAGE: &str = "usage: rls --config FILE [--listen 127.0.0.1:PORT] [--admin 127.0.0.1:PORT]";
const METHOD: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

// ---- the protocol's messages (envoy/service/ratelimit/v3/rls.proto and
// envoy/extensions/common/ratelimit/v3/ratelimit.proto), only the fields used.

#[derive(Clone, PartialEq, prost::Message)]
struct RateLimitRequest {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(message, repeated, tag = "2")]
    descriptors: Vec<RateLimitDescriptor>,
    #[prost(uint32, tag = "3")]
    hits_addend: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RateLimitDescriptor {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<Entry>,
    /// google.protobuf.UInt64Value: a per-descriptor hits addend.
    #[prost(message, optional, tag = "3")]
    hits_addend: Option<UInt64Value>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct UInt64Value {
    #[prost(uint64, tag = "1")]
    value: u64,
}

/// RateLimitResponse.Code (0 is UNKNOWN, never sent).
const OK: i32 = 1;
const OVER_LIMIT: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
struct RateLimitResponse {
    #[prost(int32, tag = "1")]
    overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    statuses: Vec<DescriptorStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DescriptorStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(message, optional, tag = "2")]
    current_limit: Option<RateLimitProto>,
    #[prost(uint32, tag = "3")]
    limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    duration_until_reset: Option<DurationProto>,
}

/// RateLimitResponse.RateLimit.
#[derive(Clone, PartialEq, prost::Message)]
struct RateLimitProto {
    #[prost(uint32, tag = "1")]
    requests_per_unit: u32,
    /// Unit: SECOND 1, MINUTE 2, HOUR 3, DAY 4.
    #[prost(int32, tag = "2")]
    unit: i32,
}

/// google.protobuf.Duration.
#[derive(Clone, PartialEq, prost::Message)]
struct DurationProto {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

// ---- the config (envoyproxy/ratelimit's YAML, the parts it uses) -----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    domain: String,
    #[serde(default)]
    descriptors: Vec<DescriptorConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorConfig {
    key: String,
    value: Option<String>,
    rate_limit: Option<LimitConfig>,
    #[serde(default)]
    descriptors: Vec<DescriptorConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitConfig {
    unit: Unit,
    requests_per_unit: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    fn length(self) -> Duration {
        Duration::from_secs(match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        })
    }

    fn proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
        }
    }
}

/// The limit for a request descriptor's entries, looked up as
/// envoyproxy/ratelimit does.
fn limit_for(config: &ConfigFile, entries: &[Entry]) -> Option<LimitConfig> {
    let mut level = &config.descriptors;
    let mut found = None;
    for entry in entries {
        let node = level
            .iter()
            .find(|d| d.key == entry.key && d.value.as_deref() == Some(entry.value.as_str()))
            .or_else(|| {
                level
                    .iter()
                    .find(|d| d.key == entry.key && d.value.is_none())
            })?;
        found = node.rate_limit;
        level = &node.descriptors;
    }
    found
}

// ---- the service -----------------------------------------------------------

struct Window {
    start: Instant,
    hits: u64,
}

struct Rls {
    config: ConfigFile,
    windows: Mutex<HashMap<String, Window>>,
    /// Every descriptor seen (`k=v,k=v`) and its hits, limited or not.
    hits: Mutex<HashMap<String, u64>>,
}

fn descriptor_name(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}={}", e.key, e.value))
        .collect::<Vec<_>>()
        .join(",")
}

impl Rls {
    fn should_rate_limit(&self, req: &RateLimitRequest, now: Instant) -> RateLimitResponse {
        if req.domain != self.config.domain {
            return RateLimitResponse {
                overall_code: OK,
                statuses: req.descriptors.iter().map(|_| unlimited()).collect(),
            };
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let mut overall = OK;
        let statuses = req
            .descriptors
            .iter()
            .map(|d| {
                let name = descriptor_name(&d.entries);
                let addend = d
                    .hits_addend
                    .as_ref()
                    .map(|h| h.value)
                    .or_else(|| (req.hits_addend > 0).then_some(u64::from(req.hits_addend)))
                    .unwrap_or(1);
                *hits.entry(name.clone()).or_default() += addend;
                let Some(limit) = limit_for(&self.config, &d.entries) else {
                    return unlimited();
                };
                let length = limit.unit.length();
                let w = windows.entry(name).or_insert(Window {
                    start: now,
                    hits: 0,
                });
                if now.duration_since(w.start) >= length {
                    *w = Window {
                        start: now,
                        hits: 0,
                    };
                }
                w.hits += addend;
                let allowed = u64::from(limit.requests_per_unit);
                let code = if w.hits > allowed {
                    overall = OVER_LIMIT;
                    OVER_LIMIT
                } else {
                    OK
                };
                let left = length.saturating_sub(now.duration_since(w.start));
                DescriptorStatus {
                    code,
                    current_limit: Some(RateLimitProto {
                        requests_per_unit: limit.requests_per_unit,
                        unit: limit.unit.proto(),
                    }),
                    limit_remaining: u32::try_from(allowed.saturating_sub(w.hits))
                        .unwrap_or(u32::MAX),
                    duration_until_reset: Some(DurationProto {
                        // Whole seconds, rounded up: a client waiting this
                        // long finds the new window.
                        seconds: i64::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                            .unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                }
            })
            .collect();
        RateLimitResponse {
            overall_code: overall,
            statuses,
        }
    }
}

fn unlimited() -> DescriptorStatus {
    DescriptorStatus {
        code: OK,
        current_limit: None,
        limit_remaining: 0,
        duration_until_reset: None,
    }
}

/// The gRPC service, wired by hand as tonic's generated code would be.
#[derive(Clone)]
struct RateLimitService(Arc<Rls>);

impl tonic::server::NamedService for RateLimitService {
    const NAME: &'static str = "envoy.service.ratelimit.v3.RateLimitService";
}

struct ShouldRateLimit(Arc<Rls>);

impl tonic::server::UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = RateLimitResponse;
    type Future = BoxFuture<tonic::Response<RateLimitResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<RateLimitRequest>) -> Self::Future {
        let rls = self.0.clone();
        Box::pin(async move {
            let answer = rls.should_rate_limit(request.get_ref(), Instant::now());
            Ok(tonic::Response::new(answer))
        })
    }
}

impl<B> Service<http::Request<B>> for RateLimitService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != METHOD {
            let status = tonic::Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let rls = self.0.clone();
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(ShouldRateLimit(rls), req).await)
        })
    }
}

// ---- the admin side --------------------------------------------------------

async fn hits(State(rls): State<Arc<Rls>>) -> Json<HashMap<String, u64>> {
    Json(rls.hits.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

async fn reset(State(rls): State<Arc<Rls>>) -> &'static str {
    rls.hits.lock().unwrap_or_else(|e| e.into_inner()).clear();
    rls.windows
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    "reset\n"
}

// ---- main ------------------------------------------------------------------

struct Args {
    config: String,
    listen: SocketAddr,
    admin: SocketAddr,
}

fn args() -> Result<Args, String> {
    let mut config = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut admin = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let addr = || {
            value
                .parse::<SocketAddr>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--config" => config = Some(value.clone()),
            "--listen" => listen = addr()?,
            "--admin" => admin = addr()?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(Args {
        config: config.ok_or(USAGE)?,
        listen,
        admin,
    })
}

fn load(path: &str) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rls: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = args()?;
    let rls = Arc::new(Rls {
        config: load(&args.config)?,
        windows: Mutex::default(),
        hits: Mutex::default(),
    });
    let grpc = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.admin))?;
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().map_err(|e| e.to_string())?,
        admin.local_addr().map_err(|e| e.to_string())?,
    );
    let app = axum::Router::new()
        .route("/hits", axum::routing::get(hits))
        .route("/reset", axum::routing::post(reset))
        .with_state(rls.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, app).await {
            eprintln!("rls: admin server: {e}");
        }
    });
    println!("rls listening on {grpc_addr} admin {admin_addr}");
    tonic::transport::Server::builder()
        .add_service(RateLimitService(rls))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc))
        .await
        .map_err(|e| format!("grpc server: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rls() -> Rls {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../envoy/ratelimit/service-config.yaml"
        ))
        .unwrap();
        Rls {
            config: serde_yaml_ng::from_str(&yaml).unwrap(),
            windows: Mutex::default(),
            hits: Mutex::default(),
        }
    }

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            hits_addend: None,
        }
    }

    fn ask(rls: &Rls, entries: &[&[(&str, &str)]], now: Instant) -> RateLimitResponse {
        let req = RateLimitRequest {
            domain: "aipipe".into(),
            descriptors: entries.iter().map(|e| descriptor(e)).collect(),
            hits_addend: 0,
        };
        rls.should_rate_limit(&req, now)
    }

    #[test]
    fn the_shipped_config_limits_the_demo_tenant_per_window_and_its_keys_within_it() {
        let rls = rls();
        let t0 = Instant::now();
        let demo: &[(&str, &str)] = &[("tenant", "demo")];
        let key: &[(&str, &str)] = &[("tenant", "demo"), ("key", "vk_1")];
        for i in 0..10 {
            assert_eq!(ask(&rls, &[demo, key], t0).overall_code, OK, "hit {i}");
        }
        // The key's 11th is over its 10; the tenant still has room.
        let r = ask(&rls, &[demo, key], t0);
        assert_eq!(r.overall_code, OVER_LIMIT);
        assert_eq!((r.statuses[0].code, r.statuses[1].code), (OK, OVER_LIMIT));
        for _ in 0..9 {
            ask(&rls, &[demo], t0);
        }
        let r = ask(&rls, &[demo], t0 + Duration::from_secs(15));
        assert_eq!(r.overall_code, OVER_LIMIT, "21 hits on the tenant's 20");
        let reset = r.statuses[0].duration_until_reset.clone().unwrap();
        assert_eq!(reset.seconds, 45);
        // Another tenant has its own counter; a new window starts afresh.
        let other: &[(&str, &str)] = &[("tenant", "acme")];
        assert_eq!(ask(&rls, &[other], t0).overall_code, OK);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(ask(&rls, &[demo], later).overall_code, OK);
        let hits = rls.hits.lock().unwrap();
        assert_eq!(hits["tenant=demo"], 22);
        assert_eq!(hits["tenant=demo,key=vk_1"], 11);
    }

    #[test]
    fn unknown_descriptors_and_domains_are_not_limited() {
        let rls = rls();
        let r = ask(&rls, &[&[("path", "/x")]], Instant::now());
        assert_eq!((r.overall_code, r.statuses[0].code), (OK, OK));
        assert!(r.statuses[0].current_limit.is_none());
    }
}
