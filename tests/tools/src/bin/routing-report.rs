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
//! `--dump FILE` writes the trained model's prediction for every row, one
//! tab-separated line each: id, group, split, band, category, predicted
//! tier, predicted category, complexity (per-stem analyses, e.g. against a
//! second labeller).
//!
//! Then, on the corpus's test split (tests/fixtures/routing/RUBRIC.md,
//! "Splits"), the old heuristic and the trained classifier
//! (`aipipe_core::classify`, weights from `filter/core/data/router-model.bin`
//! or `--model PATH`) side by side: tier and category accuracy, under- and
//! over-routing, the tier confusion matrix and the estimated saving against
//! sending everything to the frontier tier; then the same for the held-out
//! stems (split `holdout`, `holdout.jsonl`). The held-out stems are in no
//! other line: not in the heuristic's tuning or held-out ids, not in
//! `--tune`, not in `--verbose`'s misses.

use std::collections::BTreeMap;
use std::fs;

use aipipe_core::classify::{self, Category, Prediction, Tier as Tier3};
use aipipe_core::request::ChatRequest;
use aipipe_core::score::{Scorer, ScoringConfig};
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
    /// The stem a generated row comes from (its id for hand-written rows).
    group: String,
    /// The corpus split (`split` field, else a hash of the id).
    split: String,
    category: Option<Category>,
    prediction: Option<Prediction>,
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
                group: String::new(),
                split: String::new(),
                category: None,
                prediction: None,
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
    let model_path = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| aipipe_tests::repo_root().join("filter/core/data/router-model.bin"));
    let router = match fs::read(&model_path)
        .map_err(|e| e.to_string())
        .and_then(|b| classify::Model::decode(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!(
                "routing-report: {}: {e} (trained model left out)",
                model_path.display()
            );
            None
        }
    };

    // The setting (filter/README.md, "Model selection"): default catalog,
    // OpenAI + Anthropic keys; the saving below is priced on the same table.
    let pricing = match aipipe_tests::Pricing::openai_anthropic() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("routing-report: {e}");
            std::process::exit(1);
        }
    };
    let table = pricing.table();

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
            let split = split_of(&v);
            let held_out_stem = split == HOLDOUT_STEMS;
            if !held_out_stem {
                raw_reqs.push((
                    body.clone(),
                    is_holdout(v["id"].as_str().unwrap_or("?")),
                    v["band"].as_str().unwrap_or("?").to_owned(),
                ));
            }
            let explained =
                aipipe_core::route::explain(table, &table.accounts()[0], body.as_bytes());
            let model = explained
                .ok()
                .and_then(|e| e.choice)
                .unwrap_or_else(|| "-".into());
            let prediction = router.as_ref().map(|m| m.predict(&req, &score));
            items.push(Item {
                id: v["id"].as_str().unwrap_or("?").to_owned(),
                group: v["group"]
                    .as_str()
                    .or(v["id"].as_str())
                    .unwrap_or("?")
                    .to_owned(),
                split,
                category: v["category"].as_str().and_then(Category::from_name),
                prediction,
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
    if let Some(path) = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
    {
        dump(path, &items);
    }
    let (mut tuning, mut holdout, mut all) = (Tally::default(), Tally::default(), Tally::default());
    let mut by_band: BTreeMap<&str, (usize, usize, f64)> = BTreeMap::new();
    let mut misses = Vec::new();
    for item in items.iter().filter(|i| i.split != HOLDOUT_STEMS) {
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

    let held_out_stems = items.iter().filter(|i| i.split == HOLDOUT_STEMS).count();
    println!(
        "routing report — {} labelled requests in {} files ({}); the heuristic's lines below leave out the {held_out_stems} rows of held-out stems",
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
    for item in items.iter().filter(|i| i.split != HOLDOUT_STEMS) {
        *models
            .entry((item.band.as_str(), item.model.as_str()))
            .or_default() += 1;
    }
    println!("\nchosen model by band:");
    for ((band, model), n) in &models {
        println!("  {band:<9} {model:<20} {n}");
    }
    let version = router.as_ref().map(|m| m.version);
    side_by_side(&items, "test", "", &|_| true, version, &pricing);
    // Each round's stems on their own: the test stems of earlier rounds stay
    // comparable with earlier reports, and each round's held-out stems were
    // written after the earlier rounds' had been read (RUBRIC.md, "Splits").
    // Every round the corpus has; a round with no stems in a split prints
    // nothing there.
    let last_round = items.iter().map(|i| round_of(&i.group)).max().unwrap_or(2);
    for n in 2..=last_round {
        let name = if n == 2 {
            ", stems before round 3".to_owned()
        } else {
            format!(", round {n}'s stems")
        };
        side_by_side(
            &items,
            "test",
            &name,
            &|g| round_of(g) == n,
            version,
            &pricing,
        );
    }
    side_by_side(&items, HOLDOUT_STEMS, "", &|_| true, version, &pricing);
    for n in 2..=last_round {
        side_by_side(
            &items,
            HOLDOUT_STEMS,
            &format!(", round {n}"),
            &|g| round_of(g) == n,
            version,
            &pricing,
        );
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

/// The split of the held-out stems (RUBRIC.md, "Splits"): printed only in
/// its own section, after the test split.
const HOLDOUT_STEMS: &str = "holdout";

/// The round a stem was written in (`aipipe_tests::stem_round`), the
/// first round's counted with round 2's (every stem before round 3).
/// `--dump FILE`: the trained model's prediction for every row it scored.
fn dump(path: &str, items: &[Item]) {
    let mut out = String::new();
    for item in items {
        let Some(p) = &item.prediction else { continue };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.3}\n",
            item.id,
            item.group,
            item.split,
            item.band,
            item.category.map_or("?", |c| c.name()),
            p.tier.name(),
            p.category.name(),
            p.complexity,
        ));
    }
    if let Err(e) = fs::write(path, out) {
        eprintln!("routing-report: {path}: {e}");
        std::process::exit(1);
    }
}

fn round_of(group: &str) -> u8 {
    aipipe_tests::stem_round(group).unwrap_or(2).max(2)
}

/// The split of a row: its `split` field (the generator's, by a hash of the
/// stem), else 70/15/15 by a hash of its id (tests/fixtures/routing/RUBRIC.md).
fn split_of(v: &serde_json::Value) -> String {
    if let Some(s) = v["split"].as_str() {
        return s.to_owned();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v["id"].as_str().unwrap_or("").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let r = h % 100;
    (if r < 70 {
        "train"
    } else if r < 85 {
        "validation"
    } else {
        "test"
    })
    .to_owned()
}

/// Accuracy, routing errors, confusion and cost of one router on a set.
#[derive(Default)]
struct Side {
    n: usize,
    tier_ok: usize,
    cat_ok: usize,
    cat_n: usize,
    frontier: usize,
    under: usize,
    cheap: usize,
    over: usize,
    /// [wanted][got]
    confusion: [[usize; 3]; 3],
    cost: f64,
    frontier_cost: f64,
}

impl Side {
    /// One request routed to `got`, costing `cost` there and `frontier_cost`
    /// at the frontier-only baseline (USD, `aipipe_tests::Pricing`).
    fn add(
        &mut self,
        want: Tier3,
        got: Tier3,
        cat: Option<(Category, Category)>,
        (cost, frontier_cost): (f64, f64),
    ) {
        self.n += 1;
        self.tier_ok += usize::from(want == got);
        if let Some((w, g)) = cat {
            self.cat_n += 1;
            self.cat_ok += usize::from(w == g);
        }
        if want == Tier3::Frontier {
            self.frontier += 1;
            self.under += usize::from(got == Tier3::Cheap);
        }
        if want == Tier3::Cheap {
            self.cheap += 1;
            self.over += usize::from(got == Tier3::Frontier);
        }
        if let Some(c) = self
            .confusion
            .get_mut(want.index())
            .and_then(|row| row.get_mut(got.index()))
        {
            *c += 1;
        }
        self.cost += cost;
        self.frontier_cost += frontier_cost;
    }
}

/// The heuristic and the model side by side on one corpus split (`test`, or
/// the held-out stems), or on the part of it whose stems `groups` keeps.
fn side_by_side(
    items: &[Item],
    split: &str,
    part: &str,
    groups: &dyn Fn(&str) -> bool,
    version: Option<u32>,
    pricing: &aipipe_tests::Pricing,
) {
    let test: Vec<&Item> = items
        .iter()
        .filter(|i| i.split == split && groups(&i.group))
        .collect();
    if test.is_empty() {
        return;
    }
    let stems = test
        .iter()
        .map(|i| i.group.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let (mut old, mut new, mut perfect) = (Side::default(), Side::default(), Side::default());
    // Each request priced at what routing picks for the complexity it was
    // routed with; "every tier right" as a router certain of the right tier
    // (`complexity_of` of a one-hot: the cheap band's floor, the mid band's
    // middle, 1.0).
    for item in &test {
        let Some(want) = Tier3::of_band(&item.band) else {
            continue;
        };
        let tokens = item.score.input_tokens;
        let at = |c: f64, cat: Option<Category>| {
            (
                pricing.cost(tokens, c, cat),
                pricing.cost(tokens, 1.0, None),
            )
        };
        let certain = {
            let mut p = [0.0; 3];
            if let Some(x) = p.get_mut(want.index()) {
                *x = 1.0;
            }
            classify::complexity_of(want, &p)
        };
        perfect.add(want, want, None, at(certain, None));
        old.add(
            want,
            Tier3::of_complexity(item.score.complexity),
            None,
            at(item.score.complexity, None),
        );
        if let Some(p) = item.prediction {
            new.add(
                want,
                p.tier,
                item.category.map(|c| (c, p.category)),
                at(p.complexity, Some(p.category)),
            );
        }
    }
    let r = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    println!(
        "\n{split} split{part} ({} rows, {stems} stems; RUBRIC.md, \"Splits\"): old heuristic vs trained model{}",
        test.len(),
        version.map_or(" (no model)".to_owned(), |v| format!(" (version {v:08x})"))
    );
    println!("                          heuristic          trained");
    let row = |name: &str, a: String, b: String| println!("  {name:<22}  {a:<17}  {b}");
    row(
        "tier accuracy",
        format!("{:.3}", r(old.tier_ok, old.n)),
        format!("{:.3}", r(new.tier_ok, new.n)),
    );
    row(
        "category accuracy",
        "n/a".into(),
        format!("{:.3}", r(new.cat_ok, new.cat_n)),
    );
    row(
        "under-routing",
        format!(
            "{:.3} ({}/{})",
            r(old.under, old.frontier),
            old.under,
            old.frontier
        ),
        format!(
            "{:.3} ({}/{})",
            r(new.under, new.frontier),
            new.under,
            new.frontier
        ),
    );
    row(
        "over-routing",
        format!("{:.3} ({}/{})", r(old.over, old.cheap), old.over, old.cheap),
        format!("{:.3} ({}/{})", r(new.over, new.cheap), new.over, new.cheap),
    );
    let saving = |s: &Side| {
        if s.frontier_cost > 0.0 {
            1.0 - s.cost / s.frontier_cost
        } else {
            0.0
        }
    };
    row(
        "saving vs frontier-only",
        format!("{:.3}", saving(&old)),
        format!("{:.3}", saving(&new)),
    );
    println!(
        "  (every tier right would save {:.3}: the ceiling of the line above)",
        saving(&perfect)
    );
    println!("  tier confusion (rows: wanted, columns: got cheap/mid/frontier)");
    for (i, name) in ["cheap", "mid", "frontier"].iter().enumerate() {
        let fmt = |s: &Side| {
            s.confusion
                .get(i)
                .map(|r| format!("{:>4} {:>4} {:>4}", r[0], r[1], r[2]))
                .unwrap_or_default()
        };
        row(&format!("  {name}"), fmt(&old), fmt(&new));
    }
    let mut by_cat: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    for item in &test {
        let (Some(c), Some(p), Some(want)) =
            (item.category, item.prediction, Tier3::of_band(&item.band))
        else {
            continue;
        };
        let e = by_cat.entry(c.name()).or_default();
        e.0 += 1;
        e.1 += usize::from(p.category == c);
        e.2 += usize::from(Tier3::of_complexity(item.score.complexity) == want);
        e.3 += usize::from(p.tier == want);
    }
    println!("  per category            n     category_ok  tier_ok heuristic / trained");
    for (name, (n, cat_ok, old_ok, new_ok)) in by_cat {
        println!(
            "    {name:<20}  {n:<4}  {:.3}        {:.3} / {:.3}",
            r(cat_ok, n),
            r(old_ok, n),
            r(new_ok, n)
        );
    }
}
