//! Running a suite through the gateway: every task against every model, by
//! name (`"model": "<catalog id>"`, so the filter skips scoring and sends it
//! to that model), with the tenant's virtual key, `temperature: 0` and
//! `Cache-Control: no-store` (each call reaches the model: a cached answer
//! would measure no latency). Calls run a few at a time per eval and across
//! evals ([`PER_EVAL`], [`IN_FLIGHT`]), each with a timeout ([`CALL_TIMEOUT`]).
//! An answer from another model than the one named (the filter failed over)
//! is an error of that call, not a pass or fail of the model.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::check::{self, Check};
use super::{Suite, Summary, Task};

/// Where the gateway listens when `--gateway-url` is not given.
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:10000";
/// Calls of one eval at a time.
pub const PER_EVAL: usize = 4;
/// Calls of all evals at a time.
pub const IN_FLIGHT: usize = 8;
/// How long one call may take, answer included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer body read.
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;
/// How much of an answer a result keeps.
const KEPT_ANSWER_CHARS: usize = 500;

/// The virtual key an eval calls with; it prints as `VirtualKey(..)` so it
/// cannot reach a log line by accident.
#[derive(Clone)]
pub struct VirtualKey(String);

impl VirtualKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// `text` with every occurrence of the key replaced, for anything kept.
    fn redact(&self, text: &str) -> String {
        text.replace(self.0.as_str(), "[redacted]")
    }
}

impl std::fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VirtualKey(..)")
    }
}

/// Checks `--gateway-url` at startup: plain `http://` with a host (the
/// control plane makes no TLS connections).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("--gateway-url: not a URL: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
        return Err("--gateway-url: must be an http:// URL (Envoy's listener)".into());
    }
    Ok(())
}

/// How long a running eval's heartbeat may be silent before any control
/// plane on the database fails it as interrupted, unless `--eval-stale-ms`
/// says otherwise (control-plane/README.md, "Replicas").
pub const DEFAULT_STALE_MS: u64 = 60_000;

/// The gateway evals call, the calls in flight, and how often a running
/// eval's heartbeat is written; one per process.
pub struct Runner {
    gateway: OnceLock<String>,
    in_flight: Arc<Semaphore>,
    /// See [`DEFAULT_STALE_MS`].
    stale_ms: AtomicU64,
}

impl Default for Runner {
    fn default() -> Self {
        Self {
            gateway: OnceLock::new(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            stale_ms: AtomicU64::new(DEFAULT_STALE_MS),
        }
    }
}

/// One task against one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskResult {
    pub task: String,
    pub model: String,
    pub category: String,
    pub passed: bool,
    /// No answer could be checked (an error status, a timeout, another
    /// model answered, the judge gave no verdict).
    pub error: bool,
    /// The gateway's status, when it answered.
    pub status: Option<u16>,
    /// The model call's latency, when the model named answered.
    pub latency_ms: Option<f64>,
    /// Why it failed or erred.
    pub detail: Option<String>,
    /// The start of the answer (500 characters).
    pub answer: Option<String>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub summary: Vec<Summary>,
    pub results: Vec<TaskResult>,
}

impl Outcome {
    /// Whether any call got an answer (else the run failed as a whole: the
    /// gateway is down, the key refused…).
    pub fn answered(&self) -> bool {
        self.results.iter().any(|r| r.status == Some(200))
    }
}

/// What one call got back.
struct Answer {
    status: u16,
    /// `x-aipipe-model`: the catalog id of the model that answered.
    model: Option<String>,
    /// The text of the first choice (200), or the error's message.
    text: String,
    latency_ms: f64,
}

impl Runner {
    /// Sets the gateway once (startup); later calls change nothing.
    pub fn set_gateway_url(&self, url: &str) {
        let _ = self.gateway.set(url.trim_end_matches('/').to_owned());
    }

    pub fn gateway_url(&self) -> &str {
        self.gateway
            .get()
            .map_or(DEFAULT_GATEWAY_URL, String::as_str)
    }

    /// How long a heartbeat may be silent before its eval is failed as
    /// interrupted (at least a second).
    pub fn set_stale_ms(&self, ms: u64) {
        self.stale_ms.store(ms.max(1000), Ordering::Relaxed);
    }

    pub fn stale_ms(&self) -> u64 {
        self.stale_ms.load(Ordering::Relaxed)
    }

    /// How often a running eval's heartbeat is written: six times within
    /// the bound, so a few slow or failed writes never let it look stopped.
    pub fn heartbeat_every(&self) -> Duration {
        Duration::from_millis(self.stale_ms() / 6)
    }

    /// How often evals whose heartbeat stopped are looked for: so one is
    /// failed at most a quarter of the bound after it went stale.
    pub fn sweep_every(&self) -> Duration {
        Duration::from_millis(self.stale_ms() / 4)
    }

    /// Runs every task against every model; results in task order, then
    /// model order.
    pub async fn run(&self, suite: Arc<Suite>, key: VirtualKey) -> Outcome {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .http_status_as_error(false)
            // The gateway is called directly, whatever HTTP_PROXY says: the
            // virtual key goes to it and nowhere else.
            .proxy(None)
            .build()
            .into();
        let url = format!("{}/v1/chat/completions", self.gateway_url());
        let per_eval = Arc::new(Semaphore::new(PER_EVAL));
        let mut calls = Calls {
            set: tokio::task::JoinSet::new(),
            abandoned: Arc::new(AtomicBool::new(false)),
        };
        for ti in 0..suite.tasks.len() {
            for mi in 0..suite.models.len() {
                let (suite, key, agent, url) =
                    (suite.clone(), key.clone(), agent.clone(), url.clone());
                let (mine, all) = (per_eval.clone(), self.in_flight.clone());
                let abandoned = calls.abandoned.clone();
                calls.set.spawn(async move {
                    let _mine = mine.acquire_owned().await;
                    let _all = all.acquire_owned().await;
                    if abandoned.load(Ordering::SeqCst) {
                        return None;
                    }
                    let r = tokio::task::spawn_blocking(move || {
                        one(&agent, &url, &key, &suite, ti, mi)
                    })
                    .await;
                    Some((ti, mi, r))
                });
            }
        }
        let mut results: Vec<(usize, usize, TaskResult)> = Vec::new();
        while let Some(joined) = calls.set.join_next().await {
            match joined {
                Ok(None) => {}
                Ok(Some((ti, mi, Ok(r)))) => results.push((ti, mi, r)),
                Ok(Some((ti, mi, Err(e)))) => {
                    tracing::warn!("an eval call's task failed: {e}");
                    if let (Some(t), Some(m)) = (suite.tasks.get(ti), suite.models.get(mi)) {
                        results.push((ti, mi, errored(t, m, None, "internal error".into())));
                    }
                }
                Err(e) => tracing::warn!("an eval call's task failed: {e}"),
            }
        }
        results.sort_by_key(|(ti, mi, _)| (*ti, *mi));
        let results: Vec<TaskResult> = results.into_iter().map(|(_, _, r)| r).collect();
        Outcome {
            summary: summarise(&suite.models, &results),
            results,
        }
    }
}

/// One call's task, model and result (None: abandoned before it went out).
type Call = (usize, usize, Result<TaskResult, tokio::task::JoinError>);

/// An eval's calls in flight. Dropped (the run abandoned: its eval was
/// failed elsewhere), it marks them abandoned before it aborts them: an
/// aborted call hands its permits back at once, and a call waiting for one
/// could otherwise take it and go out before its own abort lands.
struct Calls {
    set: tokio::task::JoinSet<Option<Call>>,
    abandoned: Arc<AtomicBool>,
}

impl Drop for Calls {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.set.abort_all();
    }
}

fn errored(task: &Task, model: &str, status: Option<u16>, detail: String) -> TaskResult {
    TaskResult {
        task: task.id.clone(),
        model: model.to_owned(),
        category: task.category.name().to_owned(),
        passed: false,
        error: true,
        status,
        latency_ms: None,
        detail: Some(detail),
        answer: None,
    }
}

/// Task `ti` against model `mi`, blocking.
fn one(
    agent: &ureq::Agent,
    url: &str,
    key: &VirtualKey,
    suite: &Suite,
    ti: usize,
    mi: usize,
) -> TaskResult {
    let (Some(task), Some(model)) = (suite.tasks.get(ti), suite.models.get(mi)) else {
        return TaskResult {
            task: String::new(),
            model: String::new(),
            category: String::new(),
            passed: false,
            error: true,
            status: None,
            latency_ms: None,
            detail: Some("no such task".into()),
            answer: None,
        };
    };
    let messages: Vec<Value> = task
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let a = match call(agent, url, key, model, &messages, task.max_tokens) {
        Ok(a) => a,
        Err(e) => return errored(task, model, None, key.redact(&e)),
    };
    if a.status != 200 {
        let detail = format!("HTTP {}: {}", a.status, clip(&a.text, 300));
        return errored(task, model, Some(a.status), key.redact(&detail));
    }
    if a.model.as_deref() != Some(model.as_str()) {
        let by = a.model.as_deref().unwrap_or("an unnamed model");
        // Another model's latency: not this one's.
        return errored(
            task,
            model,
            Some(200),
            format!("answered by {by}, not {model} (failover)"),
        );
    }
    let verdict = match &task.check {
        Check::Judge(criterion) => judge(agent, url, key, suite, task, criterion, &a.text),
        other => Ok(other.run(&a.text)),
    };
    let (passed, error, detail) = match verdict {
        Ok(Ok(())) => (true, false, None),
        Ok(Err(why)) => (false, false, Some(why)),
        Err(why) => (false, true, Some(why)),
    };
    TaskResult {
        task: task.id.clone(),
        model: model.clone(),
        category: task.category.name().to_owned(),
        passed,
        error,
        status: Some(200),
        latency_ms: Some(a.latency_ms),
        detail: detail.map(|d| key.redact(&d)),
        answer: Some(key.redact(&clip(&a.text, KEPT_ANSWER_CHARS))),
    }
}

/// Asks the judge model whether `answer` meets `criterion`: Ok(verdict),
/// or Err when there is none (the call failed, or the judge said neither).
fn judge(
    agent: &ureq::Agent,
    url: &str,
    key: &VirtualKey,
    suite: &Suite,
    task: &Task,
    criterion: &str,
    answer: &str,
) -> Result<Result<(), String>, String> {
    let Some(judge) = &suite.judge_model else {
        return Err("no judge_model".into());
    };
    let messages = [
        json!({"role": "system", "content": check::JUDGE_SYSTEM}),
        json!({"role": "user", "content": check::judge_prompt(criterion, &task.text(), answer)}),
    ];
    let a = call(agent, url, key, judge, &messages, 8).map_err(|e| format!("judge: {e}"))?;
    if a.status != 200 {
        return Err(format!("judge: HTTP {}: {}", a.status, clip(&a.text, 300)));
    }
    match check::verdict(&a.text)? {
        true => Ok(Ok(())),
        false => Ok(Err(format!("the judge ({judge}) said FAIL"))),
    }
}

/// One chat completion through the gateway.
fn call(
    agent: &ureq::Agent,
    url: &str,
    key: &VirtualKey,
    model: &str,
    messages: &[Value],
    max_tokens: u32,
) -> Result<Answer, String> {
    let body = json!({"model": model, "messages": messages, "max_tokens": max_tokens,
                      "temperature": 0, "stream": false});
    let started = Instant::now();
    let sent = agent
        .post(url)
        .header("authorization", &format!("Bearer {}", key.0))
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .send(body.to_string().as_bytes());
    let mut resp = sent.map_err(|e| format!("the gateway could not be reached: {e}"))?;
    let status = resp.status().as_u16();
    let answered_by = resp
        .headers()
        .get("x-aipipe-model")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| format!("reading the answer: {e}"))?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = if status == 200 {
        v.pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    } else {
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(
                || String::from_utf8_lossy(&bytes).into_owned(),
                str::to_owned,
            )
    };
    Ok(Answer {
        status,
        model: answered_by,
        text,
        latency_ms,
    })
}

fn clip(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// Per (model, category), in model order then category order: tasks,
/// passes, errors, score and the median latency of answered calls.
pub fn summarise(models: &[String], results: &[TaskResult]) -> Vec<Summary> {
    let mut out = Vec::new();
    for model in models {
        for c in aipipe_core::classify::CATEGORIES {
            let rs: Vec<&TaskResult> = results
                .iter()
                .filter(|r| &r.model == model && r.category == c.name())
                .collect();
            if rs.is_empty() {
                continue;
            }
            let tasks = rs.len() as u32;
            let passed = rs.iter().filter(|r| r.passed).count() as u32;
            let mut lat: Vec<f64> = rs.iter().filter_map(|r| r.latency_ms).collect();
            lat.sort_by(f64::total_cmp);
            out.push(Summary {
                model: model.clone(),
                category: c.name().to_owned(),
                tasks,
                passed,
                errors: rs.iter().filter(|r| r.error).count() as u32,
                score: f64::from(passed) / f64::from(tasks),
                p50_latency_ms: lat.get(lat.len().saturating_sub(1) / 2).copied(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn result(model: &str, category: &str, passed: bool, latency: Option<f64>) -> TaskResult {
        TaskResult {
            task: "t".into(),
            model: model.into(),
            category: category.into(),
            passed,
            error: latency.is_none(),
            status: latency.map(|_| 200),
            latency_ms: latency,
            detail: None,
            answer: None,
        }
    }

    #[test]
    fn summaries_count_score_and_take_the_median_of_answered_calls() {
        let rs = [
            result("a", "coding", true, Some(30.0)),
            result("a", "coding", false, Some(10.0)),
            result("a", "coding", true, Some(20.0)),
            result("a", "coding", false, None),
            result("a", "chat", false, None),
            result("b", "chat", true, Some(5.0)),
        ];
        let s = summarise(&["a".into(), "b".into()], &rs);
        assert_eq!(s.len(), 3);
        let (chat, coding) = (&s[0], &s[1]);
        assert_eq!(
            (coding.model.as_str(), coding.category.as_str()),
            ("a", "coding")
        );
        assert_eq!((coding.tasks, coding.passed, coding.errors), (4, 2, 1));
        assert_eq!(coding.score, 0.5);
        assert_eq!(coding.p50_latency_ms, Some(20.0));
        assert_eq!(
            (chat.category.as_str(), chat.p50_latency_ms),
            ("chat", None)
        );
        assert_eq!(s[2].score, 1.0);
    }

    #[test]
    fn the_key_never_prints_and_is_redacted_from_kept_text() {
        let k = VirtualKey::new("aip_secret123".into());
        assert_eq!(format!("{k:?}"), "VirtualKey(..)");
        assert_eq!(k.redact("bad key aip_secret123!"), "bad key [redacted]!");
    }

    #[test]
    fn the_gateway_url_is_plain_http() {
        assert!(check_url("http://127.0.0.1:10000").is_ok());
        assert!(check_url("https://gw.example").is_err());
        assert!(check_url("127.0.0.1:10000").is_err());
        let r = Runner::default();
        assert_eq!(r.gateway_url(), DEFAULT_GATEWAY_URL);
        r.set_gateway_url("http://10.0.0.1:8080/");
        assert_eq!(r.gateway_url(), "http://10.0.0.1:8080");
    }
}
