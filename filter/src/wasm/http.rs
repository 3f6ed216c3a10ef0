//! The HTTP context: one per request. Headers phase: authenticate, strip
//! internal headers, check the declared size. Body phase: route with the core
//! and rewrite the request. Response phase: say which model answered and why.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::root::Shared;
use super::usage::{Meter, now};
use crate::error::ApiError;
use crate::route;
use crate::sse::UsageStripper;
use crate::table::{AuthStyle, Table};

const CHAT_PATH: &str = "/v1/chat/completions";
const MODELS_PATH: &str = "/v1/models";

pub struct Http {
    shared: Option<Rc<Shared>>,
    /// The table this request started with: a newer one arriving mid-request
    /// must not shift the indices it holds.
    table: Option<Rc<Table>>,
    tenant: usize,
    had_api_key_header: bool,
    had_authorization_header: bool,
    request_id: String,
    /// Set once routed: the headers the response phase adds.
    decision: Option<Decision>,
    /// A local reply was sent; later phases leave it alone.
    replied: bool,
    start: Option<std::time::SystemTime>,
    /// Set once routed: accounting of the answer, and the model it is for.
    meter: Option<(Meter, usize)>,
    /// Set when the filter asked for a usage chunk the client did not.
    stripper: Option<UsageStripper>,
}

/// What the headers phase decided.
enum Next {
    /// Wait for the body, then route.
    Body,
    /// Answer now with this JSON.
    Answer(String),
}

struct Decision {
    provider: String,
    model: String,
    complexity: Option<String>,
}

impl Http {
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        Self {
            shared,
            table: None,
            tenant: 0,
            had_api_key_header: false,
            had_authorization_header: false,
            request_id: String::new(),
            decision: None,
            replied: false,
            start: None,
            meter: None,
            stripper: None,
        }
    }

    fn fail(&mut self, e: &ApiError) -> Action {
        self.reply(e.status(), &e.body())
    }

    /// Answers the request from the filter itself (JSON).
    fn reply(&mut self, status: u32, body: &str) -> Action {
        self.replied = true;
        let headers = vec![
            ("content-type", "application/json"),
            ("x-aipipe-request-id", self.request_id.as_str()),
        ];
        if let Err(s) = host::send_response(status, headers, body.as_bytes()) {
            log::warn!("local reply failed: {s:?}");
        }
        // Stop here: the local reply ends the request.
        Action::Pause
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

        let path = path.unwrap_or_default();
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        let list_models = path == MODELS_PATH.as_bytes();
        if path != CHAT_PATH.as_bytes() && !list_models {
            return Err(ApiError::UnknownPath(
                String::from_utf8_lossy(path).into_owned(),
            ));
        }
        let expected: &[u8] = if list_models { b"GET" } else { b"POST" };
        if method != Some(expected) {
            let (p, m) = if list_models {
                (MODELS_PATH, "GET")
            } else {
                (CHAT_PATH, "POST")
            };
            return Err(ApiError::BadRequest(format!("{p} takes {m}")));
        }
        let table = shared.table().ok_or(ApiError::NoTable)?;
        self.tenant = match tenant_header.filter(|_| shared.trust_tenant_header) {
            // Mesh mode: the trusted front named the tenant.
            Some(id) => route::tenant_by_id(&table, id)?,
            None => route::authenticate(&table, route::virtual_key(authorization, api_key))?,
        };
        if list_models {
            return Ok(Next::Answer(route::models_list(&table, self.tenant)));
        }
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

    fn body(&mut self, body_size: usize) -> Result<(), ApiError> {
        let (Some(shared), Some(table)) = (self.shared.clone(), self.table.clone()) else {
            return Err(ApiError::NoTable);
        };
        let body = host::request_body(body_size).unwrap_or_default();
        let routed = route::route(&table, self.tenant, &body)?;
        let (Some(model), Some(provider)) = (
            table.models.get(routed.model),
            table.providers.get(routed.provider),
        ) else {
            return Err(ApiError::NoTable);
        };

        let edited =
            host::replace_request_body_prefix(routed.edit.drain, &routed.edit.prefix).is_ok();
        let length = if edited {
            routed.edit.new_len(body.len())
        } else {
            body.len()
        };
        let set = |name: &str, value: Option<&str>| {
            if let Err(s) = host::set_request_header(name, value) {
                log::warn!("setting request header {name} failed: {s:?}");
            }
        };
        // A stale length truncates the body upstream (ENVOY-NOTES 3).
        set("content-length", Some(&length.to_string()));
        set(&shared.cluster_header, Some(&provider.cluster));
        set(":path", Some(&provider.chat_path));
        set(":authority", Some(&provider.authority));
        let auth = table.auth_value(self.tenant, routed.provider);
        match provider.auth {
            AuthStyle::Bearer => {
                set("authorization", auth);
                if self.had_api_key_header {
                    set("x-api-key", None);
                }
            }
            AuthStyle::XApiKey => {
                set("x-api-key", auth);
                if self.had_authorization_header {
                    set("authorization", None);
                }
            }
        }
        if let Err(s) = host::clear_route_cache() {
            log::warn!("clear_route_cache failed: {s:?}");
        }
        let complexity = routed.score.map(|s| format!("{:.3}", s.complexity));
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
        self.stripper = routed.hide_usage.then(UsageStripper::default);
        if let Some(start) = self.start {
            let c = routed.score.map(|s| s.complexity);
            self.meter = Some((Meter::new(start, routed.stream, c), routed.model));
        }
        self.decision = Some(Decision {
            provider: provider.id.clone(),
            model: model.id.clone(),
            complexity,
        });
        Ok(())
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.headers(end_of_stream) {
            // Hold the headers until the whole body is here: routing reads it,
            // and routing headers can only change while they are held.
            Ok(Next::Body) => Action::Pause,
            // Answered by the filter itself (GET /v1/models).
            Ok(Next::Answer(json)) => self.reply(200, &json),
            Err(e) => self.fail(&e),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            // The request was already answered locally.
            return Action::Pause;
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

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.replied {
            // Our own local reply already carries its headers.
            return Action::Continue;
        }
        if let Some((meter, _)) = &mut self.meter {
            meter.on_headers();
        }
        if let Some(d) = &self.decision {
            let mut headers = vec![
                ("x-aipipe-request-id", self.request_id.as_str()),
                ("x-aipipe-provider", d.provider.as_str()),
                ("x-aipipe-model", d.model.as_str()),
                (
                    "x-aipipe-route",
                    if d.complexity.is_some() {
                        "auto"
                    } else {
                        "explicit"
                    },
                ),
            ];
            if let Some(c) = &d.complexity {
                headers.push(("x-aipipe-complexity", c.as_str()));
            }
            for (name, value) in headers {
                let _ = host::set_response_header(name, value);
            }
        }
        // Headers pass straight on; the body follows unbuffered.
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some((meter, _)) = &mut self.meter else {
            // Not routed by us (a local reply): pass it on.
            return Action::Continue;
        };
        let chunk = if body_size > 0 {
            host::response_body(body_size)
        } else {
            Vec::new()
        };
        meter.on_body(&chunk, end_of_stream);
        if let Some(stripper) = &mut self.stripper
            && meter.status() == 200
        {
            let mut out = Vec::with_capacity(chunk.len());
            stripper.feed(&chunk, &mut out);
            if end_of_stream {
                stripper.finish(&mut out);
            }
            if out != chunk
                && let Err(s) = host::replace_response_body(body_size, &out)
            {
                log::warn!("cannot hide the usage chunk: {s:?}");
            }
        }
        // Stream every chunk (every complete event) to the client as it arrives.
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some((meter, model)), Some(table), Some(shared)) =
            (&self.meter, &self.table, &self.shared)
        else {
            return;
        };
        if let Some(record) = meter.record(&self.request_id, table, self.tenant, *model) {
            shared.enqueue_usage(&record);
        }
    }
}
