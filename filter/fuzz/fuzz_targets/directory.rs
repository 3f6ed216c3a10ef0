//! Arbitrary bytes as a directory delta or entry, a tenant's held budget
//! spend, or a tenant's router correction and a request's router features
//! (what the singleton and every worker decode from the control plane and
//! shared data, and the control plane from usage records): refused or
//! decoded, never a panic; whatever decodes encodes back to the same bytes.
#![no_main]

use aipipe_core::budget::Held;
use aipipe_core::directory::{BudgetEntry, Delta, DeltaWriter, KeyEntry, TenantEntry, entry_rev};
use aipipe_core::tenant_router::{Adjustment, decode_features, encode_features};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = TenantEntry::decode(data) {
        assert_eq!(t.encode(), data, "a tenant entry re-encodes to its bytes");
        assert_eq!(entry_rev(data), Some(t.rev));
    }
    if let Ok(k) = KeyEntry::decode(data) {
        assert_eq!(k.encode(), data, "a key entry re-encodes to its bytes");
    }
    if let Ok(b) = BudgetEntry::decode(data) {
        assert_eq!(b.encode(), data, "a budget entry re-encodes to its bytes");
        assert_eq!(entry_rev(data), Some(b.rev));
    }
    // A tenant's held budget spend (shared data every worker rewrites).
    if let Some(h) = Held::decode(data) {
        assert_eq!(h.encode(), data, "held spend re-encodes to its bytes");
    }
    if let Ok(a) = Adjustment::decode(data) {
        assert_eq!(a.encode(), data, "a router correction re-encodes to its bytes");
    }
    if let Ok((version, f)) = decode_features(data) {
        assert_eq!(encode_features(version, &f), data, "features re-encode");
    }
    if let Ok(d) = Delta::parse(data) {
        let mut w = DeltaWriter::new(d.since);
        for r in &d.records {
            w.push(r.kind, r.name, r.value);
        }
        assert_eq!(w.finish(d.revision, d.more), data, "a delta re-encodes");
    }
});
