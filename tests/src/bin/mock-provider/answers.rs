//! Scripted answers (`POST /_mock/answers`): the text a chat answer says,
//! instead of the filler, when the last user message contains a given text —
//! optionally only for one provider or model. Evals need models that answer
//! right or wrong on purpose (control-plane/README.md, "Evals").
//!
//! Rules are tried in the order they were posted; the first that matches
//! answers. Each provider's wire format carries the text as it carries the
//! filler (OpenAI-compatible plain and streamed, Anthropic Messages plain
//! and streamed); usage counts it by the same token rule. A request that
//! calls a tool is answered as before.

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::Provider;

/// Rules kept at most (a test that posts more gets a 400).
pub const MAX_RULES: usize = 1_000;
/// The longest `contains` and `answer` texts.
const MAX_TEXT_CHARS: usize = 16_384;

/// One rule as posted, and as listed back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRule {
    /// Only requests for this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Only requests for this model: the body's `model` as the provider got
    /// it, or its last `/`-separated part (`meta-llama/llama-3.3-70b-instruct`
    /// matches `llama-3.3-70b-instruct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Text the last user message must contain (case-sensitive; non-empty).
    pub contains: String,
    /// What the answer says.
    pub answer: String,
}

#[derive(Debug, Default)]
pub struct Answers {
    rules: Mutex<Vec<AnswerRule>>,
}

impl Answers {
    /// Validates every rule, then appends them all (or none).
    pub fn add(&self, rules: Vec<AnswerRule>) -> Result<(), String> {
        for (i, r) in rules.iter().enumerate() {
            if let Some(p) = &r.provider
                && Provider::from_name(p).is_none()
            {
                return Err(format!("[{i}].provider: unknown provider '{p}'"));
            }
            if r.contains.is_empty() {
                return Err(format!("[{i}].contains: must not be empty"));
            }
            if r.model.as_deref() == Some("") {
                return Err(format!("[{i}].model: must not be empty"));
            }
            for (field, text) in [("contains", &r.contains), ("answer", &r.answer)] {
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(format!(
                        "[{i}].{field}: at most {MAX_TEXT_CHARS} characters"
                    ));
                }
            }
        }
        let mut held = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() + rules.len() > MAX_RULES {
            return Err(format!(
                "at most {MAX_RULES} rules; DELETE /_mock/answers first"
            ));
        }
        held.extend(rules);
        Ok(())
    }

    pub fn list(&self) -> Vec<AnswerRule> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn clear(&self) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The scripted answer to a request body (OpenAI chat or Anthropic
    /// Messages: both keep the conversation in `messages`), if a rule matches.
    pub fn find(&self, provider: Provider, body: Option<&Value>) -> Option<String> {
        let body = body?;
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        let text = last_user_text(body);
        let held = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        held.iter()
            .find(|r| {
                r.provider.as_deref().is_none_or(|p| p == provider.name())
                    && r.model
                        .as_deref()
                        .is_none_or(|m| model == m || model.rsplit('/').next() == Some(m))
                    && text.contains(&r.contains)
            })
            .map(|r| r.answer.clone())
    }
}

/// The text of the last `user` message: a string content, or the `text` of
/// its parts joined by newlines; empty when there is none.
pub fn last_user_text(body: &Value) -> String {
    let Some(message) = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
    else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(
        provider: Option<&str>,
        model: Option<&str>,
        contains: &str,
        answer: &str,
    ) -> AnswerRule {
        AnswerRule {
            provider: provider.map(str::to_owned),
            model: model.map(str::to_owned),
            contains: contains.into(),
            answer: answer.into(),
        }
    }

    fn chat(model: &str, last: Value) -> Value {
        json!({"model": model, "messages": [
            {"role": "system", "content": "sort this"},
            {"role": "user", "content": "earlier: sort this"},
            {"role": "assistant", "content": "ok"},
            last,
        ]})
    }

    #[test]
    fn the_first_matching_rule_answers_by_provider_model_and_last_user_text() {
        let a = Answers::default();
        a.add(vec![
            rule(Some("openai"), Some("gpt-4o"), "sort", "openai-gpt-4o"),
            rule(None, Some("llama-3.3-70b-instruct"), "sort", "llama"),
            rule(None, None, "sort", "anyone"),
            rule(None, None, "sort", "never: an earlier rule matches"),
        ])
        .unwrap();
        let user = json!({"role": "user", "content": "please sort [3,1]"});
        assert_eq!(
            a.find(Provider::OpenAi, Some(&chat("gpt-4o", user.clone()))),
            Some("openai-gpt-4o".into())
        );
        assert_eq!(
            a.find(Provider::Anthropic, Some(&chat("gpt-4o", user.clone()))),
            Some("anyone".into()),
            "another provider"
        );
        assert_eq!(
            a.find(
                Provider::OpenRouter,
                Some(&chat("meta-llama/llama-3.3-70b-instruct", user.clone()))
            ),
            Some("llama".into()),
            "the upstream name's last part"
        );
        // Only the last user message counts (the system prompt and earlier
        // turns say "sort" too); content parts are read.
        let other = json!({"role": "user", "content": [{"type": "text", "text": "hello"}]});
        assert_eq!(a.find(Provider::OpenAi, Some(&chat("gpt-4o", other))), None);
        let parts = json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "sort b"}]});
        assert_eq!(
            a.find(Provider::OpenAi, Some(&chat("x", parts))),
            Some("anyone".into())
        );
        assert_eq!(a.find(Provider::OpenAi, None), None, "not JSON");
        a.clear();
        assert!(a.list().is_empty());
        assert_eq!(a.find(Provider::OpenAi, Some(&chat("gpt-4o", user))), None);
    }

    /// The JSON payloads of SSE events (`data: …` lines that are JSON).
    fn payloads(events: &[axum::body::Bytes]) -> Vec<Value> {
        events
            .iter()
            .flat_map(|e| std::str::from_utf8(e).unwrap().lines())
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    /// Every provider's wire format says the scripted answer, plain and
    /// streamed (MiniMax after its `<think>` block, as it always reasons),
    /// and counts it in the usage.
    #[test]
    fn every_wire_format_says_the_scripted_answer() {
        use crate::openai::{ChatRequest, Reply};
        let said = "def f(xs):\n    return sorted(xs)  # {\"ok\": true}";
        for provider in Provider::ALL {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": "sort"}],
                              "stream": true, "stream_options": {"include_usage": true}});
            let mut request = ChatRequest::from_json(Some(&body)).unwrap();
            request.answer = Some(said.into());
            let reply = Reply::for_provider(provider, &request, 1);
            let plain: Value = serde_json::from_slice(&reply.completion_json().unwrap()).unwrap();
            let content = plain["choices"][0]["message"]["content"].as_str().unwrap();
            let streamed: String = payloads(&reply.sse_events(true).unwrap())
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            for text in [content, streamed.as_str()] {
                match provider {
                    Provider::Minimax => assert!(
                        text.starts_with("<think>")
                            && text.ends_with(&format!("</think>\n\n{said}")),
                        "{text}"
                    ),
                    _ => assert_eq!(text, said, "{provider:?}"),
                }
            }
            assert!(
                reply.answer.usage.completion_tokens
                    >= crate::tokens::tokens_for_chars(said.chars().count())
            );
        }

        // Anthropic's Messages API, plain and streamed.
        let body = json!({"model": "claude-opus-4-5", "max_tokens": 1024,
                          "messages": [{"role": "user", "content": "sort"}]});
        let mut request = crate::anthropic::MessagesRequest::from_json(Some(&body)).unwrap();
        request.answer = Some(said.into());
        let reply = crate::anthropic::Reply::new(&request, 1);
        let plain: Value = serde_json::from_slice(&reply.message_json().unwrap()).unwrap();
        assert_eq!(plain["content"][0]["text"], said);
        let streamed: String = payloads(&reply.sse_events().unwrap())
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        assert_eq!(streamed, said);
        assert_eq!(
            plain["usage"]["output_tokens"],
            crate::tokens::tokens_for_chars(said.chars().count())
        );
    }

    #[test]
    fn bad_rules_are_refused_whole() {
        let a = Answers::default();
        for (bad, says) in [
            (rule(Some("nobody"), None, "x", "y"), "[1].provider"),
            (rule(None, None, "", "y"), "[1].contains"),
            (rule(None, Some(""), "x", "y"), "[1].model"),
            (
                rule(None, None, "x", &"y".repeat(MAX_TEXT_CHARS + 1)),
                "[1].answer",
            ),
        ] {
            let e = a.add(vec![rule(None, None, "ok", "ok"), bad]).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        assert!(a.list().is_empty(), "nothing of a refused batch is kept");
        let many = vec![rule(None, None, "x", "y"); MAX_RULES + 1];
        assert!(a.add(many).is_err());
    }
}
