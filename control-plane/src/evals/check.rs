//! How an eval task's answer is judged (control-plane/README.md, "Evals"):
//! deterministic checks — `exact`, `contains`, `regex`, `json_schema` — and
//! `judge`, which asks a judge model through the gateway with a fixed
//! prompt and reads a strict PASS or FAIL.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{REGEX_SIZE_LIMIT, Schema};

/// The longest text a check may hold (an expected answer, a pattern, a
/// judge's criterion).
pub const MAX_CHECK_TEXT: usize = 4096;

/// A check as posted: exactly one kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// The answer, trimmed, equals this (trimmed).
    Exact(String),
    /// The answer contains this (case-sensitive).
    Contains(String),
    /// The answer matches this regular expression (Rust `regex` syntax).
    Regex(String),
    /// The answer is JSON (a fenced ```json block is unwrapped) valid under
    /// this schema ([`super::schema`]).
    JsonSchema(Value),
    /// The judge model says the answer meets this criterion.
    Judge(String),
}

/// A check ready to run.
#[derive(Debug, Clone)]
pub enum Check {
    Exact(String),
    Contains(String),
    Regex(Regex),
    JsonSchema(Schema),
    Judge(String),
}

impl Check {
    /// Compiles a check; the error says what is wrong (the caller names the
    /// field).
    pub fn compile(spec: &CheckSpec) -> Result<Check, String> {
        let text = |s: &String, what: &str| {
            if s.is_empty() || s.len() > MAX_CHECK_TEXT {
                Err(format!("{what}: 1-{MAX_CHECK_TEXT} bytes"))
            } else {
                Ok(s.clone())
            }
        };
        Ok(match spec {
            CheckSpec::Exact(s) => Check::Exact(text(s, "exact")?),
            CheckSpec::Contains(s) => Check::Contains(text(s, "contains")?),
            CheckSpec::Regex(s) => Check::Regex(
                regex::RegexBuilder::new(&text(s, "regex")?)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("regex: not a valid regex: {e}"))?,
            ),
            CheckSpec::JsonSchema(v) => {
                Check::JsonSchema(Schema::compile(v).map_err(|e| format!("json_schema{e}"))?)
            }
            CheckSpec::Judge(s) => Check::Judge(text(s, "judge")?),
        })
    }

    /// Judges an answer deterministically: Ok(()) passes, Err says why it
    /// fails. A `judge` check is not decided here (see [`judge_prompt`]).
    pub fn run(&self, answer: &str) -> Result<(), String> {
        let answer = visible(answer);
        match self {
            Check::Exact(want) => {
                if answer.trim() == want.trim() {
                    Ok(())
                } else {
                    Err("not the exact answer".into())
                }
            }
            Check::Contains(want) => {
                if answer.contains(want.as_str()) {
                    Ok(())
                } else {
                    Err(format!("does not contain {want:?}"))
                }
            }
            Check::Regex(re) => {
                if re.is_match(answer) {
                    Ok(())
                } else {
                    Err(format!("does not match {:?}", re.as_str()))
                }
            }
            Check::JsonSchema(schema) => {
                let v: Value =
                    serde_json::from_str(unfenced(answer)).map_err(|e| format!("not JSON: {e}"))?;
                schema.check(&v).map_err(|e| format!("schema: {e}"))
            }
            Check::Judge(_) => Err("a judge check is decided by the judge model".into()),
        }
    }
}

/// The answer without a leading `<think>…</think>` block: reasoning models
/// (MiniMax) put their reasoning there, before the answer.
pub fn visible(answer: &str) -> &str {
    let t = answer.trim_start();
    match t
        .strip_prefix("<think>")
        .and_then(|r| r.split_once("</think>"))
    {
        Some((_, rest)) => rest.trim_start(),
        None => answer,
    }
}

/// The JSON inside a Markdown code fence (```json … ```), else the text.
fn unfenced(answer: &str) -> &str {
    let t = answer.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// The system prompt of every judge call.
pub const JUDGE_SYSTEM: &str = "You grade answers. Reply with exactly one word: PASS if the answer meets the criterion, FAIL if it does not.";

/// The user message of a judge call: the criterion, the task and the answer,
/// in a fixed layout, so the same answer is always asked about the same way.
pub fn judge_prompt(criterion: &str, task: &str, answer: &str) -> String {
    format!(
        "Criterion:\n{criterion}\n\nTask:\n{task}\n\nAnswer:\n{}\n\nDoes the answer meet the criterion? Reply PASS or FAIL.",
        visible(answer)
    )
}

/// The judge's verdict, read strictly: `PASS` or `FAIL` (any case), alone,
/// with at most surrounding whitespace and one final period; anything else
/// is no verdict (the task is an error, not a fail).
pub fn verdict(reply: &str) -> Result<bool, String> {
    let word = visible(reply).trim();
    let word = word.strip_suffix('.').unwrap_or(word);
    if word.eq_ignore_ascii_case("PASS") {
        Ok(true)
    } else if word.eq_ignore_ascii_case("FAIL") {
        Ok(false)
    } else {
        let shown: String = word.chars().take(80).collect();
        Err(format!(
            "the judge answered neither PASS nor FAIL: {shown:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn check(spec: Value) -> Check {
        Check::compile(&serde_json::from_value(spec).unwrap()).unwrap()
    }

    #[test]
    fn exact_trims_and_compares_whole() {
        let c = check(json!({"exact": " 42 "}));
        assert!(c.run("42\n").is_ok());
        assert!(
            c.run("<think>\nhmm\n</think>\n\n42").is_ok(),
            "reasoning is skipped"
        );
        assert!(c.run("The answer is 42").is_err());
    }

    #[test]
    fn contains_is_case_sensitive() {
        let c = check(json!({"contains": "Paris"}));
        assert!(c.run("It is Paris.").is_ok());
        assert_eq!(
            c.run("it is paris").unwrap_err(),
            "does not contain \"Paris\""
        );
    }

    #[test]
    fn regex_matches_anywhere_and_a_bad_one_is_refused() {
        let c = check(json!({"regex": "^def \\w+\\(.*\\):"}));
        assert!(c.run("def f(xs):\n    return sorted(xs)").is_ok());
        assert!(c.run("function f() {}").is_err());
        let bad = Check::compile(&CheckSpec::Regex("(unclosed".into())).unwrap_err();
        assert!(bad.starts_with("regex: not a valid regex"), "{bad}");
        let huge = Check::compile(&CheckSpec::Regex("\\w{1000}{1000}".into())).unwrap_err();
        assert!(huge.starts_with("regex:"), "{huge}");
    }

    #[test]
    fn json_schema_passes_and_fails() {
        let c = check(
            json!({"json_schema": {"type": "object", "required": ["answer"],
            "properties": {"answer": {"type": "integer"}}}}),
        );
        assert!(c.run("{\"answer\": 4}").is_ok());
        assert!(
            c.run("```json\n{\"answer\": 4}\n```").is_ok(),
            "a fenced block"
        );
        assert!(
            c.run("{\"answer\": \"four\"}")
                .unwrap_err()
                .contains("/answer: expected integer")
        );
        assert!(c.run("four").unwrap_err().starts_with("not JSON"));
        let bad = Check::compile(&CheckSpec::JsonSchema(json!({"$ref": "#"}))).unwrap_err();
        assert!(bad.starts_with("json_schema/$ref"), "{bad}");
    }

    #[test]
    fn a_check_names_one_kind() {
        assert!(
            serde_json::from_value::<CheckSpec>(json!({"exact": "a", "contains": "b"})).is_err()
        );
        assert!(serde_json::from_value::<CheckSpec>(json!({"fuzzy": "a"})).is_err());
        assert!(Check::compile(&CheckSpec::Exact(String::new())).is_err());
        assert!(Check::compile(&CheckSpec::Contains("x".repeat(MAX_CHECK_TEXT + 1))).is_err());
    }

    #[test]
    fn the_judge_is_asked_the_same_way_and_read_strictly() {
        let p = judge_prompt(
            "mentions Paris",
            "Capital of France?",
            "<think>x</think>Paris",
        );
        assert_eq!(
            p,
            "Criterion:\nmentions Paris\n\nTask:\nCapital of France?\n\nAnswer:\nParis\n\nDoes the answer meet the criterion? Reply PASS or FAIL."
        );
        assert_eq!(verdict("PASS"), Ok(true));
        assert_eq!(verdict(" fail.\n"), Ok(false));
        assert_eq!(verdict("<think>a</think>\nPass"), Ok(true));
        for vague in ["PASS, mostly", "I think PASS", "", "PASS."] {
            if vague == "PASS." {
                assert_eq!(verdict(vague), Ok(true));
            } else {
                assert!(verdict(vague).is_err(), "{vague}");
            }
        }
        assert!(check(json!({"judge": "x"})).run("anything").is_err());
    }
}
