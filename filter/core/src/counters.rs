//! Test-only counts of the expensive steps of routing (parse, score, rank),
//! so a test can prove a failover attempt repeats none of them.

use std::cell::Cell;

thread_local! {
    pub static PARSES: Cell<u32> = const { Cell::new(0) };
    pub static SCORES: Cell<u32> = const { Cell::new(0) };
    pub static RANKS: Cell<u32> = const { Cell::new(0) };
}

/// (parses, scores, ranks) on this thread so far.
pub fn snapshot() -> (u32, u32, u32) {
    (PARSES.get(), SCORES.get(), RANKS.get())
}

/// What this thread parsed, scored and ranked since `before`.
pub fn since(before: (u32, u32, u32)) -> (u32, u32, u32) {
    let now = snapshot();
    (now.0 - before.0, now.1 - before.1, now.2 - before.2)
}
