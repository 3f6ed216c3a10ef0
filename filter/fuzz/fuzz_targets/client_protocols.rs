//! Arbitrary bytes through the Responses API and Ollama translations: as a
//! client request (each must give a Chat Completions request the filter can
//! parse and route, or an error), as a whole Chat Completions answer, and as
//! a streamed one cut at arbitrary points (the output is the same whatever
//! the cuts; every Responses event is a JSON object, every Ollama line a JSON
//! object). And through the Responses API upstream: as a Chat Completions
//! request and as a Responses client's own request (a JSON object that
//! stores nothing, or an error), as a whole
//! Responses answer (a chat completion the other translations read, or an
//! error) and as a streamed one cut anywhere (the same chunks whatever the
//! cuts, each a JSON object or `[DONE]`).
//!
//! Input: see `filter_fuzz::read_cuts`.
#![no_main]

use aipipe_core::protocol::ollama::{self, ChatToOllamaStream, Endpoint};
use aipipe_core::protocol::chat::Completion;
use aipipe_core::protocol::responses::{self, ChatToResponsesStream};
use aipipe_core::protocol::responses_upstream::{self, ResponsesToChatStream};
use aipipe_core::request::ChatRequest;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn routable(out: Result<Vec<u8>, aipipe_core::error::ApiError>, what: &str) {
    if let Ok(chat) = out {
        if let Err(e) = ChatRequest::parse(&chat) {
            panic!(
                "{what} gave a request the filter cannot parse ({e:?}): {:?}",
                String::from_utf8_lossy(&chat)
            );
        }
    }
}

fn object(bytes: &[u8], what: &str) {
    assert!(
        serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.is_object()),
        "{what} is not a JSON object: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

fn stream<T>(
    chunks: &[&[u8]],
    mut t: T,
    feed: fn(&mut T, &[u8], &mut Vec<u8>),
    finish: fn(&mut T, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        feed(&mut t, c, &mut out);
    }
    finish(&mut t, &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = filter_fuzz::read_cuts(data) else {
        return;
    };
    let body = input.stream;
    routable(
        responses::request_to_chat(body),
        "responses::request_to_chat",
    );
    routable(
        ollama::chat_request_to_chat(body),
        "ollama::chat_request_to_chat",
    );
    routable(
        ollama::generate_request_to_chat(body),
        "ollama::generate_request_to_chat",
    );

    if let Ok(out) = responses::chat_to_response(body, "gpt-4o-mini", 1_763_860_000) {
        object(&out, "chat_to_response");
    }
    if let Ok(out) = responses_upstream::chat_to_request(body, "gpt-6-luna") {
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["store"], false, "chat_to_request: {v}");
    }
    if let Ok(out) = responses_upstream::responses_to_request(body, "gpt-6-luna") {
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["store"], false, "responses_to_request: {v}");
        assert_eq!(v["model"], "gpt-6-luna", "responses_to_request: {v}");
    }
    if let Ok(out) = responses_upstream::response_to_chat(body, "gpt-6-luna", 1_763_860_000) {
        assert!(
            Completion::parse(&out).is_ok(),
            "response_to_chat gave what the next leg cannot read: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    for endpoint in [Endpoint::Chat, Endpoint::Generate] {
        if let Ok(out) = ollama::chat_to_ollama(body, "gpt-4o-mini", 1_763_860_000, endpoint) {
            object(&out, "chat_to_ollama");
        }
    }

    let chunks = filter_fuzz::chunks(body, &input.fractions);
    let responses = |chunks: &[&[u8]]| {
        stream(
            chunks,
            ChatToResponsesStream::new("gpt-4o-mini", 1_763_860_000),
            ChatToResponsesStream::feed,
            ChatToResponsesStream::finish,
        )
    };
    let whole = responses(&[body]);
    assert_eq!(
        responses(&chunks),
        whole,
        "ChatToResponsesStream depends on the chunking"
    );
    for e in filter_fuzz::sse_events(&whole) {
        object(&e, "a Responses event");
    }
    for include_usage in [false, true] {
        let upstream = |chunks: &[&[u8]]| {
            stream(
                chunks,
                ResponsesToChatStream::new("gpt-6-luna", 1_763_860_000, include_usage),
                ResponsesToChatStream::feed,
                ResponsesToChatStream::finish,
            )
        };
        let whole = upstream(&[body]);
        assert_eq!(
            upstream(&chunks),
            whole,
            "ResponsesToChatStream depends on the chunking"
        );
        for e in filter_fuzz::sse_events(&whole).into_iter().filter(|e| e.as_slice() != b"[DONE]") {
            object(&e, "a translated chunk");
        }
    }
    for endpoint in [Endpoint::Chat, Endpoint::Generate] {
        let ollama = |chunks: &[&[u8]]| {
            stream(
                chunks,
                ChatToOllamaStream::new("gpt-4o-mini", 1_763_860_000, endpoint),
                ChatToOllamaStream::feed,
                ChatToOllamaStream::finish,
            )
        };
        let whole = ollama(&[body]);
        assert_eq!(
            ollama(&chunks),
            whole,
            "ChatToOllamaStream depends on the chunking"
        );
        for line in whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            object(line, "an Ollama line");
        }
    }
});
