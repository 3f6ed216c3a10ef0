//! What `flow-bench` and `make bench` (tests/tools/src/bin/bench.rs) send:
//! the same request body, so the flow measured alone is the one measured
//! in Envoy.

/// A realistic chat body of about `size` bytes: a system prompt and a user
/// turn of prose with a code block, as an assistant integration sends.
pub fn chat_body(size: usize) -> String {
    let prose = "Our service ingests events from many tenants and writes them to a log; \
        please look at the handler below and explain what it does, then suggest a clearer name \
        for each function and point out anything that looks wrong. ";
    let code = "```python\ndef handle(event, store):\n    if not event.get(\"tenant\"):\n        return None\n    store.append(event[\"tenant\"], event)\n    return len(store)\n```\n";
    let mut text = String::new();
    while text.len() + 200 < size {
        text.push_str(prose);
        if text.len().is_multiple_of(3) {
            text.push_str(code);
        }
    }
    serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful senior engineer."},
            {"role": "user", "content": text},
        ],
        "temperature": 0.2,
    })
    .to_string()
}
