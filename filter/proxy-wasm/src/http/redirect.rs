//! Failover by Envoy's internal redirect: the path on which a failed-over
//! answer still streams (SPEC §10).
//!
//! An attempt that may fail over leaves what the next attempt needs (the
//! client's body, the tenant, what was tried: a [`Carry`]) in this VM's
//! carries (`aipipe_core::carry`) under a fresh token, and names a redirect
//! location holding the token in [`FAILOVER_LOCATION_HEADER`]. If the
//! provider answers 429 or 5xx, the upstream filter (`wasm::upstream`)
//! turns the answer into a 307 to that location, and Envoy's router sends
//! the request through the filter chain again, on the same connection, so
//! the same worker and VM. The new request context takes the carried state,
//! counts the failure, and routes the client's body to the next candidate;
//! its answer streams to the client as any first answer does.
//!
//! The redirected request arrives with the headers and body as they were
//! sent to the failed provider (the router replays them): its provider key
//! and translated body are dropped and rebuilt from the carried state.
//!
//! When the redirect does not happen (an Envoy-local failure, a timeout or a
//! connection failure, which the router answers itself; or a route without
//! the redirect policy, when the 307 comes back here), the attempt's own
//! context gets the failure, takes its state back, and `failover` calls the
//! next candidate with `dispatch_http_call` instead.

use std::rc::Rc;
use std::time::SystemTime;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::failover::{Failover, next_candidate};
use super::{CHAT_PATH, Decision, Http, MESSAGES_PATH};
use crate::meter::Meter;
use crate::root::{Metrics, Shared, now_ms};
use aipipe_core::carry::location;
use aipipe_core::config::{FAILED_STATUS_HEADER, FAILOVER_LOCATION_HEADER};
use aipipe_core::error::ApiError;
use aipipe_core::route::Dialect;
use aipipe_core::table::Table;
use aipipe_core::usage::UsageRecord;

/// What the next attempt of a request needs.
pub(crate) struct Carry {
    table: Rc<Table>,
    tenant: usize,
    dialect: Dialect,
    anthropic_version: Option<Vec<u8>>,
    anthropic_beta: Option<Vec<u8>>,
    request_id: String,
    start: Option<SystemTime>,
    how: Kept,
    failover: Failover,
}

/// What the request keeps from one attempt to the next.
pub(super) struct Kept {
    /// The request's complexity (None: the client named the model).
    pub(super) complexity: Option<f64>,
    /// `x-aipipe-cache` of the first attempt.
    pub(super) cache: Option<&'static str>,
    /// The first model that failed.
    pub(super) failed_over_from: Option<usize>,
}

/// The request headers the routed request was sent with and a redirect
/// must not carry to the next provider: every provider's key, the failed
/// provider's Anthropic headers, and what Envoy's router adds.
const ATTEMPT_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "anthropic-version",
    "anthropic-beta",
    "x-envoy-original-url",
    "x-envoy-expected-rq-timeout-ms",
];

impl Http {
    /// Keeps the attempt's state for a redirected next attempt and tells the
    /// upstream filter where to redirect.
    pub(super) fn carry(
        &mut self,
        shared: &Shared,
        table: &Rc<Table>,
        how: Kept,
        failover: Failover,
    ) {
        let carry = Carry {
            table: table.clone(),
            tenant: self.tenant,
            dialect: self.dialect,
            anthropic_version: self.anthropic_version.clone(),
            anthropic_beta: self.anthropic_beta.clone(),
            request_id: self.request_id.clone(),
            start: self.start,
            how,
            failover,
        };
        let (token, swept) = shared.carries.put(carry, now_ms());
        for record in &swept {
            shared.enqueue_usage(record);
        }
        let path = match self.dialect {
            Dialect::Chat => CHAT_PATH,
            Dialect::Messages => MESSAGES_PATH,
        };
        let location = location(path, token);
        Self::set_header(FAILOVER_LOCATION_HEADER, Some(&location));
        self.carry_token = Some(token);
    }

    /// The headers of a redirected attempt: takes the carried state (a
    /// token that finds none is refused), counts the failed attempt, and
    /// clears what was sent to the failed provider.
    pub(super) fn resume(
        &mut self,
        shared: &Shared,
        token: Option<u128>,
        status: u16,
    ) -> Result<(), ApiError> {
        let Some(c) = token.and_then(|t| shared.carries.take(t)) else {
            return Err(ApiError::BadRequest(
                "This failover redirect is unknown or was already followed.".into(),
            ));
        };
        for name in ATTEMPT_HEADERS {
            Self::set_header(name, None);
        }
        self.had_authorization_header = false;
        self.had_api_key_header = false;
        // The client's Anthropic headers, as they came.
        for (name, value) in [
            ("anthropic-version", &c.anthropic_version),
            ("anthropic-beta", &c.anthropic_beta),
        ] {
            if let Some(v) = value
                && let Err(s) = hostcalls::set_map_value_bytes(
                    MapType::HttpRequestHeaders,
                    name,
                    Some(v.as_slice()),
                )
            {
                log::warn!("restoring {name} failed: {s:?}");
            }
        }
        if let Some(m) = &shared.metrics {
            Metrics::count(m.failover_redirects, 1);
        }
        let mut failover = c.failover;
        if let Some(m) = failover
            .fail_last(&c.table, status)
            .and_then(|m| c.table.models.get(m))
        {
            shared.record_outcome(&c.table, &m.id, status);
        }
        let mut how = c.how;
        how.failed_over_from = how
            .failed_over_from
            .or_else(|| failover.tried.first().copied());
        self.table = Some(c.table);
        self.tenant = c.tenant;
        self.dialect = c.dialect;
        self.anthropic_version = c.anthropic_version;
        self.anthropic_beta = c.anthropic_beta;
        self.request_id = c.request_id;
        self.start = c.start;
        self.failover = Some(failover);
        self.resuming = Some(how);
        Ok(())
    }

    /// The body phase of a redirected attempt: the router replayed the body
    /// sent to the failed provider; the next candidate gets its own
    /// translation of the client's body instead.
    pub(super) fn next_attempt(
        &mut self,
        shared: &Shared,
        table: &Rc<Table>,
        how: Kept,
        body_size: usize,
    ) -> Result<(), ApiError> {
        let Some(mut f) = self.failover.take() else {
            return Err(ApiError::NoTable);
        };
        let penalties = shared.local_penalties(table);
        let next = next_candidate(
            &mut f,
            table,
            self.tenant,
            self.dialect,
            penalties.as_deref(),
            shared.max_attempts as usize,
        );
        let Some(routed) = next else {
            // Nothing left to try: one error naming every attempt, recorded
            // as the last one's.
            let last = f.tried.last().copied();
            if let Some(start) = self.start {
                self.meter = Some(Meter::new(start, f.stream, how.complexity));
            }
            self.decision = last.and_then(|m| {
                Some(Decision {
                    provider: *table.model_provider.get(m)?,
                    model: Some(m),
                    complexity: how.complexity.map(|c| format!("{c:.3}")),
                    failed_over_from: how.failed_over_from,
                    cache: how.cache,
                })
            });
            self.failover = Some(f);
            return Err(self.give_up());
        };
        let upstream = routed.upstream.bytes(&f.body);
        if let Err(s) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &upstream)
        {
            log::warn!("cannot replace the redirected request body: {s:?}");
            return Err(ApiError::NoTable);
        }
        self.forward(shared, table, &routed, upstream.len(), how, f)
    }

    /// The attempt's answer (`status`) arrived here, so no redirect
    /// followed: its carried state comes back. Returns the provider's status
    /// when the answer is the upstream filter's redirect that Envoy did not
    /// follow (no `internal_redirect_policy`, or its redirect limit reached).
    pub(super) fn reclaim(&mut self, status: u16) -> Option<u16> {
        let token = self.carry_token.take()?;
        let c = self.shared.as_ref()?.carries.take(token)?;
        self.failover = Some(c.failover);
        if status != 307 {
            return None;
        }
        let failed =
            hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, FAILED_STATUS_HEADER)
                .ok()
                .flatten()?;
        let failed = std::str::from_utf8(&failed).ok()?.parse::<u16>().ok()?;
        if let Some(m) = self.shared.as_ref().and_then(|s| s.metrics.as_ref()) {
            Metrics::count(m.failover_unfollowed, 1);
        }
        for name in ["location", FAILED_STATUS_HEADER] {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, None);
        }
        Some(failed)
    }

    /// The request's context ends without having seen an answer while its
    /// state is carried: a redirected attempt takes the state and writes the
    /// request's record, or, if none does (the client went away), `record`
    /// (with the attempts that failed before) is the request's. Returns the
    /// record when it is to be sent now.
    pub(super) fn leave_record(&self, record: UsageRecord) -> Option<UsageRecord> {
        let Some(token) = self.carry_token else {
            return Some(record);
        };
        if let Some(shared) = &self.shared {
            shared.carries.orphan(token, now_ms(), |c| UsageRecord {
                failed_attempts: c.failover.failed.clone(),
                ..record
            });
        }
        None
    }
}
