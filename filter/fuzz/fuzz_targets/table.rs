//! Arbitrary bytes as a routing table, plugin configuration or singleton
//! configuration: validation rejects, never panics. A table that validates
//! must then route every request without panicking, whatever its weights.
#![no_main]

use aipipe_core::config::{Config, SingletonConfig};
use aipipe_core::plan::Plan;
use aipipe_core::protocol::Protocol;
use aipipe_core::route;
use aipipe_core::table::{RoutingTable, Table};
use libfuzzer_sys::fuzz_target;

/// Requests that reach every part of the scorer and of selection. (Hostile
/// requests are the business of `chat_request` and `route`.)
const BODIES: [&[u8]; 4] = [
    br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#,
    br#"{"messages":[{"role":"system","content":"You are a careful senior engineer."},{"role":"user","content":"Prove that the algorithm terminates, then:\n1. implement it in Rust with lifetimes;\n2. explain why?\n```rust\nfn main() { let x = 1; }\n```\nWhy? How?"},{"role":"assistant","content":null,"tool_calls":[{"id":"a"}]},{"role":"tool","content":"ok"},{"role":"user","content":[{"type":"text","text":"and summarise, step by step, in JSON"},{"type":"image_url","image_url":{"url":"x"}}]}],"tools":[{"type":"function"}],"response_format":{"type":"json_schema"},"max_tokens":500}"#,
    br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":100000000}"#,
    "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"证明这个定理，并且用中文解释每一步。为什么？\"}]}".as_bytes(),
];

fn exercise(table: &Table) {
    for tenant in table.accounts().iter().take(3) {
        for body in BODIES {
            for protocol in [Protocol::Chat, Protocol::Messages] {
                if let Ok(mut plan) = Plan::new(table, tenant, protocol, body.to_vec(), None, true)
                {
                    while plan.next_attempt(table, tenant, 10).is_some() {}
                }
            }
            let _ = route::explain(table, tenant, body);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = serde_json::from_slice::<RoutingTable>(data)
        && let Ok(table) = Table::compile(raw)
    {
        exercise(&table);
    }
    if let Ok(config) = Config::parse(data)
        && let Some(table) = &config.table
    {
        exercise(table);
    }
    let _ = SingletonConfig::parse(data);
});
