//! The request flow: one HTTP request through the filter, from its headers
//! to its usage record, as a state machine over explicit phases — headers,
//! awaiting the body, a routed attempt, pass-through, replied.
//!
//! - Headers: authenticate, strip internal headers, check the declared size,
//!   and either wait for the body (routed paths), answer at once
//!   (`GET /v1/models`) or send a pass-through request on its way.
//! - Body: plan the request once (`plan`), look it up in the answer cache,
//!   and send the first attempt: routing headers, the provider's key, the
//!   provider's body.
//! - Answer: say which model answered, reshape the answer for the client's
//!   protocol, fail over to the next candidate when the chosen one failed
//!   before any byte reached the client (by Envoy's internal redirect, or by
//!   a call of its own: `failover`), store a cacheable answer, and meter it.
//! - Log: the request's one usage record goes to the usage queue.
//!
//! Everything the flow needs from the proxy goes through [`Host`]; a host
//! maps its callbacks onto [`Request`]'s `on_*` methods and does nothing
//! else. The tests run the flow on a fake host.

pub mod batch;
mod budget;
mod cache;
mod failover;
mod filter;
pub mod genai;
pub mod host;
mod meter;
mod ratelimit;
mod singleton;

/// The in-memory host: the flow's tests, and `flow-bench` (feature `fake`).
#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;

use crate::contract::{
    CLIENT_FEEDBACK_PATH, CLIENT_USAGE_PATH, RATELIMIT_ERROR_DETAILS, RATELIMIT_OVER_LIMIT_DETAILS,
    RL_KEY_HEADER, RL_TENANT_HEADER, TENANT_FEEDBACK_PATH, TENANT_USAGE_PATH,
};
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::{Key, cache_control_bypass};
use crate::carry;
use crate::error::ApiError;
use crate::plan::{Attempt, Plan, Upstream};
use crate::protocol::ollama;
use crate::protocol::{
    ANTHROPIC_VERSION, MODELS_PATH, OLLAMA_TAGS_PATH, OLLAMA_VERSION_PATH, Protocol,
};
use crate::reshape::{Reshape, Shape};
use crate::route;
use crate::table::{Account, ModelIx, ProviderIx, Table};
use crate::usage::FailedAttempt;

pub use filter::Filter;
pub use host::{Host, HostError, MetricKind};
use meter::{Answered, Meter};
pub use singleton::Singleton;

/// What a callback tells the host to do with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the headers or data go on.
    Continue,
    /// Hold them (buffer the body, wait for a call, or a local reply ended
    /// the request).
    Pause,
}

/// What the request keeps from start to end, whichever attempt is running:
/// moved whole to the next attempt when a failover redirect re-enters the
/// filter.
#[derive(Debug, Clone)]
struct RequestCtx {
    id: String,
    start: SystemTime,
    protocol: Protocol,
    /// The table this request started with: a newer one arriving mid-request
    /// must not shift the indices it holds.
    table: Option<Rc<Table>>,
    /// The tenant, once authenticated (resolved against `table`).
    account: Option<Arc<Account>>,
    client: ClientHeaders,
    /// What the request reserved of its tenant's and its virtual key's
    /// budgets (`budget`): settled by whoever writes its usage record,
    /// exactly once.
    reserved: budget::Reserved,
    /// The virtual key's own rate limits, when it has any.
    key_limits: Option<filter::KeyLimits>,
    /// The virtual key's id, when the directory named it (records carry
    /// it; its budget is found by it).
    key_id: Option<String>,
    /// Whether that key has a budget of its own.
    key_budgeted: bool,
    /// The rate-limit windows it was counted in, and where the tightest
    /// stands (its `x-ratelimit-*` headers).
    rate: Vec<ratelimit::Admitted>,
    standing: Option<crate::ratelimit::Standing>,
    /// The router's features of an auto request whose tenant learns from
    /// feedback, in standard base64, for its usage record.
    router_features: Option<String>,
}

impl RequestCtx {
    /// The virtual key whose own budget this request reserves against.
    fn budgeted_key(&self) -> Option<&str> {
        self.key_id.as_deref().filter(|_| self.key_budgeted)
    }

    /// What every record of this request says about its virtual key and
    /// its budget reservations.
    fn mark(&self, record: &mut crate::usage::UsageRecord) {
        record.reserved_nusd = self.reserved.tenant;
        record.key_reserved_nusd = self.reserved.key;
        record.virtual_key.clone_from(&self.key_id);
        record.router_features.clone_from(&self.router_features);
    }
}

/// What the client's headers said that later phases need.
#[derive(Debug, Clone, Default)]
struct ClientHeaders {
    authorization: bool,
    api_key: bool,
    /// An Anthropic client's own `anthropic-version` / `anthropic-beta`:
    /// kept for Anthropic providers, dropped for others.
    anthropic_version: Option<Vec<u8>>,
    anthropic_beta: Option<Vec<u8>>,
    /// `Cache-Control: no-cache` / `no-store`.
    no_cache: bool,
}

/// A request's course across its attempts: the plan and what failed so far.
#[derive(Debug)]
struct Course {
    plan: Plan,
    failed: Vec<FailedAttempt>,
    /// `x-aipipe-cache` of the first attempt.
    cache: Option<&'static str>,
    /// The first model that failed.
    failed_over_from: Option<ModelIx>,
}

/// What a failover redirect carries to the next attempt.
type Carried = (RequestCtx, Course);

/// Who answers, as table indices (names are read when needed).
#[derive(Debug, Clone, Copy)]
struct Decision {
    model: ModelIx,
    provider: ProviderIx,
    complexity: Option<f64>,
    failed_over_from: Option<ModelIx>,
    cache: Option<&'static str>,
    /// What the client set that this model's body went without
    /// (`x-aipipe-dropped-params`).
    dropped: crate::request::Dropped,
}

/// A routed request's answer in progress.
struct Routed {
    /// None while carried for a failover redirect (see `failover`).
    course: Option<Course>,
    /// The token the course is carried under.
    carry_token: Option<u128>,
    decision: Decision,
    meter: Meter,
    reshape: Reshape,
    /// A cache miss: the key its answer is stored under.
    cache_key: Option<Key>,
    /// A failover call in flight: its token and model.
    pending_call: Option<(u32, ModelIx)>,
    /// The answer is an error being buffered to be rewritten in one piece.
    buffering_error: bool,
}

/// A provider path forwarded as it is.
struct PassThrough {
    provider: ProviderIx,
    meter: Meter,
    /// A JSON body is held until whole to check the model it names
    /// against the catalog (a disabled model is refused); false once checked.
    check_model: bool,
    /// The catalog model the checked body named, if any.
    asked: Option<ModelIx>,
}

enum Phase {
    /// Nothing decided yet.
    Headers,
    /// Routed once the whole body is here; a redirected attempt brings its
    /// course.
    AwaitingBody(Option<Box<Course>>),
    /// An attempt was sent upstream; its answer is awaited or passing.
    Routed(Box<Routed>),
    PassThrough(Box<PassThrough>),
    /// Sent on to the control plane (`GET /usage`, `POST /v1/feedback`):
    /// its body streams on untouched, and it makes no usage record.
    ToControlPlane,
    /// Answered by the filter; the routed state its usage record is made
    /// of, if it was routed.
    Replied(Option<Box<Routed>>),
}

/// What the headers phase decided.
enum Next {
    Body,
    /// Answer now with this JSON.
    Answer(String),
    Passed,
}

/// One HTTP request through the filter.
pub struct Request {
    filter: Rc<Filter>,
    ctx: RequestCtx,
    phase: Phase,
}

impl Request {
    fn new(filter: Rc<Filter>) -> Self {
        Self {
            filter,
            ctx: RequestCtx {
                id: String::new(),
                start: std::time::UNIX_EPOCH,
                protocol: Protocol::Chat,
                table: None,
                account: None,
                client: ClientHeaders::default(),
                reserved: Default::default(),
                key_id: None,
                key_budgeted: false,
                key_limits: None,
                rate: Vec::new(),
                standing: None,
                router_features: None,
            },
            phase: Phase::Headers,
        }
    }

    pub fn on_request_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Action {
        match self.headers(host, end_of_stream) {
            // Hold the headers until the whole body is here: routing reads
            // it, and routing headers can only change while they are held.
            Ok(Next::Body) => Action::Pause,
            // Answered by the filter itself (GET /v1/models).
            Ok(Next::Answer(json)) => self.reply(host, 200, json.as_bytes(), "application/json"),
            // Pass-through: headers are rewritten, the body streams as is.
            Ok(Next::Passed) => Action::Continue,
            Err(e) => self.fail(host, &e),
        }
    }

    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Action {
        let course = match &mut self.phase {
            Phase::AwaitingBody(course) => course.take(),
            Phase::PassThrough(pt) if pt.check_model => {
                if size > self.filter.config.max_body_bytes {
                    // Too large to hold: it streams on unchecked.
                    pt.check_model = false;
                    return Action::Continue;
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                pt.check_model = false;
                let provider = pt.provider;
                return match self.check_pass_through_model(host, provider, size) {
                    Ok(asked) => {
                        if let Phase::PassThrough(pt) = &mut self.phase {
                            pt.asked = asked;
                        }
                        Action::Continue
                    }
                    Err((e, wire)) => {
                        let body = if wire == Protocol::Messages {
                            e.anthropic_body()
                        } else {
                            e.body()
                        };
                        self.reply(host, e.status(), body.as_bytes(), "application/json")
                    }
                };
            }
            // Pass-through: the body streams on untouched.
            Phase::PassThrough(_) | Phase::ToControlPlane => return Action::Continue,
            // Answered locally already, or nothing to do with a body.
            Phase::Replied(_) | Phase::Headers => return Action::Pause,
            Phase::Routed(_) => return Action::Continue,
        };
        let limit = self.filter.config.max_body_bytes;
        if size > limit {
            return self.fail(host, &ApiError::BodyTooLarge { limit });
        }
        if !end_of_stream {
            // Keep buffering until the body is complete.
            self.phase = Phase::AwaitingBody(course);
            return Action::Pause;
        }
        let routed = match course {
            Some(course) => self.next_attempt(host, *course, size),
            None => self.route(host, size),
        };
        match routed {
            // Routed: headers and body are rewritten, let Envoy send them.
            Ok(()) => Action::Continue,
            Err(e) => self.fail(host, &e),
        }
    }

    pub fn on_response_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Action {
        if !matches!(self.phase, Phase::Routed(_) | Phase::PassThrough(_)) {
            // Our own local reply already carries its headers.
            return Action::Continue;
        }
        let status = response_status(host);
        // Envoy's rate-limit filter refuses with 400 or more (it takes 429
        // for a `rate_limited_status` below 400) and, when the service
        // fails and it denies, with `status_on_error` (500 unless set; an
        // error status is the only sensible one): a success never needs
        // the reply's details read.
        if status >= 400
            && let Some(e) = fleet_refusal(host)
        {
            // Envoy's rate-limit filter refused the request before any
            // provider saw it: no failover, no usage record; the client
            // gets the project's error in its own protocol.
            let wire = match &self.phase {
                Phase::PassThrough(pt) => self
                    .ctx
                    .table
                    .as_ref()
                    .and_then(|t| t.provider(pt.provider))
                    .map(|p| p.wire),
                _ => None,
            };
            self.phase = Phase::Replied(None);
            if wire == Some(Protocol::Messages) {
                self.ctx.protocol = Protocol::Messages;
            }
            return self.fail(host, &e);
        }
        let r = match &mut self.phase {
            Phase::Routed(r) => r,
            Phase::PassThrough(p) => {
                p.meter.set_status(status);
                p.meter.stream = host
                    .response_header("content-type")
                    .is_some_and(|v| v.starts_with(b"text/event-stream"));
                let provider = p.provider;
                self.say_who_answered(host, None, Some(provider));
                // The answer streams on as the provider sent it.
                return Action::Continue;
            }
            _ => return Action::Continue,
        };
        r.meter.set_status(status);
        // The carried state comes back: no redirect followed. A failover
        // redirect Envoy did not follow is the provider's failure.
        let status = match failover::reclaim(&self.filter, host, r, status) {
            Some(failed) => {
                r.meter.set_status(failed);
                failed
            }
            None => status,
        };
        let model = r.decision.model;
        self.note_outcome(host, model, status);
        if failover::is_failover_status(status) && self.max_attempts() > 1 {
            if self.try_next(host, status) {
                // The next candidate answers instead; hold this answer back.
                return Action::Pause;
            }
            // The last candidate failed too: one error naming every attempt.
            let e = self.give_up();
            return self.fail(host, &e);
        }
        let Phase::Routed(r) = &mut self.phase else {
            return Action::Continue;
        };
        let decision = r.decision;
        if r.reshape.changes_body() {
            // The body changes length: Envoy sends it chunked instead.
            let _ = host.set_response_header("content-length", None);
            if status < 400
                && let Some(content_type) = r.reshape.content_type()
            {
                let _ = host.set_response_header("content-type", Some(content_type));
            }
            if status >= 400 && !end_of_stream {
                // An error is rewritten in one piece, status included: hold
                // the headers until the body is complete.
                r.buffering_error = true;
                return Action::Pause;
            }
        }
        self.say_who_answered(host, Some(decision), None);
        // Headers pass straight on; the body follows unbuffered.
        Action::Continue
    }

    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Action {
        let now = host.now();
        let r = match &mut self.phase {
            Phase::Routed(r) => r,
            Phase::PassThrough(p) => {
                let chunk = if size > 0 {
                    host.response_body(size)
                } else {
                    Vec::new()
                };
                p.meter.on_body(&chunk, end_of_stream, now);
                return Action::Continue;
            }
            _ => return Action::Continue,
        };
        if r.pending_call.is_some() {
            // A failover call is in flight; the failed answer goes nowhere.
            return Action::Pause;
        }
        if r.buffering_error || r.reshape.buffers() {
            if !end_of_stream {
                // The whole answer is translated in one piece.
                return Action::Pause;
            }
            let whole = host.response_body(size);
            r.meter.on_body(&whole, true, now);
            let (status, out) = r.reshape.whole(r.meter.status(), &whole);
            if r.buffering_error {
                r.meter.set_status(status);
                return self.reply(host, u32::from(status), &out, "application/json");
            }
            if let Err(e) = host.replace_response_body(size, &out) {
                log::warn!("cannot translate the answer: {e:?}");
            }
            if status == 200
                && let Some(key) = &r.cache_key
            {
                store_answer(&self.filter, &self.ctx, host, key, &out);
            }
            // The translated answer goes on.
            return Action::Continue;
        }
        let chunk = if size > 0 {
            host.response_body(size)
        } else {
            Vec::new()
        };
        r.meter.on_body(&chunk, end_of_stream, now);
        let status = r.meter.status();
        if end_of_stream
            && status == 200
            && let (Some(key), Some(answer)) = (&r.cache_key, r.meter.plain_body())
        {
            // Untranslated: the client got exactly the provider's bytes.
            store_answer(&self.filter, &self.ctx, host, key, answer);
        }
        if status < 400
            && let Some(out) = r.reshape.chunk(&chunk, end_of_stream)
            && let Err(e) = host.replace_response_body(size, &out)
        {
            log::warn!("cannot rewrite the answer: {e:?}");
        }
        // Stream every chunk (every complete event) to the client as it
        // arrives.
        Action::Continue
    }

    /// The answer to a call the flow dispatched (a failover attempt).
    pub fn on_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        failover::on_call(self, host, token, body_size);
    }

    /// The request is over: its usage record goes to the queue (and settles
    /// its budget reservation). A request that reserved and writes no
    /// record (it never went upstream) hands the reservation back.
    pub fn on_log(&mut self, host: &impl Host) {
        let reserved = self.ctx.reserved;
        if !self.log(host) {
            if let Some(tenant) = &self.ctx.account {
                let key = self.ctx.key_id.as_deref();
                budget::hand_back(host, &tenant.id, key, reserved);
            }
            // Nor did it use the tokens it reserved in the rate windows.
            ratelimit::settle(host, &self.ctx.rate, 0);
        }
    }

    /// Writes the request's record; false when it has none to write.
    fn log(&mut self, host: &impl Host) -> bool {
        let Some(table) = self.ctx.table.clone() else {
            return false;
        };
        let Some(tenant) = self.ctx.account.clone() else {
            return false;
        };
        let now = host.now();
        let (record, failed_over, cache, labels) = match &self.phase {
            Phase::Routed(r) | Phase::Replied(Some(r)) => {
                let d = r.decision;
                let (Some(m), Some(p)) = (table.model(d.model), table.provider(d.provider)) else {
                    return false;
                };
                let mut record = r.meter.record(
                    &self.ctx.id,
                    &tenant.id,
                    Answered {
                        provider: &p.id,
                        model_id: &m.id,
                        model: Some(m),
                        key_tag: tenant.key_tag(d.provider),
                    },
                    now,
                );
                self.ctx.mark(&mut record);
                match (&r.course, r.carry_token) {
                    (Some(course), _) => record.failed_attempts = course.failed.clone(),
                    (None, Some(token)) => {
                        // The state is carried: a redirected attempt takes it
                        // and writes the request's record, or, if none does
                        // (the client went away), this record (with the
                        // attempts that failed before) is the request's.
                        self.filter.carries.orphan(
                            token,
                            crate::flow::host::now_ms(host),
                            |(_, c)| crate::usage::UsageRecord {
                                failed_attempts: c.failed.clone(),
                                ..record
                            },
                        );
                        // Its record (and reservation) is the orphan's or
                        // the redirected attempt's.
                        return true;
                    }
                    (None, None) => {}
                }
                let asked = match r.course.as_ref().map(|c| c.plan.asked()) {
                    Some(None) => genai::AUTO,
                    Some(Some(ix)) => table.model(ix).map_or(genai::OTHER, |m| m.id.as_str()),
                    None => genai::OTHER,
                };
                let labels = (genai::CHAT, p.id.as_str(), asked, m.id.as_str());
                (record, d.failed_over_from.is_some(), d.cache, labels)
            }
            Phase::PassThrough(pt) => {
                let Some(p) = table.provider(pt.provider) else {
                    return false;
                };
                // Every pass-through call is recorded: priced when its answer
                // names a catalog model, else unpriced (usage not read, never
                // $0 as if free), under the name it gave or `-` (files,
                // batches and the like name none).
                let name = pt.meter.answer_model().unwrap_or_else(|| "-".to_owned());
                let model = table.model_for_answer(&p.id, &name);
                let mut record = pt.meter.record(
                    &self.ctx.id,
                    &tenant.id,
                    Answered {
                        provider: &p.id,
                        model_id: model.map_or(name.as_str(), |m| m.id.as_str()),
                        model,
                        key_tag: tenant.key_tag(pt.provider),
                    },
                    now,
                );
                self.ctx.mark(&mut record);
                let asked = pt
                    .asked
                    .and_then(|ix| table.model(ix))
                    .map_or(genai::OTHER, |m| m.id.as_str());
                let answered = model.map_or(genai::OTHER, |m| m.id.as_str());
                let labels = (genai::PASS_THROUGH, p.id.as_str(), asked, answered);
                (record, false, None, labels)
            }
            _ => return false,
        };
        if let Some(g) = &self.filter.genai {
            let (operation, provider, request_model, response_model) = labels;
            let labels = genai::Labels {
                operation,
                provider,
                request_model,
                response_model,
            };
            g.record(host, labels, &record);
        }
        let f = &self.filter;
        f.count(
            host,
            |m| m.usage_unparsed,
            u64::from(!record.usage_parsed && record.status < 400),
        );
        f.count(
            host,
            |m| m.attempts_failed,
            record.failed_attempts.len() as u64,
        );
        f.count(host, |m| m.failovers, u64::from(failed_over));
        match cache {
            Some("hit") => f.count(host, |m| m.cache_hits, 1),
            Some("miss") => f.count(host, |m| m.cache_misses, 1),
            Some("bypass") => f.count(host, |m| m.cache_bypasses, 1),
            _ => {}
        }
        if !self.ctx.rate.is_empty() {
            let used = record
                .prompt_tokens
                .saturating_add(record.completion_tokens);
            ratelimit::settle(host, &self.ctx.rate, used);
        }
        f.enqueue_usage(host, &record);
        true
    }

    // ---- the phases' work ---------------------------------------------------

    /// Counts the request in its tenant's and key's rate-limit windows
    /// (reserving `tokens`), or refuses it with 429 `rate_limited`.
    fn count_rate(
        &mut self,
        host: &impl Host,
        tenant: &Account,
        tokens: u64,
    ) -> Result<(), ApiError> {
        if tenant.limits.is_none() && self.ctx.key_limits.is_none() {
            return Ok(());
        }
        let (rate, standing) = ratelimit::admit(host, tenant, self.ctx.key_limits.as_ref(), tokens)
            .inspect_err(|_| self.filter.count(host, |m| m.rate_limited, 1))?;
        self.ctx.rate = rate;
        self.ctx.standing = standing;
        Ok(())
    }

    /// Counts a budget refusal (`aipipe.budget.refused`).
    fn count_refusal(&self, host: &impl Host, e: &ApiError) {
        if matches!(e, ApiError::BudgetExceeded { .. }) {
            self.filter.count(host, |m| m.budget_refused, 1);
        }
    }

    fn max_attempts(&self) -> usize {
        self.filter.config.max_attempts as usize
    }

    fn headers(&mut self, host: &impl Host, end_of_stream: bool) -> Result<Next, ApiError> {
        self.ctx.id = self.filter.request_id();
        self.ctx.start = host.now();
        let config = &self.filter.config;
        let (mut method, mut path, mut authorization, mut api_key) = (None, None, None, None);
        let mut tenant_header = None;
        let mut content_length = None;
        let mut json_body = false;
        let mut strip = Vec::new();
        let headers = host.request_headers();
        let client = &mut self.ctx.client;
        for (name, value) in &headers {
            match name.as_str() {
                ":method" => method = Some(value.as_slice()),
                ":path" => path = Some(value.as_slice()),
                "authorization" => {
                    client.authorization = true;
                    authorization = std::str::from_utf8(value).ok();
                }
                "x-api-key" => {
                    client.api_key = true;
                    api_key = std::str::from_utf8(value).ok();
                }
                "anthropic-version" => client.anthropic_version = Some(value.clone()),
                "anthropic-beta" => client.anthropic_beta = Some(value.clone()),
                "cache-control" => client.no_cache = cache_control_bypass(value),
                "content-type" => {
                    json_body = value.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"));
                }
                "content-length" => {
                    content_length = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<usize>().ok());
                }
                "x-tenant-id" => {
                    tenant_header = std::str::from_utf8(value).ok();
                    strip.push("x-tenant-id");
                }
                n if n.starts_with("x-aipipe-") || n == config.cluster_header => strip.push(n),
                _ => {}
            }
        }
        // Client-sent internal headers never reach routing or the upstream.
        for name in strip {
            let _ = host.set_request_header(name, None);
        }

        let full_path = path.unwrap_or_default();
        if let Some((token, status)) = carry::redirected(full_path) {
            // The attempt before this one failed and Envoy sent the request
            // round again.
            let course = failover::resume(self, host, token, status)?;
            self.phase = Phase::AwaitingBody(Some(Box::new(course)));
            return Ok(Next::Body);
        }
        let path = full_path.split(|&b| b == b'?').next().unwrap_or_default();
        enum Kind {
            Route(Protocol),
            Models,
            OllamaTags,
            OllamaVersion,
            Usage,
            Feedback,
            Pass(ProviderIx),
        }
        let start_ms = self
            .ctx
            .start
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let table = self.filter.table(host, start_ms).ok_or(ApiError::NoTable)?;
        let kind = if let Some(protocol) = Protocol::of_path(path) {
            self.ctx.protocol = protocol;
            Kind::Route(protocol)
        } else if path == MODELS_PATH.as_bytes() {
            Kind::Models
        } else if path == OLLAMA_TAGS_PATH.as_bytes() {
            Kind::OllamaTags
        } else if path == OLLAMA_VERSION_PATH.as_bytes() {
            Kind::OllamaVersion
        } else if path == CLIENT_USAGE_PATH.as_bytes() {
            Kind::Usage
        } else if path == CLIENT_FEEDBACK_PATH.as_bytes() {
            Kind::Feedback
        } else if let Some(p) = pass_through_provider(&table, path) {
            Kind::Pass(p)
        } else {
            return Err(ApiError::UnknownPath(
                String::from_utf8_lossy(path).into_owned(),
            ));
        };
        match (&kind, method) {
            (Kind::Route(_) | Kind::Feedback, Some(b"POST"))
            | (
                Kind::Models | Kind::OllamaTags | Kind::OllamaVersion | Kind::Usage,
                Some(b"GET" | b"HEAD"),
            )
            | (Kind::Pass(_), _) => {}
            (Kind::Models | Kind::OllamaTags | Kind::OllamaVersion | Kind::Usage, _) => {
                return Err(ApiError::BadRequest(format!(
                    "{} takes GET",
                    String::from_utf8_lossy(path)
                )));
            }
            (Kind::Route(p), _) => {
                return Err(ApiError::BadRequest(format!("{} takes POST", p.path())));
            }
            (Kind::Feedback, _) => {
                return Err(ApiError::BadRequest(format!(
                    "{CLIENT_FEEDBACK_PATH} takes POST"
                )));
            }
        }
        if let Kind::OllamaVersion = kind {
            // Clients ask before they send a key: the version is no secret.
            return Ok(Next::Answer(ollama::version()));
        }
        let filter = &self.filter;
        let account = match tenant_header.filter(|_| config.trust_tenant_header) {
            // Mesh mode: the trusted front named the tenant.
            Some(id) => route::tenant_by_id(id, |id| filter.account_by_id(host, &table, id))?,
            None => {
                let mut facts = filter::KeyFacts::default();
                let account =
                    route::authenticate(route::virtual_key(authorization, api_key), |h| {
                        let (account, f) = filter.account_by_key(host, &table, h)?;
                        facts = f;
                        Some(account)
                    })?;
                self.ctx.key_limits = facts.limits;
                self.ctx.key_id = facts.id;
                self.ctx.key_budgeted = facts.budgeted;
                account
            }
        };
        self.ctx.table = Some(table.clone());
        self.ctx.account = Some(account.clone());
        if let Kind::Route(_) | Kind::Pass(_) = kind {
            // Whose fleet-wide limits Envoy's rate-limit filter (after this
            // one) counts the request in: it reads the header when this
            // filter lets the headers go on. A failover redirect never gets
            // here (it returned above): one client request counts once.
            set_header(host, RL_TENANT_HEADER, Some(&account.id));
            if let Some(id) = &self.ctx.key_id {
                set_header(host, RL_KEY_HEADER, Some(id));
            }
        }
        match kind {
            Kind::Models => Ok(Next::Answer(route::models_list(&table, &account))),
            Kind::OllamaTags => Ok(Next::Answer(ollama::tags(&route::reachable_models(
                &table, &account,
            )))),
            Kind::OllamaVersion => Ok(Next::Answer(ollama::version())),
            Kind::Usage => {
                self.own_usage(host, full_path, authorization.or(api_key).is_some())?;
                Ok(Next::Passed)
            }
            Kind::Feedback => {
                if authorization.or(api_key).is_none() {
                    return Err(ApiError::BadRequest(format!(
                        "POST {CLIENT_FEEDBACK_PATH} needs your virtual key (Authorization: Bearer <key>)."
                    )));
                }
                self.send_to_control_plane(host, TENANT_FEEDBACK_PATH);
                Ok(Next::Passed)
            }
            Kind::Pass(_) if !account.pass_through => Err(ApiError::PassThroughDisabled),
            Kind::Pass(provider) => {
                // A JSON body is held (up to max_body_bytes) to check the
                // model it names; anything else streams on at once.
                let hold = method == Some(b"POST")
                    && json_body
                    && !end_of_stream
                    && content_length.is_none_or(|n| n <= config.max_body_bytes);
                self.pass_through(host, &table, &account, provider, full_path)?;
                if let (true, Phase::PassThrough(pt)) = (hold, &mut self.phase) {
                    pt.check_model = true;
                    return Ok(Next::Body);
                }
                Ok(Next::Passed)
            }
            Kind::Route(_) => {
                if content_length.is_some_and(|n| n > config.max_body_bytes) {
                    return Err(ApiError::BodyTooLarge {
                        limit: config.max_body_bytes,
                    });
                }
                if end_of_stream || content_length == Some(0) {
                    return Err(ApiError::BadRequest("request body is empty".into()));
                }
                self.phase = Phase::AwaitingBody(None);
                Ok(Next::Body)
            }
        }
    }

    /// `GET /usage?days=N`: sent on to the control plane with the client's
    /// virtual key, which the control plane checks again and answers for
    /// (contract: `TENANT_USAGE_PATH`). The tenant is already authenticated.
    fn own_usage(
        &mut self,
        host: &impl Host,
        full_path: &[u8],
        keyed: bool,
    ) -> Result<(), ApiError> {
        if !keyed {
            return Err(ApiError::BadRequest(
                "GET /usage needs your virtual key (Authorization: Bearer <key>).".into(),
            ));
        }
        let query = full_path
            .iter()
            .position(|&b| b == b'?')
            .and_then(|i| full_path.get(i + 1..))
            .unwrap_or_default();
        let mut days = 7u32;
        for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            match pair.strip_prefix(b"days=") {
                Some(v) => {
                    days = std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .filter(|d| (1..=366).contains(d))
                        .ok_or_else(|| {
                            ApiError::BadRequest(
                                "days: must be a whole number from 1 to 366".into(),
                            )
                        })?;
                }
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "GET /usage takes only ?days=N, got `{}`",
                        String::from_utf8_lossy(pair)
                    )));
                }
            }
        }
        self.send_to_control_plane(host, &format!("{TENANT_USAGE_PATH}?days={days}"));
        Ok(())
    }

    /// Sends the request on to `path` on the control plane's cluster, with
    /// the client's own headers (its virtual key, which the control plane
    /// checks again) and body.
    fn send_to_control_plane(&mut self, host: &impl Host, path: &str) {
        let config = &self.filter.config;
        set_header(
            host,
            &config.cluster_header,
            Some(&config.control_plane_cluster),
        );
        set_header(host, ":path", Some(path));
        set_header(host, ":authority", Some("aipipe-control-plane"));
        // Several replicas (control-plane/README.md, "Replicas"): one that is
        // gone refuses the connection, and Envoy tries another before the
        // client sees it. Only failures before a replica had the request:
        // it is never run twice.
        set_header(
            host,
            "x-envoy-retry-on",
            Some("connect-failure,refused-stream"),
        );
        set_header(host, "x-envoy-max-retries", Some("2"));
        if let Err(e) = host.clear_route_cache() {
            log::warn!("clear_route_cache failed: {e:?}");
        }
        self.phase = Phase::ToControlPlane;
    }

    /// A whole JSON pass-through body: the catalog model it names, if any,
    /// must not be one the operator disabled (a model the catalog does not
    /// know passes, and is recorded unpriced). The error comes in the
    /// provider's own shape.
    fn check_pass_through_model(
        &self,
        host: &impl Host,
        provider: ProviderIx,
        size: usize,
    ) -> Result<Option<ModelIx>, (ApiError, Protocol)> {
        let (Some(table), body) = (self.ctx.table.as_ref(), host.request_body(size)) else {
            return Ok(None);
        };
        let (Some(p), Some(name)) = (table.provider(provider), meter::model_named(&body)) else {
            return Ok(None);
        };
        match table.model_for_answer(&p.id, &name) {
            Some(m) if !m.enabled => {
                let dated = table
                    .resolve_model(&m.id)
                    .and_then(|ix| table.out_of_service(ix));
                let e = match dated {
                    Some(why) => ApiError::ModelOutOfService {
                        model: name,
                        why,
                        pass_through: true,
                    },
                    None => ApiError::ModelDisabled(name),
                };
                Err((e, p.wire))
            }
            Some(m) => Ok(table.resolve_model(&m.id)),
            None => Ok(None),
        }
    }

    /// `/<provider>/<rest>` → the provider's `<passthrough_base>/<rest>`,
    /// with the tenant's key, any method and body, streamed both ways.
    fn pass_through(
        &mut self,
        host: &impl Host,
        table: &Table,
        tenant: &Account,
        provider: ProviderIx,
        full_path: &[u8],
    ) -> Result<(), ApiError> {
        let p = table
            .provider(provider)
            .ok_or_else(|| ApiError::Internal("pass-through provider not in the table".into()))?;
        let key = tenant.provider_key(provider).ok_or_else(|| {
            ApiError::NoProviderKey(format!(
                "This tenant has no `{}` provider key for the pass-through path. Add one with POST /admin/tenants/{}/keys.",
                p.id, tenant.id
            ))
        })?;
        self.count_rate(host, tenant, 0)?;
        let budget = &self.filter.config.budget;
        let key_id = self.ctx.budgeted_key();
        self.ctx.reserved = budget::reserve(host, budget, table, &tenant.id, key_id, || {
            budget.pass_through_reserve_nusd()
        })
        .inspect_err(|e| self.count_refusal(host, e))?;
        let rest = full_path.get(p.id.len() + 1..).unwrap_or_default();
        let upstream_path = format!("{}{}", p.passthrough_base, String::from_utf8_lossy(rest));
        let auth = p.passthrough_auth.unwrap_or(p.auth);
        // The client's virtual key never reaches the provider.
        for h in ["authorization", "x-api-key", "x-goog-api-key"] {
            if h != auth.header() {
                set_header(host, h, None);
            }
        }
        set_header(host, auth.header(), Some(&auth.value(key)));
        if p.wire == Protocol::Messages && self.ctx.client.anthropic_version.is_none() {
            set_header(host, "anthropic-version", Some(ANTHROPIC_VERSION));
        }
        set_header(host, &self.filter.config.cluster_header, Some(&p.cluster));
        set_header(host, ":path", Some(&upstream_path));
        set_header(host, ":authority", Some(&p.authority));
        if let Err(e) = host.clear_route_cache() {
            log::warn!("clear_route_cache failed: {e:?}");
        }
        let mut meter = Meter::new(self.ctx.start, false, None);
        meter.read_answer_model();
        self.phase = Phase::PassThrough(Box::new(PassThrough {
            provider,
            meter,
            check_model: false,
            asked: None,
        }));
        log::debug!(
            "request {} pass-through to {} {}",
            self.ctx.id,
            p.id,
            upstream_path
        );
        Ok(())
    }

    /// The body is here: plan the request once, answer it from the cache or
    /// send the first attempt.
    fn route(&mut self, host: &impl Host, size: usize) -> Result<(), ApiError> {
        let table = self.table()?;
        let account = self.account()?;
        let body = host.request_body(size);
        let penalties = self.filter.local_penalties(host, &table, &account);
        let cache = self.filter.config.cache.enabled && !self.ctx.client.no_cache;
        let mut plan = Plan::new(
            &table,
            &account,
            self.ctx.protocol,
            body,
            penalties.as_deref(),
            cache,
        )?;
        if let Some(f) = plan.router_features.take() {
            use base64::Engine as _;
            self.ctx.router_features = Some(base64::engine::general_purpose::STANDARD.encode(f));
        }
        self.count_rate(
            host,
            &account,
            plan.input_tokens()
                .saturating_add(plan.max_tokens.unwrap_or(0)),
        )?;
        let budget = &self.filter.config.budget;
        let key = self.ctx.budgeted_key();
        self.ctx.reserved = budget::reserve(host, budget, &table, &account.id, key, || {
            // The worst any attempt this request may make can cost: a named
            // model's fallbacks included, when it may fail over.
            if self.max_attempts() > 1 {
                plan.rank_fallbacks(&table, &account);
            }
            plan.candidates(self.max_attempts())
                .iter()
                .filter_map(|&m| table.model(m))
                .map(|m| crate::budget::worst_case_nusd(m, plan.input_tokens(), plan.max_tokens))
                .max()
                .unwrap_or(0)
        })
        .inspect_err(|e| self.count_refusal(host, e))?;
        let attempt = match plan.next_attempt(&table, &account, self.max_attempts()) {
            Some(a) => a?,
            None => return Err(ApiError::Internal("a plan without candidates".into())),
        };
        let lookup = cache::lookup(&self.filter, host, &self.ctx, &table, &plan, &attempt);
        let complexity = plan.complexity();
        let decision = Decision {
            model: attempt.model,
            provider: attempt.provider,
            complexity,
            failed_over_from: None,
            cache: Some(lookup.header()),
            dropped: attempt.dropped,
        };
        let course = Course {
            plan,
            failed: Vec::new(),
            cache: decision.cache,
            failed_over_from: None,
        };
        if let cache::Lookup::Hit {
            answer,
            content_type,
        } = lookup
        {
            // A hit: answered here, nothing goes upstream.
            let mut meter = Meter::new(self.ctx.start, false, complexity);
            meter.served_from_cache(host.now());
            self.phase = Phase::Routed(Box::new(Routed {
                course: Some(course),
                carry_token: None,
                decision,
                meter,
                reshape: Reshape::none(),
                cache_key: None,
                pending_call: None,
                buffering_error: false,
            }));
            self.reply(host, 200, &answer, &content_type);
            return Ok(());
        }
        let length = match &attempt.upstream {
            Upstream::Edit(edit) => {
                if host
                    .splice_request_body(0, edit.drain, &edit.prefix)
                    .is_ok()
                {
                    edit.new_len(size)
                } else {
                    size
                }
            }
            Upstream::Whole(whole) => {
                host.splice_request_body(0, size, whole).map_err(|e| {
                    ApiError::Internal(format!("cannot replace the request body: {e:?}"))
                })?;
                whole.len()
            }
        };
        let cache_key = lookup.key();
        self.forward(host, &table, course, &attempt, decision, length, cache_key)
    }

    /// A redirected attempt's body phase: the router replayed the body sent
    /// to the failed provider; the next candidate gets its own body instead.
    fn next_attempt(
        &mut self,
        host: &impl Host,
        mut course: Course,
        size: usize,
    ) -> Result<(), ApiError> {
        let table = self.table()?;
        let account = self.account()?;
        let next = course
            .plan
            .next_attempt(&table, &account, self.max_attempts());
        let Some(Ok(attempt)) = next else {
            // Nothing left to try: one error naming every attempt, recorded
            // as the last one's.
            let last = course.plan.tried().last().copied();
            let (Some(model), Some(provider)) = (last, last.and_then(|m| table.provider_of(m)))
            else {
                return Err(ApiError::Internal(
                    "a redirected request tried nothing".into(),
                ));
            };
            self.phase = Phase::Routed(Box::new(Routed {
                decision: Decision {
                    model,
                    provider,
                    complexity: course.plan.complexity(),
                    failed_over_from: course.failed_over_from,
                    cache: course.cache,
                    dropped: Default::default(),
                },
                meter: Meter::for_plan(self.ctx.start, &course.plan),
                course: Some(course),
                carry_token: None,
                reshape: Reshape::none(),
                cache_key: None,
                pending_call: None,
                buffering_error: false,
            }));
            return Err(self.give_up());
        };
        let upstream = attempt.upstream.bytes(course.plan.body());
        host.splice_request_body(0, size, &upstream).map_err(|e| {
            ApiError::Internal(format!("cannot replace the redirected request body: {e:?}"))
        })?;
        let decision = Decision {
            model: attempt.model,
            provider: attempt.provider,
            complexity: course.plan.complexity(),
            failed_over_from: course.failed_over_from,
            cache: course.cache,
            dropped: attempt.dropped,
        };
        self.forward(
            host,
            &table,
            course,
            &attempt,
            decision,
            upstream.len(),
            None,
        )
    }

    /// Sends the attempt on: the routing headers, the provider's key, and
    /// how its answer is read and reshaped. The body is already in place
    /// (`length` bytes).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        host: &impl Host,
        table: &Rc<Table>,
        course: Course,
        attempt: &Attempt,
        decision: Decision,
        length: usize,
        cache_key: Option<Key>,
    ) -> Result<(), ApiError> {
        let (Some(model), Some(provider)) =
            (table.model(attempt.model), table.provider(attempt.provider))
        else {
            return Err(ApiError::Internal(
                "an attempt's model is not in the table".into(),
            ));
        };
        let config = &self.filter.config;
        let client = &self.ctx.client;
        // A stale length truncates the body upstream (envoy/README.md).
        set_header(host, "content-length", Some(&length.to_string()));
        set_header(host, &config.cluster_header, Some(&provider.cluster));
        set_header(host, ":path", Some(&upstream_path(provider, attempt.wire)));
        set_header(host, ":authority", Some(&provider.authority));
        let header = provider.auth.header();
        let auth = self
            .ctx
            .account
            .as_ref()
            .and_then(|a| a.auth_value(attempt.provider));
        set_header(host, header, auth);
        if header != "authorization" && client.authorization {
            set_header(host, "authorization", None);
        }
        if header != "x-api-key" && client.api_key {
            set_header(host, "x-api-key", None);
        }
        if provider.wire == Protocol::Messages {
            if client.anthropic_version.is_none() {
                set_header(host, "anthropic-version", Some(ANTHROPIC_VERSION));
            }
        } else if client.anthropic_version.is_some() || client.anthropic_beta.is_some() {
            // An Anthropic client translated for another provider.
            set_header(host, "anthropic-version", None);
            set_header(host, "anthropic-beta", None);
        }
        if let Err(e) = host.clear_route_cache() {
            log::warn!("clear_route_cache failed: {e:?}");
        }
        let plan = &course.plan;
        log::debug!(
            "request {} tenant {} -> {}/{} complexity {}",
            self.ctx.id,
            self.ctx.account.as_ref().map_or("?", |a| a.id.as_str()),
            provider.id,
            model.id,
            plan.complexity()
                .map_or_else(|| "explicit".to_owned(), |c| format!("{c:.3}")),
        );
        let (meter, reshape) = reading(
            self.ctx.start,
            self.ctx.protocol,
            plan,
            &model.id,
            attempt.wire,
        );
        let max_attempts = self.max_attempts();
        // By default streams fail over by redirect (their next answer
        // streams); a whole answer fails over faster by call (`make bench`).
        let redirect = max_attempts > 1
            && config.failover_redirect.applies(plan.stream)
            && plan.tried().len() < max_attempts;
        let mut routed = Routed {
            course: Some(course),
            carry_token: None,
            decision,
            meter,
            reshape,
            cache_key,
            pending_call: None,
            buffering_error: false,
        };
        if redirect {
            failover::carry(&self.filter, host, &self.ctx, &mut routed);
        }
        self.phase = Phase::Routed(Box::new(routed));
        Ok(())
    }

    fn table(&self) -> Result<Rc<Table>, ApiError> {
        self.ctx
            .table
            .clone()
            .ok_or_else(|| ApiError::Internal("routing without a table".into()))
    }

    fn account(&self) -> Result<Arc<Account>, ApiError> {
        self.ctx
            .account
            .clone()
            .ok_or_else(|| ApiError::Internal("routing without a tenant".into()))
    }

    /// An attempt on `model` ended with `status`: its penalty and metrics.
    fn note_outcome(&self, host: &impl Host, model: ModelIx, status: u16) {
        let Some(table) = &self.ctx.table else {
            return;
        };
        self.filter
            .record_outcome(host, table, self.ctx.account.as_deref(), model, status);
    }

    /// The `x-aipipe-*` response headers of a routed or passed-through answer.
    fn say_who_answered(&self, host: &impl Host, d: Option<Decision>, pass: Option<ProviderIx>) {
        let _ = host.set_response_header("x-aipipe-request-id", Some(&self.ctx.id));
        if let Some(s) = &self.ctx.standing {
            // This gateway's limits, not the provider's own.
            for (name, value) in ratelimit::headers(s) {
                let _ = host.set_response_header(name, Some(&value));
            }
        }
        let mut text = HeaderText::default();
        for (name, value) in answer_headers(self.ctx.table.as_deref(), d, pass, &mut text) {
            let _ = host.set_response_header(name, Some(value));
        }
    }

    fn fail(&mut self, host: &impl Host, e: &ApiError) -> Action {
        if let ApiError::Internal(detail) = e {
            log::warn!("request {}: {detail}", self.ctx.id);
        }
        let body = self.ctx.protocol.error_body(e);
        let retry = e.retry_after().map(|s| s.to_string());
        let extra: Vec<(&str, &str)> = retry.iter().map(|s| ("retry-after", s.as_str())).collect();
        self.reply_with(host, e.status(), &body, "application/json", &extra)
    }

    /// Answers the request from the filter itself, with the routing headers
    /// when it was routed. The phase becomes `Replied`, keeping what the
    /// usage record needs.
    fn reply(&mut self, host: &impl Host, status: u32, body: &[u8], content_type: &str) -> Action {
        self.reply_with(host, status, body, content_type, &[])
    }

    /// [`Request::reply`] with `extra` headers.
    fn reply_with(
        &mut self,
        host: &impl Host,
        status: u32,
        body: &[u8],
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> Action {
        let routed = match std::mem::replace(&mut self.phase, Phase::Replied(None)) {
            Phase::Routed(r) | Phase::Replied(Some(r)) => Some(r),
            _ => None,
        };
        let decision = routed.as_ref().map(|r| r.decision);
        let mut text = HeaderText::default();
        let mut headers = vec![
            ("content-type", content_type),
            ("x-aipipe-request-id", self.ctx.id.as_str()),
        ];
        headers.extend(answer_headers(
            self.ctx.table.as_deref(),
            decision,
            None,
            &mut text,
        ));
        headers.extend_from_slice(extra);
        if let Err(e) = host.send_response(status, &headers, body) {
            log::warn!("local reply failed: {e:?}");
        }
        self.phase = Phase::Replied(routed);
        // Stop here: the local reply ends the request.
        Action::Pause
    }
}

/// Stores a whole success answer under a cache miss's key, for the
/// request's tenant.
fn store_answer(filter: &Filter, ctx: &RequestCtx, host: &impl Host, key: &Key, answer: &[u8]) {
    if let Some(tenant) = &ctx.account {
        let ttl = tenant.policy.as_ref().and_then(|p| p.cache_ttl_ms);
        cache::store(filter, host, key, &tenant.id, ttl, answer);
    }
}

fn set_header(host: &impl Host, name: &str, value: Option<&str>) {
    if let Err(e) = host.set_request_header(name, value.map(str::as_bytes)) {
        log::warn!("setting request header {name} failed: {e:?}");
    }
}

/// The answer is a local reply of Envoy's rate-limit filter (the
/// fleet-wide limits, envoy/ratelimit/), as the error the client gets: 429
/// `rate_limited` with the service's reset as `retry-after`, or 503
/// `rate_limit_unavailable` when the service did not answer and Envoy is
/// set to refuse then.
fn fleet_refusal(host: &impl Host) -> Option<ApiError> {
    let details = host.response_code_details()?;
    if details == RATELIMIT_OVER_LIMIT_DETAILS {
        // x-ratelimit-reset: seconds to the window's end, when the filter
        // has `enable_x_ratelimit_headers`; else a minute, the longest
        // window the shipped service config uses.
        let retry_after_s = host
            .response_header("x-ratelimit-reset")
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u64>().ok())
            .map_or(60, |s| s.max(1));
        Some(ApiError::RateLimited {
            message: format!(
                "Rate limit reached: this tenant's or virtual key's fleet-wide limit. Retry after {retry_after_s} seconds."
            ),
            retry_after_s,
        })
    } else if details == RATELIMIT_ERROR_DETAILS {
        Some(ApiError::RateLimitUnavailable)
    } else {
        None
    }
}

fn response_status(host: &impl Host) -> u16 {
    host.response_header(":status")
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse().ok())
        .unwrap_or(0)
}

/// How one attempt's answer (`model`'s, written in `wire`) is metered, and
/// reshaped for a client speaking `client`.
fn reading(
    start: SystemTime,
    client: Protocol,
    plan: &crate::plan::Plan,
    model: &str,
    wire: Protocol,
) -> (Meter, Reshape) {
    let reshape = Reshape::new(Shape {
        client,
        provider: wire,
        stream: plan.stream,
        include_usage: plan.include_usage,
        hide_usage: plan.hides_usage(wire),
        model,
        created: unix_seconds(start),
    });
    (Meter::for_attempt(start, plan, wire), reshape)
}

/// The upstream path of a body written in `wire`: the provider's chat path,
/// or its Responses API (`catalog::Provider::responses_path`; the table
/// refuses a `responses_api` model on a provider without one).
fn upstream_path(provider: &crate::catalog::Provider, wire: Protocol) -> Cow<'_, str> {
    match wire {
        Protocol::Responses => provider
            .responses_path()
            .map_or(Cow::Borrowed(provider.chat_path.as_str()), Cow::Owned),
        _ => Cow::Borrowed(provider.chat_path.as_str()),
    }
}

/// Unix seconds of `t`.
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The pass-through provider a path names: `/<provider id>/…`.
fn pass_through_provider(table: &Table, path: &[u8]) -> Option<ProviderIx> {
    let rest = path.strip_prefix(b"/")?;
    let id_len = rest.iter().position(|&b| b == b'/')?;
    let id = rest.get(..id_len)?;
    table.provider_by_id(std::str::from_utf8(id).ok()?)
}

/// The `x-aipipe-*` response headers: who answered and how it was chosen,
/// borrowed from the table (`complexity` holds the one value written here).
/// The text of the answer's headers that is written per answer.
#[derive(Default)]
struct HeaderText {
    complexity: String,
    dropped: String,
}

fn answer_headers<'a>(
    table: Option<&'a Table>,
    d: Option<Decision>,
    pass: Option<ProviderIx>,
    text: &'a mut HeaderText,
) -> Vec<(&'static str, &'a str)> {
    let HeaderText {
        complexity,
        dropped,
    } = text;
    let mut headers = Vec::with_capacity(8);
    let name = |m: ModelIx| table.and_then(|t| t.model(m)).map(|m| m.id.as_str());
    let provider = d.map(|d| d.provider).or(pass);
    if let Some(p) = provider.and_then(|p| table.and_then(|t| t.provider(p))) {
        headers.push(("x-aipipe-provider", p.id.as_str()));
    }
    let Some(d) = d else {
        if pass.is_some() {
            headers.push(("x-aipipe-route", "pass-through"));
        }
        return headers;
    };
    if let Some(id) = name(d.model) {
        headers.push(("x-aipipe-model", id));
    }
    // RFC 8594: the answering model's provider shuts it down at this
    // instant. Only a model with a retirement date has one, so the
    // common answer adds no header (filter/README.md, "Scheduled
    // retirements").
    if let Some(sunset) = table.and_then(|t| t.sunset(d.model)) {
        headers.push(("sunset", sunset));
    }
    let route = if d.complexity.is_some() {
        "auto"
    } else {
        "explicit"
    };
    headers.push(("x-aipipe-route", route));
    if let Some(c) = d.complexity {
        use std::fmt::Write as _;
        let _ = write!(complexity, "{c:.3}");
        headers.push(("x-aipipe-complexity", complexity.as_str()));
    }
    if let Some(f) = d.failed_over_from.and_then(name) {
        headers.push(("x-aipipe-failover", f));
    }
    if let Some(c) = d.cache {
        headers.push(("x-aipipe-cache", c));
    }
    if !d.dropped.is_empty() {
        let names = match d.dropped.names() {
            std::borrow::Cow::Borrowed(names) => names,
            std::borrow::Cow::Owned(names) => {
                *dropped = names;
                dropped.as_str()
            }
        };
        headers.push(("x-aipipe-dropped-params", names));
    }
    headers
}
