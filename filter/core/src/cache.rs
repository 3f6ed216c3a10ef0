//! The exact answer cache (filter/README.md, "Cache"): keys, the slot layout in Envoy shared
//! data, the entry encoding and the eviction choice. No host calls: the request
//! flow reads and writes the slots (the host's shared data, with CAS); this module computes what
//! to read, what a value means and what to write.
//!
//! Layout. Shared data is a key → bytes store with compare-and-swap and no
//! delete, shared by every worker VM of one Envoy. The cache owns a fixed
//! number of slots, `aipipe.cache.<n>` for `n` in `0..slots`, each holding at
//! most one entry of at most `max_entry_bytes` bytes (header included), so the
//! values never hold more than `slots × max_entry_bytes` bytes
//! ([`CacheConfig::memory_bound_bytes`]; 256 MiB with the defaults), however
//! many distinct requests arrive. A key may live in either of two slots
//! derived from its hash (2-way set associative): a lookup reads both, an
//! insert overwrites the better victim of the two ([`choose_victim`]: the
//! same key, else an empty or unreadable slot, else an expired entry, else the
//! older entry — LRU-like by insert time).
//!
//! Isolation. A hit requires the entry's full 32-byte key *and* its tenant id
//! to equal the request's ([`lookup`]): tenants never share answers even if
//! two keys ever collided. And each tenant's entries live in its own window
//! of `tenant_share` consecutive slots (starting where the tenant id hashes
//! to), so one tenant's many distinct requests can evict at most that share
//! of everybody's entries ([`slots_for`]).
//!
//! What is cached: non-streamed requests with one choice that are
//! deterministic (`temperature` 0 or a `seed`; absent `temperature` means
//! the provider default 1.0), see [`prepare`], and only where the routed
//! model sees the `temperature` (one that refuses sampling parameters gets
//! the request without it, so the flow bypasses the cache). The key covers the tenant, the
//! routed provider and model, and the request with the fields that cannot
//! change the answer removed ([`IGNORED_FIELDS`]), serialised canonically
//! (object keys sorted, insignificant whitespace gone, `1` = `1.0`).

use serde::Deserialize;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::bytes::contains;
use crate::contract::CACHE_SLOT_PREFIX;

pub const DEFAULT_SLOTS: u32 = 4096;
/// Most non-streamed answers are a few KiB; one of 64 KiB is ~16k tokens.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 64 * 1024;
pub const DEFAULT_TTL_MS: u64 = 5 * 60 * 1000;
const MAX_SLOTS: u32 = 1 << 20;
const MAX_ENTRY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// What `slots × max_entry_bytes` may reach: shared data is process memory.
const MAX_MEMORY_BOUND: u64 = 4 * 1024 * 1024 * 1024;
pub const MAX_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Top-level request fields that do not change the answer. `model` is the
/// name the client asked for; the key holds the routed model instead.
pub const IGNORED_FIELDS: [&str; 8] = [
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "safety_identifier",
    "prompt_cache_key",
];

/// The cache part of the plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Shared-data slots, each holding at most one answer.
    pub slots: u32,
    /// The slots one tenant's entries may occupy (a window of the store):
    /// what one tenant can evict at most. Defaults to a quarter of `slots`;
    /// a single-tenant install may set it to `slots`.
    pub tenant_share: Option<u32>,
    /// Largest encoded entry (answer, content type, tenant id and a 64-byte
    /// header); larger answers are not cached.
    pub max_entry_bytes: usize,
    pub ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            slots: DEFAULT_SLOTS,
            tenant_share: None,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            ttl_ms: DEFAULT_TTL_MS,
        }
    }
}

impl CacheConfig {
    /// Errors name the field, relative to the cache object.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!(
                "slots: must be in 1..={MAX_SLOTS}, got {}",
                self.slots
            ));
        }
        if let Some(share) = self.tenant_share
            && !(1..=self.slots).contains(&share)
        {
            return Err(format!(
                "tenant_share: must be in 1..=slots ({}), got {share}",
                self.slots
            ));
        }
        if !(HEADER_LEN + 1..=MAX_ENTRY_BYTES_LIMIT).contains(&self.max_entry_bytes) {
            return Err(format!(
                "max_entry_bytes: must be in {}..={MAX_ENTRY_BYTES_LIMIT}, got {}",
                HEADER_LEN + 1,
                self.max_entry_bytes
            ));
        }
        if self.memory_bound_bytes() > MAX_MEMORY_BOUND {
            return Err(format!(
                "max_entry_bytes: slots × max_entry_bytes must be at most {MAX_MEMORY_BOUND} bytes, got {}",
                self.memory_bound_bytes()
            ));
        }
        if !(1..=MAX_TTL_MS).contains(&self.ttl_ms) {
            return Err(format!(
                "ttl_ms: must be in 1..={MAX_TTL_MS}, got {}",
                self.ttl_ms
            ));
        }
        Ok(())
    }

    /// The slots one tenant's entries may occupy.
    pub fn share(&self) -> u32 {
        self.tenant_share
            .unwrap_or(self.slots / 4)
            .clamp(1, self.slots.max(1))
    }

    /// The most bytes the cache's values can hold in shared data.
    pub fn memory_bound_bytes(&self) -> u64 {
        u64::from(self.slots)
            .saturating_mul(u64::try_from(self.max_entry_bytes).unwrap_or(u64::MAX))
    }
}

/// Why a request is not looked up nor stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// `stream` is not `false` (a streamed answer is never cached).
    Streamed,
    /// `n` is not 1.
    MultipleChoices,
    /// `temperature` > 0 (or absent) without a `seed`, and the tenant's policy
    /// does not allow caching such answers.
    NonDeterministic,
    /// Not a JSON object; routing refuses it anyway.
    NotJson,
}

impl Bypass {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::Streamed => "streamed",
            Bypass::MultipleChoices => "multiple_choices",
            Bypass::NonDeterministic => "non_deterministic",
            Bypass::NotJson => "not_json",
        }
    }
}

/// Whether a request may be cached; `any_temperature`: the tenant's policy
/// caches non-deterministic requests too.
fn check(request: &Map<String, Value>, any_temperature: bool) -> Result<(), Bypass> {
    // Anything but an explicit `false` may stream: not cacheable.
    if !matches!(
        request.get("stream"),
        None | Some(Value::Null | Value::Bool(false))
    ) {
        return Err(Bypass::Streamed);
    }
    match request.get("n") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => {}
        Some(_) => return Err(Bypass::MultipleChoices),
    }
    {
        let seeded = !matches!(request.get("seed"), None | Some(Value::Null));
        let greedy = match request.get("temperature") {
            // The providers' default temperature is 1.
            None | Some(Value::Null) => false,
            Some(Value::Number(t)) => t.as_f64().is_some_and(|t| t <= 0.0),
            Some(_) => false,
        };
        if !seeded && !greedy && !any_temperature {
            return Err(Bypass::NonDeterministic);
        }
    }
    Ok(())
}

/// The normalised request, hashed: one parse serves the keys of every model
/// the request may be answered by (failover changes the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt([u8; 32]);

/// Parses and normalises a chat request, or says why it bypasses the cache;
/// `any_temperature`: the tenant's policy caches non-deterministic requests
/// too.
pub fn prepare(body: &[u8], any_temperature: bool) -> Result<Prompt, Bypass> {
    // Most requests name neither: they use the default temperature and are
    // refused without a parse. (An escaped key only causes a needless bypass.)
    if !any_temperature && !contains(body, b"temperature") && !contains(body, b"seed") {
        return Err(Bypass::NonDeterministic);
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Err(Bypass::NotJson);
    };
    check(&request, any_temperature)?;
    let mut h = Sha256::new();
    h.update(b"aipipe.cache.prompt.v1\0");
    let mut keys: Vec<(&String, &Value)> = request
        .iter()
        .filter(|(k, _)| !IGNORED_FIELDS.contains(&k.as_str()))
        .collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    object(&mut h, &keys);
    Ok(Prompt(h.finalize().into()))
}

impl Prompt {
    /// The cache key of this request answered by `provider`/`model` for
    /// `tenant_id`.
    pub fn key(&self, tenant_id: &str, provider: &str, model: &str) -> Key {
        let mut h = Sha256::new();
        h.update(b"aipipe.cache.key.v1\0");
        bytes(&mut h, tenant_id.as_bytes());
        bytes(&mut h, provider.as_bytes());
        bytes(&mut h, model.as_bytes());
        h.update(self.0);
        Key(h.finalize().into())
    }
}

// The canonical serialisation: a tag per value, lengths before contents (so
// no two different values share an encoding), object keys sorted.

fn len(h: &mut Sha256, n: usize) {
    h.update(u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes());
}

fn bytes(h: &mut Sha256, b: &[u8]) {
    len(h, b.len());
    h.update(b);
}

fn object(h: &mut Sha256, sorted: &[(&String, &Value)]) {
    h.update(b"o");
    len(h, sorted.len());
    for (k, v) in sorted {
        bytes(h, k.as_bytes());
        value(h, v);
    }
}

fn value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(false) => h.update(b"f"),
        Value::Bool(true) => h.update(b"t"),
        Value::Number(n) => number(h, n),
        Value::String(s) => {
            h.update(b"s");
            bytes(h, s.as_bytes());
        }
        Value::Array(a) => {
            h.update(b"a");
            len(h, a.len());
            for v in a {
                value(h, v);
            }
        }
        Value::Object(m) => {
            // Sorted here, whether or not serde_json keeps insertion order.
            let mut sorted: Vec<(&String, &Value)> = m.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            object(h, &sorted);
        }
    }
}

/// `1`, `1.0` and `1e0` are the same number to a provider.
fn number(h: &mut Sha256, n: &Number) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let int = if let Some(i) = n.as_i64() {
        Some(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Some(i128::from(u))
    } else {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < EXACT)
            .map(|f| f as i128)
    };
    match (int, n.as_f64()) {
        (Some(i), _) => {
            h.update(b"i");
            h.update(i.to_le_bytes());
        }
        (None, Some(f)) => {
            h.update(b"d");
            h.update(f.to_bits().to_le_bytes());
        }
        (None, None) => {
            // Not reachable without serde_json's arbitrary_precision.
            h.update(b"x");
            bytes(h, n.to_string().as_bytes());
        }
    }
}

/// Whether a request's `Cache-Control` asks not to use the cache: a
/// `no-cache` or `no-store` directive (case-insensitive, comma-separated,
/// with or without an argument).
pub fn cache_control_bypass(header_value: &[u8]) -> bool {
    header_value.split(|&b| b == b',').any(|directive| {
        let name = directive.split(|&b| b == b'=').next().unwrap_or_default();
        let name = name.trim_ascii();
        name.eq_ignore_ascii_case(b"no-cache") || name.eq_ignore_ascii_case(b"no-store")
    })
}

/// SHA-256 over the tenant, provider, model and normalised request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Key {
    fn word(&self, i: usize) -> u64 {
        self.0
            .iter()
            .skip(i * 8)
            .take(8)
            .fold(0, |w, &b| (w << 8) | u64::from(b))
    }
}

/// The two slots `key` of `tenant_id` may live in, both inside the
/// tenant's window of [`CacheConfig::share`] slots (equal only when the
/// window is one slot).
pub fn slots_for(key: &Key, tenant_id: &str, cfg: &CacheConfig) -> [u32; 2] {
    let n = u64::from(cfg.slots.max(1));
    let share = u64::from(cfg.share());
    // FNV-1a of the tenant id: where its window starts.
    let base = tenant_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) % n;
    let a = key.word(0) % share;
    let mut b = key.word(1) % share;
    if b == a {
        b = (a + 1) % share;
    }
    let first = (base + a) % n;
    let second = (base + b) % n;
    // Both are below `n`, which fits in u32.
    [
        u32::try_from(first).unwrap_or(0),
        u32::try_from(second).unwrap_or(0),
    ]
}

/// The shared-data key of a slot.
pub fn slot_name(slot: u32) -> String {
    format!("{CACHE_SLOT_PREFIX}{slot}")
}

/// One cached answer, borrowed from the slot's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: Key,
    pub tenant_id: &'a str,
    /// When it was stored (the host clock, ms): the eviction order.
    pub stored_ms: u64,
    /// Not served at or after this time.
    pub expires_ms: u64,
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

// Version 1 layout, little-endian:
//   magic "aipc" | version u8 = 1 | flags u8 = 0 | status u16 | stored_ms u64
//   | expires_ms u64 | key [32] | tenant_len u16 | content_type_len u16
//   | body_len u32 | tenant | content_type | body
// A value that is not exactly this (an older build, garbage, an empty value)
// is no entry.
const MAGIC: &[u8; 4] = b"aipc";
const VERSION: u8 = 1;
/// Fixed part of an encoded entry.
pub const HEADER_LEN: usize = 64;

/// The bytes of `entry`, or `None` if they would exceed `max_entry_bytes`
/// (or a length does not fit its field).
pub fn encode_entry(entry: &Entry<'_>, max_entry_bytes: usize) -> Option<Vec<u8>> {
    let tenant_len = u16::try_from(entry.tenant_id.len()).ok()?;
    let type_len = u16::try_from(entry.content_type.len()).ok()?;
    let body_len = u32::try_from(entry.body.len()).ok()?;
    let total = HEADER_LEN
        .checked_add(entry.tenant_id.len())?
        .checked_add(entry.content_type.len())?
        .checked_add(entry.body.len())?;
    if total > max_entry_bytes {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&entry.status.to_le_bytes());
    out.extend_from_slice(&entry.stored_ms.to_le_bytes());
    out.extend_from_slice(&entry.expires_ms.to_le_bytes());
    out.extend_from_slice(&entry.key.0);
    out.extend_from_slice(&tenant_len.to_le_bytes());
    out.extend_from_slice(&type_len.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(entry.tenant_id.as_bytes());
    out.extend_from_slice(entry.content_type.as_bytes());
    out.extend_from_slice(entry.body);
    Some(out)
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn str(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// The entry in a slot's bytes; `None` for anything that is not exactly one
/// version-1 entry.
pub fn decode_entry(value: &[u8]) -> Option<Entry<'_>> {
    let mut r = Reader(value);
    if r.array::<4>()? != *MAGIC || r.u8()? != VERSION || r.u8()? != 0 {
        return None;
    }
    let status = r.u16()?;
    let stored_ms = r.u64()?;
    let expires_ms = r.u64()?;
    let key = Key(r.array()?);
    let tenant_len = usize::from(r.u16()?);
    let type_len = usize::from(r.u16()?);
    let body_len = usize::try_from(r.u32()?).ok()?;
    let tenant_id = r.str(tenant_len)?;
    let content_type = r.str(type_len)?;
    let body = r.take(body_len)?;
    if !r.0.is_empty() {
        return None;
    }
    Some(Entry {
        key,
        tenant_id,
        stored_ms,
        expires_ms,
        status,
        content_type,
        body,
    })
}

/// The answer a slot's bytes hold for this key and tenant, if still fresh.
pub fn lookup<'a>(value: &'a [u8], key: &Key, tenant_id: &str, now_ms: u64) -> Option<Entry<'a>> {
    decode_entry(value)
        .filter(|e| e.key == *key && e.tenant_id == tenant_id && now_ms < e.expires_ms)
}

/// Which of a key's two slots (as read from shared data, `None` when never
/// written) an insert overwrites: the one already holding this key, else an
/// empty or unreadable one, else an expired one, else the older entry. Ties
/// go to the first slot.
pub fn choose_victim(existing: [Option<&[u8]>; 2], key: &Key, now_ms: u64) -> usize {
    let rank = |value: Option<&[u8]>| match value.and_then(decode_entry) {
        Some(e) if e.key == *key => (0, 0),
        None => (1, 0),
        Some(e) if e.expires_ms <= now_ms => (2, e.stored_ms),
        Some(e) => (3, e.stored_ms),
    };
    let [a, b] = existing;
    usize::from(rank(b) < rank(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str =
        r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;

    fn key(tenant: &str, body: &str) -> Key {
        prepare(body.as_bytes(), false)
            .unwrap()
            .key(tenant, "openai", "gpt-4o-mini")
    }

    fn entry<'a>(k: Key, tenant: &'a str, stored: u64, body: &'a [u8]) -> Entry<'a> {
        Entry {
            key: k,
            tenant_id: tenant,
            stored_ms: stored,
            expires_ms: stored + DEFAULT_TTL_MS,
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    #[test]
    fn two_tenants_with_identical_bodies_never_share_an_answer() {
        let (a, b) = (key("tenant-a", BODY), key("tenant-b", BODY));
        assert_ne!(a, b);
        let stored = encode_entry(&entry(a, "tenant-a", 10, b"{}"), usize::MAX).unwrap();
        assert!(lookup(&stored, &a, "tenant-a", 11).is_some());
        assert!(lookup(&stored, &b, "tenant-b", 11).is_none());
        // Even a (hypothetical) key collision does not cross tenants.
        assert!(lookup(&stored, &a, "tenant-b", 11).is_none());
    }

    #[test]
    fn provider_and_model_are_part_of_the_key() {
        let p = prepare(BODY.as_bytes(), false).unwrap();
        assert_ne!(
            p.key("t", "openai", "gpt-4o"),
            p.key("t", "openai", "gpt-4o-mini")
        );
        assert_ne!(p.key("t", "openai", "m"), p.key("t", "azure", "m"));
        // Length prefixes: moving a byte between fields changes the key.
        assert_ne!(p.key("ta", "b", "m"), p.key("t", "ab", "m"));
        assert_eq!(key("t", BODY), p.key("t", "openai", "gpt-4o-mini"));
    }

    #[test]
    fn formatting_key_order_and_ignored_fields_do_not_change_the_key() {
        let same = [
            "{ \"temperature\" : 0.0 ,\n \"messages\":[{\"content\":\"hi\",\"role\":\"user\"}]}",
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0,"model":"gpt-4o","stream":false,"user":"u-1","metadata":{"a":"b"},"store":true,"stream_options":null}"#,
            r#"{"messages":[{"role":"user","content":"h\u0069"}],"temperature":0e0}"#,
        ];
        for body in same {
            assert_eq!(key("t", body), key("t", BODY), "{body}");
        }
    }

    #[test]
    fn every_parameter_that_changes_the_answer_changes_the_key() {
        let base = key("t", BODY);
        let differ = [
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0,"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0,"response_format":{"type":"json_object"}}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0,"seed":1}"#,
            r#"{"messages":[{"role":"user","content":"hi "}],"temperature":0}"#,
            r#"{"messages":[{"role":"system","content":"hi"}],"temperature":0}"#,
        ];
        let mut keys = vec![base];
        for body in differ {
            let k = key("t", body);
            assert!(!keys.contains(&k), "{body}");
            keys.push(k);
        }
        // Temperature itself, for seeded requests.
        let t = |b: &str| prepare(b.as_bytes(), false).unwrap().key("t", "p", "m");
        assert_ne!(
            t(r#"{"messages":[],"seed":1,"temperature":0.7}"#),
            t(r#"{"messages":[],"seed":1,"temperature":0.2}"#)
        );
        assert_ne!(
            t(r#"{"messages":[],"seed":1}"#),
            t(r#"{"messages":[],"seed":1,"temperature":0}"#)
        );
        // Nested key order is normalised, nested values are not ignored.
        assert_eq!(
            t(
                r#"{"messages":[],"seed":1,"response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true}}}"#
            ),
            t(
                r#"{"seed":1,"messages":[],"response_format":{"json_schema":{"strict":true,"name":"a"},"type":"json_schema"}}"#
            )
        );
        assert_ne!(
            t(r#"{"messages":[],"seed":1,"response_format":{"json_schema":{"strict":true}}}"#),
            t(r#"{"messages":[],"seed":1,"response_format":{"json_schema":{"strict":false}}}"#)
        );
        // Structure is not confused with strings that look like it.
        assert_ne!(
            t(r#"{"seed":1,"a":["b","c"]}"#),
            t(r#"{"seed":1,"a":["bc"]}"#)
        );
        assert_ne!(t(r#"{"seed":1,"a":"1"}"#), t(r#"{"seed":1,"a":1}"#));
        assert_ne!(t(r#"{"seed":1,"a":null}"#), t(r#"{"seed":1}"#));
    }

    #[test]
    fn what_bypasses_the_cache_and_why() {
        let why = |body: &str| prepare(body.as_bytes(), false).err();
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        let b = |extra: &str| format!("{{{msgs}{extra}}}");
        assert_eq!(why(&b("")), Some(Bypass::NonDeterministic));
        assert_eq!(
            why(&b(r#","temperature":0.3"#)),
            Some(Bypass::NonDeterministic)
        );
        assert_eq!(
            why(&b(r#","temperature":"0""#)),
            Some(Bypass::NonDeterministic)
        );
        assert_eq!(
            why(&b(r#","temperature":null"#)),
            Some(Bypass::NonDeterministic)
        );
        assert_eq!(why(&b(r#","temperature":0.3,"seed":7"#)), None);
        assert_eq!(why(&b(r#","seed":7"#)), None);
        assert_eq!(why(&b(r#","temperature":0"#)), None);
        // A tenant whose policy caches non-deterministic answers: any
        // temperature, but still whole, single answers only.
        let any = |body: &str| prepare(body.as_bytes(), true).err();
        assert_eq!(any(&b("")), None);
        assert_eq!(any(&b(r#","temperature":0.9"#)), None);
        assert_eq!(any(&b(r#","stream":true"#)), Some(Bypass::Streamed));
        assert_eq!(any(&b(r#","n":2"#)), Some(Bypass::MultipleChoices));
        assert_eq!(
            why(&b(r#","temperature":0,"stream":true"#)),
            Some(Bypass::Streamed)
        );
        assert_eq!(
            why(&b(r#","seed":1,"stream":"yes""#)),
            Some(Bypass::Streamed)
        );
        assert_eq!(why(&b(r#","seed":1,"stream":false"#)), None);
        assert_eq!(why(&b(r#","seed":1,"n":2"#)), Some(Bypass::MultipleChoices));
        assert_eq!(
            why(&b(r#","seed":1,"n":"1""#)),
            Some(Bypass::MultipleChoices)
        );
        assert_eq!(why(&b(r#","seed":1,"n":1"#)), None);
        assert_eq!(why(r#"[{"temperature":0}]"#), Some(Bypass::NotJson));
        assert_eq!(why(r#"{"temperature":0"#), Some(Bypass::NotJson));
        assert_eq!(why("seed"), Some(Bypass::NotJson));
    }

    #[test]
    fn cache_control_no_cache_and_no_store_bypass() {
        for v in [
            "no-cache",
            "No-Store",
            "max-age=0, no-cache",
            "  NO-CACHE  ",
            "no-cache=\"set-cookie\"",
            "private,no-store ,max-age=5",
        ] {
            assert!(cache_control_bypass(v.as_bytes()), "{v}");
        }
        for v in [
            "",
            "max-age=0",
            "no-transform",
            "only-if-cached",
            "x-no-cache",
            "\u{ff}no-cache",
        ] {
            assert!(!cache_control_bypass(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn entries_round_trip_and_expire() {
        let k = key("t", BODY);
        let e = entry(k, "t", 1_000, br#"{"choices":[]}"#);
        let bytes = encode_entry(&e, DEFAULT_MAX_ENTRY_BYTES).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 1 + 16 + 14);
        assert_eq!(decode_entry(&bytes), Some(e));
        assert_eq!(lookup(&bytes, &k, "t", 1_000), Some(e));
        assert!(lookup(&bytes, &k, "t", e.expires_ms - 1).is_some());
        assert!(lookup(&bytes, &k, "t", e.expires_ms).is_none());
        assert!(lookup(&bytes, &key("t", r#"{"seed":1}"#), "t", 1_000).is_none());
    }

    #[test]
    fn garbage_values_are_no_entry() {
        let k = key("t", BODY);
        let good = encode_entry(&entry(k, "t", 1, b"body"), usize::MAX).unwrap();
        assert!(decode_entry(b"").is_none());
        assert!(decode_entry(b"aipc").is_none());
        for cut in 0..good.len() {
            assert!(decode_entry(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_entry(&longer).is_none());
        let mut bad = good.clone();
        bad[4] = 2; // a future version
        assert!(decode_entry(&bad).is_none());
        let mut bad = good.clone();
        bad[HEADER_LEN] = 0xff; // tenant id not UTF-8
        assert!(decode_entry(&bad).is_none());
        let mut bad = good.clone();
        bad[60..64].copy_from_slice(&u32::MAX.to_le_bytes()); // body length
        assert!(decode_entry(&bad).is_none());
        assert!(lookup(b"\x00\x01garbage", &k, "t", 0).is_none());
    }

    #[test]
    fn answers_over_the_size_bound_are_not_stored() {
        let k = key("t", BODY);
        let body = vec![b'x'; 1000];
        let e = entry(k, "t", 1, &body);
        let exact = HEADER_LEN + 1 + "application/json".len() + 1000;
        assert_eq!(encode_entry(&e, exact).map(|v| v.len()), Some(exact));
        assert!(encode_entry(&e, exact - 1).is_none());
        let long_tenant = "t".repeat(70_000);
        assert!(encode_entry(&entry(k, &long_tenant, 1, b""), usize::MAX).is_none());
    }

    #[test]
    fn eviction_prefers_same_key_then_empty_then_expired_then_older() {
        let (k, other) = (key("t", BODY), key("u", BODY));
        let at = |k, stored| encode_entry(&entry(k, "t", stored, b"x"), usize::MAX).unwrap();
        let now = 10_000;
        let live_old = at(other, 5_000);
        let live_new = at(other, 9_000);
        // The newest of all, but its time is up.
        let expired = encode_entry(
            &Entry {
                expires_ms: now,
                ..entry(other, "t", 9_900, b"x")
            },
            usize::MAX,
        )
        .unwrap();
        let mine = at(k, 9_500);
        let v = |a: &[u8], b: &[u8]| choose_victim([Some(a), Some(b)], &k, now);
        assert_eq!(choose_victim([None, None], &k, now), 0);
        assert_eq!(choose_victim([Some(&live_new), None], &k, now), 1);
        assert_eq!(v(&live_new, b"garbage"), 1);
        assert_eq!(v(&live_new, &mine), 1);
        assert_eq!(choose_victim([None, Some(&mine)], &k, now), 1);
        assert_eq!(v(&live_old, &expired), 1);
        assert_eq!(v(&expired, &live_old), 0);
        assert_eq!(v(&live_new, &live_old), 1);
        assert_eq!(v(&live_old, &live_new), 0);
        assert_eq!(v(&live_old, &live_old), 0);
    }

    #[test]
    fn slots_are_two_distinct_slots_in_range() {
        let cfg = CacheConfig {
            slots: 7,
            tenant_share: Some(7),
            ..CacheConfig::default()
        };
        for i in 0..200 {
            let k = key("t", &format!(r#"{{"seed":{i}}}"#));
            let [a, b] = slots_for(&k, "t", &cfg);
            assert!(a < 7 && b < 7 && a != b);
        }
        let one = CacheConfig {
            slots: 1,
            ..CacheConfig::default()
        };
        assert_eq!(slots_for(&key("t", BODY), "t", &one), [0, 0]);
        assert_eq!(slot_name(42), "aipipe.cache.42");
    }

    #[test]
    fn one_tenant_can_occupy_only_its_share_of_the_slots() {
        let cfg = CacheConfig {
            slots: 1024,
            ..CacheConfig::default()
        };
        assert_eq!(cfg.share(), 256);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..20_000 {
            let k = key("greedy", &format!(r#"{{"seed":{i}}}"#));
            used.extend(slots_for(&k, "greedy", &cfg));
        }
        assert_eq!(used.len(), 256, "a tenant reaches exactly its window");
        let e = CacheConfig {
            tenant_share: Some(2000),
            ..cfg
        }
        .validate()
        .unwrap_err();
        assert!(e.starts_with("tenant_share:"), "{e}");
    }

    #[test]
    fn config_defaults_bound_and_errors_name_the_field() {
        let c: CacheConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, CacheConfig::default());
        assert!(c.enabled);
        assert_eq!(c.ttl_ms, 300_000);
        assert_eq!(c.memory_bound_bytes(), 256 * 1024 * 1024);
        c.validate().unwrap();
        let c: CacheConfig = serde_json::from_str(r#"{"enabled":false,"ttl_ms":1000}"#).unwrap();
        assert!(!c.enabled && c.slots == DEFAULT_SLOTS);
        assert!(serde_json::from_str::<CacheConfig>(r#"{"ttl":1}"#).is_err());
        let err = |c: CacheConfig| c.validate().unwrap_err();
        let d = CacheConfig::default();
        assert!(
            err(CacheConfig {
                slots: 0,
                ..d.clone()
            })
            .starts_with("slots:")
        );
        assert!(
            err(CacheConfig {
                max_entry_bytes: 10,
                ..d.clone()
            })
            .starts_with("max_entry_bytes:")
        );
        assert!(
            err(CacheConfig {
                slots: MAX_SLOTS,
                max_entry_bytes: MAX_ENTRY_BYTES_LIMIT,
                ..d.clone()
            })
            .starts_with("max_entry_bytes:")
        );
        assert!(err(CacheConfig { ttl_ms: 0, ..d }).starts_with("ttl_ms:"));
    }
}
