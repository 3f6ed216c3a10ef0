//! The stack every integration test runs against: the mock provider server
//! and Envoy (two workers) with the filter and a bootstrap table of tenants;
//! and what several test files share beyond it (each file is its own crate
//! and uses only part of this, hence `dead_code`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod control_plane;
pub mod scripts;
pub mod usage;
pub mod ways;

use aipipe_tests::{Envoy, Mock, plugin_config};
use serde_json::{Value, json};

/// A tenant of the test table and its virtual key.
#[derive(Clone, Copy)]
pub struct TestTenant {
    pub id: &'static str,
    pub key: &'static str,
}

impl TestTenant {
    pub fn auth(self) -> Vec<(&'static str, &'static str)> {
        vec![("authorization", self.bearer())]
    }

    fn bearer(self) -> &'static str {
        match self.id {
            "acme" => "Bearer vk-acme",
            "beta" => "Bearer vk-beta",
            "router" => "Bearer vk-router",
            "off" => "Bearer vk-off",
            _ => "Bearer vk-keyless",
        }
    }
}

/// OpenAI + Anthropic keys: the table (filter/README.md, "Model selection")
/// applies.
pub const ACME: TestTenant = TestTenant {
    id: "acme",
    key: "vk-acme",
};
/// OpenAI only, with its own key.
pub const BETA: TestTenant = TestTenant {
    id: "beta",
    key: "vk-beta",
};
/// OpenRouter only.
pub const ROUTER: TestTenant = TestTenant {
    id: "router",
    key: "vk-router",
};
/// Disabled.
pub const OFF: TestTenant = TestTenant {
    id: "off",
    key: "vk-off",
};
/// No provider keys at all.
pub const KEYLESS: TestTenant = TestTenant {
    id: "keyless",
    key: "vk-keyless",
};

/// Bodies above this get 413 in the test stack.
pub const MAX_BODY: usize = 1024 * 1024;

pub fn test_plugin_config() -> String {
    plugin_config(
        &[
            (
                "acme",
                &["vk-acme"],
                &[
                    ("openai", "sk-acme-openai"),
                    ("anthropic", "sk-acme-anthropic"),
                ],
                false,
            ),
            ("beta", &["vk-beta"], &[("openai", "sk-beta-openai")], false),
            (
                "router",
                &["vk-router"],
                &[("openrouter", "sk-router-openrouter")],
                false,
            ),
            ("off", &["vk-off"], &[("openai", "sk-off-openai")], true),
            ("keyless", &["vk-keyless"], &[], false),
        ],
        MAX_BODY,
    )
}

/// [`test_plugin_config`] over the default catalog with gpt-6-luna in
/// service now, as an operator puts it there before its date (it enters
/// service on 2027-01-14, and the suite's undated catalog has it as before
/// that date, disabled: filter/README.md, "Catalog changes").
pub fn test_plugin_config_with_luna() -> String {
    test_plugin_config_enabling(&["gpt-6-luna"])
}

/// The test configuration over the suite's catalog with the models `ids`
/// (which ship disabled or dated) enabled.
pub fn test_plugin_config_enabling(ids: &[&str]) -> String {
    let mut config: Value = serde_json::from_str(&test_plugin_config()).unwrap_or_default();
    let mut models = aipipe_tests::undated_catalog();
    for m in models.iter_mut().filter(|m| ids.contains(&m.id.as_str())) {
        m.enabled = true;
    }
    config["table"]["models"] = serde_json::to_value(models).unwrap_or_default();
    config.to_string()
}

pub struct Stack {
    pub mock: Mock,
    pub envoy: Envoy,
}

impl Stack {
    pub fn start() -> Self {
        Self::start_with(test_plugin_config())
    }

    /// The stack over the catalog with gpt-6-luna enabled
    /// ([`test_plugin_config_with_luna`]).
    pub fn start_with_luna() -> Self {
        Self::start_with(test_plugin_config_with_luna())
    }

    /// The stack over the catalog with the models `ids` enabled
    /// ([`test_plugin_config_enabling`]).
    pub fn start_enabling(ids: &[&str]) -> Self {
        Self::start_with(test_plugin_config_enabling(ids))
    }

    fn start_with(config: String) -> Self {
        let mock = Mock::start();
        let envoy = Envoy::start_rendered("demo.yaml", mock.port, Some(config), true, 2);
        Self { mock, envoy }
    }

    pub fn chat_url(&self) -> String {
        self.envoy.url("/v1/chat/completions")
    }
}

/// A one-message chat body.
/// Milliseconds since the Unix epoch, by this machine's clock (Envoy's).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The kind of each item of a Responses API `input` (a message has none).
pub fn input_kinds(input: &[Value]) -> Vec<&str> {
    input
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("message"))
        .collect()
}

/// A tool loop's second turn as the Responses API gets it: the question, the
/// first turn's reasoning, its call and the call's output.
pub const REASONING_TURN: [&str; 4] = [
    "message",
    "reasoning",
    "function_call",
    "function_call_output",
];

/// The text a streamed chat answer spelled out: its chunks' `delta.content`.
pub fn streamed_content<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// Streams a chat request and checks the client got a complete OpenAI
/// stream: 200, some content, `data: [DONE]` last. Returns its lines.
pub fn complete_stream(url: &str, headers: &[(&str, &str)], body: &Value) -> Vec<String> {
    let (status, lines) = aipipe_tests::stream_lines(url, headers, body);
    assert_eq!(status, 200);
    let text: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    assert!(
        !streamed_content(text.iter().map(String::as_str)).is_empty(),
        "{text:?}"
    );
    assert_eq!(
        text.iter()
            .rev()
            .find(|l| !l.is_empty())
            .map(String::as_str),
        Some("data: [DONE]")
    );
    text
}

/// Sends a chat request on a raw connection, reads the head of the answer
/// and hangs up (mid-stream, for an admitted stream); returns what it read.
pub fn read_head_and_hang_up(port: u16, key: &str, body: &Value) -> String {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: aipipe\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = [0u8; 1024];
    let n = s.read(&mut head).unwrap();
    String::from_utf8_lossy(&head[..n]).to_string()
    // Dropped: the connection closes.
}
