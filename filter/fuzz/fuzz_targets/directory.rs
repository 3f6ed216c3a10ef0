//! Arbitrary bytes as a directory delta or entry, or a tenant's held budget
//! spend (what the singleton and every worker decode from the control plane
//! and shared data): refused or decoded, never a panic; whatever decodes
//! encodes back to the same bytes.
#![no_main]

use aipipe_core::budget::Held;
use aipipe_core::directory::{BudgetEntry, Delta, DeltaWriter, KeyEntry, TenantEntry, entry_rev};
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
    if let Ok(d) = Delta::parse(data) {
        let mut w = DeltaWriter::new(d.since);
        for r in &d.records {
            w.push(r.kind, r.name, r.value);
        }
        assert_eq!(w.finish(d.revision, d.more), data, "a delta re-encodes");
    }
});
