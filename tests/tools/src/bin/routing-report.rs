//! `make routing-report`: how well the default scorer sorts the calibration
//! set in `tests/fixtures/routing/*.jsonl` into the bands
//! (filter/README.md, "Model selection").
//!
//! Prints band accuracy, tier accuracy (cheap below 0.55, mid below 0.70,
//! frontier above) and under-routing (frontier-needed requests scored into
//! the cheap tier), separately for the tuning split and the held-out split.
//! The split is fixed by a hash of each item's id: ~30 % is held out and the
//! default weights must never be tuned by looking at it.
//!
//! `--verbose` lists every miss with its signals; `--split holdout` or
//! `--split tuning` limits the listing.

use std::collections::BTreeMap;
use std::fs;

use aipipe_core::request::ChatRequest;
use aipipe_core::score::{Scorer, ScoringConfig};
use aipipe_core::table::{RoutingTable, Table, Tenant, hex_hash};
use aipipe_core::words::{self, CategoryWeights};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tier {
    Cheap,
    Mid,
    Frontier,
}

fn band_range(band: &str) -> Option<(f64, f64, Tier)> {
    Some(match band {
        "trivial" => (0.05, 0.20, Tier::Cheap),
        "simple" => (0.20, 0.55, Tier::Cheap),
        "medium" => (0.55, 0.70, Tier::Mid),
        "complex" => (0.68, 0.90, Tier::Frontier),
        "frontier" => (0.80, 1.00, Tier::Frontier),
        _ => return None,
    })
}

fn tier_of(score: f64) -> Tier {
    if score < 0.55 {
        Tier::Cheap
    } else if score < 0.70 {
        Tier::Mid
    } else {
        Tier::Frontier
    }
}

/// Held out: a stable ~30 % of ids (FNV-1a), never used for tuning.
fn is_holdout(id: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 10 < 3
}

struct Item {
    id: String,
    band: String,
    file: String,
    score: aipipe_core::score::Score,
    model: String,
}

#[derive(Default)]
struct Tally {
    n: usize,
    band_ok: usize,
    tier_ok: usize,
    frontier_needed: usize,
    under: usize,
    over: usize,
    cheap_needed: usize,
}

impl Tally {
    fn add(&mut self, item: &Item) -> (bool, bool) {
        let Some((lo, hi, tier)) = band_range(&item.band) else {
            return (false, false);
        };
        let c = item.score.complexity;
        let band_ok = c >= lo - 1e-9 && c <= hi + 1e-9;
        let got = tier_of(c);
        self.n += 1;
        self.band_ok += usize::from(band_ok);
        self.tier_ok += usize::from(got == tier);
        if tier == Tier::Frontier {
            self.frontier_needed += 1;
            self.under += usize::from(got == Tier::Cheap);
        }
        if tier == Tier::Cheap {
            self.cheap_needed += 1;
            self.over += usize::from(got == Tier::Frontier);
        }
        (band_ok, got == tier)
    }

    fn line(&self, name: &str) -> String {
        let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        format!(
            "{name:<9} n={:<4} band_accuracy={:.3}  tier_accuracy={:.3}  under_routing={:.3} ({}/{})  over_routing={:.3} ({}/{})",
            self.n,
            pct(self.band_ok, self.n),
            pct(self.tier_ok, self.n),
            pct(self.under, self.frontier_needed),
            self.under,
            self.frontier_needed,
            pct(self.over, self.cheap_needed),
            self.over,
            self.cheap_needed,
        )
    }
}

/// The tunable numbers: a handful of category-level weights, never single
/// words, so tuning cannot memorise the calibration set.
const PARAMS: [&str; 20] = [
    "base",
    "formal",
    "complex",
    "task",
    "math",
    "easy",
    "max_hard",
    "max_easy",
    "length.weight",
    "code.present",
    "code.max",
    "structure.max",
    "depth.max",
    "history_factor",
    "pasted_factor",
    "structure.clause",
    "structure.question",
    "depth.tool",
    "depth.tool_result",
    "depth.turn",
];

fn config_from(p: &[f64]) -> ScoringConfig {
    let w = CategoryWeights {
        formal: p[1],
        complex: p[2],
        task: p[3],
        math: p[4],
        easy: p[5],
    };
    let mut c = ScoringConfig {
        base: p[0],
        ..ScoringConfig::default()
    };
    c.keywords.hard = words::hard(w);
    c.keywords.easy = words::easy(w);
    c.keywords.max_hard = p[6];
    c.keywords.max_easy = p[7];
    c.length.weight = p[8];
    c.code.present = p[9];
    c.code.max = p[10];
    c.structure.max = p[11];
    c.depth.max = p[12];
    c.keywords.history_factor = p[13];
    c.keywords.pasted_factor = p[14];
    c.structure.clause = p[15];
    c.structure.question = p[16];
    c.depth.tool = p[17];
    c.depth.tool_result = p[18];
    c.depth.turn = p[19];
    c
}

fn params_of(c: &ScoringConfig) -> Vec<f64> {
    let w = words::DEFAULT_WEIGHTS;
    vec![
        c.base,
        w.formal,
        w.complex,
        w.task,
        w.math,
        w.easy,
        c.keywords.max_hard,
        c.keywords.max_easy,
        c.length.weight,
        c.code.present,
        c.code.max,
        c.structure.max,
        c.depth.max,
        c.keywords.history_factor,
        c.keywords.pasted_factor,
        c.structure.clause,
        c.structure.question,
        c.depth.tool,
        c.depth.tool_result,
        c.depth.turn,
    ]
}

/// Coordinate descent on the tuning split only: maximise tier accuracy and
/// band accuracy, penalise under-routing hardest.
fn tune(reqs: &[(String, bool, String)]) {
    let objective = |p: &[f64]| -> f64 {
        let Ok(scorer) = Scorer::compile(&config_from(p)) else {
            return f64::NEG_INFINITY;
        };
        let mut t = Tally::default();
        for (body, held, band) in reqs {
            if *held {
                continue;
            }
            let Ok(req) = ChatRequest::parse(body.as_bytes()) else {
                continue;
            };
            let score = scorer.score(&req);
            t.add(&Item {
                id: String::new(),
                band: band.clone(),
                file: String::new(),
                score,
                model: String::new(),
            });
        }
        let r = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        r(t.tier_ok, t.n) + 0.5 * r(t.band_ok, t.n)
            - r(t.under, t.frontier_needed)
            - 0.5 * r(t.over, t.cheap_needed)
    };
    let mut p = params_of(&ScoringConfig::default());
    let mut best = objective(&p);
    println!("start objective {best:.4}");
    for round in 0..12 {
        let mut improved = false;
        for i in 0..p.len() {
            for step in [0.6, 0.8, 0.9, 1.1, 1.25, 1.5] {
                let mut q = p.clone();
                q[i] = (q[i] * step * 1000.0).round() / 1000.0;
                let v = objective(&q);
                if v > best + 1e-9 {
                    best = v;
                    p = q;
                    improved = true;
                }
            }
        }
        println!("round {round}: objective {best:.4}");
        if !improved {
            break;
        }
    }
    for (name, v) in PARAMS.iter().zip(&p) {
        println!("  {name:<16} {v}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let verbose = args.iter().any(|a| a == "--verbose");
    let only = args
        .iter()
        .position(|a| a == "--split")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = aipipe_tests::repo_root().join("tests/fixtures/routing");

    // The setting (filter/README.md, "Model selection"): default catalog,
    // OpenAI + Anthropic keys.
    let table = match Table::compile(RoutingTable {
        tenants: vec![Tenant {
            id: "report".into(),
            disabled: false,
            virtual_key_hashes: vec![hex_hash("report")],
            provider_keys: [("openai", "k"), ("anthropic", "k")]
                .map(|(p, k)| (p.to_owned(), k.to_owned()))
                .into(),
        }],
        ..RoutingTable::default()
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("routing-report: default table is invalid: {e}");
            std::process::exit(1);
        }
    };

    let mut files: Vec<_> = fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    let mut items = Vec::new();
    let mut raw_reqs = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).unwrap_or_default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let where_ = format!("{}:{}", path.display(), n + 1);
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                eprintln!("routing-report: {where_}: not JSON");
                std::process::exit(1);
            };
            let body = v["request"].to_string();
            let req = match ChatRequest::parse(body.as_bytes()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("routing-report: {where_}: {}", e.0);
                    std::process::exit(1);
                }
            };
            let score = table.scorer.score(&req);
            raw_reqs.push((
                body.clone(),
                is_holdout(v["id"].as_str().unwrap_or("?")),
                v["band"].as_str().unwrap_or("?").to_owned(),
            ));
            let explained = aipipe_core::route::explain(
                &table,
                &table.accounts()[0],
                body.as_bytes(),
            );
            let model = explained
                .ok()
                .and_then(|e| e.choice)
                .unwrap_or_else(|| "-".into());
            items.push(Item {
                id: v["id"].as_str().unwrap_or("?").to_owned(),
                band: v["band"].as_str().unwrap_or("?").to_owned(),
                file: path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                score,
                model,
            });
        }
    }

    if args.iter().any(|a| a == "--tune") {
        tune(&raw_reqs);
        return;
    }
    let (mut tuning, mut holdout, mut all) = (Tally::default(), Tally::default(), Tally::default());
    let mut by_band: BTreeMap<&str, (usize, usize, f64)> = BTreeMap::new();
    let mut misses = Vec::new();
    for item in &items {
        let held = is_holdout(&item.id);
        let (band_ok, tier_ok) = all.add(item);
        if held {
            holdout.add(item);
        } else {
            tuning.add(item);
        }
        let e = by_band.entry(item.band.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(tier_ok);
        e.2 += item.score.complexity;
        let split = if held { "holdout" } else { "tuning" };
        if !(band_ok && tier_ok) && only.as_deref().is_none_or(|o| o == split) {
            misses.push((item, split, tier_ok));
        }
    }

    println!(
        "routing report — {} labelled requests in {} files ({})",
        items.len(),
        files.len(),
        dir.display()
    );
    println!("selection setting: default catalog, OpenAI + Anthropic keys\n");
    println!("{}", tuning.line("tuning"));
    println!("{}", holdout.line("holdout"));
    println!("{}", all.line("all"));
    println!("\nper band (all):  band      n    tier_ok  mean_score");
    for band in ["trivial", "simple", "medium", "complex", "frontier"] {
        if let Some((n, ok, sum)) = by_band.get(band) {
            println!(
                "                 {band:<9} {n:<4} {:.3}    {:.3}",
                *ok as f64 / *n as f64,
                sum / *n as f64
            );
        }
    }
    let mut models: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for item in &items {
        *models
            .entry((item.band.as_str(), item.model.as_str()))
            .or_default() += 1;
    }
    println!("\nchosen model by band:");
    for ((band, model), n) in &models {
        println!("  {band:<9} {model:<20} {n}");
    }
    if verbose {
        println!("\nmisses (band or tier wrong):");
        for (item, split, tier_ok) in misses {
            let s = item.score;
            println!(
                "  {:<8} {:<22} {:<16} {:<9} score={:.3} tier={} len={:.3} code={:.3} kw={:+.3} struct={:.3} depth={:.3} tokens={}",
                split,
                item.id,
                item.file,
                item.band,
                s.complexity,
                if tier_ok { "ok " } else { "BAD" },
                s.length,
                s.code,
                s.keywords,
                s.structure,
                s.depth,
                s.input_tokens
            );
        }
    }
}
