//! The client protocols beyond Chat Completions and Anthropic Messages,
//! each through its official client against real Envoy with the real filter,
//! the mock providers and the real control plane:
//!
//! - the `openai` SDK's Responses API (`POST /v1/responses`,
//!   `tests/sdk/responses_cases.py`): plain, streamed, a function tool round
//!   trip (the conversation sent back whole: aipipe is stateless);
//! - the `ollama` client (`POST /api/chat`, `POST /api/generate`, `GET
//!   /api/tags`, `tests/sdk/ollama_cases.py`), as Open WebUI uses aipipe:
//!   chat and generate, plain and streamed (Ollama streams by default), tool
//!   calls answered by `tool_name`, images, the model list.
//!
//! Every request is routed internally as Chat Completions: an OpenAI-format
//! model (gpt-4o-mini) gets a chat request, Claude (claude-sonnet-4-5) its
//! native Messages request, and the answer comes back in the client's
//! protocol. Each case runs as its own tenant, so the control plane's stats
//! for that tenant are that case's usage records: they must hold exactly the
//! tokens the mock sent, and the catalog's cost for them.
//!
//! Both scripts run in batch form (one Python process each, against one
//! stack) the first time a test asks; each case is its own `#[test]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use aipipe_core::table::Model;
use aipipe_tests::{ControlPlane, Envoy, Mock, TempDir, eventually, post_json, repo_root};
use serde_json::{Value, json};

const SYSTEM: &str = "You are a helpful assistant.";
const GREETING: &str = "hello! how are you today?";
const WEATHER: &str = "What's the weather in Paris right now?";
/// The same 1x1 PNG as `tests/sdk/_common.py`.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// How long one script's batch may run (each call times out after 20 s).
const BATCH_PATIENCE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Responses,
    Ollama,
}

impl Client {
    fn script(self) -> &'static str {
        match self {
            Client::Responses => "tests/sdk/responses_cases.py",
            Client::Ollama => "tests/sdk/ollama_cases.py",
        }
    }

    fn cases(self) -> &'static [Case] {
        match self {
            Client::Responses => RESPONSES_CASES,
            Client::Ollama => OLLAMA_CASES,
        }
    }

    /// The tenant a case runs as: its records are that case's alone.
    fn tenant(self, id: &str) -> String {
        let prefix = match self {
            Client::Responses => "resp",
            Client::Ollama => "ollama",
        };
        format!("{prefix}-{}", id.replace('_', "-"))
    }
}

/// One case: (id, case function of the script, model, prompt).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const RESPONSES_CASES: &[Case] = &[
    ("plain_gpt", "plain", "gpt-4o-mini", None),
    ("stream_gpt", "stream", "gpt-4o-mini", None),
    ("tools_gpt", "tools", "gpt-4o-mini", None),
    (
        "stream_tools_gpt",
        "stream_tools",
        "gpt-4o-mini",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    ("plain_claude", "plain", "claude-sonnet-4-5", None),
    ("stream_claude", "stream", "claude-sonnet-4-5", None),
    ("tools_claude", "tools", "claude-sonnet-4-5", None),
    (
        "stream_tools_claude",
        "stream_tools",
        "claude-sonnet-4-5",
        Some("Is the weather in Oslo cold enough for a coat?"),
    ),
    (
        "plain_auto",
        "plain",
        "auto",
        Some("hi! how is your day going?"),
    ),
];

const OLLAMA_CASES: &[Case] = &[
    ("chat_gpt", "chat", "gpt-4o-mini", None),
    ("stream_gpt", "stream", "gpt-4o-mini", None),
    ("generate_gpt", "generate", "gpt-4o-mini", None),
    (
        "generate_stream_gpt",
        "generate_stream",
        "gpt-4o-mini",
        None,
    ),
    ("tools_gpt", "tools", "gpt-4o-mini", None),
    ("image_gpt", "image", "gpt-4o-mini", None),
    ("chat_claude", "chat", "claude-sonnet-4-5", None),
    ("stream_claude", "stream", "claude-sonnet-4-5", None),
    ("generate_claude", "generate", "claude-sonnet-4-5", None),
    (
        "generate_stream_claude",
        "generate_stream",
        "claude-sonnet-4-5",
        None,
    ),
    ("tools_claude", "tools", "claude-sonnet-4-5", None),
    ("image_claude", "image", "claude-sonnet-4-5", None),
    (
        "chat_auto",
        "chat",
        "auto",
        Some("hi! how is your day going?"),
    ),
    ("list", "list", "auto", None),
];

/// What both batches printed, by (client, case id), with each case's
/// control-plane stats, and the logs of the stack.
struct Batch {
    lines: HashMap<(&'static str, String), Value>,
    stats: HashMap<String, Value>,
    stderr: String,
    logs: String,
}

fn batch() -> &'static Result<Batch, String> {
    static BATCH: OnceLock<Result<Batch, String>> = OnceLock::new();
    BATCH.get_or_init(|| {
        catch_unwind(AssertUnwindSafe(run_batches)).unwrap_or_else(|e| {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("the client batches could not run: {message}"))
        })
    })
}

/// Starts the stack, gives every case its tenant, runs both scripts, waits
/// until every case's usage is stored, stops the stack.
fn run_batches() -> Result<Batch, String> {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        return Err(format!(
            "{} is missing: run `make integration` (it creates .venv/ and installs the pinned SDKs)",
            python.display()
        ));
    }
    let cp = ControlPlane::start();
    let mock = Mock::start();
    let envoy = Envoy::start_rendered_with(
        "demo.yaml",
        mock.port,
        Some("{}".to_owned()),
        true,
        Some((cp.internal_port, cp.internal_token.clone())),
        2,
    );
    let mut keys = HashMap::new();
    for client in [Client::Responses, Client::Ollama] {
        for (id, ..) in client.cases() {
            let tenant = client.tenant(id);
            let provider_keys = provider_keys(&tenant);
            let pairs: Vec<(&str, &str)> = provider_keys
                .iter()
                .map(|(p, k)| (*p, k.as_str()))
                .collect();
            keys.insert(tenant.clone(), cp.tenant(&tenant, &pairs));
        }
    }
    // Created after every case's tenant: once it is served, so are they.
    let probe = cp.tenant("probe", &[("openai", "sk-probe")]);
    let ready = eventually(Duration::from_secs(15), || {
        let r = post_json(
            &envoy.url("/v1/chat/completions"),
            &[("authorization", &format!("Bearer {probe}"))],
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "probe"}]}),
        );
        (r.status == 200).then_some(())
    });
    if ready.is_none() {
        return Err("the routing table with the test tenants never reached Envoy".into());
    }

    let mut lines = HashMap::new();
    let mut stderr = String::new();
    for client in [Client::Responses, Client::Ollama] {
        let specs: Vec<Value> = client
            .cases()
            .iter()
            .map(|(id, case, model, prompt)| {
                json!({"id": id, "case": case, "model": model, "prompt": prompt,
                    "key": keys[&client.tenant(id)]})
            })
            .collect();
        let (out, err) = run_script(&python, client, specs, envoy.port, mock.port)?;
        stderr.push_str(&err);
        for line in out {
            if let Some(id) = line["id"].as_str() {
                lines.insert((client.script(), id.to_owned()), line);
            }
        }
    }

    // Each case's records, stored: as many as the requests the mock got.
    let expected: Vec<(String, usize)> = [Client::Responses, Client::Ollama]
        .iter()
        .flat_map(|&client| client.cases().iter().map(move |(id, ..)| (client, *id)))
        .filter_map(|(client, id)| {
            let line = lines.get(&(client.script(), id.to_owned()))?;
            let n = line["upstream"].as_array().map_or(0, Vec::len);
            (n > 0).then(|| (client.tenant(id), n))
        })
        .collect();
    let stats_of = |tenant: &str| {
        cp.admin("GET", &format!("/admin/tenants/{tenant}/stats"), None)
            .json()
    };
    let stats = eventually(Duration::from_secs(20), || {
        let mut all = HashMap::new();
        for (tenant, n) in &expected {
            let st = stats_of(tenant);
            if st["totals"]["requests"].as_u64() != Some(*n as u64) {
                return None;
            }
            all.insert(tenant.clone(), st);
        }
        Some(all)
    })
    .unwrap_or_else(|| {
        expected
            .iter()
            .map(|(tenant, _)| (tenant.clone(), stats_of(tenant)))
            .collect()
    });

    let envoy_log = envoy.process.logs();
    let filter_lines: Vec<&str> = envoy_log
        .lines()
        .filter(|l| l.contains("[wasm]") || l.contains("[critical]") || l.contains("[error]"))
        .collect();
    let logs = format!(
        "----- envoy log, filter lines -----\n{}\n----- mock-provider log -----\n{}",
        filter_lines.join("\n"),
        mock.process.logs()
    );
    Ok(Batch {
        lines,
        stats,
        stderr,
        logs,
    })
}

fn provider_keys(tenant: &str) -> Vec<(&'static str, String)> {
    ["openai", "anthropic"]
        .into_iter()
        .map(|p| (p, format!("sk-{tenant}-{p}")))
        .collect()
}

/// Runs one script's batch; returns its JSON lines and its stderr.
fn run_script(
    python: &std::path::Path,
    client: Client,
    specs: Vec<Value>,
    envoy_port: u16,
    mock_port: u16,
) -> Result<(Vec<Value>, String), String> {
    let root = repo_root();
    let dir = TempDir::new("client-protocols");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut cmd = Command::new(python);
    cmd.current_dir(&root)
        .arg(root.join(client.script()))
        // Each case names its own key; this one is never used.
        .args(["--batch", "--key", "vk-unused"])
        .args(["--port", &envoy_port.to_string()])
        .args(["--mock-port", &mock_port.to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?);
    // Nothing from the environment may change where the clients go or what they send.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OLLAMA_HOST",
        "OLLAMA_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(Value::Array(specs).to_string().as_bytes())
            .map_err(|e| format!("cannot write the cases to the script: {e}"))?;
    }
    let status = eventually(BATCH_PATIENCE, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    if status.is_none() {
        return Err(format!(
            "{} still running after {BATCH_PATIENCE:?}; it printed:\n{stdout}\n{stderr}",
            client.script()
        ));
    }
    if lines.is_empty() {
        return Err(format!(
            "{} reported no case ({}):\n{stdout}\n{stderr}",
            client.script(),
            status.map(|s| s.to_string()).unwrap_or_default()
        ));
    }
    Ok((lines, stderr))
}

/// A case's result: what the client observed, what the mock received, and
/// the control plane's stats of the case's tenant.
struct Run {
    tenant: String,
    out: Value,
    upstream: Vec<Value>,
    stats: Value,
}

impl Run {
    fn header(&self, name: &str) -> Option<&str> {
        self.out["headers"][name].as_str()
    }

    fn only_upstream(&self) -> &Value {
        assert_eq!(
            self.upstream.len(),
            1,
            "the mock received {} requests: {:#?}",
            self.upstream.len(),
            self.upstream
        );
        &self.upstream[0]
    }
}

/// The result of case `id` of `client`'s script; panics with the script's
/// message (and the filter's log lines) if the case failed.
fn run(client: Client, id: &str) -> Run {
    let batch = match batch() {
        Ok(batch) => batch,
        Err(e) => panic!("{e}"),
    };
    let Some(line) = batch.lines.get(&(client.script(), id.to_owned())) else {
        panic!(
            "{} printed no line for case {id}; stderr:\n{}\n{}",
            client.script(),
            batch.stderr,
            batch.logs
        );
    };
    println!("{}", serde_json::to_string_pretty(line).unwrap_or_default());
    let upstream = line["upstream"].as_array().cloned().unwrap_or_default();
    if line["ok"] != true {
        panic!(
            "{}\n\nthe mock received: {upstream:#?}\n\n{}",
            line["error"].as_str().unwrap_or("(no message)"),
            batch.logs
        );
    }
    let tenant = client.tenant(id);
    // Whatever the route, the client's virtual key never leaves Envoy.
    for r in &upstream {
        for field in ["authorization", "x_api_key"] {
            assert!(
                !r[field].as_str().unwrap_or("").contains("vk-"),
                "the virtual key reached the provider in {field}: {r}"
            );
        }
    }
    Run {
        stats: batch.stats.get(&tenant).cloned().unwrap_or(Value::Null),
        tenant,
        out: line["observed"].clone(),
        upstream,
    }
}

// ------------------------------------------------------------------ checks

/// The answer came from `provider`'s `model`, as the headers say.
fn assert_answered_by(r: &Run, provider: &str, model: &str, route: &str) {
    assert_eq!(r.header("x-aipipe-provider"), Some(provider), "{}", r.out);
    assert_eq!(r.header("x-aipipe-model"), Some(model), "{}", r.out);
    assert_eq!(r.header("x-aipipe-route"), Some(route), "{}", r.out);
    assert_eq!(
        r.header("x-aipipe-request-id").map(str::len),
        Some(24),
        "{}",
        r.out
    );
}

/// The mock's text: `Mock answer from <provider>/<model>: …`.
fn assert_mock_text(text: &Value, provider: &str, model: &str) {
    let want = format!("Mock answer from {provider}/{model}: ");
    assert!(
        text.as_str().is_some_and(|t| t.starts_with(&want)),
        "the content {text} does not start with {want:?}"
    );
}

/// A request that reached `provider`'s API for `model` with the case
/// tenant's own key: Chat Completions for OpenAI, native Messages for
/// Anthropic.
fn assert_upstream(r: &Run, got: &Value, provider: &str, model: &str) {
    let key = format!("sk-{}-{provider}", r.tenant);
    assert_eq!(got["provider"], provider, "{got}");
    assert_eq!(got["model"], model, "{got}");
    match provider {
        "openai" => {
            assert_eq!(got["path"], "/v1/chat/completions", "{got}");
            assert_eq!(got["authorization"], format!("Bearer {key}"), "{got}");
            assert!(got["body"]["messages"].is_array(), "not a chat body: {got}");
        }
        "anthropic" => {
            assert_eq!(got["path"], "/v1/messages", "{got}");
            assert_eq!(got["x_api_key"], key, "{got}");
            assert!(
                got["body"]["max_tokens"].as_u64().is_some_and(|n| n > 0),
                "{got}"
            );
        }
        other => panic!("unexpected provider {other}"),
    }
}

/// The user's text as the provider got it: the last user message's text
/// (a string, or the text of its parts / blocks).
fn last_user_text(got: &Value) -> String {
    let messages = got["body"]["messages"].as_array().unwrap();
    let m = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        other => panic!("content {other}"),
    }
}

/// The system prompt as the provider got it.
fn system_text(got: &Value, provider: &str) -> Value {
    match provider {
        "anthropic" => match &got["body"]["system"] {
            Value::Array(blocks) => blocks[0]["text"].clone(),
            other => other.clone(),
        },
        _ => got["body"]["messages"][0]["content"].clone(),
    }
}

/// Token counts of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    prompt: u64,
    completion: u64,
    cached: u64,
    cache_write: u64,
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            prompt: self.prompt + o.prompt,
            completion: self.completion + o.completion,
            cached: self.cached + o.cached,
            cache_write: self.cache_write + o.cache_write,
        }
    }
}

/// What the `usage` the mock sent says, read in the provider's own format.
fn sent(got: &Value) -> Counts {
    let u = &got["sent_usage"];
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64);
    if got["provider"] == "anthropic" {
        let (input, read, write) = (
            n("/input_tokens").unwrap(),
            n("/cache_read_input_tokens").unwrap_or(0),
            n("/cache_creation_input_tokens").unwrap_or(0),
        );
        return Counts {
            prompt: input + read + write,
            completion: n("/output_tokens").unwrap(),
            cached: read,
            cache_write: write,
        };
    }
    Counts {
        prompt: n("/prompt_tokens").unwrap_or_else(|| panic!("no usage sent: {got}")),
        completion: n("/completion_tokens").unwrap(),
        cached: n("/prompt_tokens_details/cached_tokens").unwrap_or(0),
        cache_write: n("/prompt_tokens_details/cache_write_tokens").unwrap_or(0),
    }
}

/// Nano-dollars per token for a price in dollars per million tokens.
fn nusd(per_mtok: f64) -> u64 {
    (per_mtok * 1000.0).round() as u64
}

fn cost(m: &Model, c: &Counts) -> u64 {
    let input = nusd(m.input_per_mtok);
    let read = m.cached_input_per_mtok.map_or(input, nusd);
    let write = m.cache_write_per_mtok.map_or(input, nusd);
    (c.prompt - c.cached - c.cache_write) * input
        + c.cached * read
        + c.cache_write * write
        + c.completion * nusd(m.output_per_mtok)
}

/// The tenant's stored records hold exactly what the mock sent, one record
/// per upstream request, priced by the catalog.
fn assert_usage_recorded(r: &Run, model: &str) {
    let want = r
        .upstream
        .iter()
        .map(sent)
        .fold(Counts::default(), |a, b| a + b);
    let totals = &r.stats["totals"];
    let stored = |k: &str| totals[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        stored("requests"),
        r.upstream.len() as u64,
        "stats of {}: {}",
        r.tenant,
        r.stats
    );
    assert_eq!(stored("unparsed"), 0, "{}", r.stats);
    let got = Counts {
        prompt: stored("prompt_tokens"),
        completion: stored("completion_tokens"),
        cached: stored("cached_tokens"),
        cache_write: stored("cache_write_tokens"),
    };
    assert_eq!(got, want, "stored usage of {}: {}", r.tenant, r.stats);
    let catalog = aipipe_core::catalog::default_models();
    let m = catalog.iter().find(|m| m.id == model).unwrap();
    let stored_cost = totals["cost_usd"]
        .as_f64()
        .map(|d| (d * 1e9).round() as u64);
    assert_eq!(stored_cost, Some(cost(m, &want)), "{}", r.stats);
    assert_eq!(r.stats["by_model"][0]["model"], model, "{}", r.stats);
}

/// The usage the client saw in a Responses answer is the mock's.
fn assert_responses_usage(usage: &Value, got: &Value) {
    let c = sent(got);
    assert_eq!(usage["input_tokens"], c.prompt, "{usage} vs {got}");
    assert_eq!(usage["output_tokens"], c.completion, "{usage} vs {got}");
    assert_eq!(usage["cached_tokens"], c.cached, "{usage} vs {got}");
}

/// The usage the client saw in an Ollama answer is the mock's.
fn assert_ollama_usage(usage: &Value, got: &Value) {
    let c = sent(got);
    assert_eq!(usage["prompt_eval_count"], c.prompt, "{usage} vs {got}");
    assert_eq!(usage["eval_count"], c.completion, "{usage} vs {got}");
}

/// Where a tool call was made: its id's prefix.
fn call_prefix(provider: &str) -> &'static str {
    if provider == "anthropic" {
        "toolu_mock_"
    } else {
        "call_mock_"
    }
}

fn assert_weather_args(args: &Value) {
    assert_eq!(
        *args,
        json!({"location": "San Francisco, CA", "unit": "celsius"}),
        "{args}"
    );
}

fn provider_of(model: &str) -> &'static str {
    if model.starts_with("claude") {
        "anthropic"
    } else {
        "openai"
    }
}

// ------------------------------------------------------- Responses API

fn responses_plain(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_eq!(r.out["answer_model"], model);
    assert_eq!(r.out["status"], "completed");
    assert_eq!(r.out["items"], json!(["message"]));
    assert_mock_text(&r.out["content"], provider, model);
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], false, "{got}");
    // `instructions` is the system prompt; the input the user's turn.
    assert_eq!(system_text(got, provider), SYSTEM, "{got}");
    assert_eq!(last_user_text(got), GREETING);
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
    assert_eq!(got["body"]["temperature"], 0.5, "{got}");
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

fn responses_stream(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_mock_text(&r.out["content"], provider, model);
    let events = r.out["events"].as_array().unwrap();
    for e in [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ] {
        assert!(events.contains(&json!(e)), "no {e} in {events:?}");
    }
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], true, "{got}");
    if provider == "openai" {
        assert_eq!(got["body"]["stream_options"]["include_usage"], true);
    }
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

fn responses_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    let first = &r.out["first"];
    let calls = first["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{first}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_weather_args(&calls[0]["arguments"]);
    let call_id = calls[0]["call_id"].as_str().unwrap();
    assert!(call_id.starts_with(call_prefix(provider)), "{first}");
    assert!(
        calls[0]["id"].as_str().unwrap().starts_with("fc_"),
        "{first}"
    );
    assert_mock_text(&r.out["second"]["content"], provider, model);
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    assert_eq!(last_user_text(&r.upstream[0]), WEATHER);
    for (g, answer) in r.upstream.iter().zip([first, &r.out["second"]]) {
        assert_upstream(&r, g, provider, model);
        assert_responses_usage(&answer["usage"], g);
    }
    // The second turn carried the call and its output, paired by call id.
    let second = &r.upstream[1]["body"];
    if provider == "openai" {
        assert_eq!(second["tools"][0]["function"]["name"], "get_weather");
        let messages = second["messages"].as_array().unwrap();
        let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
        assert_eq!(assistant["tool_calls"][0]["id"], call_id, "{second}");
        let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool["tool_call_id"], call_id, "{second}");
    } else {
        assert_eq!(second["tools"][0]["name"], "get_weather");
        let blocks: Vec<&Value> = second["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .collect();
        let tool_use = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
        assert_eq!(tool_use["id"], call_id, "{second}");
        let result = blocks.iter().find(|b| b["type"] == "tool_result").unwrap();
        assert_eq!(result["tool_use_id"], call_id, "{second}");
    }
    assert_usage_recorded(&r, model);
}

fn responses_stream_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Responses, id);
    assert_answered_by(&r, provider, model, "explicit");
    let calls = r.out["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{}", r.out);
    assert_weather_args(&calls[0]["arguments"]);
    assert!(
        calls[0]["call_id"]
            .as_str()
            .unwrap()
            .starts_with(call_prefix(provider))
    );
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    assert_eq!(got["stream"], true);
    assert_responses_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
}

#[test]
fn responses_plain_gpt_4o_mini_becomes_a_chat_request_and_back() {
    responses_plain("plain_gpt", "gpt-4o-mini");
}

#[test]
fn responses_plain_claude_goes_to_anthropic_messages_and_back() {
    responses_plain("plain_claude", "claude-sonnet-4-5");
}

#[test]
fn responses_stream_gpt_4o_mini_becomes_response_events() {
    responses_stream("stream_gpt", "gpt-4o-mini");
}

#[test]
fn responses_stream_claude_becomes_response_events() {
    responses_stream("stream_claude", "claude-sonnet-4-5");
}

#[test]
fn responses_function_tool_round_trip_on_gpt_4o_mini() {
    responses_tools("tools_gpt", "gpt-4o-mini");
}

#[test]
fn responses_function_tool_round_trip_on_claude() {
    responses_tools("tools_claude", "claude-sonnet-4-5");
}

#[test]
fn responses_streamed_function_call_on_gpt_4o_mini() {
    responses_stream_tools("stream_tools_gpt", "gpt-4o-mini");
}

#[test]
fn responses_streamed_function_call_on_claude() {
    responses_stream_tools("stream_tools_claude", "claude-sonnet-4-5");
}

#[test]
fn responses_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Client::Responses, "plain_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    assert!(r.header("x-aipipe-complexity").is_some(), "{}", r.out);
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    let got = r.only_upstream();
    assert_upstream(&r, got, "openai", "gpt-4o-mini");
    assert_usage_recorded(&r, "gpt-4o-mini");
}

// -------------------------------------------------------------- Ollama

fn ollama_answer(id: &str, model: &str, stream: bool, prompt: &str) -> Run {
    let provider = provider_of(model);
    let r = run(Client::Ollama, id);
    assert_answered_by(&r, provider, model, "explicit");
    assert_mock_text(&r.out["content"], provider, model);
    assert_eq!(r.out["done_reason"], "stop");
    let got = r.only_upstream();
    assert_upstream(&r, got, provider, model);
    // Ollama streams unless told not to; the provider is asked the same.
    assert_eq!(got["stream"], stream, "{got}");
    assert_eq!(last_user_text(got), prompt);
    assert_ollama_usage(&r.out["usage"], got);
    assert_usage_recorded(&r, model);
    r
}

#[test]
fn ollama_chat_gpt_4o_mini_becomes_a_chat_request_and_back() {
    let r = ollama_answer("chat_gpt", "gpt-4o-mini", false, GREETING);
    let got = r.only_upstream();
    assert_eq!(system_text(got, "openai"), SYSTEM);
    // options.num_predict → max_tokens, options.temperature kept.
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
    assert_eq!(got["body"]["temperature"], 0.5, "{got}");
}

#[test]
fn ollama_chat_claude_goes_to_anthropic_messages_and_back() {
    let r = ollama_answer("chat_claude", "claude-sonnet-4-5", false, GREETING);
    let got = r.only_upstream();
    assert_eq!(system_text(got, "anthropic"), SYSTEM);
    assert_eq!(got["body"]["max_tokens"], 256, "{got}");
}

#[test]
fn ollama_chat_streams_ndjson_by_default_from_gpt_4o_mini() {
    let r = ollama_answer("stream_gpt", "gpt-4o-mini", true, GREETING);
    assert!(r.out["lines"].as_u64().unwrap() > 2, "{}", r.out);
}

#[test]
fn ollama_chat_streams_ndjson_by_default_from_claude() {
    let r = ollama_answer("stream_claude", "claude-sonnet-4-5", true, GREETING);
    assert!(r.out["lines"].as_u64().unwrap() > 2, "{}", r.out);
}

#[test]
fn ollama_generate_gpt_4o_mini_answers_a_response_string() {
    let r = ollama_answer("generate_gpt", "gpt-4o-mini", false, GREETING);
    assert_eq!(system_text(r.only_upstream(), "openai"), SYSTEM);
}

#[test]
fn ollama_generate_claude_answers_a_response_string() {
    let r = ollama_answer("generate_claude", "claude-sonnet-4-5", false, GREETING);
    assert_eq!(system_text(r.only_upstream(), "anthropic"), SYSTEM);
}

#[test]
fn ollama_generate_streams_from_gpt_4o_mini() {
    ollama_answer("generate_stream_gpt", "gpt-4o-mini", true, GREETING);
}

#[test]
fn ollama_generate_streams_from_claude() {
    ollama_answer(
        "generate_stream_claude",
        "claude-sonnet-4-5",
        true,
        GREETING,
    );
}

fn ollama_tools(id: &str, model: &str) {
    let provider = provider_of(model);
    let r = run(Client::Ollama, id);
    assert_answered_by(&r, provider, model, "explicit");
    let first = &r.out["first"];
    let calls = first["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{first}");
    assert_eq!(calls[0]["name"], "get_weather");
    // Arguments as an object, as Ollama sends them.
    assert_weather_args(&calls[0]["arguments"]);
    assert_mock_text(&r.out["second"]["content"], provider, model);
    assert_eq!(r.upstream.len(), 2, "{:#?}", r.upstream);
    assert_eq!(last_user_text(&r.upstream[0]), WEATHER);
    for (g, answer) in r.upstream.iter().zip([first, &r.out["second"]]) {
        assert_upstream(&r, g, provider, model);
        assert_eq!(g["stream"], false);
        assert_ollama_usage(&answer["usage"], g);
    }
    // The result, sent back by `tool_name` only, answers the call it names.
    let second = &r.upstream[1]["body"];
    if provider == "openai" {
        let messages = second["messages"].as_array().unwrap();
        let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
        let call = &assistant["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{second}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_weather_args(&args);
        let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool["tool_call_id"], call["id"], "{second}");
    } else {
        let blocks: Vec<&Value> = second["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .collect();
        let tool_use = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
        assert_weather_args(&tool_use["input"]);
        let result = blocks.iter().find(|b| b["type"] == "tool_result").unwrap();
        assert_eq!(result["tool_use_id"], tool_use["id"], "{second}");
    }
    assert_usage_recorded(&r, model);
}

#[test]
fn ollama_tool_call_round_trip_on_gpt_4o_mini() {
    ollama_tools("tools_gpt", "gpt-4o-mini");
}

#[test]
fn ollama_tool_call_round_trip_on_claude() {
    ollama_tools("tools_claude", "claude-sonnet-4-5");
}

#[test]
fn ollama_image_reaches_gpt_4o_mini_as_a_png_data_url() {
    let r = run(Client::Ollama, "image_gpt");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "explicit");
    let got = r.only_upstream();
    assert_upstream(&r, got, "openai", "gpt-4o-mini");
    let parts = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = parts.iter().find(|p| p["type"] == "image_url").unwrap();
    assert_eq!(
        image["image_url"]["url"],
        format!("data:image/png;base64,{PNG_1X1}")
    );
    assert_usage_recorded(&r, "gpt-4o-mini");
}

#[test]
fn ollama_image_reaches_claude_as_a_base64_image_block() {
    let r = run(Client::Ollama, "image_claude");
    assert_answered_by(&r, "anthropic", "claude-sonnet-4-5", "explicit");
    let got = r.only_upstream();
    assert_upstream(&r, got, "anthropic", "claude-sonnet-4-5");
    let blocks = got["body"]["messages"][0]["content"].as_array().unwrap();
    let image = blocks.iter().find(|b| b["type"] == "image").unwrap();
    assert_eq!(
        image["source"],
        json!({"type": "base64", "media_type": "image/png", "data": PNG_1X1})
    );
    assert_usage_recorded(&r, "claude-sonnet-4-5");
}

#[test]
fn ollama_auto_routes_a_greeting_to_gpt_4o_mini() {
    let r = run(Client::Ollama, "chat_auto");
    assert_answered_by(&r, "openai", "gpt-4o-mini", "auto");
    assert!(r.header("x-aipipe-complexity").is_some(), "{}", r.out);
    assert_mock_text(&r.out["content"], "openai", "gpt-4o-mini");
    assert_upstream(&r, r.only_upstream(), "openai", "gpt-4o-mini");
    assert_usage_recorded(&r, "gpt-4o-mini");
}

#[test]
fn ollama_list_shows_auto_and_the_tenants_models() {
    let r = run(Client::Ollama, "list");
    assert!(
        r.upstream.is_empty(),
        "the list went upstream: {:#?}",
        r.upstream
    );
    let models: Vec<&str> = r.out["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(models.first(), Some(&"auto"), "{models:?}");
    for m in ["gpt-4o-mini", "claude-sonnet-4-5"] {
        assert!(models.contains(&m), "{m} missing from {models:?}");
    }
    // Only the providers the tenant has keys for.
    for (model, family) in r.out["families"].as_object().unwrap() {
        assert!(
            ["aipipe", "openai", "anthropic"].contains(&family.as_str().unwrap()),
            "{model} of {family}: the tenant has no key for it"
        );
    }
}
