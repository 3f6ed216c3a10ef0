#!/usr/bin/env python3
"""LiteLLM's complexity router on aipipe's labelled corpus: the peer's routing beside
aipipe's trained model on the same rows (tests/README.md, "Peers").

LiteLLM's proxy can route `auto_router/complexity_router`: a rule-based scorer over seven
dimensions into four tiers (SIMPLE, MEDIUM, COMPLEX, REASONING). This runs that scorer, as
the installed package has it and with its default configuration, on every row of the test
split and of the held-out stems (tests/fixtures/routing, RUBRIC.md "Splits"), with the ask
and system prompt LiteLLM itself extracts from the messages, and reads the tiers against the
rows' labels (trivial/simple cheap, medium mid, complex/frontier frontier). Its four tiers
map onto three two ways: COMPLEX as frontier (its README pairs COMPLEX with a Claude Sonnet)
or as mid; both are printed. `make routing-report` prints aipipe's numbers on the same
rows. Run with the peers' Python (make peers):

    .peers/venv/bin/python tests/peers/litellm_complexity.py
"""
import glob
import json
import os
import sys
from collections import Counter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm import Router  # noqa: E402
from litellm.router_strategy.complexity_router import complexity_router as cr  # noqa: E402

LABEL_TIER = {"trivial": 0, "simple": 0, "medium": 1, "complex": 2, "frontier": 2}
TIERS = ("cheap", "mid", "frontier")
MAPPINGS = {
    "COMPLEX as frontier": {"SIMPLE": 0, "NON_REASONING": 0, "MEDIUM": 1, "COMPLEX": 2, "REASONING": 2},
    "COMPLEX as mid": {"SIMPLE": 0, "NON_REASONING": 0, "MEDIUM": 1, "COMPLEX": 1, "REASONING": 2},
}


def router():
    names = ["simple", "medium", "complex", "reasoning"]
    deployments = [{"model_name": n, "litellm_params": {"model": f"openai/{n}", "api_key": "unused"}} for n in names]
    tiers = {"SIMPLE": "simple", "MEDIUM": "medium", "COMPLEX": "complex", "REASONING": "reasoning"}
    return cr.ComplexityRouter("auto", Router(model_list=deployments), {"tiers": tiers})


def rows(root):
    for path in sorted(glob.glob(os.path.join(root, "tests/fixtures/routing/*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("split") in ("test", "holdout"):
                    yield row


def language(row):
    """The language a stem was written in, from its group (`[<round>-]<lang>-<category>-NNN`;
    `img-` stems are English); None for hand-written rows, which have no group. A stem's
    variants may wrap it in another language's context; the stem's language is what counts."""
    parts = row.get("group", "").split("-")
    if len(parts) < 3:
        return None
    lang = parts[-3]
    return "en" if lang == "img" else lang


def report(name, results):
    print(f"\n{name}: {len(results)} rows")
    for mapping, tier_of in MAPPINGS.items():
        got = [(want, tier_of.get(tier, 0)) for want, tier, _ in results]
        c = Counter(got)
        right = sum(c[(t, t)] for t in range(3))
        frontier = sum(c[(2, t)] for t in range(3))
        cheap = sum(c[(0, t)] for t in range(3))
        print(f"  {mapping}: tier accuracy {right / len(got):.3f}, "
              f"under-routing {c[(2, 0)] / max(frontier, 1):.3f} ({c[(2, 0)]}/{frontier}), "
              f"over-routing {c[(0, 2)] / max(cheap, 1):.3f} ({c[(0, 2)]}/{cheap})")
        print("    confusion (rows: wanted, columns: got cheap/mid/frontier)")
        for want in range(3):
            print(f"    {TIERS[want]:<9} " + " ".join(f"{c[(want, t)]:>6}" for t in range(3)))
    print("  LiteLLM's tiers:", dict(Counter(tier for _, tier, _ in results).most_common()))
    # Its score with the two cut points that suit these very rows best: an upper bound for
    # any boundaries a user could configure, since they are chosen on the rows they score.
    cuts = sorted({round(x, 3) for _, _, x in results})
    best = (0.0, None, None)
    for i, low in enumerate(cuts):
        for high in cuts[i:]:
            right = sum((x < low and w == 0) or (low <= x < high and w == 1) or (x >= high and w == 2)
                        for w, _, x in results)
            best = max(best, (right / len(results), low, high))
    print(f"  its score cut at the best two points for these rows ({best[1]}, {best[2]}): "
          f"tier accuracy {best[0]:.3f}")


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    scorer = router()
    by_split = {"test": [], "holdout": []}
    english = {"test": [], "holdout": []}
    for row in rows(root):
        ask, system = cr._extract_current_ask_and_system_prompt(row["request"].get("messages", []))
        # No human ask: LiteLLM routes to its default model; counted as its lowest tier.
        tier, score = scorer.classify(ask, system)[:2] if ask else (cr.ComplexityTier.SIMPLE, -1.0)
        result = (LABEL_TIER[row["band"]], tier.value, score)
        by_split[row["split"]].append(result)
        if language(row) == "en":
            english[row["split"]].append(result)
    if not by_split["test"]:
        sys.exit("no rows: run from a checkout with tests/fixtures/routing")
    report("test split", by_split["test"])
    report("test split, stems written in English (its keyword lists are English)", english["test"])
    report("held-out stems", by_split["holdout"])
    report("held-out stems written in English", english["holdout"])


if __name__ == "__main__":
    main()
