//! The tenant directory (filter/README.md, "Tenant directory"): one entry
//! per tenant (its provider keys, whether it is disabled) and one per
//! virtual-key hash (→ its tenant), each carrying the revision of the change
//! that wrote it. The control plane sends changed entries in a delta; the
//! singleton writes each into Envoy's shared data under its own key, byte
//! for byte as it came; a worker reads the one entry a request needs. Nobody
//! but the control plane's database ever holds the whole directory.
//!
//! Everything here is a compact binary encoding (little-endian integers,
//! length-prefixed strings) with a decoder that refuses anything malformed:
//! the bytes cross a process boundary and a worker must never trust them
//! blindly.
//!
//! ```text
//! tenant entry  u8 format=1 | u64 rev | u8 flags (1 removed, 2 disabled,
//!               4 no pass-through, 8 limits, 16 policy)
//!               | u16 n | n × (str8 provider | str16 key) [| limits]
//!               [| str16 policy JSON]
//! key entry     u8 format=1 | u64 rev | u8 flags (1 removed, 2 limits, 4 id,
//!               8 has a budget)
//!               | str16 tenant [| limits] [| str8 key id]
//! limits        u32 requests_per_minute | u64 tokens_per_minute
//! budget entry  u8 format=1 | u64 rev | u8 flags (1 removed) | u64 limit_nusd
//!               | u16 days | u64 spent_nusd | u16 n | n × (u64 at_ms | u64 nusd)
//! delta         "APD1" | u64 since | u64 revision | u8 flags (1 more)
//!               | u32 n | n × (u8 kind | str16 name | bytes32 value)
//! ```
//!
//! A delta's records are the global table (kind 0: the routing table's JSON,
//! tenants left out), tenant entries (kind 1, named by tenant id), key
//! entries (kind 2, named by the key's lower-case hex SHA-256), tenant
//! budget entries (kind 3, named by tenant id; `crate::budget`) and virtual
//! key budget entries (kind 4, the same encoding, named by key id). `since` is
//! the revision the receiver must hold for the delta to apply; `revision`
//! the one it holds after; `more` says another page follows at once.

use crate::bytes;
use crate::contract::{
    DIRECTORY_BUDGET_PREFIX, DIRECTORY_KEY_BUDGET_PREFIX, DIRECTORY_KEY_PREFIX,
    DIRECTORY_TENANT_PREFIX,
};
use crate::ratelimit::Limits;

const FORMAT: u8 = 1;
const REMOVED: u8 = 1;
const DISABLED: u8 = 2;
const NO_PASS_THROUGH: u8 = 4;
const TENANT_LIMITS: u8 = 8;
const TENANT_POLICY: u8 = 16;
const TENANT_ROUTER: u8 = 32;
const KEY_LIMITS: u8 = 2;
const KEY_ID: u8 = 4;
const KEY_BUDGETED: u8 = 8;
const MAGIC: &[u8; 4] = b"APD1";
const MORE: u8 = 1;

/// What one directory entry says about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub rev: u64,
    /// The tenant was deleted at `rev` (a tombstone: an older upsert arriving
    /// late must not bring it back).
    pub removed: bool,
    pub disabled: bool,
    /// Whether the provider pass-through paths are open to it.
    pub pass_through: bool,
    /// (provider id, key).
    pub provider_keys: Vec<(String, String)>,
    /// Its rate limits (`crate::ratelimit`); none when both are 0.
    pub limits: Limits,
    /// Its routing policy as JSON (`crate::policy::Policy`); empty: none.
    pub policy: String,
    /// Its correction to the router model
    /// (`crate::tenant_router::Adjustment`, encoded); empty: none.
    pub router: Vec<u8>,
}

/// What one directory entry says about a virtual key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub rev: u64,
    /// Revoked (or its tenant deleted) at `rev`.
    pub removed: bool,
    pub tenant: String,
    /// The key's own rate limits, on top of its tenant's.
    pub limits: Limits,
    /// The key's id (`vk_…`, no secret): what its usage records and its
    /// budget are named by. Empty in entries of older control planes.
    pub id: String,
    /// The key has a budget of its own (a key budget entry named by `id`):
    /// only then does a request look for it.
    pub budgeted: bool,
}

/// A malformed entry or delta.
/// A tenant's budget as the control plane last computed it
/// (control-plane/README.md, "Budgets"): the limit over a window of whole
/// UTC days, the spend the window held at `rev`, and when each day's spend
/// leaves the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetEntry {
    pub rev: u64,
    /// The budget was removed at `rev`.
    pub removed: bool,
    pub limit_nusd: u64,
    pub days: u16,
    /// Spend recorded in the window when the entry was written.
    pub spent_nusd: u64,
    /// (unix ms at which it leaves the window, nano-dollars), oldest first:
    /// one per day of the window that has spend.
    pub frees: Vec<(u64, u64)>,
}

/// The most days a budget window spans.
pub const MAX_BUDGET_DAYS: u16 = 366;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The shared-data key of a tenant's entry.
pub fn tenant_key(id: &str) -> String {
    format!("{DIRECTORY_TENANT_PREFIX}{id}")
}

/// The shared-data key of a virtual key's entry (by its hex hash).
pub fn key_key(hex_hash: &str) -> String {
    format!("{DIRECTORY_KEY_PREFIX}{hex_hash}")
}

pub fn budget_key(tenant: &str) -> String {
    format!("{DIRECTORY_BUDGET_PREFIX}{tenant}")
}

/// The shared-data key of a virtual key's budget entry (by key id).
pub fn key_budget_key(key_id: &str) -> String {
    format!("{DIRECTORY_KEY_BUDGET_PREFIX}{key_id}")
}

/// The revision an encoded entry (of either kind) carries, read without
/// decoding the rest.
pub fn entry_rev(bytes: &[u8]) -> Option<u64> {
    let mut r = Reader::new(bytes);
    (r.u8().ok()? == FORMAT).then_some(())?;
    r.u64().ok()
}

impl TenantEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            12 + self
                .provider_keys
                .iter()
                .map(|(p, k)| p.len() + k.len() + 3)
                .sum::<usize>(),
        );
        out.push(FORMAT);
        out.extend_from_slice(&self.rev.to_le_bytes());
        out.push(
            flag(self.removed, REMOVED)
                | flag(self.disabled, DISABLED)
                | flag(!self.pass_through, NO_PASS_THROUGH)
                | flag(!self.limits.is_none(), TENANT_LIMITS)
                | flag(!self.policy.is_empty(), TENANT_POLICY)
                | flag(!self.router.is_empty(), TENANT_ROUTER),
        );
        let n = self.provider_keys.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (p, k) in self.provider_keys.iter().take(n) {
            put_str8(&mut out, p);
            put_str16(&mut out, k);
        }
        put_limits(&mut out, &self.limits);
        if !self.policy.is_empty() {
            put_str16(&mut out, &self.policy);
        }
        if !self.router.is_empty() {
            let len = u32::try_from(self.router.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(self.router.get(..len as usize).unwrap_or(&self.router));
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(DecodeError("unknown tenant entry format"));
        }
        let rev = r.u64()?;
        let flags = r.flags(
            REMOVED | DISABLED | NO_PASS_THROUGH | TENANT_LIMITS | TENANT_POLICY | TENANT_ROUTER,
        )?;
        let n = r.u16()?;
        let mut provider_keys = Vec::with_capacity(usize::from(n).min(64));
        for _ in 0..n {
            let p = r.str8()?;
            let k = r.str16()?;
            provider_keys.push((p.to_owned(), k.to_owned()));
        }
        let limits = r.limits(flags & TENANT_LIMITS != 0)?;
        let policy = if flags & TENANT_POLICY != 0 {
            let p = r.str16()?;
            if p.is_empty() {
                return Err(DecodeError("policy flagged but empty"));
            }
            p.to_owned()
        } else {
            String::new()
        };
        let router = if flags & TENANT_ROUTER != 0 {
            let len = r.u32()? as usize;
            if len == 0 {
                return Err(DecodeError("router adjustment flagged but empty"));
            }
            r.take(len)?.to_vec()
        } else {
            Vec::new()
        };
        r.end()?;
        Ok(Self {
            rev,
            removed: flags & REMOVED != 0,
            disabled: flags & DISABLED != 0,
            pass_through: flags & NO_PASS_THROUGH == 0,
            provider_keys,
            limits,
            policy,
            router,
        })
    }
}

impl KeyEntry {
    pub fn encode(&self) -> Vec<u8> {
        // Ids are short (`vk_` and 18 hex digits); one that could not be
        // written whole is left out rather than cut.
        let id = if self.id.len() <= usize::from(u8::MAX) {
            self.id.as_str()
        } else {
            ""
        };
        let mut out = Vec::with_capacity(13 + self.tenant.len() + id.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.rev.to_le_bytes());
        out.push(
            flag(self.removed, REMOVED)
                | flag(!self.limits.is_none(), KEY_LIMITS)
                | flag(!id.is_empty(), KEY_ID)
                | flag(self.budgeted, KEY_BUDGETED),
        );
        put_str16(&mut out, &self.tenant);
        put_limits(&mut out, &self.limits);
        if !id.is_empty() {
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(DecodeError("unknown key entry format"));
        }
        let rev = r.u64()?;
        let flags = r.flags(REMOVED | KEY_LIMITS | KEY_ID | KEY_BUDGETED)?;
        let tenant = r.str16()?.to_owned();
        let limits = r.limits(flags & KEY_LIMITS != 0)?;
        let id = if flags & KEY_ID != 0 {
            let id = r.str8()?;
            if id.is_empty() {
                // Written without its flag: one encoding per entry.
                return Err(DecodeError("an empty key id"));
            }
            id.to_owned()
        } else {
            String::new()
        };
        r.end()?;
        Ok(Self {
            rev,
            removed: flags & REMOVED != 0,
            tenant,
            limits,
            id,
            budgeted: flags & KEY_BUDGETED != 0,
        })
    }
}

/// What a delta record carries.
impl BudgetEntry {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.frees.len().min(usize::from(MAX_BUDGET_DAYS));
        let mut out = Vec::with_capacity(32 + 16 * n);
        out.push(FORMAT);
        out.extend_from_slice(&self.rev.to_le_bytes());
        out.push(flag(self.removed, REMOVED));
        out.extend_from_slice(&self.limit_nusd.to_le_bytes());
        out.extend_from_slice(&self.days.to_le_bytes());
        out.extend_from_slice(&self.spent_nusd.to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (at, nusd) in self.frees.iter().take(n) {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&nusd.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(DecodeError("unknown budget entry format"));
        }
        let rev = r.u64()?;
        let flags = r.flags(REMOVED)?;
        let limit_nusd = r.u64()?;
        let days = r.u16()?;
        if days == 0 || days > MAX_BUDGET_DAYS {
            return Err(DecodeError("budget window out of range"));
        }
        let spent_nusd = r.u64()?;
        let n = r.u16()?;
        if n > MAX_BUDGET_DAYS {
            return Err(DecodeError("more budget days than a window holds"));
        }
        let mut frees = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            frees.push((r.u64()?, r.u64()?));
        }
        r.end()?;
        Ok(Self {
            rev,
            removed: flags & REMOVED != 0,
            limit_nusd,
            days,
            spent_nusd,
            frees,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The global table (JSON).
    Global,
    Tenant,
    Key,
    Budget,
    /// A virtual key's budget (a [`BudgetEntry`] named by key id).
    KeyBudget,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Global => 0,
            Kind::Tenant => 1,
            Kind::Key => 2,
            Kind::Budget => 3,
            Kind::KeyBudget => 4,
        }
    }

    fn of(code: u8) -> Result<Self, DecodeError> {
        match code {
            0 => Ok(Kind::Global),
            1 => Ok(Kind::Tenant),
            2 => Ok(Kind::Key),
            3 => Ok(Kind::Budget),
            4 => Ok(Kind::KeyBudget),
            _ => Err(DecodeError("unknown delta record kind")),
        }
    }
}

/// Builds a delta (the control plane's side).
pub struct DeltaWriter {
    out: Vec<u8>,
    count: u32,
}

const COUNT_AT: usize = 4 + 8 + 8 + 1;

impl DeltaWriter {
    pub fn new(since: u64) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&since.to_le_bytes());
        out.extend_from_slice(&[0; 8 + 1 + 4]);
        Self { out, count: 0 }
    }

    pub fn push(&mut self, kind: Kind, name: &str, value: &[u8]) {
        self.out.push(kind.code());
        put_str16(&mut self.out, name);
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out
            .extend_from_slice(value.get(..len as usize).unwrap_or(value));
        self.count = self.count.saturating_add(1);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The delta, bringing its receiver to `revision`.
    pub fn finish(mut self, revision: u64, more: bool) -> Vec<u8> {
        if let Some(slot) = self.out.get_mut(12..20) {
            slot.copy_from_slice(&revision.to_le_bytes());
        }
        if let Some(flags) = self.out.get_mut(20) {
            *flags = if more { MORE } else { 0 };
        }
        if let Some(slot) = self.out.get_mut(COUNT_AT..COUNT_AT + 4) {
            slot.copy_from_slice(&self.count.to_le_bytes());
        }
        self.out
    }
}

/// A parsed delta (the singleton's side); its records borrow the body.
#[derive(Debug)]
pub struct Delta<'a> {
    pub since: u64,
    pub revision: u64,
    pub more: bool,
    pub records: Vec<Record<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub value: &'a [u8],
}

impl<'a> Delta<'a> {
    /// Parses a whole delta; any malformed byte refuses all of it.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        if r.take(4)? != MAGIC {
            return Err(DecodeError("not a directory delta"));
        }
        let since = r.u64()?;
        let revision = r.u64()?;
        let more = r.flags(MORE)? & MORE != 0;
        let n = r.u32()?;
        let mut records = Vec::with_capacity((n as usize).min(4096));
        for _ in 0..n {
            let kind = Kind::of(r.u8()?)?;
            let name = r.str16()?;
            let len = r.u32()? as usize;
            let value = r.take(len)?;
            records.push(Record { kind, name, value });
        }
        r.end()?;
        if revision < since {
            return Err(DecodeError("a delta cannot go back in revision"));
        }
        Ok(Self {
            since,
            revision,
            more,
            records,
        })
    }
}

/// Limits, written only when there are any (the flag says so).
fn put_limits(out: &mut Vec<u8>, l: &Limits) {
    if !l.is_none() {
        out.extend_from_slice(&l.requests_per_minute.to_le_bytes());
        out.extend_from_slice(&l.tokens_per_minute.to_le_bytes());
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

fn put_str8(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let b = b.get(..b.len().min(usize::from(u8::MAX))).unwrap_or(b);
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// The shared reader, with this encoding's errors.
struct Reader<'a>(bytes::Reader<'a>);

const SHORT: DecodeError = DecodeError("truncated");

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self(bytes::Reader::new(b))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.0.take(n).ok_or(SHORT)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.0.u8().ok_or(SHORT)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.0.u16().ok_or(SHORT)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.0.u32().ok_or(SHORT)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.0.u64().ok_or(SHORT)
    }

    /// A flags byte with no bit outside `known` (so every valid encoding is
    /// the only one of its value).
    fn flags(&mut self, known: u8) -> Result<u8, DecodeError> {
        let f = self.u8()?;
        if f & !known != 0 {
            return Err(DecodeError("unknown flags"));
        }
        Ok(f)
    }

    fn str_of(&mut self, n: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError("a string is not UTF-8"))
    }

    fn str8(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u8()?;
        self.str_of(usize::from(n))
    }

    fn str16(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u16()?;
        self.str_of(usize::from(n))
    }

    /// Limits when `present` (none written as such is malformed: the
    /// encoder writes them only when one is set).
    fn limits(&mut self, present: bool) -> Result<Limits, DecodeError> {
        if !present {
            return Ok(Limits::default());
        }
        let l = Limits {
            requests_per_minute: self.u32()?,
            tokens_per_minute: self.u64()?,
        };
        if l.is_none() {
            return Err(DecodeError("limits flagged but none set"));
        }
        Ok(l)
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.0.at_end() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantEntry {
        TenantEntry {
            rev: 42,
            removed: false,
            disabled: true,
            pass_through: false,
            provider_keys: vec![
                ("openai".into(), "sk-a".into()),
                ("anthropic".into(), "sk-ant-é".into()),
            ],
            limits: Default::default(),
            policy: Default::default(),
            router: Vec::new(),
        }
    }

    #[test]
    fn entries_round_trip_and_carry_their_revision_up_front() {
        let t = tenant();
        let bytes = t.encode();
        assert_eq!(TenantEntry::decode(&bytes), Ok(t));
        assert_eq!(entry_rev(&bytes), Some(42));
        let k = KeyEntry {
            rev: 7,
            removed: true,
            tenant: "acme".into(),
            limits: Default::default(),
            id: String::new(),
            budgeted: false,
        };
        assert_eq!(KeyEntry::decode(&k.encode()), Ok(k.clone()));
        let named = KeyEntry {
            id: "vk_0123456789abcdef01".into(),
            budgeted: true,
            ..k
        };
        assert_eq!(KeyEntry::decode(&named.encode()), Ok(named));
    }

    #[test]
    fn every_truncation_and_corruption_is_refused_without_panic() {
        let bytes = tenant().encode();
        for n in 0..bytes.len() {
            assert!(TenantEntry::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            TenantEntry::decode(&longer),
            Err(DecodeError("trailing bytes"))
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = TenantEntry::decode(&b);
            let _ = KeyEntry::decode(&b);
            let _ = Delta::parse(&b);
        }
    }

    #[test]
    fn a_delta_round_trips_its_records_in_order() {
        let mut w = DeltaWriter::new(5);
        assert!(w.is_empty());
        w.push(Kind::Global, "", b"{}");
        w.push(Kind::Tenant, "acme", &tenant().encode());
        w.push(Kind::Key, "ab12", b"x");
        let body = w.finish(9, true);
        let d = Delta::parse(&body).unwrap();
        assert_eq!((d.since, d.revision, d.more), (5, 9, true));
        let kinds: Vec<(Kind, &str)> = d.records.iter().map(|r| (r.kind, r.name)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Global, ""),
                (Kind::Tenant, "acme"),
                (Kind::Key, "ab12")
            ]
        );
        assert_eq!(d.records[2].value, b"x");
        for n in 0..body.len() {
            assert!(Delta::parse(&body[..n]).is_err(), "prefix {n}");
        }
        let back = DeltaWriter::new(9).finish(3, false);
        assert!(Delta::parse(&back).is_err(), "revision before since");
    }
}
