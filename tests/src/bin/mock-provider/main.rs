//! mock-provider: a stand-in for the LLM providers aipipe routes to (OpenAI,
//! Anthropic, Gemini, xAI, OpenRouter, MiniMax, Moonshot), so that the
//! integration tests and benchmarks can run Envoy with the aipipe filter
//! against real HTTP upstreams without network access or API keys.
//!
//! `mock-provider --listen 127.0.0.1:18000 [--fast] [--threads N]`
//!
//! - The provider is picked by the Host header (`api.openai.com`, …), else by
//!   a first path segment naming it (`/openai/v1/chat/completions`).
//! - Chat endpoints answer deterministic OpenAI Chat Completions, plain or
//!   streamed (SSE), with usage derived from the request ([`openai`]), each
//!   provider with its own usage object and quirks ([`compat`]); cached
//!   tokens follow one documented rule ([`tokens`]).
//! - Anthropic also speaks its native Messages API at `/v1/messages`
//!   ([`anthropic`]): its headers, errors, usage and SSE events.
//! - OpenAI also speaks its Responses API at `/v1/responses`
//!   ([`responses`]): the chat endpoint's answer to the same conversation
//!   as a `response` object or its SSE events, with reasoning items and
//!   reasoning tokens for `gpt-6-*`, and OpenAI's 400s for parameters that
//!   belong to Chat Completions.
//! - `/_mock/health`, `/_mock/received` (what was forwarded, and the usage
//!   each answer carried), `/_mock/faults` (error statuses, delays, slow
//!   streams, unreadable usage) and `/_mock/answers` (what an answer says,
//!   by provider, model and the last user message: [`answers`]) drive the
//!   tests.
//! - `--fast` answers every request with one precomputed answer per wire
//!   format and records nothing: benchmarks measure the proxy, not the mock.

mod answers;
mod anthropic;
mod compat;
mod faults;
mod gemini;
mod minimax;
mod moonshot;
mod openai;
mod openrouter;
mod provider;
mod received;
mod responses;
mod tokens;
mod xai;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::faults::{FaultSpec, Faults, Plan};
use crate::openai::{ApiError, ChatRequest, json_response};
use crate::provider::{Dialect, Provider};
use crate::received::{Received, Record};

const USAGE: &str = "usage: mock-provider --listen 127.0.0.1:PORT [--fast] [--threads N]";
/// Larger provider request bodies get a 413.
const MAX_BODY_BYTES: usize = 64 << 20;
const MAX_CONTROL_BODY_BYTES: usize = 64 << 10;
/// Scripted answers come in suites: a larger body than other controls.
const MAX_ANSWERS_BODY_BYTES: usize = 4 << 20;
/// How long in-flight requests may finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
struct Options {
    listen: SocketAddr,
    fast: bool,
    threads: usize,
}

/// `Ok(None)`: help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let (mut listen, mut fast, mut threads) = (None, false, 1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                let addr: SocketAddr = text
                    .parse()
                    .map_err(|e| format!("--listen {text}: {e} (want IP:PORT)"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--listen {addr}: only loopback addresses are allowed"
                    ));
                }
                listen = Some(addr);
            }
            "--threads" => {
                let text = value()?;
                threads = match text.parse::<usize>() {
                    Ok(n @ 1..=256) => n,
                    _ => return Err(format!("--threads {text}: want a number in 1..=256")),
                };
            }
            "--fast" if inline.is_none() => fast = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument '{flag}'")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    Ok(Some(Options {
        listen,
        fast,
        threads,
    }))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mock-provider: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(options)),
        Err(e) => Err(format!("cannot start the tokio runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mock-provider: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--fast`: the constant answers, serialized once.
struct Fast {
    /// To every OpenAI-format chat request.
    chat: Bytes,
    /// To every Anthropic Messages request.
    messages: Bytes,
    /// To every OpenAI Responses request.
    responses: Bytes,
}

/// Shared by all requests.
struct App {
    fast: Option<Fast>,
    received: Received,
    faults: Faults,
    answers: answers::Answers,
    next_id: AtomicU64,
}

async fn run(options: Options) -> Result<(), String> {
    let fast = match options.fast {
        true => Some(Fast {
            chat: openai::fast_completion().map_err(|e| format!("fast answer: {e}"))?,
            messages: anthropic::fast_message().map_err(|e| format!("fast answer: {e}"))?,
            responses: responses::fast_response().map_err(|e| format!("fast answer: {e}"))?,
        }),
        false => None,
    };
    let app = Arc::new(App {
        fast,
        received: Received::default(),
        faults: Faults::default(),
        answers: answers::Answers::default(),
        next_id: AtomicU64::new(1),
    });
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "mock-provider listening on {local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    drop(stdout);

    // Small SSE events must not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("mock-provider: TCP_NODELAY: {e}");
        }
    });
    let router = Router::new().fallback(handle).with_state(app);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = &mut server => return server_result(result),
        () = shutdown_signal() => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => server_result(result),
        // Requests still in flight (long fault delays) are cut off.
        Err(_) => Ok(()),
    }
}

fn server_result(
    result: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), String> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("server error: {e}")),
        Err(e) => Err(format!("server task failed: {e}")),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("mock-provider: cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut signals) => {
                signals.recv().await;
            }
            Err(e) => {
                eprintln!("mock-provider: cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(endpoint) = parts.uri.path().strip_prefix("/_mock/") {
        return control(&app, parts.method.as_str(), endpoint, body).await;
    }
    match &app.fast {
        Some(fast) => fast_answer(fast, &parts, body).await,
        None => provider_request(&app, &parts, body).await,
    }
}

/// The `/_mock/*` endpoints.
async fn control(app: &App, method: &str, endpoint: &str, body: Body) -> Response {
    match (endpoint, method) {
        ("health", "GET") => "ok".into_response(),
        ("received", "GET") => match app.received.to_json() {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(e) => ApiError::internal(&e).into_response(),
        },
        ("received", "DELETE") => {
            app.received.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("faults", "POST") => {
            let body = match read_body(body, MAX_CONTROL_BODY_BYTES).await {
                Ok(body) => body,
                Err(e) => return e.into_response(),
            };
            let applied = serde_json::from_slice::<FaultSpec>(&body)
                .map_err(|e| e.to_string())
                .and_then(|spec| app.faults.apply(&spec));
            match applied {
                Ok(()) => faults_response(app),
                Err(e) => ApiError::invalid_request(format!("Invalid fault: {e}")).into_response(),
            }
        }
        ("faults", "GET") => faults_response(app),
        ("answers", "POST") => {
            let body = match read_body(body, MAX_ANSWERS_BODY_BYTES).await {
                Ok(body) => body,
                Err(e) => return e.into_response(),
            };
            let added = serde_json::from_slice::<Vec<answers::AnswerRule>>(&body)
                .map_err(|e| e.to_string())
                .and_then(|rules| app.answers.add(rules));
            match added {
                Ok(()) => answers_response(app),
                Err(e) => {
                    ApiError::invalid_request(format!("Invalid answers: {e}")).into_response()
                }
            }
        }
        ("answers", "GET") => answers_response(app),
        ("answers", "DELETE") => {
            app.answers.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("faults", "DELETE") => {
            app.faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("health" | "received" | "faults" | "answers", _) => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("{method} is not allowed on /_mock/{endpoint}"),
        )
        .into_response(),
        _ => ApiError::not_found(format!("Unknown control endpoint /_mock/{endpoint}"))
            .into_response(),
    }
}

fn answers_response(app: &App) -> Response {
    match serde_json::to_vec(&app.answers.list()) {
        Ok(json) => json_response(StatusCode::OK, json),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

fn faults_response(app: &App) -> Response {
    match serde_json::to_vec(&app.faults.list()) {
        Ok(json) => json_response(StatusCode::OK, json),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// A request for a provider: recorded, then faulted or answered.
async fn provider_request(app: &App, parts: &Parts, body: Body) -> Response {
    let path = parts.uri.path();
    let Some((provider, relative)) = provider::resolve(host(parts), path) else {
        return unknown_provider(parts);
    };
    let bytes = match read_body(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let field = |key: &str| json.as_ref().and_then(|body| body.get(key));
    let seq = app.received.push(Record {
        provider: provider.name(),
        method: parts.method.to_string(),
        path: path.to_owned(),
        authority: header(&parts.headers, &HOST)
            .or_else(|| parts.uri.authority().map(ToString::to_string)),
        authorization: header(&parts.headers, &AUTHORIZATION),
        x_api_key: header(&parts.headers, &HeaderName::from_static("x-api-key")),
        anthropic_version: header(&parts.headers, &anthropic::VERSION_HEADER),
        internal_headers: parts
            .headers
            .keys()
            .map(HeaderName::as_str)
            .filter(|n| {
                n.starts_with("x-aipipe-")
                    || *n == "x-envoy-original-url"
                    || (*n == "x-goog-api-key" && provider.name() != "gemini")
            })
            .map(str::to_owned)
            .collect(),
        model: field("model").and_then(Value::as_str).map(str::to_owned),
        stream: field("stream").and_then(Value::as_bool) == Some(true),
        body_bytes: bytes.len(),
        content_length: header(&parts.headers, &CONTENT_LENGTH),
        body_json_valid: json.is_some(),
        body: json.clone(),
        sent_usage: None,
        seq: 0,
    });
    let Some(dialect) = provider.endpoint(parts.method == Method::POST, relative) else {
        return ApiError::not_found(format!("Invalid URL ({} {path})", parts.method))
            .into_response();
    };

    let credential = header(&parts.headers, &axum::http::header::AUTHORIZATION)
        .map(|a| a.trim_start_matches("Bearer ").to_owned())
        .or_else(|| header(&parts.headers, &HeaderName::from_static("x-api-key")));
    let plan = app.faults.next_request(provider, credential.as_deref());
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let (response, sent_usage) = match dialect {
        Dialect::OpenAiChat => {
            let answer = app.answers.find(provider, json.as_ref());
            openai_chat(app, provider, &parts.headers, json.as_ref(), plan, answer)
        }
        Dialect::OpenAiResponses => openai_responses(app, &parts.headers, json.as_ref(), plan),
        Dialect::AnthropicMessages => {
            let answer = app.answers.find(provider, json.as_ref());
            let id = app.next_id.fetch_add(1, Ordering::Relaxed);
            let plan = anthropic::Plan {
                fault: plan.status,
                gap: plan.chunk_delay,
                unreadable_usage: plan.unreadable_usage,
            };
            anthropic::respond(&parts.headers, json.as_ref(), plan, id, answer)
        }
    };
    if let Some(usage) = sent_usage {
        app.received.set_sent_usage(seq, usage);
    }
    let mut response = response;
    if plan.status.is_some_and(|s| s.is_redirection()) {
        // A provider's own redirect (as for a file download): somewhere else.
        response.headers_mut().insert(
            axum::http::header::LOCATION,
            axum::http::HeaderValue::from_static(REDIRECT_LOCATION),
        );
    }
    response
}

/// Where a redirect fault (status 3xx) points: plain http, the tests'
/// listener's scheme, so a route's redirect policy would follow it even
/// without `allow_cross_scheme_redirect` (real providers send https).
const REDIRECT_LOCATION: &str = "http://files.example.com/mock/redirected";

/// An OpenAI-format chat request, after any delay fault: the response and
/// the usage it carries.
fn openai_chat(
    app: &App,
    provider: Provider,
    headers: &HeaderMap,
    json: Option<&Value>,
    plan: Plan,
    answer: Option<String>,
) -> (Response, Option<Value>) {
    let chat = ChatRequest::from_json(json).map(|mut c| {
        c.answer = answer;
        c
    });
    if let Some(status) = plan.status {
        let model = chat
            .as_ref()
            .map_or(openai::UNKNOWN_MODEL, |c| c.model.as_str());
        return (ApiError::for_status(status, model).into_response(), None);
    }
    if !has_bearer_key(headers) {
        return (ApiError::missing_api_key().into_response(), None);
    }
    let chat = match chat {
        Ok(chat) => chat,
        Err(e) => return (e.into_response(), None),
    };
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    openai::respond(provider, &chat, id, plan.chunk_delay, plan.unreadable_usage)
}

/// An OpenAI Responses request, after any delay fault: checked in the chat
/// endpoint's order (fault status, key, body), answered with the chat
/// answer, scripted answers included, for the same conversation.
fn openai_responses(
    app: &App,
    headers: &HeaderMap,
    json: Option<&Value>,
    plan: Plan,
) -> (Response, Option<Value>) {
    let request = responses::ResponsesRequest::from_json(json);
    if let Some(status) = plan.status {
        let model = json
            .and_then(|body| body.get("model"))
            .and_then(Value::as_str)
            .unwrap_or(openai::UNKNOWN_MODEL);
        return (ApiError::for_status(status, model).into_response(), None);
    }
    if !has_bearer_key(headers) {
        return (ApiError::missing_api_key().into_response(), None);
    }
    let mut request = match request {
        Ok(request) => request,
        Err(e) => return (e.into_response(), None),
    };
    request.chat.answer = app
        .answers
        .find(Provider::OpenAi, Some(&request.answers_body()));
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    responses::respond(&request, id, plan.chunk_delay, plan.unreadable_usage)
}

/// `--fast`: drain the body, then the constant answer; no parsing, no log.
async fn fast_answer(fast: &Fast, parts: &Parts, body: Body) -> Response {
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        if let Err(e) = chunk {
            return ApiError::invalid_request(format!("Could not read the request body: {e}"))
                .into_response();
        }
    }
    let path = parts.uri.path();
    let Some((provider, relative)) = provider::resolve(host(parts), path) else {
        return unknown_provider(parts);
    };
    match provider.endpoint(parts.method == Method::POST, relative) {
        Some(Dialect::OpenAiChat) => json_response(StatusCode::OK, fast.chat.clone()),
        Some(Dialect::AnthropicMessages) => json_response(StatusCode::OK, fast.messages.clone()),
        Some(Dialect::OpenAiResponses) => json_response(StatusCode::OK, fast.responses.clone()),
        None => {
            ApiError::not_found(format!("Invalid URL ({} {path})", parts.method)).into_response()
        }
    }
}

fn unknown_provider(parts: &Parts) -> Response {
    let hosts: Vec<&str> = Provider::ALL.iter().map(|p| p.host()).collect();
    ApiError::not_found(format!(
        "No provider for host {:?} and path '{}': mock-provider knows the hosts {} or a \
         /<provider>/ path prefix",
        host(parts).unwrap_or(""),
        parts.uri.path(),
        hosts.join(", ")
    ))
    .into_response()
}

/// The Host header, else the authority of an absolute-form URI.
fn host(parts: &Parts) -> Option<&str> {
    match parts.headers.get(HOST) {
        Some(value) => value.to_str().ok(),
        None => parts.uri.authority().map(|a| a.as_str()),
    }
}

/// A header's raw value (lossy UTF-8), or `None` when absent.
fn header(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `Authorization: Bearer <non-empty key>`.
fn has_bearer_key(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, key)| {
            scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty()
        })
}

async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut data = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(format!("Could not read the request body: {e}"))
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("Request body larger than mock-provider's limit of {limit} bytes."),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn args(line: &str) -> Result<Option<Options>, String> {
        parse_args(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_the_command_line() {
        let options = args("--listen 127.0.0.1:0 --fast --threads 4")
            .unwrap()
            .unwrap();
        assert_eq!(
            options,
            Options {
                listen: "127.0.0.1:0".parse().unwrap(),
                fast: true,
                threads: 4
            }
        );
        assert_eq!(args("--listen=[::1]:18000").unwrap().unwrap().threads, 1);
        assert_eq!(args("--help").unwrap(), None);
        for bad in [
            "",
            "--listen",
            "--listen 0.0.0.0:80",
            "--listen localhost:80",
            "--listen 127.0.0.1:0 --threads 0",
            "--listen 127.0.0.1:0 --fast=yes",
            "--listen 127.0.0.1:0 --bogus",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wants_a_bearer_key() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            has_bearer_key(&headers)
        };
        assert!(with("Bearer sk-test"));
        assert!(with("bearer k"));
        assert!(!with("Bearer "));
        assert!(!with("Basic abc"));
        assert!(!with("sk-test"));
        assert!(!has_bearer_key(&HeaderMap::new()));
    }
}
