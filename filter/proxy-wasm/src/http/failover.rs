//! Failover inside one request (SPEC §10): when the chosen model fails
//! before any byte reached the client, the next candidate ranked for the
//! same request is called with `dispatch_http_call` (ENVOY-NOTES 15) and its
//! answer replaces the failed one. Every attempt's outcome moves that model's
//! penalty.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::Http;
use crate::meter::Meter;
use aipipe_core::error::ApiError;
use aipipe_core::request::ChatRequest;
use aipipe_core::reshape::{Reshape, Shape};
use aipipe_core::route::{self, Dialect, Routed};
use aipipe_core::table::{Table, Wire};
use aipipe_core::usage::FailedAttempt;

/// What a failover needs: the client's body (each candidate gets its own
/// translation of it) and what was tried.
pub(super) struct Failover {
    pub(super) body: Vec<u8>,
    pub(super) stream: bool,
    /// The OpenAI client asked for its stream's usage chunk.
    pub(super) include_usage: bool,
    /// Models tried so far, the first included.
    pub(super) tried: Vec<usize>,
    pub(super) failed: Vec<FailedAttempt>,
    /// A failover call is in flight.
    pub(super) pending: Option<(u32, usize)>,
}

impl Failover {
    /// The attempt on `model` failed with `status`: one of the request's
    /// failed attempts.
    fn fail(&mut self, table: &Table, model: usize, status: u16) {
        self.failed.extend(failed_attempt(table, model, status));
    }

    /// The attempt on the model tried last failed; returns that model.
    pub(super) fn fail_last(&mut self, table: &Table, status: u16) -> Option<usize> {
        let model = *self.tried.last()?;
        self.fail(table, model, status);
        Some(model)
    }
}

impl Http {
    /// The chosen model failed before any byte reached the client: hand the
    /// request to the next candidate. False when there is none left (then
    /// the failure goes to the client).
    pub(super) fn try_next(&mut self, status: u16) -> bool {
        let (Some(shared), Some(table)) = (self.shared.clone(), self.table.clone()) else {
            return false;
        };
        let Some(f) = &mut self.failover else {
            return false;
        };
        f.fail_last(&table, status);
        let max_attempts = shared.max_attempts as usize;
        let penalties = shared.local_penalties(&table);
        while f.tried.len() < max_attempts {
            let Some(routed) = next_candidate(
                f,
                &table,
                self.tenant,
                self.dialect,
                penalties.as_deref(),
                max_attempts,
            ) else {
                break;
            };
            match dispatch(
                &table,
                self.tenant,
                &routed,
                &f.body,
                shared.attempt_timeout_ms,
            ) {
                Ok(token) => {
                    f.pending = Some((token, routed.model));
                    return true;
                }
                Err(e) => {
                    log::warn!("failover call to model {} not sent: {e}", routed.model);
                    f.fail(&table, routed.model, 503);
                }
            }
        }
        false
    }

    /// Every candidate failed. The request's record is the last attempt's
    /// (with the status the client gets); the attempts before it are its
    /// failed attempts.
    pub(super) fn give_up(&mut self) -> ApiError {
        let e = self.all_failed();
        if let Some(meter) = &mut self.meter {
            meter.set_status(e.status() as u16);
        }
        let last = self.failover.as_mut().and_then(|f| {
            f.failed.pop();
            f.tried.last().copied()
        });
        if let (Some(model), Some(table), Some(d)) = (last, &self.table, &mut self.decision)
            && let Some(&provider) = table.model_provider.get(model)
        {
            d.model = Some(model);
            d.provider = provider;
        }
        e
    }

    /// Every candidate failed: one error naming each attempt.
    pub(super) fn all_failed(&self) -> ApiError {
        let failed = self
            .failover
            .as_ref()
            .map(|f| f.failed.as_slice())
            .unwrap_or_default();
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
    pub(super) fn on_call(&mut self, token: u32, body_size: usize) {
        let Some((expected, model)) = self.failover.as_ref().and_then(|f| f.pending) else {
            return;
        };
        if token != expected {
            return;
        }
        if let Some(f) = &mut self.failover {
            f.pending = None;
        }
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
            .unwrap_or(503);
        self.note_outcome(Some(model), status);
        if is_failover_status(status) && self.try_next(status) {
            return;
        }
        let Some(table) = self.table.clone() else {
            return;
        };
        if is_failover_status(status) {
            // The last candidate failed too (`try_next` noted it).
            let e = self.give_up();
            self.fail(&e);
            return;
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let content_type =
            hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, "content-type")
                .ok()
                .flatten()
                .and_then(|v| String::from_utf8(v).ok())
                .unwrap_or_else(|| "application/json".to_owned());
        let (Some(m), Some(&provider)) = (table.models.get(model), table.model_provider.get(model))
        else {
            return;
        };
        let Some(p) = table.providers.get(provider) else {
            return;
        };
        // The answer is now this model's: its usage, its translation. (Its
        // cache status stays: a failover answer is not stored.)
        if let Some(d) = &mut self.decision {
            d.failed_over_from = d.failed_over_from.or(d.model);
            d.model = Some(model);
            d.provider = provider;
        }
        let (stream, include_usage) = self
            .failover
            .as_ref()
            .map_or((false, false), |f| (f.stream, f.include_usage));
        if let Some(start) = self.start {
            let c = self.meter.as_ref().and_then(|m| m.complexity);
            let mut meter = Meter::new(start, stream, c);
            meter.set_status(status);
            meter.on_body(&body, true);
            self.meter = Some(meter);
        }
        self.reshape = Reshape::new(Shape {
            dialect: self.dialect,
            wire: p.wire,
            stream,
            include_usage,
            hide_usage: stream && !include_usage && !p.always_streams_usage,
            model: &m.id,
            created: self.created(),
        });
        let (status, out) = self.reshape.whole(status, &body);
        self.reply(u32::from(status), &out, &content_type);
    }

    /// An attempt on `model` (None: the routed one) ended with `status`:
    /// its penalty and metrics. Pass-through answers say nothing about a
    /// catalog model's health.
    pub(super) fn note_outcome(&self, model: Option<usize>, status: u16) {
        let (Some(shared), Some(table), Some(d)) = (&self.shared, &self.table, &self.decision)
        else {
            return;
        };
        let Some(m) = model.or(d.model).and_then(|m| table.models.get(m)) else {
            return;
        };
        shared.record_outcome(table, &m.id, status);
    }
}

/// 429, 5xx (Anthropic's 529 included), Envoy's 503 for a connection failure
/// and 504 for a timeout: the next candidate may answer.
pub(super) fn is_failover_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// The next candidate for a failed request, best first, with its
/// translation of the client's body; None when there is none left within
/// `max_attempts`. Candidates it passes over (no provider key, the body does
/// not translate for them) count as tried.
pub(super) fn next_candidate<'t>(
    f: &mut Failover,
    table: &'t Table,
    tenant: usize,
    dialect: Dialect,
    penalties: Option<&[f64]>,
    max_attempts: usize,
) -> Option<Routed<'t>> {
    let chat = route::as_chat(dialect, &f.body).ok()?;
    let req = ChatRequest::parse(&chat).ok()?;
    for model in route::fallbacks(table, tenant, &req, &f.tried, penalties) {
        if f.tried.len() >= max_attempts {
            break;
        }
        f.tried.push(model);
        if let Ok(routed) =
            route::to_model(table, tenant, dialect, &f.body, &req, &chat, model, None)
        {
            return Some(routed);
        }
    }
    None
}

/// A failed attempt on `model`, for the request's usage record.
fn failed_attempt(table: &Table, model: usize, status: u16) -> Option<FailedAttempt> {
    let m = table.models.get(model)?;
    Some(FailedAttempt {
        provider: m.provider.clone(),
        model: m.id.clone(),
        status,
    })
}

/// Sends a failover attempt to `routed`'s provider. The call is built from
/// scratch, so an Anthropic client's own version header is not carried over:
/// it gets the stable default.
fn dispatch(
    table: &Table,
    tenant: usize,
    routed: &Routed<'_>,
    body: &[u8],
    timeout_ms: u64,
) -> Result<u32, String> {
    let p = table
        .providers
        .get(routed.provider)
        .ok_or("unknown provider")?;
    let auth = table
        .auth_value(tenant, routed.provider)
        .ok_or("no provider key")?;
    let upstream = routed.upstream.bytes(body);
    let mut headers = vec![
        (":method", "POST"),
        (":path", p.chat_path.as_str()),
        (":authority", p.authority.as_str()),
        ("content-type", "application/json"),
        (p.auth.header(), auth),
    ];
    if p.wire == Wire::Anthropic {
        headers.push(("anthropic-version", super::ANTHROPIC_VERSION));
    }
    hostcalls::dispatch_http_call(
        &p.cluster,
        headers,
        Some(&upstream),
        Vec::new(),
        Duration::from_millis(timeout_ms),
    )
    .map_err(|s| format!("{s:?}"))
}
