//! Failover inside one request: when the chosen model fails before any byte
//! reached the client, the next candidate of the request's plan answers
//! instead. Every attempt's outcome moves that model's penalty.
//!
//! Two ways to reach the next candidate (see filter/README.md, "Failover"):
//!
//! - **By redirect** (streams, by default): an attempt that may fail over
//!   leaves its context and course in the worker's carries
//!   (`crate::carry`) under a fresh token, and names a redirect location
//!   holding the token in [`FAILOVER_LOCATION_HEADER`]. If the provider
//!   answers 429 or 5xx, the upstream filter turns the answer into a 307 to
//!   that location, and Envoy's router sends the request through the filter
//!   chain again, on the same connection, so the same worker. The new
//!   request takes the carried state ([`resume`]), counts the failure, and
//!   sends the client's body to the next candidate; its answer streams to
//!   the client as any first answer does. The redirected request arrives
//!   with the headers and body as they were sent to the failed provider: its
//!   provider key and body are dropped and rebuilt.
//! - **By call**: when the redirect does not happen (an Envoy-local failure,
//!   a timeout or a connection failure, which the router answers itself; or
//!   a route without the redirect policy, when the 307 comes back), the
//!   attempt's own request takes its state back ([`reclaim`]) and calls the
//!   next candidate itself; the call's answer replaces the failed one, in
//!   one piece.

use std::time::Duration;

use super::host::{Host, now_ms};
use super::{Course, Decision, Filter, Phase, Request, RequestCtx, Routed, set_header};
use crate::carry::location;
use crate::contract::{FAILED_STATUS_HEADER, FAILOVER_LOCATION_HEADER};
use crate::error::ApiError;
use crate::plan::Attempt;
use crate::protocol::{ANTHROPIC_VERSION, Protocol};
use crate::table::{Account, ModelIx, Table};
use crate::usage::FailedAttempt;

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

/// 429, 5xx (Anthropic's 529 included), Envoy's 503 for a connection failure
/// and 504 for a timeout: the next candidate may answer.
pub(super) fn is_failover_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// A failed attempt on `model` with the tenant's key, for the request's
/// usage record.
fn failed_attempt(
    table: &Table,
    tenant: Option<&Account>,
    model: ModelIx,
    status: u16,
) -> Option<FailedAttempt> {
    let m = table.model(model)?;
    Some(FailedAttempt {
        provider: m.provider.clone(),
        model: m.id.clone(),
        status,
        key_tag: table
            .provider_of(model)
            .and_then(|p| tenant?.key_tag(p))
            .map(str::to_owned),
    })
}

impl Course {
    /// The attempt on the model tried last failed with `status`.
    fn fail_last(
        &mut self,
        table: &Table,
        tenant: Option<&Account>,
        status: u16,
    ) -> Option<ModelIx> {
        let model = *self.plan.tried().last()?;
        self.failed
            .extend(failed_attempt(table, tenant, model, status));
        Some(model)
    }
}

/// Keeps the attempt's context and course for a redirected next attempt and
/// tells the upstream filter where to redirect.
pub(super) fn carry(filter: &Filter, host: &impl Host, ctx: &RequestCtx, routed: &mut Routed) {
    let Some(course) = routed.course.take() else {
        return;
    };
    let (token, swept) = filter.carries.put((ctx.clone(), course), now_ms(host));
    for record in &swept {
        filter.enqueue_usage(host, record);
    }
    set_header(
        host,
        FAILOVER_LOCATION_HEADER,
        Some(&location(ctx.protocol.path(), token)),
    );
    routed.carry_token = Some(token);
}

/// The headers of a redirected attempt: takes the carried state (a token
/// that finds none is refused), counts the failed attempt, and clears what
/// was sent to the failed provider.
pub(super) fn resume(
    req: &mut Request,
    host: &impl Host,
    token: Option<u128>,
    status: u16,
) -> Result<Course, ApiError> {
    let Some((ctx, mut course)) = token.and_then(|t| req.filter.carries.take(t)) else {
        return Err(ApiError::BadRequest(
            "This failover redirect is unknown or was already followed.".into(),
        ));
    };
    for name in ATTEMPT_HEADERS {
        set_header(host, name, None);
    }
    // The client's Anthropic headers, as they came.
    for (name, value) in [
        ("anthropic-version", &ctx.client.anthropic_version),
        ("anthropic-beta", &ctx.client.anthropic_beta),
    ] {
        if let Some(v) = value
            && let Err(e) = host.set_request_header(name, Some(v))
        {
            log::warn!("restoring {name} failed: {e:?}");
        }
    }
    req.filter.count(host, |m| m.failover_redirects, 1);
    if let Some(table) = &ctx.table
        && let Some(m) = course.fail_last(table, ctx.account.as_deref(), status)
    {
        req.filter
            .record_outcome(host, table, ctx.account.as_deref(), m, status);
    }
    course.failed_over_from = course
        .failed_over_from
        .or_else(|| course.plan.tried().first().copied());
    req.ctx = RequestCtx {
        // The redirected request's own client headers are the ones sent to
        // the failed provider; its key headers were just removed.
        client: super::ClientHeaders {
            authorization: false,
            api_key: false,
            ..ctx.client.clone()
        },
        ..ctx
    };
    Ok(course)
}

/// The attempt's answer (`status`) arrived at its own request, so no
/// redirect followed: the carried course comes back. Returns the provider's
/// status when the answer is the upstream filter's redirect that Envoy did
/// not follow (no `internal_redirect_policy`, or its limit reached).
pub(super) fn reclaim(
    filter: &Filter,
    host: &impl Host,
    r: &mut Routed,
    status: u16,
) -> Option<u16> {
    let token = r.carry_token.take()?;
    let (_, course) = filter.carries.take(token)?;
    r.course = Some(course);
    if status != 307 {
        return None;
    }
    let failed = host.response_header(FAILED_STATUS_HEADER)?;
    let failed = std::str::from_utf8(&failed).ok()?.parse::<u16>().ok()?;
    filter.count(host, |m| m.failover_unfollowed, 1);
    for name in ["location", FAILED_STATUS_HEADER] {
        let _ = host.set_response_header(name, None);
    }
    Some(failed)
}

impl Request {
    /// The attempt in flight failed before any byte reached the client: call
    /// the next candidate. False when there is none left (then the failure
    /// goes to the client).
    pub(super) fn try_next(&mut self, host: &impl Host, status: u16) -> bool {
        let (Some(table), Some(tenant)) = (self.ctx.table.clone(), self.ctx.account.clone()) else {
            return false;
        };
        let max_attempts = self.max_attempts();
        let timeout = self.filter.config.attempt_timeout_ms;
        let Phase::Routed(r) = &mut self.phase else {
            return false;
        };
        let Some(course) = &mut r.course else {
            return false;
        };
        course.fail_last(&table, Some(&tenant), status);
        while let Some(next) = course.plan.next_attempt(&table, &tenant, max_attempts) {
            let Ok(attempt) = next else {
                continue;
            };
            match dispatch(host, &table, &tenant, &attempt, course.plan.body(), timeout) {
                Ok(token) => {
                    r.pending_call = Some((token, attempt.model));
                    return true;
                }
                Err(e) => {
                    log::warn!("failover call to model {} not sent: {e}", attempt.model.0);
                    course
                        .failed
                        .extend(failed_attempt(&table, Some(&tenant), attempt.model, 503));
                }
            }
        }
        false
    }

    /// Every candidate failed. The request's record is the last attempt's
    /// (with the status the client gets); the attempts before it are its
    /// failed attempts.
    pub(super) fn give_up(&mut self) -> ApiError {
        let table = self.ctx.table.clone();
        let Phase::Routed(r) = &mut self.phase else {
            return all_failed(&[]);
        };
        let Some(course) = &mut r.course else {
            return all_failed(&[]);
        };
        let e = all_failed(&course.failed);
        r.meter.set_status(e.status() as u16);
        course.failed.pop();
        if let Some(&model) = course.plan.tried().last()
            && let Some(provider) = table.as_ref().and_then(|t| t.provider_of(model))
        {
            r.decision.model = model;
            r.decision.provider = provider;
        }
        e
    }
}

/// Every candidate failed: one error naming each attempt.
fn all_failed(failed: &[FailedAttempt]) -> ApiError {
    let what: Vec<String> = failed
        .iter()
        .map(|a| {
            let how = match a.status {
                504 => "timed out".to_owned(),
                0 => "could not be reached".to_owned(),
                s => format!("answered HTTP {s}"),
            };
            format!("{} ({}) {how}", a.model, a.provider)
        })
        .collect();
    let status = if failed.iter().all(|a| a.status == 504) {
        504
    } else if failed
        .iter()
        .any(|a| matches!(a.status, 429 | 503 | 529 | 0))
    {
        503
    } else {
        502
    };
    ApiError::Upstream {
        status,
        message: format!(
            "No provider could answer this request: {}. Retry later, or name another model.",
            what.join("; ")
        ),
    }
}

/// A failover call answered (or failed).
pub(super) fn on_call(req: &mut Request, host: &impl Host, token: u32, body_size: usize) {
    let Phase::Routed(r) = &mut req.phase else {
        return;
    };
    let Some((expected, model)) = r.pending_call else {
        return;
    };
    if token != expected {
        return;
    }
    r.pending_call = None;
    let status = host
        .call_response_header(":status")
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
        .unwrap_or(503);
    req.note_outcome(host, model, status);
    if is_failover_status(status) {
        if req.try_next(host, status) {
            return;
        }
        // The last candidate failed too (`try_next` noted it).
        let e = req.give_up();
        req.fail(host, &e);
        return;
    }
    let Some(table) = req.ctx.table.clone() else {
        return;
    };
    let body = host.call_response_body(body_size);
    let content_type = host
        .call_response_header("content-type")
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| "application/json".to_owned());
    let (Some(m), Some(provider)) = (table.model(model), table.provider_of(model)) else {
        return;
    };
    let Some(p) = table.provider(provider) else {
        return;
    };
    let (start, client, now) = (req.ctx.start, req.ctx.protocol, host.now());
    let Phase::Routed(r) = &mut req.phase else {
        return;
    };
    let Some(course) = &r.course else {
        return;
    };
    let plan = &course.plan;
    let wire = plan.wire_for(m, p);
    // The answer is now this model's: its usage, its translation. (Its
    // cache status stays: a failover answer is not stored.)
    r.decision = Decision {
        model,
        provider,
        failed_over_from: r.decision.failed_over_from.or(Some(r.decision.model)),
        dropped: plan.dropped_for(m, wire),
        ..r.decision
    };
    let (mut meter, reshape) = super::reading(start, client, plan, &m.id, wire);
    meter.set_status(status);
    meter.on_body(&body, true, now);
    r.meter = meter;
    r.reshape = reshape;
    let (status, out) = r.reshape.whole(status, &body);
    let content_type = match r.reshape.content_type() {
        Some(ours) if status < 400 => ours.to_owned(),
        _ => content_type,
    };
    req.reply(host, u32::from(status), &out, &content_type);
}

/// Sends a failover attempt to its provider. The call is built from
/// scratch, so an Anthropic client's own version header is not carried over:
/// it gets the stable default.
fn dispatch(
    host: &impl Host,
    table: &Table,
    tenant: &crate::table::Account,
    attempt: &Attempt,
    client_body: &[u8],
    timeout_ms: u64,
) -> Result<u32, String> {
    let p = table.provider(attempt.provider).ok_or("unknown provider")?;
    let auth = tenant
        .auth_value(attempt.provider)
        .ok_or("no provider key")?;
    let upstream = attempt.upstream.bytes(client_body);
    let path = super::upstream_path(p, attempt.wire);
    let mut headers = vec![
        (":method", "POST"),
        (":path", path.as_ref()),
        (":authority", p.authority.as_str()),
        ("content-type", "application/json"),
        (p.auth.header(), auth),
    ];
    if p.wire == Protocol::Messages {
        headers.push(("anthropic-version", ANTHROPIC_VERSION));
    }
    host.dispatch(
        &p.cluster,
        &headers,
        &upstream,
        Duration::from_millis(timeout_ms),
    )
    .map_err(|e| format!("{e:?}"))
}
