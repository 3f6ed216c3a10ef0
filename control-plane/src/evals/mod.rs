//! Tenant evals (control-plane/README.md, "Evals"): a suite of the tenant's
//! own tasks — prompts with a check each — run through the gateway (Envoy
//! with the filter, so each call is authenticated, budgeted, metered and
//! routed as any other) against chosen models; score and latency per model
//! and task category; and, if asked, the tenant policy's per-category
//! quality set from the scores, so its `auto` requests go to the models that
//! did best on its own work.
//!
//! This module validates a suite ([`validate`]) and turns scores into
//! quality figures ([`quality_from`]); [`run`] calls the gateway;
//! `admin/evals.rs` holds the routes and `db/evals.rs` the SQL.

pub mod check;
pub mod run;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};

use aipipe_core::classify::{CATEGORIES, Category};
use aipipe_core::table::Table;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use check::{Check, CheckSpec};

pub use run::Runner;

/// Most tasks in one eval.
pub const MAX_TASKS: usize = 100;
/// Most models in one eval.
pub const MAX_MODELS: usize = 8;
/// Most calls of the models (tasks × models) in one eval.
pub const MAX_RUNS: usize = 400;
/// Most bytes of message text in one task.
pub const MAX_TASK_PROMPT_BYTES: usize = 32 * 1024;
/// Most bytes of message text in one eval.
pub const MAX_SUITE_PROMPT_BYTES: usize = 1024 * 1024;
/// Most messages in one task.
pub const MAX_MESSAGES: usize = 32;
/// The answer budget of a task that sets none, and the most one may set.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
pub const MAX_MAX_TOKENS: u32 = 16_384;
/// The body limit of `POST /admin/evals`.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// `POST /admin/evals`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    pub tenant_id: String,
    /// One of the tenant's live virtual keys: the eval calls the gateway with
    /// it (`Authorization: Bearer`), as the tenant's clients do. Used only
    /// for that: never stored, logged or answered.
    pub virtual_key: String,
    /// Catalog model ids; each task is sent to each, by name.
    pub models: Vec<String>,
    pub tasks: Vec<TaskSpec>,
    /// The model asked about `judge` checks (a catalog id).
    #[serde(default)]
    pub judge_model: Option<String>,
    /// Set the tenant policy's `category_quality` from the scores when done.
    #[serde(default)]
    pub apply: bool,
}

/// One task as posted and stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// 1-64 of `A-Z a-z 0-9 . _ -`, unique in the eval.
    pub id: String,
    /// The task category its score counts for (`coding`, `math_reasoning`, …:
    /// the router's categories).
    pub category: String,
    /// The conversation (`role`: system, user or assistant; string
    /// `content`); or `prompt`, one user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// `{"exact": "…"}`, `{"contains": "…"}`, `{"regex": "…"}`,
    /// `{"json_schema": {…}}` or `{"judge": "<criterion>"}`.
    #[schema(value_type = Object)]
    pub check: CheckSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What is stored of an eval's request: everything but the virtual key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSpec {
    pub models: Vec<String>,
    pub judge_model: Option<String>,
    pub apply: bool,
    pub tasks: Vec<TaskSpec>,
}

/// A validated suite, ready to run.
#[derive(Debug, Clone)]
pub struct Suite {
    pub models: Vec<String>,
    pub judge_model: Option<String>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub category: Category,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub check: Check,
}

impl Task {
    /// The task as the judge is shown it: its messages' text.
    pub fn text(&self) -> String {
        self.messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The virtual key's form (the key itself is checked against the tenant's
/// live keys by the caller). The message never contains it.
pub fn check_virtual_key(key: &str) -> Result<(), String> {
    if (1..=512).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("virtual_key: 1-512 printable ASCII characters".into())
    }
}

/// Checks everything about a suite before anything is stored or sent: sizes,
/// names against the catalog and the router's categories, checks compiled.
/// The error names the field (`tasks[3].check: …`).
pub fn validate(req: &EvalRequest, table: &Table) -> Result<Suite, String> {
    if req.models.is_empty() || req.models.len() > MAX_MODELS {
        return Err(format!("models: 1-{MAX_MODELS} catalog model ids"));
    }
    let mut seen = BTreeSet::new();
    for (i, m) in req.models.iter().enumerate() {
        if table.resolve_model(m).is_none() {
            return Err(format!("models[{i}]: unknown model {m:?}"));
        }
        if !seen.insert(m.as_str()) {
            return Err(format!("models[{i}]: {m:?} is listed twice"));
        }
    }
    if let Some(j) = &req.judge_model
        && table.resolve_model(j).is_none()
    {
        return Err(format!("judge_model: unknown model {j:?}"));
    }
    if req.tasks.is_empty() || req.tasks.len() > MAX_TASKS {
        return Err(format!("tasks: 1-{MAX_TASKS} tasks"));
    }
    let runs = req.tasks.len() * req.models.len();
    if runs > MAX_RUNS {
        return Err(format!(
            "tasks: {} tasks × {} models is {runs} calls; at most {MAX_RUNS}",
            req.tasks.len(),
            req.models.len()
        ));
    }
    let mut ids = BTreeSet::new();
    let mut total = 0usize;
    let mut tasks = Vec::with_capacity(req.tasks.len());
    for (i, t) in req.tasks.iter().enumerate() {
        let field = |f: &str| format!("tasks[{i}].{f}");
        if !id_ok(&t.id) {
            return Err(format!("{}: 1-64 of A-Z a-z 0-9 . _ -", field("id")));
        }
        if !ids.insert(t.id.as_str()) {
            return Err(format!("{}: {:?} is used twice", field("id"), t.id));
        }
        let category = Category::from_name(&t.category).ok_or_else(|| {
            format!(
                "{}: unknown category {:?} (one of {})",
                field("category"),
                t.category,
                CATEGORIES.map(Category::name).join(", ")
            )
        })?;
        let messages = match (&t.messages, &t.prompt) {
            (Some(m), None) => m.clone(),
            (None, Some(p)) => vec![Message {
                role: "user".into(),
                content: p.clone(),
            }],
            _ => {
                return Err(format!(
                    "tasks[{i}]: give exactly one of `messages` and `prompt`"
                ));
            }
        };
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            return Err(format!("{}: 1-{MAX_MESSAGES} messages", field("messages")));
        }
        let mut bytes = 0usize;
        for (j, m) in messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(format!(
                    "{}[{j}].role: system, user or assistant",
                    field("messages")
                ));
            }
            if m.content.is_empty() {
                return Err(format!("{}[{j}].content: empty", field("messages")));
            }
            bytes += m.content.len();
        }
        if messages.last().is_none_or(|m| m.role != "user") {
            return Err(format!(
                "{}: the last message must be the user's",
                field("messages")
            ));
        }
        if bytes > MAX_TASK_PROMPT_BYTES {
            return Err(format!(
                "{}: {bytes} bytes of text; at most {MAX_TASK_PROMPT_BYTES}",
                field(if t.prompt.is_some() {
                    "prompt"
                } else {
                    "messages"
                })
            ));
        }
        total += bytes;
        if total > MAX_SUITE_PROMPT_BYTES {
            return Err(format!(
                "tasks: more than {MAX_SUITE_PROMPT_BYTES} bytes of prompts in all"
            ));
        }
        let max_tokens = t.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(1..=MAX_MAX_TOKENS).contains(&max_tokens) {
            return Err(format!("{}: 1-{MAX_MAX_TOKENS}", field("max_tokens")));
        }
        let check = Check::compile(&t.check).map_err(|e| format!("{}.{e}", field("check")))?;
        if matches!(check, Check::Judge(_)) && req.judge_model.is_none() {
            return Err(format!(
                "{}: a judge check needs `judge_model`",
                field("check")
            ));
        }
        tasks.push(Task {
            id: t.id.clone(),
            category,
            messages,
            max_tokens,
            check,
        });
    }
    Ok(Suite {
        models: req.models.clone(),
        judge_model: req.judge_model.clone(),
        tasks,
    })
}

/// Quality a score of 0 becomes: above 0, so every figure stays valid
/// (the policy's figures are in (0, 1]).
pub const QUALITY_FLOOR: f64 = 0.05;
/// What each place behind the fastest of models with equal scores costs.
pub const LATENCY_STEP: f64 = 0.001;

/// One (model, category) of an eval's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub model: String,
    pub category: String,
    pub tasks: u32,
    pub passed: u32,
    /// Calls that got no answer to check (an error status, a timeout,
    /// another model answering); they count as not passed.
    pub errors: u32,
    /// passed / tasks.
    pub score: f64,
    /// Median latency of the calls that were answered, in ms.
    pub p50_latency_ms: Option<f64>,
}

/// The per-category quality an eval's scores give each model:
///
/// ```text
/// q = QUALITY_FLOOR + (1 − QUALITY_FLOOR) · score − LATENCY_STEP · k
/// ```
///
/// where `k` is the model's place (0 for the fastest) by p50 latency among
/// the models with the same score in that category (no latency: last).
/// A full score is 1.0, no pass 0.05; equal scores are split by latency by
/// steps too small to move a model past one that scored better.
pub fn quality_from(summary: &[Summary]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for s in summary.iter().filter(|s| s.tasks > 0) {
        let faster = summary
            .iter()
            .filter(|o| {
                o.category == s.category
                    && o.tasks > 0
                    && o.model != s.model
                    && (o.score - s.score).abs() < 1e-9
            })
            .filter(|o| match (o.p50_latency_ms, s.p50_latency_ms) {
                (Some(a), Some(b)) => a < b || (a == b && o.model < s.model),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => o.model < s.model,
            })
            .count();
        let q = QUALITY_FLOOR + (1.0 - QUALITY_FLOOR) * s.score - LATENCY_STEP * faster as f64;
        out.entry(s.model.clone())
            .or_default()
            .insert(s.category.clone(), q.clamp(LATENCY_STEP, 1.0));
    }
    out
}

/// Fails, every `Runner::sweep_every`, the evals whose control plane
/// stopped running them (`Db::fail_interrupted_evals`), until the process
/// stops: a replica killed mid-eval leaves it to the others.
pub fn spawn_sweeper(state: crate::AppState) {
    tokio::spawn(async move {
        let mut stopping = state.stopping.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(state.evals.sweep_every()) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            match state
                .db
                .fail_interrupted_evals(state.evals.stale_ms())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    evals = n,
                    "evals whose control plane stopped running them marked failed"
                ),
                Err(e) => tracing::warn!("looking for interrupted evals: {e}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aipipe_core::table::RoutingTable;
    use serde_json::{Value, json};

    fn table() -> Table {
        Table::compile(RoutingTable::default()).unwrap()
    }

    fn request(v: Value) -> EvalRequest {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({"tenant_id": "acme", "virtual_key": "k", "models": ["gpt-4o-mini"],
               "tasks": [{"id": "t1", "category": "coding", "prompt": "sort [2,1]",
                          "check": {"contains": "[1, 2]"}}]})
    }

    #[test]
    fn a_good_suite_validates() {
        let mut v = base();
        v["tasks"].as_array_mut().unwrap().push(json!({
            "id": "t2", "category": "math_reasoning", "max_tokens": 50,
            "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "2+2"}],
            "check": {"json_schema": {"type": "integer"}}}));
        v["judge_model"] = json!("gpt-4o");
        let s = validate(&request(v), &table()).unwrap();
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.tasks[0].messages[0].role, "user");
        assert_eq!(s.tasks[0].max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(s.tasks[1].category, Category::MathReasoning);
    }

    #[test]
    fn every_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|v| v["models"] = json!([])), "models: 1-8"),
            (
                Box::new(|v| v["models"] = json!(["gpt-99"])),
                "models[0]: unknown model",
            ),
            (
                Box::new(|v| v["models"] = json!(["gpt-4o", "gpt-4o"])),
                "models[1]",
            ),
            (
                Box::new(|v| v["judge_model"] = json!("nope")),
                "judge_model: unknown",
            ),
            (Box::new(|v| v["tasks"] = json!([])), "tasks: 1-100"),
            (
                Box::new(|v| v["tasks"][0]["id"] = json!("a b")),
                "tasks[0].id",
            ),
            (
                Box::new(|v| v["tasks"][0]["category"] = json!("poetry")),
                "tasks[0].category: unknown category",
            ),
            (
                Box::new(|v| v["tasks"][0]["messages"] = json!([{"role": "user", "content": "x"}])),
                "exactly one of",
            ),
            (
                Box::new(|v| {
                    v["tasks"][0].as_object_mut().unwrap().remove("prompt");
                }),
                "exactly one of",
            ),
            (
                Box::new(|v| {
                    v["tasks"][0]["prompt"] = json!("x".repeat(MAX_TASK_PROMPT_BYTES + 1))
                }),
                "tasks[0].prompt: 32769 bytes",
            ),
            (
                Box::new(|v| v["tasks"][0]["max_tokens"] = json!(0)),
                "tasks[0].max_tokens",
            ),
            (
                Box::new(|v| v["tasks"][0]["check"] = json!({"regex": "(("})),
                "tasks[0].check.regex: not a valid regex",
            ),
            (
                Box::new(|v| v["tasks"][0]["check"] = json!({"json_schema": {"if": {}}})),
                "tasks[0].check.json_schema/if",
            ),
            (
                Box::new(|v| v["tasks"][0]["check"] = json!({"judge": "is right"})),
                "needs `judge_model`",
            ),
        ];
        for (change, says) in cases {
            let mut v = base();
            change(&mut v);
            let e = validate(&request(v), &table()).err().unwrap();
            assert!(e.contains(says), "{says}: {e}");
        }
        // Messages: roles, emptiness, the user's turn last.
        for (msgs, says) in [
            (
                json!([{"role": "tool", "content": "x"}]),
                "messages[0].role",
            ),
            (
                json!([{"role": "user", "content": ""}]),
                "messages[0].content: empty",
            ),
            (
                json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]),
                "last message",
            ),
        ] {
            let mut v = base();
            v["tasks"][0].as_object_mut().unwrap().remove("prompt");
            v["tasks"][0]["messages"] = msgs;
            let e = validate(&request(v), &table()).err().unwrap();
            assert!(e.contains(says), "{says}: {e}");
        }
        // Duplicate ids; too many calls.
        let mut v = base();
        let t = v["tasks"][0].clone();
        v["tasks"] = json!([t.clone(), t]);
        assert!(
            validate(&request(v), &table())
                .err()
                .unwrap()
                .contains("used twice")
        );
        let mut v = base();
        v["models"] = json!([
            "gpt-4o-mini",
            "gpt-4o",
            "claude-sonnet-5-5",
            "claude-opus-4-5",
            "grok-4.3"
        ]);
        v["tasks"] = Value::Array(
            (0..90)
                .map(|i| json!({"id": format!("t{i}"), "category": "chat", "prompt": "hi", "check": {"exact": "x"}}))
                .collect(),
        );
        assert!(
            validate(&request(v), &table())
                .err()
                .unwrap()
                .contains("450 calls")
        );
        // Unknown fields are refused by the parse.
        let mut v = base();
        v["gateway"] = json!("http://elsewhere");
        assert!(serde_json::from_value::<EvalRequest>(v).is_err());
    }

    fn summary(model: &str, category: &str, score: f64, p50: Option<f64>) -> Summary {
        Summary {
            model: model.into(),
            category: category.into(),
            tasks: 4,
            passed: (score * 4.0) as u32,
            errors: 0,
            score,
            p50_latency_ms: p50,
        }
    }

    #[test]
    fn scores_become_quality_with_a_floor_and_latency_breaking_ties() {
        let q = quality_from(&[
            summary("a", "coding", 1.0, Some(900.0)),
            summary("b", "coding", 1.0, Some(100.0)),
            summary("c", "coding", 1.0, None),
            summary("a", "chat", 0.0, Some(5.0)),
            summary("b", "chat", 0.5, Some(5.0)),
        ]);
        assert_eq!(q["b"]["coding"], 1.0, "the fastest of the best");
        assert!((q["a"]["coding"] - (1.0 - LATENCY_STEP)).abs() < 1e-12);
        assert!(
            (q["c"]["coding"] - (1.0 - 2.0 * LATENCY_STEP)).abs() < 1e-12,
            "no latency: last"
        );
        assert_eq!(q["a"]["chat"], QUALITY_FLOOR, "0 stays a valid figure");
        assert!((q["b"]["chat"] - 0.525).abs() < 1e-12);
        // Every figure a policy can hold.
        for by in q.values() {
            for v in by.values() {
                assert!(*v > 0.0 && *v <= 1.0);
            }
        }
        // A step never lets a slower model overtake a better score.
        let close = quality_from(&[
            summary("fast", "chat", 0.5, Some(1.0)),
            summary("slow1", "chat", 0.75, Some(9.0)),
            summary("slow2", "chat", 0.75, Some(10.0)),
        ]);
        assert!(close["slow2"]["chat"] > close["fast"]["chat"]);
    }
}
