//! The catalog: what a provider and a model are (as the routing table
//! carries them), and the defaults — the seven providers (filter/README.md,
//! "Providers and catalog") and their models, with published prices (USD per
//! million tokens) and a quality score.
//!
//! Quality. Every model's quality derives from one public benchmark so that
//! models compare on one scale: GPQA Diamond accuracy as published by the
//! model's vendor (or the leaderboard named beside it), spread by
//! `quality = accuracy ^ 1.6`. Raw accuracy differences are narrow (40 % vs
//! 83 %); the formula (filter/README.md, "Model selection")
//! `raw_cost / quality ^ (6 · (c − 0.25))` needs the ratio between a frontier
//! model and a small one to be about 3 so that the small one serves
//! everything below complexity ≈ 0.65 and the frontier model wins above ≈
//! 0.70. The exponent 1.6 is the one transform applied to all models alike;
//! `table_spec_6` in `select` pins the resulting behaviour.
//!
//! Quality by task (`Model::category_quality`): one benchmark per category,
//! the same for every model, where vendors publish it — `coding`: SWE-bench
//! Verified; `math_reasoning`: AIME 2025 (pass@1, no tools, thinking on
//! where the model thinks). A category's scores are first put on GPQA's
//! scale — divided by the mean over the models that have both of (score /
//! GPQA) — then spread by the same `^ 1.6`: a model's figure moves it
//! against its peers without moving the whole category against models that
//! have none (a model without a published figure keeps its GPQA quality
//! for that category, which would otherwise win every category whose
//! benchmark scores run lower than GPQA's). So do the
//! categories without one common benchmark (agentic tools, translation,
//! factual QA, chat, writing, analysis). Vendors run these with their own
//! scaffolds, so a few points apart is noise. Each figure names its source
//! beside it; "via X" means vendor X's comparison table reporting the
//! model.
//!
//! Prices are the providers' standard (non-batch) list prices; each entry
//! names its source. The control plane seeds its catalog from here and the
//! admin API changes prices and quality at run time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::{Protocol, provider_wire};
pub use crate::timestamp::Timestamp;

/// How a provider is reached: the Envoy cluster, the `:authority` and chat path
/// the upstream expects, and how the tenant's key is presented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub id: String,
    pub cluster: String,
    pub authority: String,
    pub chat_path: String,
    pub auth: AuthStyle,
    /// What the chat endpoint speaks: OpenAI Chat Completions (`"openai"`,
    /// the default) or Anthropic Messages (`"anthropic"`), which the filter
    /// translates both ways.
    #[serde(
        default,
        skip_serializing_if = "provider_wire::is_chat",
        with = "provider_wire"
    )]
    pub wire: Protocol,
    /// Pass-through (`/<id>/…` → `<passthrough_base>/…` upstream): what
    /// prefixes the client's path after the provider id (OpenRouter: `/api`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub passthrough_base: String,
    /// How the key is presented on pass-through requests, when it differs
    /// from `auth` (Gemini's native API takes `x-goog-api-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough_auth: Option<AuthStyle>,
}

impl Provider {
    /// Whether the provider's Chat Completions endpoint reads an assistant
    /// message's `reasoning_details` (MiniMax returns and reads its own;
    /// OpenRouter's convention is where the member comes from). Other
    /// providers get messages without it: it is not theirs, and a strict
    /// schema refuses an unknown member.
    pub fn reads_reasoning_details(&self) -> bool {
        matches!(self.id.as_str(), "minimax" | "openrouter")
    }

    /// Where the provider's Responses API is, for a model with
    /// `responses_api`: the chat path with `/responses` for
    /// `/chat/completions`. None for a provider that speaks another
    /// protocol, or whose chat path ends otherwise.
    pub fn responses_path(&self) -> Option<String> {
        if self.wire != Protocol::Chat {
            return None;
        }
        self.chat_path
            .strip_suffix("/chat/completions")
            .map(|base| format!("{base}/responses"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `x-api-key: <key>` (Anthropic's native API).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini's native API).
    XGoogApiKey,
}

impl AuthStyle {
    /// The request header that carries the key.
    pub fn header(self) -> &'static str {
        match self {
            AuthStyle::Bearer => "authorization",
            AuthStyle::XApiKey => "x-api-key",
            AuthStyle::XGoogApiKey => "x-goog-api-key",
        }
    }

    /// The header's value for `key`.
    pub fn value(self, key: &str) -> String {
        match self {
            AuthStyle::Bearer => format!("Bearer {key}"),
            AuthStyle::XApiKey | AuthStyle::XGoogApiKey => key.to_owned(),
        }
    }
}

/// What a model supports. The first three are what a request may use and
/// a model may lack (absent: false); the next two are what a model accepts
/// of a request's parameters (absent: true, as every model did before a
/// generation refused them — filter/README.md, "Model selection"); the last
/// two say how its Chat Completions body must be written (absent: false,
/// the body is sent as the client wrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub tools: bool,
    #[serde(default)]
    pub vision: bool,
    #[serde(default)]
    pub json_schema: bool,
    /// Accepts `temperature`, `top_p` and `top_k`. A model that does not
    /// gets a request without them (the answer's `x-aipipe-dropped-params`
    /// names what was dropped).
    #[serde(default = "yes")]
    pub sampling_params: bool,
    /// Accepts a forced tool choice (OpenAI `tool_choice` `"required"` or a
    /// named function; Anthropic's `any` or `tool`). A request that forces a
    /// tool never routes to a model that does not.
    #[serde(default = "yes")]
    pub forced_tool_choice: bool,
    /// Continues a conversation that ends with an assistant message (a
    /// prefill). A request that ends so never routes to a model that does
    /// not (naming it is a 400): the Claude 5.x models answer 400 to it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub assistant_prefill: bool,
    /// Takes the answer budget only as `max_completion_tokens` and answers
    /// 400 to `max_tokens` (OpenAI's reasoning models): the filter sends a
    /// request's `max_tokens` under that name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub max_completion_tokens: bool,
    /// Reasons unless told not to, and takes tools and sampling parameters
    /// on Chat Completions only with `reasoning_effort` `"none"` (OpenAI's
    /// GPT-5.6 and GPT-6 generations): a request that sets no effort is sent
    /// `"none"`; one that sets another has its sampling parameters dropped,
    /// and with tools is never routed to the model (naming it is a 400).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reasoning_effort_none: bool,
    /// Thinks unless told not to, and takes `thinking` `{"type":
    /// "disabled"}` (Anthropic's Claude Haiku 5.5, at its default effort):
    /// a request that asks for no reasoning — no `reasoning_effort` or
    /// `"none"`, no `thinking` or `output_config` of its own — is sent that,
    /// as a model with `reasoning_effort_none` is sent `"none"`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_thinking: bool,
    /// Takes Anthropic's `output_config.effort` (the Claude 5.x
    /// generation): a Chat Completions request's `reasoning_effort` is sent
    /// as that effort (`minimal` and `low` as `low`; `"none"`, to a model
    /// that cannot stop thinking, as `low`) unless the client set
    /// `thinking` or `output_config` of its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub output_effort: bool,
    /// Thinks adaptively and refuses `thinking` `{"type": "enabled"}` with a
    /// `budget_tokens` (the Claude 5.x: Anthropic answers 400 to it): a
    /// request's enabled thinking is sent as `{"type": "adaptive"}`, its
    /// budget as the `output_config.effort` it asks for (as for an OpenAI
    /// model's `reasoning_effort`) unless the request sets an effort.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adaptive_thinking: bool,
    /// Thinks unless told not to, and is told with `thinking` `{"type":
    /// "between_tools"}` — no up-front thinking, only short notes between
    /// tool calls — where `{"type": "disabled"}` is a 400 (Anthropic's
    /// Claude Sonnet 5.5): a request that asks for no reasoning is sent that,
    /// as a `disable_thinking` model is sent disabled, and a request's own
    /// `disabled` is sent as that.
    #[serde(default, skip_serializing_if = "is_false")]
    pub between_tools: bool,
    /// Accepts Chat Completions' `reasoning_effort` (absent: true). A model
    /// that does not — OpenAI's GPT-4o generation answers 400 to it, even
    /// `"none"` — gets the request without it, named in the answer's
    /// `x-aipipe-dropped-params`, as sampling parameters are.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub reasoning_effort: bool,
    /// Also answers on OpenAI's Responses API, which takes function tools
    /// with a reasoning effort where Chat Completions takes them only with
    /// `"none"` (`reasoning_effort_none`): such a request is sent there
    /// (the provider's chat path with `/responses` for `/chat/completions`)
    /// instead of being routed around the model; every other request keeps
    /// Chat Completions. Needs an OpenAI-format provider whose chat path
    /// ends in `/chat/completions`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub responses_api: bool,
    /// Accepts Anthropic's `thinking` and `output_config` as members of a
    /// Chat Completions body (absent: true, as every model did before this
    /// was checked). OpenAI's models answer 400 to a parameter they do not
    /// know, so a Chat client's extension (meant for a Claude model, which
    /// gets it translated) is left out for them and named in
    /// `x-aipipe-dropped-params`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub thinking_extensions: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for Capabilities {
    /// Nothing optional supported, every request parameter accepted (what a
    /// catalog entry without `capabilities` means).
    fn default() -> Self {
        Capabilities {
            tools: false,
            vision: false,
            json_schema: false,
            sampling_params: true,
            forced_tool_choice: true,
            assistant_prefill: true,
            max_completion_tokens: false,
            reasoning_effort_none: false,
            disable_thinking: false,
            output_effort: false,
            adaptive_thinking: false,
            between_tools: false,
            reasoning_effort: true,
            responses_api: false,
            thinking_extensions: true,
        }
    }
}

/// The four prices of a model, USD per million tokens: what a
/// [`PriceChange`] sets and what [`Model::prices_at`] answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// None → the input price.
    pub cached_input_per_mtok: Option<f64>,
    /// None → the input price.
    pub cache_write_per_mtok: Option<f64>,
}

/// A scheduled change of a model's prices: from the instant `from` on, a
/// request is priced (its cost, its budget reservation, its selection) at
/// these prices instead of the model's own (filter/README.md, "Scheduled
/// price changes"). A change sets all four prices; a cache price it leaves
/// out is the change's input price, as for the model itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceChange {
    /// RFC 3339 (`2027-01-01T00:00:00Z`).
    pub from: Timestamp,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
}

impl PriceChange {
    pub fn prices(&self) -> Prices {
        Prices {
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            cached_input_per_mtok: self.cached_input_per_mtok,
            cache_write_per_mtok: self.cache_write_per_mtok,
        }
    }
}

/// The most scheduled price changes one model may carry.
pub const MAX_PRICE_CHANGES: usize = 16;

/// A provider's higher rates for a long prompt: a request whose prompt —
/// its input tokens, cache reads and cache writes together — is longer than
/// `above_tokens` is billed, whole, at every input-side price (input, cache
/// read, cache write) times `input_multiplier` and the output price times
/// `output_multiplier` (filter/README.md, "Long-context prices").
/// Anthropic's Claude Haiku 5.5 is 5× on every rate above 100,000 tokens;
/// Google's and OpenAI's long-context rates have the same shape. It applies
/// to the prices in force, scheduled changes included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    pub above_tokens: u64,
    pub input_multiplier: f64,
    pub output_multiplier: f64,
}

impl Prices {
    /// These prices for a prompt of `prompt_tokens` on a model with
    /// `long_context` rates.
    pub fn for_prompt(self, long_context: Option<&LongContext>, prompt_tokens: u64) -> Prices {
        match long_context {
            Some(l) if prompt_tokens > l.above_tokens => {
                let i = l.input_multiplier;
                Prices {
                    input_per_mtok: self.input_per_mtok * i,
                    output_per_mtok: self.output_per_mtok * l.output_multiplier,
                    cached_input_per_mtok: self.cached_input_per_mtok.map(|p| p * i),
                    cache_write_per_mtok: self.cache_write_per_mtok.map(|p| p * i),
                }
            }
            _ => self,
        }
    }
}

/// One catalog entry. Prices are USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Catalog id clients may name (`gpt-4o-mini`).
    pub id: String,
    pub provider: String,
    /// The model name the provider expects, when it differs from `id`
    /// (OpenRouter's `meta-llama/llama-3.3-70b-instruct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<String>,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Price of a prompt-cache read; None → the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
    /// Price of a prompt-cache write (Anthropic: 1.25× input); None → the
    /// input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    /// Quality in (0, 1]; see `catalog` for where each figure comes from.
    pub quality: f64,
    /// Quality per task category (`classify::Category` names, in (0, 1]),
    /// where a benchmark of that category exists; other categories, and
    /// requests without a predicted category, use `quality`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_quality: BTreeMap<String, f64>,
    pub context_window: u64,
    pub max_output_tokens: u64,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Observed latency, used only to break cost ties. Unknown → last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Multiplies the adjusted cost: 0 = healthy (filter/README.md,
    /// "Penalties").
    #[serde(default)]
    pub penalty: f64,
    /// Scheduled price changes, in order of `from`, at most
    /// [`MAX_PRICE_CHANGES`]: the prices above are those in force before
    /// the first one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_changes: Vec<PriceChange>,
    /// The instant its provider stops serving it (RFC 3339): from then on
    /// the model is retired — never routed to, a request naming it refused
    /// with the date, no longer listed; before it, answers from it carry a
    /// `Sunset` header (filter/README.md, "Scheduled retirements").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<Timestamp>,
    /// The instant it enters service (RFC 3339): before it the model is
    /// treated as disabled — never routed to or listed, a request naming it
    /// refused with the date — and from it as `enabled` says. A replacement
    /// scheduled for its predecessor's retirement takes over at that instant
    /// in every Envoy (filter/README.md, "Scheduled retirements").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_from: Option<Timestamp>,
    /// Higher rates for a long prompt; absent: one rate at every length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
}

pub(crate) fn yes() -> bool {
    true
}

impl Model {
    /// The name sent upstream in the body's `model` field.
    pub fn upstream_name(&self) -> &str {
        self.upstream_id.as_deref().unwrap_or(&self.id)
    }

    /// Its own prices: those in force before its first scheduled change.
    pub fn listed_prices(&self) -> Prices {
        Prices {
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            cached_input_per_mtok: self.cached_input_per_mtok,
            cache_write_per_mtok: self.cache_write_per_mtok,
        }
    }

    /// The rates a request with a prompt of `prompt_tokens` is billed at:
    /// its prices (those of a table priced at an instant:
    /// `Table::priced_at`), times its long-context multipliers when the
    /// prompt is longer than their threshold.
    pub fn rates(&self, prompt_tokens: u64) -> Prices {
        self.listed_prices()
            .for_prompt(self.long_context.as_ref(), prompt_tokens)
    }

    /// Sets its own prices.
    pub fn set_prices(&mut self, p: Prices) {
        self.input_per_mtok = p.input_per_mtok;
        self.output_per_mtok = p.output_per_mtok;
        self.cached_input_per_mtok = p.cached_input_per_mtok;
        self.cache_write_per_mtok = p.cache_write_per_mtok;
    }

    /// The scheduled change in force at `at_ms` (ms since the epoch): the
    /// latest whose instant is not after it. None before the first.
    pub fn change_in_force(&self, at_ms: u64) -> Option<&PriceChange> {
        self.price_changes
            .iter()
            .filter(|c| c.from.ms() <= at_ms)
            .max_by_key(|c| c.from)
    }

    /// The prices in force at `at_ms`.
    pub fn prices_at(&self, at_ms: u64) -> Prices {
        self.change_in_force(at_ms)
            .map_or_else(|| self.listed_prices(), PriceChange::prices)
    }

    /// The first scheduled change after `at_ms`, if any.
    pub fn next_change_after(&self, at_ms: u64) -> Option<Timestamp> {
        self.price_changes
            .iter()
            .map(|c| c.from)
            .filter(|f| f.ms() > at_ms)
            .min()
    }

    /// Whether it is retired at `at_ms` (ms since the epoch): its
    /// retirement instant is not after it.
    pub fn retired_at(&self, at_ms: u64) -> bool {
        self.retires_at.is_some_and(|r| r.ms() <= at_ms)
    }

    /// Whether it is still waiting to enter service at `at_ms`: its
    /// `enabled_from` instant is after it.
    pub fn pending_at(&self, at_ms: u64) -> bool {
        self.enabled_from.is_some_and(|f| f.ms() > at_ms)
    }

    /// Whether a request at `at_ms` may be routed to it: enabled, in
    /// service and not retired.
    pub fn in_service_at(&self, at_ms: u64) -> bool {
        self.enabled && !self.retired_at(at_ms) && !self.pending_at(at_ms)
    }

    /// The model as it is priced at `at_ms`: the changes whose instant has
    /// passed folded into its own prices (the last of them in force), only
    /// the later ones still scheduled. What the control plane lists.
    pub fn folded_at(mut self, at_ms: u64) -> Self {
        let now = self.prices_at(at_ms);
        self.set_prices(now);
        self.price_changes.retain(|c| c.from.ms() > at_ms);
        self.enabled_from = self.enabled_from.filter(|f| f.ms() > at_ms);
        self
    }
}

/// GPQA Diamond accuracy in percent → quality in (0, 1].
pub fn quality_from_gpqa(percent: f64) -> f64 {
    (percent / 100.0).clamp(0.0001, 1.0).powf(1.6)
}

fn provider(id: &str, authority: &str, chat_path: &str) -> Provider {
    Provider {
        id: id.to_owned(),
        cluster: id.to_owned(),
        authority: authority.to_owned(),
        chat_path: chat_path.to_owned(),
        auth: AuthStyle::Bearer,
        wire: Protocol::Chat,
        // openrouter.ai/api/v1/…; the others' paths start at their version.
        passthrough_base: if id == "openrouter" { "/api" } else { "" }.to_owned(),
        // Gemini's native endpoints take the key in x-goog-api-key; its
        // OpenAI-compatible chat endpoint takes a Bearer key.
        passthrough_auth: (id == "gemini").then_some(AuthStyle::XGoogApiKey),
    }
}

/// The seven providers. Anthropic is reached through its native Messages API
/// (translated both ways); the others through their OpenAI-compatible chat
/// endpoints.
pub fn default_providers() -> Vec<Provider> {
    vec![
        provider("openai", "api.openai.com", "/v1/chat/completions"),
        Provider {
            auth: AuthStyle::XApiKey,
            wire: Protocol::Messages,
            ..provider("anthropic", "api.anthropic.com", "/v1/messages")
        },
        provider(
            "gemini",
            "generativelanguage.googleapis.com",
            "/v1beta/openai/chat/completions",
        ),
        provider("xai", "api.x.ai", "/v1/chat/completions"),
        provider("openrouter", "openrouter.ai", "/api/v1/chat/completions"),
        provider("minimax", "api.minimax.io", "/v1/chat/completions"),
        provider("moonshot", "api.moonshot.ai", "/v1/chat/completions"),
    ]
}

const ALL: Capabilities = Capabilities {
    tools: true,
    vision: true,
    json_schema: true,
    sampling_params: true,
    forced_tool_choice: true,
    assistant_prefill: true,
    max_completion_tokens: false,
    reasoning_effort_none: false,
    disable_thinking: false,
    output_effort: false,
    adaptive_thinking: false,
    between_tools: false,
    reasoning_effort: true,
    responses_api: false,
    thinking_extensions: true,
};
const TEXT_TOOLS_JSON: Capabilities = Capabilities {
    tools: true,
    vision: false,
    json_schema: true,
    sampling_params: true,
    forced_tool_choice: true,
    assistant_prefill: true,
    max_completion_tokens: false,
    reasoning_effort_none: false,
    disable_thinking: false,
    output_effort: false,
    adaptive_thinking: false,
    between_tools: false,
    reasoning_effort: true,
    responses_api: false,
    thinking_extensions: true,
};
/// OpenAI's GPT-4o generation: everything, but no `reasoning_effort`
/// (OpenAI answers 400 `unsupported_parameter` to it on these models) and,
/// as every OpenAI model, no Anthropic extensions.
const GPT_4O: Capabilities = Capabilities {
    reasoning_effort: false,
    thinking_extensions: false,
    ..ALL
};
/// Claude 5.x (Sonnet 5.5, Opus 5.5): images and tools, but no forced tool
/// — so no JSON schema either, which the Anthropic translation asks for
/// with a forced tool (`anthropic::JSON_TOOL`) — no sampling parameters,
/// and no prefill (a conversation ending with an assistant message); a
/// reasoning effort as `output_config.effort`.
const CLAUDE_5: Capabilities = Capabilities {
    tools: true,
    vision: true,
    json_schema: false,
    sampling_params: false,
    forced_tool_choice: false,
    assistant_prefill: false,
    max_completion_tokens: false,
    reasoning_effort_none: false,
    disable_thinking: false,
    output_effort: true,
    adaptive_thinking: true,
    between_tools: false,
    reasoning_effort: true,
    responses_api: false,
    thinking_extensions: true,
};
/// Claude Haiku 5.5: what the other Claude 5.x refuse (a forced tool is not
/// documented either way: refused until it is), and thinking, on by
/// default, turned off unless the client asks for reasoning.
/// Claude Sonnet 5.5: the other Claude 5.x's, and up-front thinking turned
/// off with `between_tools` (`disabled` is a 400 there).
const CLAUDE_SONNET_5_5: Capabilities = Capabilities {
    between_tools: true,
    ..CLAUDE_5
};
const CLAUDE_HAIKU_5: Capabilities = Capabilities {
    disable_thinking: true,
    ..CLAUDE_5
};
/// OpenAI's GPT-6 generation on Chat Completions: images, tools, a JSON
/// schema and a forced tool, with `max_completion_tokens` for the answer
/// budget and `reasoning_effort` `"none"` sent unless the client sets one
/// (it reasons by default, and takes tools and sampling parameters only
/// without reasoning).
const GPT_6: Capabilities = Capabilities {
    tools: true,
    vision: true,
    json_schema: true,
    sampling_params: true,
    forced_tool_choice: true,
    assistant_prefill: true,
    max_completion_tokens: true,
    reasoning_effort_none: true,
    disable_thinking: false,
    output_effort: false,
    adaptive_thinking: false,
    between_tools: false,
    reasoning_effort: true,
    responses_api: true,
    thinking_extensions: false,
};
const TEXT_TOOLS: Capabilities = Capabilities {
    tools: true,
    vision: false,
    json_schema: false,
    sampling_params: true,
    forced_tool_choice: true,
    assistant_prefill: true,
    max_completion_tokens: false,
    reasoning_effort_none: false,
    disable_thinking: false,
    output_effort: false,
    adaptive_thinking: false,
    between_tools: false,
    reasoning_effort: true,
    responses_api: false,
    thinking_extensions: true,
};

struct Entry {
    id: &'static str,
    provider: &'static str,
    upstream_id: Option<&'static str>,
    /// input, cached input, output — USD per million tokens.
    prices: EntryPrices,
    gpqa: f64,
    /// Per task category (`classify::Category` names): a published score in
    /// percent of that category's benchmark (below), spread like GPQA.
    tasks: &'static [(&'static str, f64)],
    context_window: u64,
    max_output_tokens: u64,
    capabilities: Capabilities,
    enabled: bool,
    /// Scheduled price changes: (from, ms since the epoch; prices as
    /// `prices`).
    changes: &'static [(u64, EntryPrices)],
    /// Its provider's shutdown instant, ms since the epoch.
    retires: Option<u64>,
    /// The instant it enters service, ms since the epoch.
    enabled_from: Option<u64>,
    long_context: Option<LongContext>,
}

/// input, cached input, output — USD per million tokens.
type EntryPrices = (f64, Option<f64>, f64);

/// A category's benchmark on GPQA's scale: the mean over the entries that
/// have a figure of (figure / GPQA).
fn task_scale(category: &str) -> f64 {
    let ratios: Vec<f64> = ENTRIES
        .iter()
        .filter_map(|e| {
            e.tasks
                .iter()
                .find(|(c, _)| *c == category)
                .map(|(_, p)| p / e.gpqa)
        })
        .collect();
    if ratios.is_empty() {
        return 1.0;
    }
    ratios.iter().sum::<f64>() / ratios.len() as f64
}

impl Entry {
    fn model(&self) -> Model {
        Model {
            id: self.id.to_owned(),
            provider: self.provider.to_owned(),
            upstream_id: self.upstream_id.map(str::to_owned),
            input_per_mtok: self.prices.0,
            cached_input_per_mtok: self.prices.1,
            // Anthropic bills 5-minute cache writes at 1.25x input; the
            // others do not bill writes separately.
            cache_write_per_mtok: (self.provider == "anthropic").then_some(self.prices.0 * 1.25),
            output_per_mtok: self.prices.2,
            quality: quality_from_gpqa(self.gpqa),
            category_quality: self
                .tasks
                .iter()
                .map(|&(c, percent)| {
                    let on_gpqa_scale = (percent / task_scale(c)).min(100.0);
                    (c.to_owned(), quality_from_gpqa(on_gpqa_scale))
                })
                .collect(),
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            capabilities: self.capabilities,
            enabled: self.enabled,
            latency_ms: None,
            penalty: 0.0,
            price_changes: self
                .changes
                .iter()
                .map(|&(from, (input, cached, output))| PriceChange {
                    from: Timestamp(from),
                    input_per_mtok: input,
                    output_per_mtok: output,
                    cached_input_per_mtok: cached,
                    cache_write_per_mtok: (self.provider == "anthropic").then_some(input * 1.25),
                })
                .collect(),
            retires_at: self.retires.map(Timestamp),
            enabled_from: self.enabled_from.map(Timestamp),
            long_context: self.long_context,
        }
    }
}

/// 2027-01-14T00:00:00Z, ms since the epoch (`date -u -d 2027-01-14 +%s`):
/// OpenAI's shutdown date of gpt-4o and gpt-4o-mini. The provider gives a
/// date, not a time: the start of that day (UTC) is the first instant the
/// model may answer 404, so the catalog retires it then.
const JAN_14_2027: u64 = 1_799_884_800_000;

/// 2027-01-22T00:00:00Z (`date -u -d 2027-01-22 +%s`): Anthropic's
/// retirement date of claude-opus-4-5, at the start of the day as above.
const JAN_22_2027: u64 = 1_800_576_000_000;

/// 2027-01-01T00:00:00Z, ms since the epoch (`date -u -d 2027-01-01 +%s`).
const JAN_1_2027: u64 = 1_798_761_600_000;

#[rustfmt::skip]
const ENTRIES: &[Entry] = &[
    // ---- OpenAI — prices: openai.com/api/pricing. GPQA: OpenAI's "GPT-4o mini:
    // advancing cost-efficient intelligence" (40.2) and the GPT-4.1 launch
    // table for gpt-4o-2024-11-20 (46.0). SWE-bench Verified: "Introducing
    // GPT-4.1" ("54.6% … improving by 21.4%abs over GPT-4o": 33.2).
    // Both shut down on 2027-01-14 (OpenAI's deprecations page, section of
    // 2026-10-14): retired from that instant (`retires`, filter/README.md
    // "Scheduled retirements").
    Entry { id: "gpt-4o-mini", provider: "openai", upstream_id: None,
        prices: (0.15, Some(0.075), 0.60), gpqa: 40.2, tasks: &[],
        context_window: 128_000, max_output_tokens: 16_384, capabilities: GPT_4O, enabled: true, changes: &[], retires: Some(JAN_14_2027), enabled_from: None, long_context: None },
    Entry { id: "gpt-4o", provider: "openai", upstream_id: None,
        prices: (2.50, Some(1.25), 10.00), gpqa: 46.0, tasks: &[("coding", 33.2)],
        context_window: 128_000, max_output_tokens: 16_384, capabilities: GPT_4O, enabled: true, changes: &[], retires: Some(JAN_14_2027), enabled_from: None, long_context: None },
    // OpenAI's named replacement for gpt-4o, gpt-4o-mini, gpt-4.1 and
    // gpt-4.1-mini (deprecations page, section of 2026-10-14; all shut down
    // 2027-01-14), released 2026-09-22 and listed by the openai SDK this
    // repository pins (3.54.0, types/shared/chat_model.py). Prices and
    // limits: its model page (developers.openai.com/api/docs/models/
    // gpt-6-luna: $0.10 / cached $0.01 / $0.50; cache writes $0.125, which
    // OpenAI's usage does not report apart; 1,050,000 context, 128,000
    // output). Above 272K input tokens "input and cache rates double and
    // output costs 1.5 times the short-context rate for the full request"
    // (the same rule on every GPT-6 model page): `long_context`. It
    // reasons by default (medium) and Chat Completions takes its tools and
    // sampling parameters only with reasoning effort none (the same page;
    // OpenAI's deployment checklist), its answer budget only as
    // max_completion_tokens (`GPT_6`; filter/README.md, "Catalog changes").
    // OpenAI publishes no GPQA Diamond figure for it (nor for any GPT-6
    // model): GPT-4.1's 66.3 (the GPT-4.1 launch table above) stands in —
    // the strongest of the four GPT-4.x models it replaces, which OpenAI's
    // migration guide (Help Center, "Migrating from GPT-4.x to GPT-6 Luna")
    // calls less capable than it at reasoning effort none, the effort the
    // filter sends.
    // In service from 2027-01-14T00:00:00Z (`enabled_from`), the instant the
    // models it replaces retire: until then no routing moves; from then an
    // OpenAI key still has a model. It then takes every band with OpenAI +
    // Anthropic keys (a twentieth of claude-sonnet-5-5's price; the
    // stand-in buys Sonnet back nowhere): filter/README.md, "Catalog
    // changes", pinned by `select::tests::after_each_retirement_the_catalog_
    // routes_to_what_is_left`.
    Entry { id: "gpt-6-luna", provider: "openai", upstream_id: None,
        prices: (0.10, Some(0.01), 0.50), gpqa: 66.3, tasks: &[],
        context_window: 1_050_000, max_output_tokens: 128_000, capabilities: GPT_6, enabled: true, changes: &[], retires: None, enabled_from: Some(JAN_14_2027),
        long_context: Some(LongContext { above_tokens: 272_000, input_multiplier: 2.0, output_multiplier: 1.5 }) },

    // ---- Anthropic — prices: platform.claude.com/docs/en/about-claude/pricing
    // (cached = cache read; cache writes 1.25x input). GPQA: Anthropic's
    // launch post of each model. SWE-bench Verified: the Haiku 4.5 (73.3)
    // launch post; Opus 4.5's 80.9 via Moonshot's Kimi K2.5 model card.
    // AIME 2025: Opus 4.5's 92.8 via the Kimi K2.5 card. JSON schema output
    // works through the native translation (a forced tool, see
    // `anthropic::JSON_TOOL`). claude-sonnet-4-5 was retired by Anthropic on
    // 2026-11-30 and left this catalog (filter/README.md, "Catalog changes").
    // claude-opus-4-5 is deprecated and retires on 2027-01-22 (below):
    // retired from that instant (`retires`).
    Entry { id: "claude-opus-4-5", provider: "anthropic", upstream_id: None,
        prices: (5.00, Some(0.50), 25.00), gpqa: 87.0, tasks: &[("coding", 80.9), ("math_reasoning", 92.8)],
        context_window: 200_000, max_output_tokens: 64_000, capabilities: ALL, enabled: true, changes: &[], retires: Some(JAN_22_2027), enabled_from: None, long_context: None },
    // Shipped disabled: at $1/$5 with GPQA 73.0 it would take about the
    // 0.60–0.80 band from gpt-4o-mini / claude-sonnet-5-5 (filter/README.md,
    // "Model selection"). Anthropic calls it legacy (no retirement date)
    // and names claude-haiku-5-5 (below) its current Haiku.
    Entry { id: "claude-haiku-4-5", provider: "anthropic", upstream_id: None,
        prices: (1.00, Some(0.10), 5.00), gpqa: 73.0, tasks: &[("coding", 73.3)],
        context_window: 200_000, max_output_tokens: 64_000, capabilities: ALL, enabled: false, changes: &[], retires: None, enabled_from: None, long_context: None },
    // The current Haiku (platform.claude.com/docs/en/models/haiku-5-5/
    // overview: released 2026-10-07; $0.10 input, $0.50 output, cache writes
    // $0.125 — 1.25x input, as below — for prompts up to 100,000 tokens and
    // every rate 5x above, `long_context`; 1M context, 128K output; the
    // $0.01 cache read from three tools that checked the live pricing page,
    // the Anthropic page's excerpt ending before it). Anthropic calls
    // Haiku 4.5 legacy and names this one its current Haiku. It thinks by
    // default (effort medium; thinking counts against `max_tokens` and is
    // billed as output) and takes `thinking` disabled at that effort
    // ("Prompting Claude Haiku 5.5", read in a Chinese copy), which the
    // filter sends unless the client asks for reasoning
    // (`CLAUDE_HAIKU_5`); it refuses sampling parameters and a prefill, as
    // the other 5.x do ("What's new in Claude Haiku 5.5"). Anthropic
    // publishes no GPQA Diamond figure for it: Haiku 4.5's 73.0 stands in.
    // Shipped disabled: at that figure and a twentieth of Sonnet 5.5's
    // price it would take every band it can serve from gpt-4o-mini and
    // claude-sonnet-5-5 at once (`select::tests::claude_haiku_5_5_enabled_
    // takes_every_band_it_can_serve`) on a stand-in number and on thinking
    // handling no live call has checked. Enable per catalog
    // (filter/README.md, "Catalog changes", 2026-12-06, third change).
    Entry { id: "claude-haiku-5-5", provider: "anthropic", upstream_id: None,
        prices: (0.10, Some(0.01), 0.50), gpqa: 73.0, tasks: &[],
        context_window: 1_000_000, max_output_tokens: 128_000, capabilities: CLAUDE_HAIKU_5, enabled: false, changes: &[], retires: None, enabled_from: None,
        long_context: Some(LongContext { above_tokens: 100_000, input_multiplier: 5.0, output_multiplier: 5.0 }) },
    // The current Sonnet and Opus (platform.claude.com/docs/en/models/
    // sonnet-5-5/overview and the "What's new in Claude Opus 5" comparison
    // table: 1M context, 128K output; cache reads $0.10 and $0.20 — Sonnet
    // 5.5's was cut from $0.20 on 2026-10-07). They replace claude-sonnet-4-5
    // (retired 2026-11-30, gone from this catalog) and claude-opus-4-5, which
    // Anthropic has deprecated (it retires on 2027-01-22) but still serves.
    // This generation answers 400 to a
    // non-default temperature, top_p or top_k and refuses a forced tool
    // (`CLAUDE_5`): the filter drops the sampling parameters for them and
    // routes a request that forces a tool elsewhere (filter/README.md,
    // "Model selection"); no json_schema, which the translation forces a
    // tool for. Anthropic publishes no GPQA Diamond figure for them: each
    // stands in with its predecessor's (Sonnet 4.5's 83.4 and Opus 4.5's
    // 87.0, their launch posts).
    Entry { id: "claude-sonnet-5-5", provider: "anthropic", upstream_id: None,
        prices: (2.00, Some(0.10), 10.00), gpqa: 83.4, tasks: &[],
        context_window: 1_000_000, max_output_tokens: 128_000, capabilities: CLAUDE_SONNET_5_5, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
    Entry { id: "claude-opus-5-5", provider: "anthropic", upstream_id: None,
        prices: (4.00, Some(0.20), 20.00), gpqa: 87.0, tasks: &[],
        context_window: 1_000_000, max_output_tokens: 128_000, capabilities: CLAUDE_5, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },

    // ---- Google Gemini — prices: ai.google.dev/gemini-api/docs/pricing (paid
    // tier, prompts ≤ 200k tokens). gemini-2.5-pro and gemini-2.5-flash were
    // shut down on the Gemini API on 2026-12-01 (ai.google.dev/gemini-api/
    // docs/deprecations, replacements gemini-3.8-flash and
    // gemini-3.5-flash-lite; filter/README.md, "Catalog changes").
    // GPQA: Google DeepMind's Gemini 2.5 report and model cards (Flash-Lite:
    // non-thinking). Google publishes no GPQA Diamond, SWE-bench Verified or
    // AIME 2025 figure for the 3.x models that replace them, so each stands
    // in with the figure of the model Google names it the replacement of
    // (3.8 Flash: 2.5 Pro's 86.4; 3.5 Flash-Lite: 2.5 Flash's 82.8) until
    // one is published. gemini-3.8-flash is priced at its rate through
    // 2026-12-31 ($0.75 / $3.75, cache read $0.075); from 2027-01-01 it is
    // $1.50 / $7.50, scheduled below so the filters switch at that instant
    // by their own clock (filter/README.md, "Scheduled price changes"). The
    // page gives no cache-read price from 2027-01-01: $0.15 keeps today's
    // ratio (a tenth of input). gemini-3.5-flash-lite's cache-read price was
    // not found: cached tokens are billed at the input price.
    Entry { id: "gemini-2.5-flash-lite", provider: "gemini", upstream_id: None,
        prices: (0.10, Some(0.01), 0.40), gpqa: 64.6, tasks: &[],
        context_window: 1_048_576, max_output_tokens: 65_536, capabilities: ALL, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
    Entry { id: "gemini-3.5-flash-lite", provider: "gemini", upstream_id: None,
        prices: (0.30, None, 2.50), gpqa: 82.8, tasks: &[],
        context_window: 1_048_576, max_output_tokens: 65_536, capabilities: ALL, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
    Entry { id: "gemini-3.8-flash", provider: "gemini", upstream_id: None,
        prices: (0.75, Some(0.075), 3.75), gpqa: 86.4, tasks: &[],
        context_window: 1_048_576, max_output_tokens: 65_536, capabilities: ALL, enabled: true,
        changes: &[(JAN_1_2027, (1.50, Some(0.15), 7.50))], retires: None, enabled_from: None, long_context: None },

    // ---- xAI — prices: docs.x.ai/developers/models. grok-4 and
    // grok-4-fast were retired on 2026-05-15 (docs.x.ai migration note).
    // GPQA: xAI's Grok 3 mini post (84.0). xAI has published no GPQA for
    // grok-4.3; Grok 4's 87.5 (xAI launch) stands in until it does.
    Entry { id: "grok-4.3", provider: "xai", upstream_id: None,
        prices: (1.25, Some(0.20), 2.50), gpqa: 87.5, tasks: &[],
        context_window: 1_000_000, max_output_tokens: 64_000, capabilities: ALL, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
    Entry { id: "grok-3-mini", provider: "xai", upstream_id: None,
        prices: (0.30, Some(0.075), 0.50), gpqa: 84.0, tasks: &[],
        context_window: 131_072, max_output_tokens: 32_000, capabilities: TEXT_TOOLS_JSON, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },

    // ---- OpenRouter — prices: openrouter.ai/<model>/api. GPQA: Meta's
    // Llama 3.3 model card (50.5); DeepSeek's V3.2 report (82.4; thinking:
    // SWE-bench Verified 73.1, AIME 2025 93.1).
    Entry { id: "llama-3.3-70b-instruct", provider: "openrouter",
        upstream_id: Some("meta-llama/llama-3.3-70b-instruct"),
        prices: (0.10, None, 0.32), gpqa: 50.5, tasks: &[],
        context_window: 131_072, max_output_tokens: 16_384, capabilities: TEXT_TOOLS, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
    Entry { id: "deepseek-v3.2", provider: "openrouter",
        upstream_id: Some("deepseek/deepseek-v3.2"),
        prices: (0.28, Some(0.13), 0.40), gpqa: 82.4, tasks: &[("coding", 73.1), ("math_reasoning", 93.1)],
        context_window: 163_840, max_output_tokens: 65_536, capabilities: TEXT_TOOLS_JSON, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },

    // ---- MiniMax — prices: platform.minimax.io/docs/pricing (cache read
    // 0.03). GPQA: MiniMax-M2 model card (Hugging Face MiniMaxAI/MiniMax-M2),
    // with SWE-bench Verified 69.4 and AIME 2025 78 (Artificial Analysis's
    // run, as the card reports it).
    // MiniMax drops response_format, so no json_schema.
    Entry { id: "MiniMax-M2", provider: "minimax", upstream_id: None,
        prices: (0.30, Some(0.03), 1.20), gpqa: 78.0, tasks: &[("coding", 69.4), ("math_reasoning", 78.0)],
        context_window: 204_800, max_output_tokens: 128_000, capabilities: TEXT_TOOLS, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },

    // ---- Moonshot (Kimi) — prices: platform.moonshot.ai/docs/pricing/chat.
    // The kimi-k2 previews were retired on 2026-05-25. GPQA: Moonshot has
    // published none for K2.5; Kimi K2-Instruct's 75.1 (model card) stands in.
    // SWE-bench Verified 76.8 and AIME 2025 96.1: the Kimi K2.5 model card.
    Entry { id: "kimi-k2.5", provider: "moonshot", upstream_id: None,
        prices: (0.60, Some(0.10), 3.00), gpqa: 75.1, tasks: &[("coding", 76.8), ("math_reasoning", 96.1)],
        context_window: 262_144, max_output_tokens: 32_768, capabilities: TEXT_TOOLS, enabled: true, changes: &[], retires: None, enabled_from: None, long_context: None },
];

pub fn default_models() -> Vec<Model> {
    ENTRIES.iter().map(Entry::model).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Task figures move a model against its peers on GPQA's scale: Kimi
    /// K2.5 codes better than its GPQA says, GPT-4o worse, and a model with
    /// no figure keeps its general quality.
    #[test]
    fn task_figures_are_calibrated_onto_the_general_scale() {
        let models = default_models();
        let m = |id: &str| models.iter().find(|m| m.id == id).unwrap();
        let coding = |id: &str| m(id).category_quality.get("coding").copied();
        assert!(coding("kimi-k2.5").unwrap() > m("kimi-k2.5").quality);
        assert!(coding("gpt-4o").unwrap() < m("gpt-4o").quality);
        assert_eq!(coding("grok-3-mini"), None);
        let scale = task_scale("coding");
        assert!((0.8..1.0).contains(&scale), "{scale}");
        for model in &models {
            for (c, q) in &model.category_quality {
                assert!(crate::classify::Category::from_name(c).is_some(), "{c}");
                assert!(*q > 0.0 && *q <= 1.0, "{} {c} {q}", model.id);
            }
        }
    }

    #[test]
    fn every_model_names_a_default_provider_and_has_sane_figures() {
        let providers = default_providers();
        assert_eq!(providers.len(), 7);
        for m in default_models() {
            assert!(providers.iter().any(|p| p.id == m.provider), "{}", m.id);
            assert!(m.quality > 0.0 && m.quality <= 1.0, "{}", m.id);
            assert!(
                m.input_per_mtok > 0.0 && m.output_per_mtok >= m.input_per_mtok,
                "{}",
                m.id
            );
        }
        for p in &providers {
            assert!(
                default_models().iter().any(|m| m.provider == p.id),
                "{}",
                p.id
            );
        }
    }

    /// Gemini 3.8 Flash's 2027-01-01 price rise is scheduled in the default
    /// catalog (filter/README.md, "Catalog changes"): $0.75 / $3.75 (cache
    /// read $0.075) before the instant, $1.50 / $7.50 ($0.15) from it; no
    /// other default model has a change.
    #[test]
    fn gemini_3_8_flash_doubles_on_2027_01_01() {
        let models = default_models();
        let flash = models.iter().find(|m| m.id == "gemini-3.8-flash").unwrap();
        let at = Timestamp::parse("2027-01-01T00:00:00Z").unwrap().ms();
        assert_eq!(flash.price_changes.len(), 1);
        assert_eq!(
            flash.price_changes[0].from.to_string(),
            "2027-01-01T00:00:00Z"
        );
        let p = |ms| {
            let p = flash.prices_at(ms);
            (p.input_per_mtok, p.cached_input_per_mtok, p.output_per_mtok)
        };
        assert_eq!(p(0), (0.75, Some(0.075), 3.75));
        assert_eq!(p(at - 1), (0.75, Some(0.075), 3.75));
        assert_eq!(p(at), (1.50, Some(0.15), 7.50));
        assert_eq!(p(at + 86_400_000), (1.50, Some(0.15), 7.50));
        assert_eq!(flash.next_change_after(at - 1).map(Timestamp::ms), Some(at));
        assert_eq!(flash.next_change_after(at), None);
        assert_eq!(
            models
                .iter()
                .filter(|m| !m.price_changes.is_empty())
                .count(),
            1
        );
        // The wire form names the instant as RFC 3339.
        let json = serde_json::to_value(flash).unwrap();
        assert_eq!(
            json["price_changes"],
            serde_json::json!([{"from": "2027-01-01T00:00:00Z", "input_per_mtok": 1.5,
                "output_per_mtok": 7.5, "cached_input_per_mtok": 0.15}])
        );
    }

    /// The providers' announced shutdowns (filter/README.md, "Catalog
    /// changes"): gpt-4o and gpt-4o-mini on 2027-01-14, claude-opus-4-5 on
    /// 2027-01-22, each from the start of that day (UTC); no other model
    /// has a date.
    #[test]
    fn the_announced_shutdowns_are_scheduled() {
        let dated: Vec<(String, String)> = default_models()
            .into_iter()
            .filter_map(|m| Some((m.id, m.retires_at?.to_string())))
            .collect();
        let want = [
            ("gpt-4o-mini", "2027-01-14T00:00:00Z"),
            ("gpt-4o", "2027-01-14T00:00:00Z"),
            ("claude-opus-4-5", "2027-01-22T00:00:00Z"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(dated, want);
    }

    /// Folded at an instant, a model lists the prices in force then and
    /// only the changes still to come; the last passed change wins.
    #[test]
    fn passed_changes_fold_into_the_listed_prices() {
        let change = |from: u64, input: f64| PriceChange {
            from: Timestamp(from),
            input_per_mtok: input,
            output_per_mtok: input * 4.0,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        };
        let mut m = default_models().remove(0);
        m.cached_input_per_mtok = Some(0.01);
        m.price_changes = vec![change(100, 1.0), change(200, 2.0), change(300, 3.0)];
        let before = m.clone().folded_at(99);
        assert_eq!(before, m, "nothing passed: unchanged");
        let f = m.clone().folded_at(250);
        assert_eq!((f.input_per_mtok, f.output_per_mtok), (2.0, 8.0));
        assert_eq!(f.cached_input_per_mtok, None, "a change sets every price");
        assert_eq!(f.price_changes, vec![change(300, 3.0)]);
        assert_eq!(f.prices_at(250), m.prices_at(250));
        assert_eq!(f.prices_at(300), m.prices_at(300));
        let all = m.clone().folded_at(u64::MAX);
        assert_eq!((all.input_per_mtok, all.price_changes.len()), (3.0, 0));
    }

    /// A table or admin input written before the two body capabilities
    /// existed still parses, meaning "send the body as written"; the
    /// default catalog writes them only where they are set.
    #[test]
    fn the_body_capabilities_default_to_off() {
        let c: Capabilities = serde_json::from_str(r#"{"tools":true}"#).unwrap();
        assert!(!c.max_completion_tokens && !c.reasoning_effort_none);
        assert!(c.sampling_params && c.forced_tool_choice);
        let models = default_models();
        let luna = models.iter().find(|m| m.id == "gpt-6-luna").unwrap();
        assert!(luna.capabilities.max_completion_tokens && luna.capabilities.reasoning_effort_none);
        // In service from the instant the models it replaces retire (its
        // entry says why), not before.
        assert!(luna.enabled && luna.pending_at(JAN_14_2027 - 1) && !luna.pending_at(JAN_14_2027));
        assert!(!luna.in_service_at(JAN_14_2027 - 1) && luna.in_service_at(JAN_14_2027));
        let folded = luna.clone().folded_at(JAN_14_2027);
        assert_eq!(folded.enabled_from, None, "a passed instant is folded away");
        let json = serde_json::to_value(&models).unwrap();
        let with = |field: &str| {
            json.as_array()
                .unwrap()
                .iter()
                .filter(|m| m["capabilities"].get(field).is_some())
                .count()
        };
        assert_eq!(
            (with("max_completion_tokens"), with("reasoning_effort_none")),
            (1, 1)
        );
    }
}
