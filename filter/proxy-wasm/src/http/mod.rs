//! The HTTP context: one per request. Headers phase: authenticate, strip
//! internal headers, check the declared size, and either wait for the body
//! (chat and messages requests), answer at once (`GET /v1/models`) or send a
//! pass-through request on its way. Body phase: route with the core and
//! rewrite (or translate) the request. Response phase: say which model
//! answered, turn the answer into the client's dialect, fail over to the next
//! candidate when the chosen one failed before any byte reached the client,
//! and meter the answer.

mod cache;
mod failover;
mod redirect;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::host;
use super::root::{Metrics, Shared};
use crate::meter::{Answered, Meter, now};
use aipipe_core::cache::cache_control_bypass;
use aipipe_core::error::ApiError;
use aipipe_core::reshape::{Reshape, Shape};
use aipipe_core::route::{self, Dialect, Upstream};
use aipipe_core::table::{Table, Wire};
use cache::Lookup;
use failover::{Failover, is_failover_status};
pub(super) use redirect::Carry;
use redirect::Kept;

const CHAT_PATH: &str = "/v1/chat/completions";
const MESSAGES_PATH: &str = "/v1/messages";
const MODELS_PATH: &str = "/v1/models";
/// The Messages API version sent when the client named none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Http {
    shared: Option<Rc<Shared>>,
    /// The table this request started with: a newer one arriving mid-request
    /// must not shift the indices it holds.
    table: Option<Rc<Table>>,
    tenant: usize,
    dialect: Dialect,
    had_api_key_header: bool,
    had_authorization_header: bool,
    /// The client's own `anthropic-version` / `anthropic-beta` (an
    /// Anthropic client): kept for Anthropic providers, dropped for others.
    anthropic_version: Option<Vec<u8>>,
    anthropic_beta: Option<Vec<u8>>,
    request_id: String,
    /// Set once routed (or passed through): who answers.
    decision: Option<Decision>,
    /// A local reply was sent; later phases leave it alone.
    replied: bool,
    start: Option<std::time::SystemTime>,
    /// Set once routed: accounting of the answer.
    meter: Option<Meter>,
    /// How the answer is changed for the client.
    reshape: Reshape,
    /// The answer is an error being buffered to be rewritten in one piece.
    buffering_error: bool,
    /// Failover state; None for pass-through requests.
    failover: Option<Failover>,
    /// The client sent `Cache-Control: no-cache` / `no-store`.
    no_cache: bool,
    /// A cache miss: the key its answer is stored under.
    cache_key: Option<aipipe_core::cache::Key>,
    /// The attempt in flight may fail over by redirect: the token its
    /// state is carried under (see `redirect`).
    carry_token: Option<u128>,
    /// A redirected attempt: what the failed one decided, for the body
    /// phase to route the next candidate.
    resuming: Option<Kept>,
}

/// What the headers phase decided.
enum Next {
    /// Wait for the body, then route.
    Body,
    /// Answer now with this JSON.
    Answer(String),
    /// A pass-through request, already on its way.
    Passed,
}

/// Who answers, as indices into the request's table (the names are read
/// from it when they are needed).
struct Decision {
    provider: usize,
    /// The chosen model; None for a pass-through request.
    model: Option<usize>,
    complexity: Option<String>,
    /// The model that failed first, when a failover happened.
    failed_over_from: Option<usize>,
    /// `x-aipipe-cache`: hit, miss or bypass.
    cache: Option<&'static str>,
}

impl Http {
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        Self {
            shared,
            table: None,
            tenant: 0,
            dialect: Dialect::Chat,
            had_api_key_header: false,
            had_authorization_header: false,
            anthropic_version: None,
            anthropic_beta: None,
            request_id: String::new(),
            decision: None,
            replied: false,
            start: None,
            meter: None,
            reshape: Reshape::None,
            buffering_error: false,
            failover: None,
            no_cache: false,
            cache_key: None,
            carry_token: None,
            resuming: None,
        }
    }

    fn fail(&mut self, e: &ApiError) -> Action {
        let body = match self.dialect {
            Dialect::Chat => e.body(),
            Dialect::Messages => e.anthropic_body(),
        };
        self.reply(e.status(), body.as_bytes(), "application/json")
    }

    /// Answers the request from the filter itself, with the routing headers
    /// when it was routed.
    fn reply(&mut self, status: u32, body: &[u8], content_type: &str) -> Action {
        self.replied = true;
        let mut headers = vec![
            ("content-type", content_type),
            ("x-aipipe-request-id", self.request_id.as_str()),
        ];
        if let Some(d) = &self.decision {
            headers.extend(d.headers(self.table.as_deref()));
        }
        if let Err(s) = host::send_response(status, headers, body) {
            log::warn!("local reply failed: {s:?}");
        }
        // Stop here: the local reply ends the request.
        Action::Pause
    }

    fn set_header(name: &str, value: Option<&str>) {
        if let Err(s) = host::set_request_header(name, value) {
            log::warn!("setting request header {name} failed: {s:?}");
        }
    }

    fn headers(&mut self, end_of_stream: bool) -> Result<Next, ApiError> {
        let Some(shared) = self.shared.clone() else {
            return Err(ApiError::NoTable);
        };
        self.request_id = shared.request_id();
        self.start = now();
        let (mut method, mut path, mut authorization, mut api_key) = (None, None, None, None);
        let mut tenant_header = None;
        let mut content_length = None;
        let mut strip = Vec::new();
        let headers = host::request_headers();
        for (name, value) in &headers {
            match name.as_str() {
                ":method" => method = Some(value.as_slice()),
                ":path" => path = Some(value.as_slice()),
                "authorization" => {
                    self.had_authorization_header = true;
                    authorization = std::str::from_utf8(value).ok();
                }
                "x-api-key" => {
                    self.had_api_key_header = true;
                    api_key = std::str::from_utf8(value).ok();
                }
                "anthropic-version" => self.anthropic_version = Some(value.clone()),
                "anthropic-beta" => self.anthropic_beta = Some(value.clone()),
                "cache-control" => self.no_cache = cache_control_bypass(value),
                "content-length" => {
                    content_length = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<usize>().ok());
                }
                "x-tenant-id" => {
                    tenant_header = std::str::from_utf8(value).ok();
                    strip.push("x-tenant-id");
                }
                n if n.starts_with("x-aipipe-") || n == shared.cluster_header => {
                    strip.push(n);
                }
                _ => {}
            }
        }
        // Client-sent internal headers never reach routing or the upstream.
        for name in strip {
            let _ = host::set_request_header(name, None);
        }

        let full_path = path.unwrap_or_default();
        let path = full_path.split(|&b| b == b'?').next().unwrap_or_default();
        if let Some((token, status)) = aipipe_core::carry::redirected(full_path) {
            // The attempt before this one failed and Envoy sent the request
            // round again.
            self.resume(&shared, token, status)?;
            return Ok(Next::Body);
        }
        enum Kind {
            Route,
            Models,
            Pass(usize),
        }
        let table = shared.table().ok_or(ApiError::NoTable)?;
        let kind = if path == CHAT_PATH.as_bytes() {
            Kind::Route
        } else if path == MESSAGES_PATH.as_bytes() {
            self.dialect = Dialect::Messages;
            Kind::Route
        } else if path == MODELS_PATH.as_bytes() {
            Kind::Models
        } else if let Some(p) = pass_through_provider(&table, path) {
            Kind::Pass(p)
        } else {
            return Err(ApiError::UnknownPath(
                String::from_utf8_lossy(path).into_owned(),
            ));
        };
        match (&kind, method) {
            (Kind::Route, Some(b"POST")) | (Kind::Models, Some(b"GET")) | (Kind::Pass(_), _) => {}
            (Kind::Models, _) => {
                return Err(ApiError::BadRequest(format!("{MODELS_PATH} takes GET")));
            }
            (Kind::Route, _) => {
                return Err(ApiError::BadRequest(format!(
                    "{} takes POST",
                    String::from_utf8_lossy(path)
                )));
            }
        }
        self.tenant = match tenant_header.filter(|_| shared.trust_tenant_header) {
            // Mesh mode: the trusted front named the tenant.
            Some(id) => route::tenant_by_id(&table, id)?,
            None => route::authenticate(&table, route::virtual_key(authorization, api_key))?,
        };
        match kind {
            Kind::Models => Ok(Next::Answer(route::models_list(&table, self.tenant))),
            Kind::Pass(provider) => {
                self.pass_through(&shared, &table, provider, full_path)?;
                self.table = Some(table);
                Ok(Next::Passed)
            }
            Kind::Route => {
                self.table = Some(table);
                if content_length.is_some_and(|n| n > shared.max_body_bytes) {
                    return Err(ApiError::BodyTooLarge {
                        limit: shared.max_body_bytes,
                    });
                }
                if end_of_stream || content_length == Some(0) {
                    return Err(ApiError::BadRequest("request body is empty".into()));
                }
                Ok(Next::Body)
            }
        }
    }

    /// `/<provider>/<rest>` → the provider's `<passthrough_base>/<rest>`,
    /// with the tenant's key, any method and body, streamed both ways.
    fn pass_through(
        &mut self,
        shared: &Shared,
        table: &Table,
        provider: usize,
        full_path: &[u8],
    ) -> Result<(), ApiError> {
        let p = table.providers.get(provider).ok_or(ApiError::NoTable)?;
        let key = table.provider_key(self.tenant, provider).ok_or_else(|| {
            ApiError::NoProviderKey(format!(
                "This tenant has no `{}` provider key for the pass-through path. Add one with POST /admin/tenants/{}/keys.",
                p.id,
                table.tenants.get(self.tenant).map_or("", |t| t.id.as_str())
            ))
        })?;
        let rest = full_path.get(p.id.len() + 1..).unwrap_or_default();
        let upstream_path = format!("{}{}", p.passthrough_base, String::from_utf8_lossy(rest));
        let auth = p.passthrough_auth.unwrap_or(p.auth);
        // The client's virtual key never reaches the provider.
        for h in ["authorization", "x-api-key", "x-goog-api-key"] {
            if h != auth.header() {
                Self::set_header(h, None);
            }
        }
        Self::set_header(auth.header(), Some(&auth.value(key)));
        if p.wire == Wire::Anthropic && self.anthropic_version.is_none() {
            Self::set_header("anthropic-version", Some(ANTHROPIC_VERSION));
        }
        Self::set_header(&shared.cluster_header, Some(&p.cluster));
        Self::set_header(":path", Some(&upstream_path));
        Self::set_header(":authority", Some(&p.authority));
        if let Err(s) = host::clear_route_cache() {
            log::warn!("clear_route_cache failed: {s:?}");
        }
        if let Some(start) = self.start {
            let mut meter = Meter::new(start, false, None);
            meter.read_answer_model();
            self.meter = Some(meter);
        }
        self.decision = Some(Decision {
            provider,
            model: None,
            complexity: None,
            failed_over_from: None,
            cache: None,
        });
        log::debug!(
            "request {} pass-through to {} {}",
            self.request_id,
            p.id,
            upstream_path
        );
        Ok(())
    }

    fn body(&mut self, body_size: usize) -> Result<(), ApiError> {
        let (Some(shared), Some(table)) = (self.shared.clone(), self.table.clone()) else {
            return Err(ApiError::NoTable);
        };
        if let Some(kept) = self.resuming.take() {
            return self.next_attempt(&shared, &table, kept, body_size);
        }
        let body = host::request_body(body_size).unwrap_or_default();
        let penalties = shared.local_penalties(&table);
        let routed = route::route_request(
            &table,
            self.tenant,
            self.dialect,
            &body,
            penalties.as_deref(),
        )?;
        let lookup = self.cache_lookup(&shared, &table, &routed, &body);
        let complexity = routed.score.map(|s| s.complexity);
        if let Lookup::Hit {
            answer,
            content_type,
        } = &lookup
        {
            // A hit: answered here, nothing goes upstream.
            if let Some(start) = self.start {
                let mut meter = Meter::new(start, false, complexity);
                meter.served_from_cache();
                self.meter = Some(meter);
            }
            self.decision = Some(Decision {
                provider: routed.provider,
                model: Some(routed.model),
                complexity: complexity.map(|c| format!("{c:.3}")),
                failed_over_from: None,
                cache: Some(lookup.header()),
            });
            self.reply(200, answer, content_type);
            return Ok(());
        }
        let length = match &routed.upstream {
            Upstream::Edit(edit) => {
                if host::replace_request_body_prefix(edit.drain, &edit.prefix).is_ok() {
                    edit.new_len(body.len())
                } else {
                    body.len()
                }
            }
            Upstream::Whole(whole) => {
                if let Err(s) =
                    hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), whole)
                {
                    log::warn!("cannot replace the request body: {s:?}");
                    return Err(ApiError::NoTable);
                }
                whole.len()
            }
        };
        let failover = Failover {
            body,
            stream: routed.stream,
            include_usage: routed.include_usage,
            tried: vec![routed.model],
            failed: Vec::new(),
            pending: None,
        };
        let kept = Kept {
            complexity,
            cache: Some(lookup.header()),
            failed_over_from: None,
        };
        self.forward(&shared, &table, &routed, length, kept, failover)
    }

    /// Sends the routed request on: the routing headers, the provider's key,
    /// and how its answer is read and reshaped. The body is already in place
    /// (`length` bytes).
    fn forward(
        &mut self,
        shared: &Shared,
        table: &Rc<Table>,
        routed: &route::Routed<'_>,
        length: usize,
        how: Kept,
        failover: Failover,
    ) -> Result<(), ApiError> {
        let (Some(model), Some(provider)) = (
            table.models.get(routed.model),
            table.providers.get(routed.provider),
        ) else {
            return Err(ApiError::NoTable);
        };
        let max_attempts = shared.max_attempts as usize;
        // By default streams fail over by redirect (their next answer
        // streams); a whole answer fails over faster by call (`make bench`:
        // failover_*).
        let redirect =
            shared.failover_redirect.applies(routed.stream) && failover.tried.len() < max_attempts;
        // A stale length truncates the body upstream (ENVOY-NOTES 3).
        Self::set_header("content-length", Some(&length.to_string()));
        Self::set_header(&shared.cluster_header, Some(&provider.cluster));
        Self::set_header(":path", Some(&provider.chat_path));
        Self::set_header(":authority", Some(&provider.authority));
        let auth = table.auth_value(self.tenant, routed.provider);
        let header = provider.auth.header();
        Self::set_header(header, auth);
        if header != "authorization" && self.had_authorization_header {
            Self::set_header("authorization", None);
        }
        if header != "x-api-key" && self.had_api_key_header {
            Self::set_header("x-api-key", None);
        }
        if provider.wire == Wire::Anthropic {
            if self.anthropic_version.is_none() {
                Self::set_header("anthropic-version", Some(ANTHROPIC_VERSION));
            }
        } else if self.anthropic_version.is_some() || self.anthropic_beta.is_some() {
            // An Anthropic client translated for another provider.
            Self::set_header("anthropic-version", None);
            Self::set_header("anthropic-beta", None);
        }
        if let Err(s) = host::clear_route_cache() {
            log::warn!("clear_route_cache failed: {s:?}");
        }
        let complexity = how.complexity.map(|c| format!("{c:.3}"));
        log::debug!(
            "request {} tenant {} -> {}/{} complexity {}",
            self.request_id,
            table
                .tenants
                .get(self.tenant)
                .map_or("?", |t| t.id.as_str()),
            provider.id,
            model.id,
            complexity.as_deref().unwrap_or("explicit"),
        );
        self.reshape = Reshape::new(Shape {
            dialect: self.dialect,
            wire: provider.wire,
            stream: routed.stream,
            include_usage: routed.include_usage,
            hide_usage: routed.hide_usage,
            model: &model.id,
            created: self.created(),
        });
        if let Some(start) = self.start {
            self.meter = Some(Meter::new(start, routed.stream, how.complexity));
        }
        self.decision = Some(Decision {
            provider: routed.provider,
            model: Some(routed.model),
            complexity,
            failed_over_from: how.failed_over_from,
            cache: how.cache,
        });
        if max_attempts > 1 {
            if redirect {
                self.carry(shared, table, how, failover);
            } else {
                self.failover = Some(failover);
            }
        }
        Ok(())
    }

    /// Unix seconds of the request start.
    fn created(&self) -> u64 {
        self.start
            .and_then(|s| s.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }
}

/// The pass-through provider a path names: `/<provider id>/…`.
fn pass_through_provider(table: &Table, path: &[u8]) -> Option<usize> {
    let rest = path.strip_prefix(b"/")?;
    let id_len = rest.iter().position(|&b| b == b'/')?;
    let id = rest.get(..id_len)?;
    table.providers.iter().position(|p| p.id.as_bytes() == id)
}

impl Decision {
    /// A pass-through request: no catalog model was chosen.
    fn passes_through(&self) -> bool {
        self.model.is_none()
    }

    /// The `x-aipipe-*` response headers.
    fn headers<'a>(&'a self, table: Option<&'a Table>) -> Vec<(&'static str, &'a str)> {
        let name = |i: usize| table.and_then(|t| t.models.get(i)).map(|m| m.id.as_str());
        let mut headers = Vec::with_capacity(6);
        if let Some(p) = table.and_then(|t| t.providers.get(self.provider)) {
            headers.push(("x-aipipe-provider", p.id.as_str()));
        }
        if let Some(model) = self.model {
            if let Some(id) = name(model) {
                headers.push(("x-aipipe-model", id));
            }
            headers.push((
                "x-aipipe-route",
                if self.complexity.is_some() {
                    "auto"
                } else {
                    "explicit"
                },
            ));
        } else {
            headers.push(("x-aipipe-route", "pass-through"));
        }
        if let Some(c) = &self.complexity {
            headers.push(("x-aipipe-complexity", c.as_str()));
        }
        if let Some(f) = self.failed_over_from.and_then(name) {
            headers.push(("x-aipipe-failover", f));
        }
        if let Some(c) = self.cache {
            headers.push(("x-aipipe-cache", c));
        }
        headers
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.on_call(token_id, body_size);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.headers(end_of_stream) {
            // Hold the headers until the whole body is here: routing reads it,
            // and routing headers can only change while they are held.
            Ok(Next::Body) => Action::Pause,
            // Answered by the filter itself (GET /v1/models).
            Ok(Next::Answer(json)) => self.reply(200, json.as_bytes(), "application/json"),
            // Pass-through: headers are rewritten, the body streams as is.
            Ok(Next::Passed) => Action::Continue,
            Err(e) => self.fail(&e),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            // The request was already answered locally.
            return Action::Pause;
        }
        if self.decision.as_ref().is_some_and(Decision::passes_through) {
            // Pass-through: the body streams on untouched.
            return Action::Continue;
        }
        if let Some(limit) = self.shared.as_ref().map(|s| s.max_body_bytes)
            && body_size > limit
        {
            return self.fail(&ApiError::BodyTooLarge { limit });
        }
        if !end_of_stream {
            // Keep buffering until the body is complete.
            return Action::Pause;
        }
        match self.body(body_size) {
            // Routed: headers and body are rewritten, let Envoy send them.
            Ok(()) => Action::Continue,
            Err(e) => self.fail(&e),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.replied {
            // Our own local reply already carries its headers.
            return Action::Continue;
        }
        let status = match &mut self.meter {
            Some(meter) => {
                meter.on_headers();
                meter.status()
            }
            None => return Action::Continue,
        };
        // The carried state comes back: no redirect followed. A failover
        // redirect Envoy did not follow is the provider's failure.
        let status = match self.reclaim(status) {
            Some(failed) => {
                if let Some(meter) = &mut self.meter {
                    meter.set_status(failed);
                }
                failed
            }
            None => status,
        };
        self.note_outcome(None, status);
        if is_failover_status(status) && self.try_next(status) {
            // The next candidate answers instead; hold this answer back.
            return Action::Pause;
        }
        if is_failover_status(status)
            && self.failover.as_ref().is_some_and(|f| !f.failed.is_empty())
        {
            // The last candidate failed too: one error naming every attempt.
            let e = self.give_up();
            return self.fail(&e);
        }
        if self.decision.as_ref().is_some_and(Decision::passes_through) {
            let stream =
                hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, "content-type")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v.starts_with(b"text/event-stream"));
            if let Some(meter) = &mut self.meter {
                meter.stream = stream;
            }
        }
        if let Some(d) = &self.decision {
            let _ = host::set_response_header("x-aipipe-request-id", &self.request_id);
            for (name, value) in d.headers(self.table.as_deref()) {
                let _ = host::set_response_header(name, value);
            }
        }
        if self.reshape.changes_body() {
            // The body changes length: Envoy sends it chunked instead.
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
            if status >= 400 && !end_of_stream {
                // An error is rewritten in one piece, status included: hold
                // the headers until the body is complete.
                self.buffering_error = true;
                return Action::Pause;
            }
        }
        // Headers pass straight on; the body follows unbuffered.
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        if self.failover.as_ref().is_some_and(|f| f.pending.is_some()) {
            // A failover call is in flight; the failed answer goes nowhere.
            return Action::Pause;
        }
        let Some(meter) = &mut self.meter else {
            // Not routed by us (a local reply): pass it on.
            return Action::Continue;
        };
        if self.buffering_error || self.reshape.buffers() {
            if !end_of_stream {
                return Action::Pause;
            }
            let whole = host::response_body(body_size);
            meter.on_body(&whole, true);
            let status = meter.status();
            let (new_status, out) = self.reshape.whole(status, &whole);
            if self.buffering_error {
                meter.set_status(new_status);
                let content_type = "application/json";
                return self.reply(u32::from(new_status), &out, content_type);
            }
            if let Err(s) = host::replace_response_body(body_size, &out) {
                log::warn!("cannot translate the answer: {s:?}");
            }
            if new_status == 200 {
                self.cache_store(&out);
            }
            return Action::Continue;
        }
        let chunk = if body_size > 0 {
            host::response_body(body_size)
        } else {
            Vec::new()
        };
        meter.on_body(&chunk, end_of_stream);
        let status = meter.status();
        if end_of_stream
            && status == 200
            && self.cache_key.is_some()
            && let Some(answer) = self.meter.as_ref().and_then(Meter::plain_body)
        {
            // Untranslated: the client got exactly the provider's bytes.
            self.cache_store(answer);
        }
        if status < 400
            && let Some(out) = self.reshape.chunk(&chunk, end_of_stream)
            && let Err(s) = host::replace_response_body(body_size, &out)
        {
            log::warn!("cannot rewrite the answer: {s:?}");
        }
        // Stream every chunk (every complete event) to the client as it arrives.
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(meter), Some(table), Some(shared), Some(d)) =
            (&self.meter, &self.table, &self.shared, &self.decision)
        else {
            return;
        };
        let (Some(tenant), Some(provider)) = (
            table.tenants.get(self.tenant),
            table.providers.get(d.provider),
        ) else {
            return;
        };
        let provider = provider.id.as_str();
        let mut record = match d.model.and_then(|m| table.models.get(m)) {
            Some(m) => meter.record(
                &self.request_id,
                &tenant.id,
                Answered {
                    provider,
                    model_id: &m.id,
                    model: Some(m),
                },
            ),
            None => {
                // Pass-through: recorded when the answer names its model.
                let Some(name) = meter.answer_model() else {
                    return;
                };
                let model = table.model_for_answer(provider, &name);
                meter.record(
                    &self.request_id,
                    &tenant.id,
                    Answered {
                        provider,
                        model_id: model.map_or(name.as_str(), |m| m.id.as_str()),
                        model,
                    },
                )
            }
        };
        if let Some(f) = &self.failover {
            record.failed_attempts = f.failed.clone();
        }
        let Some(record) = self.leave_record(record) else {
            return;
        };
        if let Some(m) = &shared.metrics {
            Metrics::count(
                m.usage_unparsed,
                u64::from(!record.usage_parsed && record.status < 400),
            );
            Metrics::count(m.attempts_failed, record.failed_attempts.len() as u64);
            Metrics::count(m.failovers, u64::from(d.failed_over_from.is_some()));
            let cache = match d.cache {
                Some("hit") => Some(m.cache_hits),
                Some("miss") => Some(m.cache_misses),
                Some("bypass") => Some(m.cache_bypasses),
                _ => None,
            };
            if let Some(id) = cache {
                Metrics::count(id, 1);
            }
        }
        shared.enqueue_usage(&record);
    }
}
