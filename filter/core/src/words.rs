//! Default word lists of the scorer (filter/README.md, "Complexity score").
//! They are only defaults: the routing table carries the lists (word →
//! weight) the filter really uses.
//!
//! The defaults come in a few categories with one weight per category, so the
//! calibration tunes a handful of numbers rather than hundreds of words (which
//! would fit the calibration set instead of real traffic):
//!
//! - `FORMAL`  — proofs, formal correctness, security audits, research;
//! - `COMPLEX` — systems design, concurrency, distributed and performance
//!   work, algorithm design, multi-constraint reasoning;
//! - `TASK`    — the verbs of medium work: implement, refactor, debug,
//!   explain why, compare;
//! - `MATH`    — mathematical notation, which short hard prompts are made of;
//! - `EASY`    — greetings, thanks, translation, summaries, rewording.
//!
//! Matching is ASCII-case-insensitive; a pattern that begins or ends with a
//! letter matches only at a word boundary there; a trailing `*` matches any
//! word ending (`vulnerab*`). Non-Latin scripts have no case folding, so
//! capitalised Cyrillic forms are listed too.

use std::collections::BTreeMap;

/// Patterns are matched ASCII-case-insensitively. A pattern that starts (ends)
/// with a letter or digit only matches at a word start (end); a trailing `*`
/// makes it a prefix (`summari*` matches summarise, summarize, summarising).
pub type WordList = BTreeMap<String, f64>;

/// Weight of each category (tuned on the calibration set's tuning split).
#[derive(Debug, Clone, Copy)]
pub struct CategoryWeights {
    pub formal: f64,
    pub complex: f64,
    pub task: f64,
    pub math: f64,
    pub easy: f64,
}

pub const DEFAULT_WEIGHTS: CategoryWeights = CategoryWeights {
    formal: 0.66,
    complex: 0.33,
    task: 0.156,
    math: 0.04,
    easy: 0.096,
};

/// The hard list: every category that raises the score, with its weight.
pub fn hard(w: CategoryWeights) -> WordList {
    let mut out = WordList::new();
    for (list, weight) in [
        (MATH, w.math),
        (TASK, w.task),
        (COMPLEX, w.complex),
        (FORMAL, w.formal),
    ] {
        for word in list {
            // A word in two categories keeps the higher weight.
            out.insert((*word).to_owned(), weight);
        }
    }
    out
}

pub fn easy(w: CategoryWeights) -> WordList {
    EASY.iter()
        .map(|word| ((*word).to_owned(), w.easy))
        .collect()
}

#[rustfmt::skip]
pub const FORMAL: &[&str] = &[
    // proofs and formal reasoning
    "prove", "proving", "proof", "proofs", "theorem", "lemma", "induction", "show that", "show there",
    "show no", "formal proof", "formally", "formal verification", "rigorous*", "bound is tight",
    "is tight", "tight bound", "lower bound", "matching lower", "bijective", "bijection",
    "counterexample", "contradiction", "by contradiction", "olympiad", "imo", "putnam",
    "np-hard", "np-complete", "undecidab*", "reduction to", "reduction from", "reduces to",
    "competitive ratio", "smoothed", "open problem", "state of the art", "best known",
    "who proved", "is it known", "conjecture", "asymptotically optimal", "amortized analysis",
    // correctness of concurrent and unsafe code
    "linearizab*", "linearisab*", "linearization point*", "lock-free", "lockfree", "wait-free",
    "memory model", "memory ordering", "orderings", "happens-before", "seq_cst", "acquire/release",
    "relaxed", "aba", "hazard pointer*", "epoch-based", "seqlock", "rcu", "is it sound", "is this sound",
    "soundness", "unsound", "undefined behavio*", "stacked borrows", "tree borrows", "miri",
    "data race", "tso", "mutual exclusion", "tla+", "model check*", "invariant holds",
    // security
    "security audit", "audit", "pentest", "penetration test", "vulnerab*", "exploit*",
    "threat model*", "threat-model*", "attack", "attacker", "forge", "forgeable", "forgery",
    "side-channel", "side channel", "timing attack", "privilege escalation", "csrf", "xss",
    "sql injection", "ssrf", "rce", "deserialization", "encrypt-then-mac", "mac-then-encrypt",
    "padding oracle", "nonce reuse", "prf", "prp", "ind-cpa", "ind-cca", "security proof",
    "is this secure", "is it secure", "mainnet", "reentrancy", "cve-*",
    // French, Spanish, Portuguese, Italian, German
    "démontre*", "démonstration", "preuve", "récurrence", "linéarisab*", "vulnérabilit*",
    "demuestra", "demostrar", "demostración", "inducción", "vulnerabilidad*", "¿es correcto",
    "demonstre", "demonstrar", "demonstração", "indução", "vulnerabilidade*",
    "dimostra*", "induzione", "vulnerabilità",
    "beweis*", "induktion", "sicherheitslücke*", "schwachstelle*",
    // Chinese, Japanese, Korean
    "证明", "严格证明", "归纳法", "形式化", "无锁", "线性一致", "漏洞", "安全审计", "内存模型",
    "証明", "帰納法", "脆弱性", "線形化", "ロックフリー", "メモリモデル",
    "증명", "귀납", "취약점", "선형화",
    // Russian, Hindi, Arabic
    "докаж*", "Докаж*", "доказательств*", "Доказательств*", "уязвимост*", "Уязвимост*",
    "सिद्ध कीजिए", "सिद्ध करें", "प्रमाण", "أثبت", "برهان", "ثغرة", "ثغرات",
];

#[rustfmt::skip]
pub const COMPLEX: &[&str] = &[
    // design and architecture
    "architecture", "architectural", "architect", "design a", "design an", "design the",
    "designing", "system design", "trade-off*", "tradeoff*", "trade offs", "rfc", "design doc",
    "single point* of failure", "multi-region", "active-active", "multi-tenant", "isolation",
    "distributed", "consensus", "raft", "paxos", "leader election", "quorum", "partition*",
    "replication", "replica*", "sharding", "consistency", "eventual consistency", "crdt*",
    "exactly-once", "at-least-once", "idempoten*", "failover", "disaster recovery", "rpo", "rto",
    "scalab*", "throughput", "backpressure", "rate limit*", "offline", "sync", "conflict*",
    "migration strategy", "zero downtime", "plugin system", "abi", "backward compat*",
    // concurrency and performance forensics
    "race", "race condition", "concurren*", "at the same time", "simultaneous*", "deadlock*",
    "livelock", "starvation", "stall*", "under load", "contention", "thread-safe", "thread safety",
    "atomic*", "mutex", "lock expired", "fencing", "clock", "gc pause", "charged twice",
    "ran twice", "runs twice", "double", "memory leak", "leak*", "oom*", "rss", "heap", "p99",
    "latency", "spikes", "whats going on", "what's going on", "root cause", "tie out",
    "thunk*", "space leak", "not send", "send + sync", "!send",
    // algorithms and quantitative reasoning
    "data structure", "what's the approach", "whats the approach", "approach?", "segment tree",
    "fenwick", "persistent", "offline queries", "online", "derive", "derivation", "recurrence",
    "equilibrium", "bayes-nash", "worst case", "worst-case", "expected number", "complexity",
    "asymptotic*", "optimal substructure", "dynamic programming", "np", "approximation",
    // French, Spanish, Portuguese, Italian, German
    "architecture", "compromis", "concurrence", "réparti*", "distribué*", "interblocage",
    "arquitectura", "concurrencia", "condición de carrera", "distribuido", "compensaciones",
    "arquitetura", "concorrência", "condição de corrida", "multi-tenant", "isolamento",
    "architettura", "concorrenza", "architektur", "nebenläufig*", "wettlaufsituation", "verteilt*",
    // Chinese, Japanese, Korean
    "架构", "设计一个", "分布式", "多机房", "高可用", "一致性", "并发", "竞态", "死锁", "权衡",
    "优缺点", "复杂度", "时间复杂度", "限流", "故障",
    "アーキテクチャ", "設計", "分散", "並行", "競合", "デッドロック", "トレードオフ", "止まる", "負荷",
    "計算量", "아키텍처", "설계", "분산", "동시성", "교착", "트레이드오프", "자료구조", "시간복잡도",
    // Russian, Hindi, Arabic
    "архитектур*", "Архитектур*", "распредел*", "гонк*", "взаимоблокиров*", "сложност*",
    "आर्किटेक्चर", "डिज़ाइन", "معمارية", "تصميم",
];

#[rustfmt::skip]
pub const TASK: &[&str] = &[
    "implement", "implementation", "write a function", "write a script", "write a parser",
    "write a program", "write a class", "write tests", "write unit tests", "unit test*", "pytest",
    "test cases", "edge cases", "refactor*", "debug*", "fix", "fix it", "bug", "crash*", "segfault",
    "failing", "fails", "error", "exception", "traceback", "stack trace", "why does", "why did",
    "why is", "why do", "why?", "what am i missing", "explain why", "walk me through", "step by step",
    "difference between", "compare", "comparison", "pros and cons", "versus", "vs", "optimal",
    "strategy", "probability", "expected value", "odds", "time complexity", "big-o", "optimi*",
    "performance", "slow", "takes", "query plan", "index", "pipeline", "parser", "evaluator",
    "algorithm", "recursion", "recursive", "async", "await", "coroutine*", "promise*", "callback*",
    "schedule", "plan", "budget", "calculate", "estimate", "analy*", "evaluate", "review",
    "reasoning", "puzzle", "riddle", "logic", "knight*", "knave*", "monty hall",
    // French, Spanish, Portuguese, Italian, German
    "écris une fonction", "implémente*", "pourquoi", "explique*", "corrige*", "déboguer",
    "escribe una función", "implementa*", "por qué", "explica*", "depura*", "por que",
    "escreva uma função", "explique", "perché", "spiega*", "implementare", "ragionamento",
    "probabilità", "schreib eine funktion", "implementiere*", "warum", "erklär*", "unterschied",
    // Chinese, Japanese, Korean
    "实现", "写一个函数", "写一个", "单元测试", "为什么", "解释", "分析", "优化", "调试", "算法",
    "実装", "関数", "なぜ", "説明", "最適化", "テスト", "구현", "함수", "왜", "설명", "최적화", "알고리즘",
    // Russian, Hindi, Arabic
    "реализуй*", "напиши функцию", "почему", "Почему", "объясни*", "Объясни*", "оптимиз*",
    "function लिखिए", "लिखिए", "क्यों", "समझाइए", "اكتب دالة", "لماذا", "اشرح",
];

#[rustfmt::skip]
pub const MATH: &[&str] = &[
    ">=", "<=", "≥", "≤", "≠", "∀", "∃", "∑", "∫", "∈", "⊆", "→", "->", "^", "n^2", "2^n",
    "f(x", "f(n", "f:", "mod ", "gcd", "lcm", "prime*", "integer*", "real value*", "continuous",
    "polynomial", "matrix", "eigen*", "graph", "tree with", "vertices", "edges", "k_{", "iid",
    "uniform", "random", "expected", "variance", "sqrt", "ceil(", "floor(", "log(", "o(", "1e5",
    "10^5", "10^9", "2×10^5", "≤ 2", "queries", "subset", "modulo",
];

#[rustfmt::skip]
pub const EASY: &[&str] = &[
    // English
    "hello", "hi", "hey", "good morning", "good night", "thanks", "thank you", "thx", "ty", "cheers",
    "how are you", "translate", "translation", "summari*", "summary", "tl;dr", "tldr", "rephrase",
    "reword", "paraphrase", "proofread", "grammar", "typo*", "spelling", "rewrite this", "shorter",
    "more formal", "more polite", "friendlier", "format this", "reformat", "as a table", "convert",
    "extract", "list the", "what time", "what day", "what date", "weather", "capital of",
    "definition of", "meaning of", "what does", "stand for", "synonym*", "antonym*",
    "quick question", "in one sentence", "one word", "yes or no", "briefly", "just the",
    "how many days", "how do i", "how do you say", "when is", "who is", "who wrote",
    // French, Spanish, Portuguese, Italian, German
    "bonjour", "salut", "merci", "traduire", "traduis", "traduction", "résume*", "résumé",
    "reformule*", "hola", "gracias", "traduce", "traducir", "traducción", "resumen", "resumir",
    "resume este", "olá", "obrigad*", "traduza", "traduzir", "resuma", "resumo", "ciao", "grazie",
    "traduci", "riassumi", "riassunto", "hallo", "danke", "übersetz*", "zusammenfass*", "guten morgen",
    // Chinese, Japanese, Korean
    "你好", "谢谢", "翻译", "总结", "摘要", "几点", "天气", "こんにちは", "ありがとう", "翻訳",
    "訳して", "要約", "天気", "안녕", "감사합니다", "고마워", "번역", "요약", "날씨",
    // Russian, Hindi, Arabic
    "привет", "Привет", "спасибо", "Спасибо", "переведи*", "Переведи*", "перевод", "кратко",
    "резюм*", "नमस्ते", "धन्यवाद", "अनुवाद", "सारांश", "مرحبا", "شكرا", "ترجم", "لخص",
];

/// Marks of harder languages and of concurrency in code.
#[rustfmt::skip]
pub const CODE_MARKERS: &[(&str, f64)] = &[
    ("```rust", 0.03), ("```go", 0.03), ("```cpp", 0.03), ("```c++", 0.03), ("```typescript", 0.02),
    ("```haskell", 0.04), ("```scala", 0.03), ("&mut ", 0.03), ("impl<", 0.03), ("'static", 0.03),
    ("lifetime", 0.04), ("unsafe {", 0.05), ("unsafe fn", 0.05), ("unsafe impl", 0.06), ("Arc<", 0.04),
    ("Rc<", 0.02), ("RefCell", 0.03), ("Pin<", 0.05), ("async fn", 0.03), ("tokio::", 0.03),
    ("goroutine*", 0.05), ("go func", 0.05), ("chan ", 0.04), ("sync.Mutex", 0.05), ("sync.WaitGroup", 0.04),
    ("select {", 0.04), ("template<", 0.03), ("template <", 0.03), ("constexpr", 0.03),
    ("std::atomic", 0.06), ("memory_order", 0.08), ("unique_ptr", 0.02), ("shared_ptr", 0.02),
    ("std::thread", 0.05), ("pthread_", 0.05), ("volatile", 0.04), ("compare_exchange", 0.08),
    ("compareAndSet", 0.08), ("AtomicU", 0.06), ("AtomicI", 0.06), ("AtomicPtr", 0.08),
    ("Ordering::", 0.06), ("RwLock", 0.05), ("semaphore", 0.05), ("condvar", 0.05),
    ("synchronized", 0.04), ("ConcurrentHashMap", 0.04), ("CompletableFuture", 0.03),
    ("threading", 0.04), ("multiprocessing", 0.04), ("asyncio.gather", 0.03),
    ("malloc(", 0.03), ("memcpy", 0.03), ("reinterpret_cast", 0.04),
    ("asm!", 0.06), ("__asm__", 0.06), ("_mm256_", 0.06), ("fork(", 0.04),
    ("mmap", 0.04), ("epoll", 0.05), ("io_uring", 0.06), ("where T:", 0.03), ("dyn ", 0.02),
    ("monad", 0.05), ("typeclass", 0.04), ("SELECT ", 0.01), ("FOR UPDATE", 0.05),
];

/// Explicit constraints in the request.
#[rustfmt::skip]
pub const CONSTRAINTS: &[(&str, f64)] = &[
    ("must", 0.015), ("must not", 0.02), ("should not", 0.015), ("at least", 0.012),
    ("at most", 0.012), ("no more than", 0.015), ("without", 0.015), ("ensure", 0.012),
    ("constraint*", 0.02), ("requirement*", 0.02), ("edge case*", 0.02), ("guarantee*", 0.02),
    ("keep the same", 0.015), ("keep behaviour", 0.015), ("keep behavior", 0.015), ("only", 0.008),
    ("o(n", 0.02), ("o(log", 0.02), ("o(1)", 0.02), ("nobody", 0.015), ("never", 0.012),
    ("rules:", 0.02), ("p99", 0.02), ("sla", 0.02), ("careful", 0.015),
    ("doit", 0.012), ("debe", 0.012), ("muss", 0.012), ("必须", 0.015), ("要求", 0.015), ("必ず", 0.015),
];
