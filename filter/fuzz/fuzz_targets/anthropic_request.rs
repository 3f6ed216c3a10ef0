//! Arbitrary bytes as a request body through both translations: OpenAI →
//! Anthropic (`chat_to_messages`) and Anthropic → OpenAI
//! (`messages_request_to_chat`). Errors are fine; what they produce must be a
//! JSON object naming the upstream model, and a translated OpenAI request
//! must be one the filter itself can then parse and route.
#![no_main]

use aipipe_core::protocol::anthropic::{chat_to_messages, messages_request_to_chat};
use aipipe_core::request::{ChatRequest, ModelChoice};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn object(out: &[u8], what: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(out) {
        Ok(Value::Object(o)) => o,
        other => panic!(
            "{what} did not produce a JSON object ({other:?}): {:?}",
            String::from_utf8_lossy(out)
        ),
    }
}

fuzz_target!(|body: &[u8]| {
    if let Ok(out) = chat_to_messages(body, "claude-sonnet-4-5", 4096) {
        let o = object(&out, "chat_to_messages");
        assert_eq!(
            o.get("model").and_then(Value::as_str),
            Some("claude-sonnet-4-5")
        );
        assert!(
            o.get("max_tokens").and_then(Value::as_u64).is_some(),
            "{o:?}"
        );
        assert!(o.get("messages").is_some_and(Value::is_array), "{o:?}");
    }
    if let Ok(out) = messages_request_to_chat(body, "gpt-4o-mini") {
        let o = object(&out, "messages_request_to_chat");
        assert_eq!(o.get("model").and_then(Value::as_str), Some("gpt-4o-mini"));
        match ChatRequest::parse(&out) {
            Ok(r) => assert_eq!(r.model, ModelChoice::Named("gpt-4o-mini".into())),
            Err(e) => panic!(
                "translated request is not one the filter parses ({e:?}): {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
});
