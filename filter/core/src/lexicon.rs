//! The router classifier's concepts (classify.rs): what a request asks for,
//! in words of many languages, grouped by meaning. A concept is one dense
//! feature, so what the trainer learns from "prove" in English also holds
//! for "beweise", "demuestra" or "证明" in requests it never saw — words of
//! one language alone would only teach that language's rows.
//!
//! Patterns are matched in the lower-cased head and tail of the latest user
//! turn; each is a stem (it also matches longer words: `summari` matches
//! summarise and summarize) and, when it begins with a letter or a digit of
//! a script with spaces, only at a word start. Patterns may span words
//! ("show that"). The lists change the features: the trainer writes their
//! fingerprint into the model, and a model of other lists is refused.

/// (concept, patterns). Order is the feature order.
#[rustfmt::skip]
pub const CONCEPTS: [(&str, &[&str]); 25] = [
    ("greeting", &[
        "hello", "hi ", "hi!", "hey$", "good morning", "good night", "thanks", "thank you", "thx", "cheers",
        "hola", "gracias", "buenos d", "salut", "bonjour", "merci", "hallo", "danke", "guten ",
        "ciao$", "grazie", "buongiorno", "olá", "obrigad", "bom dia", "dank je", "bedankt",
        "привет", "спасибо", "здравствуй", "你好", "谢谢", "早上好", "こんにちは", "ありがとう", "おはよう",
        "안녕", "감사", "고마워", "नमस्ते", "धन्यवाद", "مرحبا", "شكرا", "merhaba", "teşekkür",
        "cześć", "dziękuj", "xin chào", "cảm ơn",
    ]),
    ("translate", &[
        "translat", "in english", "into english", "into french", "into german", "into spanish",
        "traduc", "traduz", "tradui", "übersetz", "vertaal", "перевед", "переве", "翻译", "译成",
        "翻訳", "訳して", "번역", "अनुवाद", "ترجم", "çevir", "przetłumacz", "dịch",
    ]),
    ("rewrite", &[
        "summari", "summary", "tl;dr", "tldr", "rewrite", "rephrase", "paraphrase", "reword",
        "proofread", "fix the grammar", "fix grammar", "grammar$", "shorten", "make it shorter",
        "more formal", "more polite", "tone$", "reformat", "bullet point", "bullets", "extract$",
        "resum", "reescrib", "résum", "reformul", "zusammenfass", "umformulier", "riassum",
        "riscriv", "samenvat", "herschrijf", "кратко", "перескаж", "перефраз", "总结", "概括",
        "改写", "要約", "まとめ", "書き直", "요약", "다시 써", "सारांश", "لخص", "ملخص", "özetle",
        "streść", "podsumuj", "tóm tắt",
    ]),
    ("creative", &[
        "poem", "haiku", "limerick", "sonnet", "story$", "stories", "short story", "lyrics", "song$", "slogan",
        "tagline", "joke", "fiction", "scene$", "character", "plot$", "villanelle", "rhyme",
        "poema", "cuento", "historia", "poème", "histoire", "conte", "gedicht", "geschichte",
        "poesia", "racconto", "verhaal", "стих", "рассказ", "сказк", "诗", "故事", "詩", "物語",
        "시를", "이야기", "कविता", "कहानी", "قصيدة", "قصة", "şiir", "hikaye", "wiersz",
        "opowiadani", "bài thơ", "câu chuyện",
        // short pieces people ask for: captions, toasts, congratulations, names
        "caption", "toast$", "blurb", "nickname", "name for", "names for", "riddle", "pun$", "puns$",
        "verse", "ode$", "ballad", "dialogue", "monologue", "screenplay", "fairy tale", "bedtime",
        "congratulat", "greeting card", "product description", "felicit", "glückwunsch", "gruß",
        "filastrocca", "auguri", "parabéns", "поздрав", "тост$", "俳句", "短歌", "祝福", "贺词",
        "お祝い", "축하", "تهنئة", "tebrik", "życzeni", "chúc mừng",
    ]),
    ("code$", &[
        "function", "implement", "code$", "script", "class ", "method", "refactor", "unit test",
        "regex", "compile", "api$", "endpoint", "library", "python", "javascript", "typescript",
        "java$", "golang", "rust$", "c++", "sql", "bash", "kotlin", "swift$", "ruby$", "haskell",
        "```", "fn ", "def ", "func ", "=>", "::", "();",
        "función", "código", "fonction", "funktion", "programm", "funzione", "codice", "função",
        "функци", "код", "函数", "代码", "编程", "関数", "コード", "함수", "코드", "फ़ंक्शन", "कोड",
        "دالة", "كود", "fonksiyon", "kod$", "funkcj", "hàm",
    ]),
    ("debug", &[
        "bug$", "error", "exception", "crash", "fails", "failing", "failure", "broken", "doesn't work",
        "does not work", "not working", "stack trace", "traceback", "segfault", "panic$", "timeout",
        "timing out", "hangs", "leak$", "wrong result", "sometimes", "intermittent", "flaky",
        "falla", "fallo", "erreur", "plante", "fehler", "absturz", "errore", "erro$", "fout$",
        "ошибк", "падает", "зависа", "错误", "崩溃", "报错", "エラー", "バグ", "落ちる", "오류", "버그",
        "त्रुटि", "خطأ", "hata", "błąd", "lỗi",
    ]),
    ("concurrency", &[
        "thread", "lock$", "mutex", "atomic", "race$", "deadlock", "concurren", "parallel", "async",
        "await", "goroutine", "channel$", "semaphore", "memory order", "memory model", "lock-free",
        "wait-free", "linearizab", "happens-before", "compare-and-swap", "cas ",
        "hilo", "bloqueo", "interblo", "fil d'ex", "verrou", "nebenläuf", "sperre", "blocco",
        "поток", "блокировк", "гонк", "线程", "锁", "死锁", "并发", "スレッド", "ロック", "並行",
        "デッドロック", "스레드", "교착", "동시성", "थ्रेड", "خيط", "kilitlen", "wątk", "luồng",
    ]),
    ("distributed", &[
        "consensus", "replica", "partition", "raft$", "paxos", "byzantine", "generals", "quorum",
        "leader election", "eventual consisten", "linearizable", "sharding", "shard$", "idempoten",
        "exactly-once", "exactly once", "two-phase commit", "2pc$", "crdt", "clock skew",
        "split brain", "split-brain", "distributed", "distribuid", "distribué", "verteilt",
        "distribuit", "распределён", "распределен", "分布式", "一致性", "分散", "분산",
    ]),
    ("security", &[
        "vulnerab", "exploit", "attack", "secure", "security", "injection", "xss", "csrf", "ssrf",
        "crypto", "encrypt", "signature", "nonce$", "hmac", "jwt$", "oauth", "auth bypass", "audit$",
        "threat model", "side-channel", "side channel", "privilege", "sanitiz",
        "seguridad", "segurança", "sécurité", "sicherheit", "sicurezza", "veilig", "безопасн",
        "уязвим", "安全", "漏洞", "脆弱性", "セキュリティ", "보안", "취약", "सुरक्षा", "أمان", "ثغرة",
        "güvenlik", "bezpiecze", "bảo mật",
    ]),
    ("proof", &[
        "prove", "proof", "show that", "show there", "theorem", "lemma", "induction", "rigorous",
        "formal", "contradiction", "counterexample", "qed$", "if and only if", "iff$",
        "demuestr", "demostr", "démontr", "preuve", "beweis", "zeige, dass", "zeige dass",
        "dimostr", "demonstre", "demonstra que", "bewijs", "доказ", "докаж", "证明", "証明", "증명", "सिद्ध",
        "أثبت", "برهان", "kanıtla", "udowodnij", "chứng minh",
    ]),
    ("math", &[
        "integer", "prime$", "primes$", "equation", "polynomial", "probability", "integral", "derivative",
        "matrix", "eigen", "vertex", "vertices", "modulo", "divides", "divisible", "inequality",
        "sequence", "series$", "converge", "real number", "rational$", "rationals$", "irrational", "triangle",
        "geometry", "combinator", "permutation", "expected value", "variance", "bayes", "limit$",
        "x^", "n^", "^0", "≤", "≥", "∑", "∫", "√", "mod ",
        "square root", "times$", "divided by", "multipl", "percent", "% of", "calculat", "factorial",
        "fraction", "arithmetic", "raíz cuadrada", "racine carrée", "quadratwurzel", "radice quadrata",
        "calcula", "berechne", "calcola", "вычисли", "посчитай", "корень", "计算", "平方根", "計算",
        "제곱근", "계산", "गणना", "احسب", "hesapla", "oblicz", "tính",
        "entero", "primo", "ecuación", "probabilidad", "entier", "premier", "équation",
        "probabilité", "ganze zahl", "primzahl", "gleichung", "wahrscheinlich", "intero",
        "equazione", "probabilit", "inteiro", "equação", "целое", "простое", "уравнени",
        "вероятност", "整数", "素数", "方程", "概率", "确率", "方程式", "정수", "소수", "확률",
        "方程", "पूर्णांक", "अभाज्य", "समीकरण", "عدد صحيح", "أولي", "معادلة", "asal", "denklem",
        "olasılık", "liczb", "równani", "prawdopodobie", "số nguyên", "phương trình", "xác suất",
    ]),
    ("algorithm", &[
        "algorithm", "complexity", "o(n", "o(log", "big-o", "big o", "time limit", "n ≤", "n <=",
        "data structure", "dynamic programming", "greedy", "shortest path", "segment tree",
        "np-hard", "np-complete", "optimal", "worst case", "amortized", "lower bound", "heap",
        "algoritm", "algorithme", "komplexität", "complessità", "complejidad", "алгоритм",
        "сложност", "算法", "复杂度", "アルゴリズム", "計算量", "알고리즘", "복잡도", "एल्गोरिदम",
        "خوارزمي", "karmaşıklı", "złożonoś", "thuật toán", "độ phức tạp",
    ]),
    ("design", &[
        "architecture", "design a", "design an", "system design", "scale$", "scalab", "throughput",
        "latency", "trade-off", "tradeoff", "trade off", "migration", "migrate", "microservice",
        "multi-region", "high availability", "failover", "capacity", "sla$", "slo$", "p99$",
        "load balanc", "cache$", "queue$", "kafka", "kubernetes", "postgres", "database", "schema",
        "arquitectura", "arquitetura", "architektur", "architettura", "архитектур", "масштаб",
        "架构", "扩展", "设计", "アーキテクチャ", "設計", "アーキテクチャー", "아키텍처", "설계",
        "आर्किटेक्चर", "معمارية", "mimari", "architektur", "kiến trúc",
    ]),
    ("plan", &[
        "plan$", "plans$", "planning", "planned", "strategy", "roadmap", "itinerary", "schedule", "timeline", "budget", "forecast",
        "prioriti", "rota$", "checklist", "milestone", "weeks", "compare", "pros and cons",
        "evaluate", "assess", "recommend", "decide$", "should i", "should we", "which option",
        "planifi", "estrategia", "comparar", "compara", "stratégie", "comparer", "planen",
        "strategie", "vergleich", "pianific", "confront", "estratégia", "план", "стратеги",
        "сравни", "计划", "策略", "比较", "计划", "計画", "戦略", "比較", "계획", "전략", "비교",
        "योजना", "तुलना", "خطة", "قارن", "planla", "karşılaştır", "zaplanuj", "porówn",
        "kế hoạch", "so sánh",
    ]),
    ("constraints", &[
        "must", "at most", "at least", "exactly", "without", "no more than", "within", "every ",
        "each ", "constraint", "requirement", "must not", "never", "only if", "unless",
        "debe", "sin ", "como máximo", "al menos", "doit", "sans ", "au plus", "au moins",
        "muss", "ohne", "höchstens", "mindestens", "deve", "senza", "almeno", "sem ", "pelo menos",
        "moet", "zonder", "должен", "без ", "не более", "хотя бы", "必须", "不能", "至少",
        "最多", "必ず", "以内", "少なくとも", "반드시", "이내", "최소", "चाहिए", "بدون", "يجب",
        "en az", "en fazla", "musi", "bez ", "co najmniej", "phải", "không được",
    ]),
    ("why", &[
        "why", "explain", "how does", "how do", "how come", "what causes", "reason",
        "por qué", "porque", "explica", "pourquoi", "expliqu", "warum", "wieso", "erklär",
        "perché", "spiega", "por que", "waarom", "uitleg", "почему", "объясни", "为什么",
        "解释", "なぜ", "どうして", "説明", "왜", "설명", "क्यों", "समझाइए", "لماذا", "اشرح",
        "neden", "niçin", "açıkla", "dlaczego", "wyjaśnij", "tại sao", "giải thích",
    ]),
    ("fact", &[
        "what is", "what's", "who is", "who was", "who wrote", "when did", "when was", "where is",
        "capital of", "define", "definition", "meaning of", "what does", "how many", "how tall",
        "how far", "how old", "which year", "qué es", "quién", "cuál es", "cuándo", "qu'est-ce",
        "qui est", "quelle est", "quand", "was ist", "wer ist", "wann", "wie viele", "cos'è",
        "chi è", "qual è", "o que é", "quem", "quando", "wat is", "wie is", "что такое", "кто",
        "когда", "сколько", "什么是", "是什么", "谁", "哪", "何ですか", "とは", "誰", "무엇",
        "누구", "언제", "क्या है", "कौन", "ما هو", "من هو", "متى", "nedir", "kimdir", "co to",
        "kto", "kiedy", "là gì", "ai là",
    ]),
    ("simple", &[
        "simple", "quick$", "quickly", "briefly", "brief$", "short$", "easy", "eli5", "beginner", "one sentence",
        "one line", "in a sentence", "just ", "basic", "small$", "sencill", "rápid", "breve",
        "fácil", "rapide", "facile", "einfach", "kurz$", "schnell", "semplice", "veloce",
        "simples", "eenvoudig", "kort$", "просто", "кратк", "быстр", "简单", "简短", "快速",
        "簡単", "短く", "간단", "짧게", "सरल", "संक्षेप", "بسيط", "باختصار", "basit", "kısa",
        "prosty$", "proste$", "krótk", "đơn giản", "ngắn",
    ]),
    ("research", &[
        "state of the art", "state-of-the-art", "open problem", "conjecture", "research",
        "literature", "paper", "best known", "is it known", "novel", "frontier", "cutting-edge",
        "estado del arte", "investigación", "état de l'art", "recherche", "forschung",
        "stand der technik", "ricerca", "pesquisa", "исследован", "研究", "最新", "연구",
        "अनुसंधान", "بحث", "araştırma", "badani", "nghiên cứu",
    ]),
    ("agent", &[
        "tool$", "tools$", "call the", "use the", "search", "fetch", "browse", "run the", "execute",
        "repository", "repo$", "pull request", "deploy", "agent", "then ", "after that", "finally",
        "step 1", "steps$", "workflow", "pipeline", "automate", "file$", "files$", "ticket$", "email$",
        "herramienta", "outil", "werkzeug", "strumento", "ferramenta", "инструмент", "工具",
        "ツール", "도구", "उपकरण", "أداة", "araç", "narzędzi", "công cụ",
    ]),
    ("legal_finance", &[
        "contract", "clause$", "agreement", "liabilit", "indemn", "warrant", "regulation", "gdpr",
        "hipaa", "compliance", "statute", "lawsuit", "legal", "lawyer", "tax$", "ledger",
        "reconcil", "invoice", "accounting", "balance sheet", "depreciat", "interest rate",
        "mortgage", "contrato", "cláusula", "contrat", "clause$", "vertrag", "klausel", "haftung",
        "contratto", "contrato", "overeenkomst", "договор", "налог", "合同", "条款", "税",
        "契約", "条項", "계약", "조항", "세금", "अनुबंध", "عقد", "sözleşme", "umow", "hợp đồng",
    ]),
    ("data", &[
        "csv$", "json$", "table$", "spreadsheet", "excel", "column", "row$", "dataset", "query$",
        "join$", "index$", "log$", "logs$", "metrics", "dashboard", "report$", "tabla", "tableau",
        "tabelle", "tabella", "tabela", "таблиц", "表格", "数据", "データ", "데이터", "표",
        "तालिका", "جدول", "tablo", "dane$", "bảng",
    ]),
    // A language named: the target of a translation ("put this in Hindi",
    // "what's 'cheers' in Portuguese?") or the language a text is in.
    ("language", &[
        "english", "french", "german", "spanish", "italian", "portuguese", "dutch", "russian",
        "chinese", "mandarin", "cantonese", "japanese", "korean", "hindi", "arabic", "turkish",
        "polish", "vietnamese", "swedish", "norwegian", "danish", "finnish", "greek", "hebrew",
        "ukrainian", "czech", "indonesian", "thai$", "latin$", "how do you say", "how do i say",
        "inglés", "francés", "alemán", "español", "portugués", "japonés", "anglais", "français",
        "allemand", "espagnol", "japonais", "chinois", "englisch", "französisch", "deutsch",
        "spanisch", "italienisch", "japanisch", "inglese", "francese", "tedesco", "spagnolo",
        "giapponese", "inglês", "francês", "alemão", "espanhol", "engels", "duits", "spaans",
        "английск", "французск", "немецк", "испанск", "японск", "китайск", "русск", "英语", "英文",
        "法语", "德语", "日语", "中文", "英語", "日本語", "中国語", "フランス語", "ドイツ語", "영어",
        "한국어", "일본어", "중국어", "अंग्रेज़ी", "अंग्रेजी", "हिंदी", "الإنجليزية", "الانجليزية",
        "العربية", "الفرنسية", "ingilizce", "türkçe", "almanca", "angielski", "polski",
        "niemiecki", "tiếng anh", "tiếng việt",
    ]),
    // Everyday advice: tips, ideas, what to do — small talk's practical side.
    ("advice", &[
        "tips", "advice", "ways to", "ideas for", "any ideas", "suggest", "how should i",
        "what should i", "how can i", "how do i", "what can i", "help me", "is it worth",
        "consejo", "ideas para", "conseil", "astuce", "tipps", "ratschl", "consigli", "dicas",
        "tips voor", "совет", "建议", "怎么办", "アドバイス", "コツ", "조언", "팁", "सलाह", "نصائح",
        "öneri", "porad", "lời khuyên",
    ]),
    // Several parts asked at once or a thorough pass: steps, cases, tests.
    ("multipart", &[
        "step by step", "step-by-step", "walk me through", "edge case", "with tests", "and tests",
        "unit tests", "each of", "for each", "both ", "as well as", "and then", "and also",
        "first ", "second", "third", "including", "cover ", "trade-off", "pros and cons",
        "paso a paso", "étape par étape", "schritt für schritt", "passo dopo passo", "passo a passo",
        "пошагово", "по шагам", "一步一步", "逐步", "ステップ", "단계별", "चरण", "خطوة بخطوة",
        "adım adım", "krok po kroku", "từng bước",
    ]),
];

/// The number of concepts: one dense feature each.
pub const COUNT: usize = CONCEPTS.len();
