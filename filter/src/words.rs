//! Default word lists of the scorer (SPEC §5), with weights. They are only
//! defaults: the routing table carries the lists the filter really uses.
//!
//! Matching is ASCII-case-insensitive; a pattern that begins or ends with a
//! letter matches only at a word boundary there; a trailing `*` matches any
//! word ending (`vulnerab*`). Non-Latin scripts have no case folding, so
//! capitalised Cyrillic forms are listed too.

/// Marks of hard work: proofs, formal reasoning, security, concurrency,
/// architecture, research.
#[rustfmt::skip]
pub const HARD: &[(&str, f64)] = &[
    // English
    ("prove", 0.30), ("proof", 0.26), ("proofs", 0.26), ("induction", 0.22), ("theorem", 0.22),
    ("lemma", 0.2), ("rigorous*", 0.18), ("formally", 0.16), ("formal verification", 0.3),
    ("formal proof", 0.3), ("invariant*", 0.12), ("derive", 0.12), ("derivation", 0.14),
    ("show that", 0.12), ("bound is tight", 0.22), ("tight bound", 0.2), ("lower bound", 0.16),
    ("upper bound", 0.14), ("asymptotic*", 0.14), ("complexity analysis", 0.2), ("big-o", 0.08),
    ("amortized", 0.14), ("amortised", 0.14), ("np-hard", 0.24), ("np-complete", 0.24),
    ("reduction from", 0.14), ("undecidab*", 0.22), ("linearizab*", 0.28), ("linearisab*", 0.28),
    ("lock-free", 0.24), ("wait-free", 0.24), ("memory model", 0.2), ("memory ordering", 0.2),
    ("race condition", 0.2), ("data race", 0.2), ("deadlock*", 0.16), ("livelock", 0.18),
    ("concurrency", 0.1), ("thread-safe", 0.1), ("thread safety", 0.12),
    ("security audit", 0.3), ("audit", 0.14), ("vulnerab*", 0.2), ("exploit*", 0.16),
    ("threat model*", 0.22), ("attack surface", 0.18), ("side-channel", 0.22), ("side channel", 0.22),
    ("timing attack", 0.2), ("privilege escalation", 0.2), ("injection", 0.1), ("cve-", 0.14),
    ("cryptograph*", 0.14), ("is this secure", 0.2), ("is it secure", 0.2), ("securely", 0.08),
    ("architecture", 0.14), ("architectural", 0.14), ("trade-off*", 0.14), ("tradeoff*", 0.14),
    ("design a system", 0.16), ("system design", 0.16), ("scalab*", 0.1), ("distributed", 0.12),
    ("consensus", 0.16), ("byzantine", 0.22), ("raft", 0.14), ("paxos", 0.2), ("crdt*", 0.18),
    ("consistency model", 0.18), ("exactly-once", 0.16), ("partition toleran*", 0.16),
    ("sharding", 0.1), ("multi-region", 0.12), ("failover", 0.08), ("migration strategy", 0.12),
    ("root cause", 0.08), ("undefined behavio*", 0.16), ("soundness", 0.2), ("type system", 0.14),
    ("compiler", 0.08), ("optimal", 0.08), ("optimality", 0.18), ("convergence", 0.14),
    ("stochastic", 0.1), ("bayesian", 0.1), ("differential equation*", 0.14), ("eigenvalue*", 0.12),
    ("research", 0.1), ("state of the art", 0.12), ("novel", 0.1), ("open problem", 0.2),
    ("literature", 0.08), ("hypothes*", 0.08), ("counterexample", 0.18), ("contradiction", 0.14),
    ("why does this deadlock", 0.2), ("step by step", 0.06), ("in depth", 0.06), ("in-depth", 0.06),
    ("trade offs", 0.14), ("evaluate the", 0.06), ("critique", 0.08), ("pitfalls", 0.06),
    // French
    ("démontre*", 0.3), ("démonstration", 0.24), ("preuve", 0.24), ("récurrence", 0.18),
    ("complexité", 0.12), ("vulnérabilit*", 0.2), ("sécurité", 0.08), ("compromis", 0.12),
    ("concurrence", 0.08), ("réparti*", 0.1), ("distribué*", 0.1),
    // Spanish
    ("demuestra", 0.3), ("demostrar", 0.3), ("demostración", 0.24), ("inducción", 0.2),
    ("complejidad", 0.12), ("vulnerabilidad*", 0.2), ("arquitectura", 0.14), ("condición de carrera", 0.2),
    ("compensaciones", 0.12), ("distribuido", 0.1), ("seguridad", 0.08),
    // German
    ("beweis*", 0.28), ("induktion", 0.2), ("komplexität", 0.12), ("sicherheitslücke*", 0.2),
    ("schwachstelle*", 0.2), ("architektur", 0.14), ("nebenläufig*", 0.14), ("wettlaufsituation", 0.2),
    ("verteilt*", 0.1), ("kompromiss*", 0.1),
    // Portuguese / Italian
    ("provar", 0.26), ("demonstre", 0.28), ("demonstrar", 0.28), ("indução", 0.2), ("complexidade", 0.12),
    ("vulnerabilidade*", 0.2), ("arquitetura", 0.14), ("condição de corrida", 0.2),
    ("dimostra*", 0.28), ("induzione", 0.2), ("complessità", 0.12), ("vulnerabilità", 0.2),
    ("architettura", 0.14),
    // Chinese
    ("证明", 0.3), ("归纳", 0.18), ("复杂度", 0.14), ("架构", 0.14), ("漏洞", 0.2), ("安全审计", 0.3),
    ("竞态", 0.2), ("死锁", 0.18), ("并发", 0.12), ("分布式", 0.12), ("权衡", 0.12), ("形式化", 0.2),
    ("一致性", 0.12), ("无锁", 0.24),
    // Japanese
    ("証明", 0.3), ("帰納法", 0.2), ("計算量", 0.14), ("アーキテクチャ", 0.14), ("脆弱性", 0.2),
    ("競合状態", 0.2), ("デッドロック", 0.18), ("並行", 0.1), ("分散", 0.1), ("トレードオフ", 0.14),
    ("設計", 0.06),
    // Korean
    ("증명", 0.3), ("귀납", 0.2), ("복잡도", 0.14), ("아키텍처", 0.14), ("취약점", 0.2),
    ("경쟁 조건", 0.2), ("교착", 0.18), ("동시성", 0.12), ("분산", 0.1), ("트레이드오프", 0.14),
    // Russian
    ("докаж*", 0.3), ("Докаж*", 0.3), ("доказательств*", 0.26), ("Доказательств*", 0.26),
    ("индукци*", 0.2), ("сложност*", 0.1), ("архитектур*", 0.14), ("Архитектур*", 0.14),
    ("уязвимост*", 0.2), ("Уязвимост*", 0.2), ("гонк*", 0.14), ("взаимоблокиров*", 0.18),
    ("распределённ*", 0.1), ("распределенн*", 0.1),
    // Hindi / Arabic
    ("सिद्ध", 0.26), ("प्रमाण", 0.24), ("आर्किटेक्चर", 0.14), ("सुरक्षा", 0.08),
    ("أثبت", 0.3), ("برهان", 0.24), ("الاستقراء", 0.2), ("ثغرة", 0.2), ("ثغرات", 0.2), ("معمارية", 0.14),
];

/// Marks of easy work: greetings, thanks, translation, summaries, rewording,
/// small lookups.
#[rustfmt::skip]
pub const EASY: &[(&str, f64)] = &[
    // English
    ("hello", 0.14), ("hi", 0.12), ("hey", 0.12), ("good morning", 0.12), ("thanks", 0.14),
    ("thank you", 0.14), ("thx", 0.12), ("cheers", 0.06), ("how are you", 0.1),
    ("translate", 0.16), ("translation", 0.14), ("summari*", 0.16), ("summary", 0.12),
    ("tl;dr", 0.14), ("tldr", 0.14), ("rephrase", 0.14), ("reword", 0.14), ("paraphrase", 0.14),
    ("proofread", 0.14), ("grammar", 0.1), ("typo*", 0.1), ("spelling", 0.1), ("rewrite this", 0.1),
    ("make it shorter", 0.12), ("more formal", 0.1), ("more polite", 0.1), ("format this", 0.1),
    ("reformat", 0.1), ("convert", 0.06), ("extract", 0.08), ("list the", 0.04),
    ("what time", 0.12), ("what day", 0.1), ("weather", 0.1), ("capital of", 0.12),
    ("what is the", 0.04), ("define", 0.06), ("definition of", 0.08), ("meaning of", 0.08),
    ("synonym*", 0.12), ("quick question", 0.1), ("in one sentence", 0.1), ("briefly", 0.06),
    ("simple", 0.04), ("example of", 0.04), ("is it ok", 0.04), ("status", 0.04),
    // French
    ("bonjour", 0.14), ("salut", 0.12), ("merci", 0.14), ("traduire", 0.16), ("traduis", 0.16),
    ("traduction", 0.14), ("résume*", 0.14), ("résumé", 0.12), ("reformule*", 0.12),
    // Spanish
    ("hola", 0.14), ("gracias", 0.14), ("traduce", 0.16), ("traducir", 0.16), ("traducción", 0.14),
    ("resume", 0.1), ("resumen", 0.12), ("resumir", 0.14),
    // German
    ("hallo", 0.14), ("danke", 0.14), ("übersetz*", 0.16), ("zusammenfass*", 0.16),
    ("guten morgen", 0.12),
    // Portuguese / Italian
    ("olá", 0.14), ("obrigad*", 0.14), ("traduza", 0.16), ("traduzir", 0.16), ("resuma", 0.14),
    ("resumo", 0.12), ("ciao", 0.12), ("grazie", 0.14), ("traduci", 0.16), ("riassumi", 0.14),
    ("riassunto", 0.12),
    // Chinese
    ("你好", 0.14), ("谢谢", 0.14), ("翻译", 0.16), ("总结", 0.14), ("摘要", 0.12), ("几点", 0.1),
    ("天气", 0.1),
    // Japanese
    ("こんにちは", 0.14), ("ありがとう", 0.14), ("翻訳", 0.16), ("訳して", 0.16), ("要約", 0.14),
    ("天気", 0.1),
    // Korean
    ("안녕", 0.14), ("감사합니다", 0.14), ("고마워", 0.14), ("번역", 0.16), ("요약", 0.14), ("날씨", 0.1),
    // Russian
    ("привет", 0.14), ("Привет", 0.14), ("спасибо", 0.14), ("Спасибо", 0.14), ("переведи*", 0.16),
    ("Переведи*", 0.16), ("перевод", 0.14), ("кратко", 0.1), ("резюм*", 0.12),
    // Hindi / Arabic
    ("नमस्ते", 0.14), ("धन्यवाद", 0.14), ("अनुवाद", 0.16), ("सारांश", 0.14),
    ("مرحبا", 0.14), ("شكرا", 0.14), ("ترجم", 0.16), ("لخص", 0.14),
];

/// Marks of harder languages and of concurrency in code.
#[rustfmt::skip]
pub const CODE_MARKERS: &[(&str, f64)] = &[
    ("```rust", 0.03), ("```go", 0.03), ("```cpp", 0.03), ("```c++", 0.03), ("```typescript", 0.02),
    ("```haskell", 0.04), ("```scala", 0.03), ("&mut ", 0.03), ("impl<", 0.03), ("'static", 0.03),
    ("lifetime", 0.04), ("unsafe {", 0.05), ("unsafe fn", 0.05), ("Arc<", 0.04), ("Rc<", 0.02),
    ("RefCell", 0.03), ("Pin<", 0.05), ("async fn", 0.03), ("tokio::", 0.03), ("Send + Sync", 0.05),
    ("goroutine*", 0.05), ("go func", 0.05), ("chan ", 0.04), ("sync.Mutex", 0.05), ("sync.WaitGroup", 0.04),
    ("select {", 0.04), ("template<", 0.03), ("template <", 0.03), ("constexpr", 0.03),
    ("std::atomic", 0.06), ("memory_order", 0.08), ("unique_ptr", 0.02), ("shared_ptr", 0.02),
    ("std::thread", 0.05), ("pthread_", 0.05), ("volatile", 0.04), ("compare_exchange", 0.08),
    ("compareAndSet", 0.08), ("CAS(", 0.06), ("AtomicU", 0.06), ("AtomicI", 0.06), ("AtomicPtr", 0.08),
    ("Ordering::", 0.06), ("mutex", 0.05), ("RwLock", 0.05), ("semaphore", 0.05), ("condvar", 0.05),
    ("synchronized", 0.04), ("ConcurrentHashMap", 0.04), ("CompletableFuture", 0.03),
    ("threading", 0.04), ("multiprocessing", 0.04), ("asyncio.gather", 0.03), ("await ", 0.01),
    ("malloc(", 0.03), ("free(", 0.02), ("memcpy", 0.03), ("reinterpret_cast", 0.04),
    ("asm!", 0.06), ("__asm__", 0.06), ("SIMD", 0.05), ("_mm256_", 0.06), ("fork(", 0.04),
    ("mmap", 0.04), ("epoll", 0.05), ("io_uring", 0.06), ("where T:", 0.03), ("dyn ", 0.02),
    ("generic", 0.02), ("monad", 0.05), ("typeclass", 0.04),
];

/// Explicit constraints in the request.
#[rustfmt::skip]
pub const CONSTRAINTS: &[(&str, f64)] = &[
    ("must", 0.015), ("must not", 0.02), ("should not", 0.015), ("at least", 0.012),
    ("at most", 0.012), ("no more than", 0.015), ("without using", 0.02), ("ensure", 0.012),
    ("constraint*", 0.02), ("requirement*", 0.02), ("edge case*", 0.02), ("guarantee*", 0.02),
    ("worst case", 0.02), ("worst-case", 0.02), ("o(n", 0.02), ("o(log", 0.02), ("o(1)", 0.02),
    ("backwards compatib*", 0.02), ("zero downtime", 0.03), ("p99", 0.02), ("sla", 0.02),
    ("doit", 0.012), ("debe", 0.012), ("muss", 0.012), ("必须", 0.015), ("必ず", 0.015),
];
