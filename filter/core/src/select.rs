//! Model selection (filter/README.md, "Model selection").
//!
//! Candidates are enabled models whose provider the tenant has a key for,
//! whose context window holds the prompt plus the answer budget, and that
//! support what the request uses. Each gets
//!
//! ```text
//! adjusted_cost = raw_cost / quality ^ (6 · max(0, complexity − 0.25)) · (1 + penalty)
//! ```
//!
//! The lowest adjusted cost wins; ties go to the lower observed latency. The
//! whole ranking is returned: the explain API shows it and failover walks it.

use serde::Serialize;

use crate::table::{Account, Capabilities, ModelIx, Table};

/// What the request needs from a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub input_tokens: u64,
    /// The client's `max_tokens` / `max_completion_tokens`, if any.
    pub max_tokens: Option<u64>,
    pub capabilities: Capabilities,
    /// The request forces a tool call: only models that accept a forced
    /// tool choice are candidates (`Capabilities::forced_tool_choice`).
    pub forced_tool: bool,
    /// The conversation ends with an assistant message (a prefill): only
    /// models that continue one are candidates
    /// (`Capabilities::assistant_prefill`).
    pub prefill: bool,
    /// The request has tools and sets a `reasoning_effort` other than
    /// `"none"`: models that take tools only without reasoning
    /// (`Capabilities::reasoning_effort_none`) are not candidates.
    pub reasoning_with_tools: bool,
    /// The task category the router model predicted: models are ranked by
    /// their quality for it (`Table::quality`).
    pub category: Option<crate::classify::Category>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    pub model: ModelIx,
    /// Expected dollars for this request on this model.
    pub raw_cost: f64,
    pub adjusted_cost: f64,
}

/// Why no model could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCandidate {
    /// The tenant has no key for any provider with an enabled model.
    NoKeys,
    /// Models with keys exist, but none fits the context.
    ContextTooLong { needed: u64, largest: u64 },
    /// None supports what the request uses (names the missing capabilities).
    Unsupported(Vec<&'static str>),
    /// The tenant's policy allows none of the models it has keys for.
    NotAllowed,
}

/// A shape of request that some models' providers answer 400 to: such a
/// model is never a candidate for it, and naming one is the gateway's own
/// 400 (`plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A forced tool choice (`Capabilities::forced_tool_choice`).
    ForcedTool,
    /// A final assistant message (`Capabilities::assistant_prefill`).
    Prefill,
    /// Tools with a reasoning effort other than none
    /// (`Capabilities::reasoning_effort_none`, unless the model also takes
    /// them over the Responses API: `Capabilities::responses_api`).
    ReasoningWithTools,
}

impl Needs {
    fn fits(&self, c: Capabilities) -> bool {
        (!self.capabilities.tools || c.tools)
            && (!self.capabilities.vision || c.vision)
            && (!self.capabilities.json_schema || c.json_schema)
            && self.refused_by(c).is_none()
    }

    /// The first shape of this request that a model with `c` refuses.
    pub fn refused_by(&self, c: Capabilities) -> Option<Refused> {
        if self.forced_tool && !c.forced_tool_choice {
            Some(Refused::ForcedTool)
        } else if self.prefill && !c.assistant_prefill {
            Some(Refused::Prefill)
        } else if self.reasoning_with_tools && c.reasoning_effort_none && !c.responses_api {
            Some(Refused::ReasoningWithTools)
        } else {
            None
        }
    }

    fn missing(&self) -> Vec<&'static str> {
        let c = self.capabilities;
        [
            (c.tools, "tools"),
            (c.vision, "images"),
            (c.json_schema, "json_schema output"),
            (self.forced_tool, "a forced tool choice"),
            (self.prefill, "a final assistant message (a prefill)"),
            (
                self.reasoning_with_tools,
                "tools with a reasoning effort other than none",
            ),
        ]
        .into_iter()
        .filter_map(|(used, name)| used.then_some(name))
        .collect()
    }
}

/// Expected dollars for a request: prompt tokens at the input price plus the
/// expected answer (the client's budget, capped by the table's expectation),
/// at the model's long-context rates for a prompt past their threshold.
pub fn raw_cost(table: &Table, model: ModelIx, needs: &Needs) -> f64 {
    let Some(m) = table.model(model) else {
        return f64::INFINITY;
    };
    let expected = table.selection.expected_output_tokens;
    let output = needs.max_tokens.map_or(expected, |mt| mt.min(expected));
    let p = m.rates(needs.input_tokens);
    (needs.input_tokens as f64 * p.input_per_mtok + output as f64 * p.output_per_mtok) / 1e6
}

/// The discount better models earn at a given complexity.
pub fn quality_divisor(table: &Table, quality: f64, complexity: f64) -> f64 {
    let s = &table.selection;
    quality.powf(s.quality_exponent * (complexity - s.complexity_knee).max(0.0))
}

/// The quality a model is ranked with for a request of `category`, most
/// specific first: the tenant policy's figure for that category, the
/// policy's general figure, the table's figure for that category, the
/// table's general figure.
pub fn quality(
    table: &Table,
    policy: Option<&crate::policy::Compiled>,
    model: ModelIx,
    category: Option<crate::classify::Category>,
) -> f64 {
    policy
        .and_then(|p| p.quality_for(model, category))
        .unwrap_or_else(|| table.quality(model, category))
}

/// Every candidate for this tenant and request, best first.
pub fn rank(
    table: &Table,
    tenant: &Account,
    needs: &Needs,
    complexity: f64,
) -> Result<Vec<Candidate>, NoCandidate> {
    rank_with(table, tenant, needs, complexity, None)
}

/// [`rank`] with this Envoy's own penalties per model index (`local`): each
/// model is slowed by the worse of the local and the table's penalty.
pub fn rank_with(
    table: &Table,
    tenant: &Account,
    needs: &Needs,
    complexity: f64,
    local: Option<&[f64]>,
) -> Result<Vec<Candidate>, NoCandidate> {
    let mut out = Vec::with_capacity(table.models.len());
    let (mut keyed, mut allowed, mut fitting, mut largest) = (false, false, false, 0u64);
    #[cfg(test)]
    crate::counters::RANKS.with(|n| n.set(n.get() + 1));
    for (i, m) in table.models_ix() {
        let Some(p) = table.provider_of(i) else {
            continue;
        };
        if !m.enabled || tenant.provider_key(p).is_none() {
            continue;
        }
        keyed = true;
        if !tenant.allows(i) {
            continue;
        }
        allowed = true;
        let answer = needs.max_tokens.unwrap_or(0);
        largest = largest.max(m.context_window);
        if needs.input_tokens.saturating_add(answer) > m.context_window {
            continue;
        }
        fitting = true;
        if !needs.fits(m.capabilities) {
            continue;
        }
        let raw = raw_cost(table, i, needs);
        let penalty = match local.and_then(|l| l.get(i.0)) {
            Some(&l) => crate::penalty::effective(l, m.penalty),
            None => m.penalty,
        };
        let quality = quality(table, tenant.policy.as_deref(), i, needs.category);
        let adjusted = raw / quality_divisor(table, quality, complexity) * (1.0 + penalty);
        out.push(Candidate {
            model: i,
            raw_cost: raw,
            adjusted_cost: adjusted,
        });
    }
    if out.is_empty() {
        return Err(if !keyed {
            NoCandidate::NoKeys
        } else if !allowed {
            NoCandidate::NotAllowed
        } else if !fitting {
            NoCandidate::ContextTooLong {
                needed: needs
                    .input_tokens
                    .saturating_add(needs.max_tokens.unwrap_or(0)),
                largest,
            }
        } else {
            NoCandidate::Unsupported(needs.missing())
        });
    }
    let latency = |c: &Candidate| {
        table
            .model(c.model)
            .and_then(|m| m.latency_ms)
            .unwrap_or(f64::INFINITY)
    };
    out.sort_by(|a, b| {
        let tie = (a.adjusted_cost - b.adjusted_cost).abs()
            <= 1e-9 * a.adjusted_cost.max(b.adjusted_cost);
        if tie {
            latency(a)
                .total_cmp(&latency(b))
                .then(a.model.cmp(&b.model))
        } else {
            a.adjusted_cost.total_cmp(&b.adjusted_cost)
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{RoutingTable, Tenant};

    /// Short and long prompts, with and without a max_tokens budget: the
    /// shapes the selection-table tests check each complexity at.
    const PROMPT_SHAPES: [(u64, Option<u64>); 5] = [
        (30, None),
        (500, None),
        (500, Some(100)),
        (4000, Some(2000)),
        (20_000, None),
    ];

    /// The default catalog, one tenant with a key for each of `providers`.
    fn raw_with_keys(providers: &[&str]) -> RoutingTable {
        RoutingTable {
            tenants: vec![Tenant {
                provider_keys: providers
                    .iter()
                    .map(|p| ((*p).to_owned(), format!("sk-{p}")))
                    .collect(),
                ..Tenant::with_keys("t", "vk", &[])
            }],
            ..RoutingTable::default()
        }
    }

    fn table_with_keys(providers: &[&str]) -> Table {
        Table::compile(raw_with_keys(providers)).unwrap()
    }

    fn choice(t: &Table, needs: &Needs, c: f64) -> String {
        let best = rank(t, &t.accounts()[0], needs, c).unwrap()[0];
        t.models[best.model.0].id.clone()
    }

    /// Model selection (filter/README.md): the default catalog with OpenAI +
    /// Anthropic keys. Claude Sonnet 5.5 takes every band above the cheap
    /// one. A request that forces a tool, which Claude 5.x refuses, ranks
    /// only gpt-4o-mini, gpt-4o and claude-opus-4-5 (claude-sonnet-4-5 was
    /// retired, claude-haiku-4-5 ships disabled): gpt-4o-mini keeps it up to
    /// about 0.73–0.75 (by prompt length), Opus 4.5 takes it above
    /// (`forced`), and gpt-4o never wins.
    #[test]
    fn table_spec_6() {
        let t = table_with_keys(&["openai", "anthropic"]);
        // (complexity, any request, a request forcing a tool)
        let expected: [(f64, &[&str], &[&str]); 10] = [
            (0.10, &["gpt-4o-mini"], &["gpt-4o-mini"]),
            (0.30, &["gpt-4o-mini"], &["gpt-4o-mini"]),
            (0.50, &["gpt-4o-mini"], &["gpt-4o-mini"]),
            (0.62, &["gpt-4o-mini"], &["gpt-4o-mini"]),
            (
                0.65,
                &["gpt-4o-mini", "claude-sonnet-5-5"],
                &["gpt-4o-mini"],
            ),
            (0.68, &["claude-sonnet-5-5"], &["gpt-4o-mini"]),
            (0.72, &["claude-sonnet-5-5"], &["gpt-4o-mini"]),
            (0.78, &["claude-sonnet-5-5"], &["claude-opus-4-5"]),
            (0.85, &["claude-sonnet-5-5"], &["claude-opus-4-5"]),
            (0.95, &["claude-sonnet-5-5"], &["claude-opus-4-5"]),
        ];
        for (input_tokens, max_tokens) in PROMPT_SHAPES {
            let needs = Needs {
                input_tokens,
                max_tokens,
                ..Needs::default()
            };
            let forced = Needs {
                forced_tool: true,
                ..needs
            };
            for (c, allowed, allowed_forced) in expected {
                let got = choice(&t, &needs, c);
                assert!(
                    allowed.contains(&got.as_str()),
                    "c={c} in={input_tokens} max={max_tokens:?}: {got}"
                );
                let got = choice(&t, &forced, c);
                assert!(
                    allowed_forced.contains(&got.as_str()),
                    "forced: c={c} in={input_tokens} max={max_tokens:?}: {got}"
                );
            }
        }
    }

    /// What enabling claude-haiku-5-5 would do (it ships disabled,
    /// `catalog`): with OpenAI + Anthropic keys it takes every band of every
    /// prompt shape from gpt-4o-mini and claude-sonnet-5-5 (at its stand-in
    /// GPQA figure and a twentieth of Sonnet's price), but no request that
    /// forces a tool, which it is not known to take; past its long-context
    /// threshold (100,000 tokens, every rate 5×) the cheap band goes back to
    /// gpt-4o-mini.
    #[test]
    fn claude_haiku_5_5_enabled_takes_every_band_it_can_serve() {
        let mut raw = raw_with_keys(&["openai", "anthropic"]);
        for m in raw.models.iter_mut().filter(|m| m.id == "claude-haiku-5-5") {
            m.enabled = true;
        }
        let t = Table::compile(raw).unwrap();
        for (input_tokens, max_tokens) in PROMPT_SHAPES {
            for c in [0.1, 0.3, 0.5, 0.62, 0.65, 0.68, 0.72, 0.78, 0.85, 0.95] {
                let needs = Needs {
                    input_tokens,
                    max_tokens,
                    ..Needs::default()
                };
                assert_eq!(
                    choice(&t, &needs, c),
                    "claude-haiku-5-5",
                    "c={c} in={input_tokens}"
                );
                let forced = Needs {
                    forced_tool: true,
                    ..needs
                };
                assert_ne!(choice(&t, &forced, c), "claude-haiku-5-5", "forced c={c}");
            }
        }
        let long = Needs {
            input_tokens: 100_001,
            max_tokens: None,
            ..Needs::default()
        };
        assert_eq!(choice(&t, &long, 0.3), "gpt-4o-mini");
    }

    /// A model whose long-context rates are twenty times its listed ones
    /// keeps the cheap band for a prompt at its threshold and loses it one
    /// token past (filter/README.md, "Long-context prices").
    #[test]
    fn selection_ranks_a_long_prompt_at_the_long_context_rates() {
        let mut raw = raw_with_keys(&["openai", "anthropic"]);
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-4o-mini") {
            m.long_context = Some(crate::catalog::LongContext {
                above_tokens: 50_000,
                input_multiplier: 20.0,
                output_multiplier: 20.0,
            });
        }
        let t = Table::compile(raw).unwrap();
        let needs = |input_tokens| Needs {
            input_tokens,
            max_tokens: None,
            ..Needs::default()
        };
        assert_eq!(choice(&t, &needs(50_000), 0.3), "gpt-4o-mini");
        assert_ne!(choice(&t, &needs(50_001), 0.3), "gpt-4o-mini");
    }

    /// Selection ranks with the prices in force at the table's instant
    /// (filter/README.md, "Scheduled price changes"): gpt-4o-mini takes the
    /// cheap band until its scheduled change to twenty times its price
    /// comes into force, and loses it from that instant.
    #[test]
    fn selection_ranks_with_the_prices_in_force() {
        use crate::catalog::{PriceChange, Timestamp};
        const T: u64 = 1_798_761_600_000;
        let mut raw = raw_with_keys(&["openai", "anthropic"]);
        for m in raw.models.iter_mut().filter(|m| m.id == "gpt-4o-mini") {
            m.price_changes = vec![PriceChange {
                from: Timestamp(T),
                input_per_mtok: 3.0,
                output_per_mtok: 12.0,
                cached_input_per_mtok: None,
                cache_write_per_mtok: None,
            }];
        }
        let t = Table::compile(raw).unwrap();
        let needs = Needs {
            input_tokens: 200,
            max_tokens: None,
            ..Needs::default()
        };
        assert_eq!(choice(&t.priced_at(T - 1), &needs, 0.3), "gpt-4o-mini");
        let after = choice(&t.priced_at(T), &needs, 0.3);
        assert_ne!(after, "gpt-4o-mini");
        assert_eq!(choice(&t.priced_at(T + 3_600_000), &needs, 0.3), after);
    }

    /// What the default catalog routes once its scheduled retirements pass
    /// (filter/README.md, "Catalog changes"). At 2027-01-14 gpt-4o and
    /// gpt-4o-mini retire and gpt-6-luna, OpenAI's named replacement,
    /// enters service (`enabled_from`). With OpenAI + Anthropic keys it
    /// takes every band, forced tool or not: at GPT-4.1's GPQA figure (its
    /// stand-in) and a twentieth of Claude Sonnet 5.5's price, the quality
    /// discount (at most 1.44^4.5 ≈ 5.2× at complexity 1) never earns
    /// Sonnet back its price, nor either Opus. It still does from
    /// 2027-01-22 (claude-opus-4-5 retired), so a forced tool keeps a model.
    /// An OpenAI-only tenant goes from gpt-4o-mini to it at the instant,
    /// never without a model. With keys for all seven providers it takes
    /// only long prompts of medium complexity.
    #[test]
    fn after_each_retirement_the_catalog_routes_to_what_is_left() {
        let at = |s: &str| crate::timestamp::Timestamp::parse(s).unwrap().ms();
        let (jan_14, jan_22) = (at("2027-01-14T00:00:00Z"), at("2027-01-22T00:00:00Z"));
        let t = table_with_keys(&["openai", "anthropic"]);
        let bands = [
            0.10, 0.30, 0.50, 0.62, 0.65, 0.68, 0.72, 0.78, 0.85, 0.95, 1.0,
        ];
        for (input_tokens, max_tokens) in PROMPT_SHAPES {
            let needs = Needs {
                input_tokens,
                max_tokens,
                ..Needs::default()
            };
            let forced = Needs {
                forced_tool: true,
                ..needs
            };
            let before = t.priced_at(jan_14 - 1);
            assert_eq!(choice(&before, &needs, 0.10), "gpt-4o-mini");
            for c in bands {
                let shape = format!("c={c} in={input_tokens} max={max_tokens:?}");
                assert_ne!(choice(&before, &needs, c), "gpt-6-luna", "{shape}");
                for after in [t.priced_at(jan_14), t.priced_at(jan_22)] {
                    assert_eq!(choice(&after, &needs, c), "gpt-6-luna", "{shape}");
                    assert_eq!(choice(&after, &forced, c), "gpt-6-luna", "forced, {shape}");
                }
            }
        }

        let openai = table_with_keys(&["openai"]);
        let needs = Needs {
            input_tokens: 30,
            ..Needs::default()
        };
        for c in [0.1, 0.5, 0.9] {
            assert_eq!(
                choice(&openai.priced_at(jan_14 - 1), &needs, c),
                "gpt-4o-mini"
            );
            assert_eq!(choice(&openai.priced_at(jan_14), &needs, c), "gpt-6-luna");
        }

        let providers: Vec<String> = crate::catalog::default_providers()
            .into_iter()
            .map(|p| p.id)
            .collect();
        let providers: Vec<&str> = providers.iter().map(String::as_str).collect();
        let all = table_with_keys(&providers);
        let all = all.priced_at(jan_14);
        let at = |input_tokens, c| {
            choice(
                &all,
                &Needs {
                    input_tokens,
                    ..Needs::default()
                },
                c,
            )
        };
        // All seven: long (20K-token) prompts of medium complexity, where
        // its $0.10 input beats deepseek-v3.2's $0.28; nothing else.
        for c in [0.10, 0.30, 0.50, 0.62, 0.68, 0.72, 0.85, 0.95] {
            for tokens in [30, 500, 4000, 20_000] {
                let luna = tokens == 20_000 && (0.5..=0.68).contains(&c);
                assert_eq!(
                    at(tokens, c) == "gpt-6-luna",
                    luna,
                    "all providers: c={c} in={tokens}: {}",
                    at(tokens, c)
                );
            }
        }
    }

    /// A model's quality for the request's task category ranks it: a small
    /// model as good as the frontier at one category takes that category's
    /// hard requests, and only those.
    #[test]
    fn the_predicted_category_ranks_by_that_categorys_quality() {
        let mut t = table_with_keys(&["openai", "anthropic"]);
        let sonnet = t
            .models
            .iter()
            .find(|m| m.id == "claude-sonnet-5-5")
            .unwrap()
            .quality;
        let mut raw = RoutingTable {
            models: t.models.clone(),
            providers: t.providers.clone(),
            tenants: vec![Tenant::with_keys(
                "t",
                "vk",
                &[("openai", "sk-o"), ("anthropic", "sk-a")],
            )],
            ..RoutingTable::default()
        };
        let mini = raw
            .models
            .iter_mut()
            .find(|m| m.id == "gpt-4o-mini")
            .unwrap();
        mini.category_quality.insert("coding".into(), sonnet);
        t = Table::compile(raw).unwrap();
        let at = |category| {
            let needs = Needs {
                input_tokens: 500,
                category,
                ..Needs::default()
            };
            choice(&t, &needs, 0.85)
        };
        assert_eq!(at(Some(crate::classify::Category::Coding)), "gpt-4o-mini");
        assert_ne!(at(Some(crate::classify::Category::Chat)), "gpt-4o-mini");
        assert_ne!(at(None), "gpt-4o-mini");
    }

    /// Quality precedence: the tenant's figure for the category, the
    /// tenant's general figure, the table's figure for the category, the
    /// table's general figure — and it moves the choice.
    #[test]
    fn a_tenants_category_quality_wins_and_ranks() {
        use crate::classify::Category;
        let t = table_with_keys(&["openai", "anthropic"]);
        let ix = |m: &str| t.resolve_model(m).unwrap();
        let (mini, opus) = (ix("gpt-4o-mini"), ix("claude-opus-4-5"));
        let p: crate::policy::Policy = serde_json::from_str(
            r#"{"quality": {"gpt-4o-mini": 0.5},
                "category_quality": {"gpt-4o-mini": {"coding": 1.0},
                                     "claude-opus-4-5": {"coding": 0.05}}}"#,
        )
        .unwrap();
        crate::policy::validate(&p, &t).unwrap();
        let c = crate::policy::Compiled::compile(&p, &t);
        let coding = Some(Category::Coding);
        assert_eq!(quality(&t, Some(&c), mini, coding), 1.0);
        assert_eq!(quality(&t, Some(&c), mini, Some(Category::Chat)), 0.5);
        assert_eq!(quality(&t, Some(&c), mini, None), 0.5);
        let table_coding = t.quality(opus, coding);
        assert_ne!(table_coding, t.quality(opus, None));
        assert_eq!(quality(&t, None, opus, coding), table_coding);
        assert_eq!(
            quality(&t, Some(&c), opus, Some(Category::Chat)),
            t.quality(opus, Some(Category::Chat))
        );
        assert_eq!(quality(&t, None, opus, None), t.quality(opus, None));

        // Hard coding requests go to the model the tenant rates best at
        // coding; its other hard requests are ranked as before.
        let p: crate::policy::Policy =
            serde_json::from_str(r#"{"category_quality": {"gpt-4o-mini": {"coding": 1.0}}}"#)
                .unwrap();
        let c = crate::policy::Compiled::compile(&p, &t);
        let tenant = Account::clone(&t.accounts()[0]).with_policy(Some(std::sync::Arc::new(c)));
        let needs = |category| Needs {
            input_tokens: 500,
            category,
            ..Needs::default()
        };
        let best = |category| {
            let top = rank(&t, &tenant, &needs(category), 0.85).unwrap()[0];
            t.models[top.model.0].id.clone()
        };
        assert_eq!(best(coding), "gpt-4o-mini");
        assert_eq!(choice(&t, &needs(coding), 0.85), "claude-sonnet-5-5");
        let math = Some(Category::MathReasoning);
        assert_eq!(best(math), choice(&t, &needs(math), 0.85));
        assert_ne!(best(math), "gpt-4o-mini");
    }

    #[test]
    fn category_quality_is_validated() {
        let mut raw = RoutingTable {
            models: crate::catalog::default_models(),
            providers: crate::catalog::default_providers(),
            ..RoutingTable::default()
        };
        raw.models[0].category_quality.insert("poetry".into(), 0.5);
        let e = Table::compile(raw.clone()).unwrap_err().0;
        assert!(
            e.contains("category_quality.poetry: unknown category"),
            "{e}"
        );
        raw.models[0].category_quality.clear();
        raw.models[0].category_quality.insert("coding".into(), 1.5);
        let e = Table::compile(raw).unwrap_err().0;
        assert!(
            e.contains("category_quality.coding: must be in (0, 1]"),
            "{e}"
        );
    }

    #[test]
    fn only_keyed_fitting_capable_models_are_candidates() {
        let t = table_with_keys(&["openai"]);
        let needs = Needs {
            input_tokens: 100,
            ..Needs::default()
        };
        for c in rank(&t, &t.accounts()[0], &needs, 0.9).unwrap() {
            assert_eq!(t.models[c.model.0].provider, "openai");
        }
        let huge = Needs {
            input_tokens: 500_000,
            ..Needs::default()
        };
        assert_eq!(
            rank(&t, &t.accounts()[0], &huge, 0.5),
            Err(NoCandidate::ContextTooLong {
                needed: 500_000,
                largest: 128_000
            })
        );
        let t = table_with_keys(&["moonshot"]);
        let vision = Needs {
            input_tokens: 10,
            capabilities: Capabilities {
                vision: true,
                ..Capabilities::default()
            },
            ..Needs::default()
        };
        assert_eq!(
            rank(&t, &t.accounts()[0], &vision, 0.5),
            Err(NoCandidate::Unsupported(vec!["images"]))
        );
        let none = table_with_keys(&[]);
        assert_eq!(
            rank(&none, &none.accounts()[0], &needs, 0.5),
            Err(NoCandidate::NoKeys)
        );
    }

    #[test]
    fn a_huge_max_tokens_is_too_long_not_an_overflow() {
        let t = table_with_keys(&["openai"]);
        let needs = Needs {
            input_tokens: 10,
            max_tokens: Some(u64::MAX),
            ..Needs::default()
        };
        assert_eq!(
            rank(&t, &t.accounts()[0], &needs, 0.5),
            Err(NoCandidate::ContextTooLong {
                needed: u64::MAX,
                largest: 128_000
            })
        );
    }

    #[test]
    fn penalty_moves_traffic_and_ties_go_to_lower_latency() {
        let mut raw = RoutingTable::default();
        raw.tenants.push(Tenant {
            id: "t".into(),
            disabled: false,
            pass_through: true,
            virtual_key_hashes: vec![],
            provider_keys: [("openai".to_owned(), "k".to_owned())].into(),
            limits: Default::default(),
            policy: Default::default(),
        });
        let needs = Needs {
            input_tokens: 100,
            ..Needs::default()
        };
        let mini = raw
            .models
            .iter()
            .position(|m| m.id == "gpt-4o-mini")
            .unwrap();
        raw.models[mini].penalty = 100.0;
        let t = Table::compile(raw.clone()).unwrap();
        assert_eq!(choice(&t, &needs, 0.1), "gpt-4o");

        // Two identical models: the faster one wins.
        raw.models[mini].penalty = 0.0;
        let mut twin = raw.models[mini].clone();
        twin.id = "gpt-4o-mini-twin".into();
        twin.latency_ms = Some(100.0);
        raw.models[mini].latency_ms = Some(300.0);
        raw.models.push(twin);
        let t = Table::compile(raw).unwrap();
        assert_eq!(choice(&t, &needs, 0.1), "gpt-4o-mini-twin");
    }
}
