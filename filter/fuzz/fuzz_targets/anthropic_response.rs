//! Arbitrary bytes as an upstream answer or error, both directions:
//! `messages_to_chat`, `anthropic_usage`, `error_to_openai`,
//! `chat_response_to_messages`, `chat_error_to_messages`. Every translated
//! body is a JSON object, every error status an HTTP error status, and a
//! translated answer reports the usage it was translated from.
//!
//! Input: two bytes of upstream status (little-endian), then the body.
#![no_main]

use aipipe_core::protocol::anthropic::{
    anthropic_usage, chat_error_to_messages, chat_response_to_messages, error_to_openai,
    messages_to_chat,
};
use aipipe_core::protocol::chat::openai_usage;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn assert_object(out: &[u8], what: &str) {
    assert!(
        matches!(serde_json::from_slice(out), Ok(Value::Object(_))),
        "{what} did not produce a JSON object: {:?}",
        String::from_utf8_lossy(out)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_at_checked(2) else {
        return;
    };
    let status = u16::from_le_bytes([status[0], status[1]]);

    if let Ok(out) = messages_to_chat(body, "claude-sonnet-4-5", 1_763_860_000) {
        assert_object(&out, "messages_to_chat");
        if let Some(t) = anthropic_usage(body) {
            assert_eq!(
                openai_usage(&out),
                Some(t),
                "translated answer lost its usage"
            );
        }
    }
    let (s, out) = error_to_openai(status, body);
    assert!((400..=599).contains(&s), "error_to_openai({status}) → {s}");
    assert_object(&out, "error_to_openai");

    if let Ok(out) = chat_response_to_messages(body, "gpt-4o-mini") {
        assert_object(&out, "chat_response_to_messages");
    }
    let (_, out) = chat_error_to_messages(status, body);
    assert_object(&out, "chat_error_to_messages");
});
