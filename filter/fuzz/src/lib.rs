//! Shared fixtures of the fuzz targets: the default routing table with a few
//! tenants, compiled once per process.

use std::sync::OnceLock;

use aipipe_core::table::{RoutingTable, Table, Tenant};

/// Tenant 0 has OpenAI and Anthropic keys (filter/README.md,
/// "Model selection"), tenant 1 only OpenAI, tenant 2 none, tenant 3 is
/// disabled. Index 4 is no tenant at all.
pub const TENANTS: [usize; 5] = [0, 1, 2, 3, 4];

fn tenant(id: &str, disabled: bool, providers: &[&str]) -> Tenant {
    Tenant {
        id: id.to_owned(),
        disabled,
        pass_through: true,
        virtual_key_hashes: vec![aipipe_core::table::hex_hash(&format!("vk-{id}"))],
        provider_keys: providers
            .iter()
            .map(|p| ((*p).to_owned(), format!("sk-{p}-{id}")))
            .collect(),
        limits: Default::default(),
        policy: Default::default(),
    }
}

/// The default catalog and scoring with the tenants of [`TENANTS`].
pub fn default_table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let raw = RoutingTable {
            tenants: vec![
                tenant("both", false, &["openai", "anthropic"]),
                tenant("openai-only", false, &["openai"]),
                tenant("keyless", false, &[]),
                tenant("off", true, &["openai", "anthropic"]),
            ],
            ..RoutingTable::default()
        };
        match Table::compile(raw) {
            Ok(t) => t,
            Err(e) => panic!("the default table must compile: {e}"),
        }
    })
}

/// The input layout of the streaming targets: byte 0 holds flags (high
/// nibble) and a cut count (low nibble), then two bytes per cut (its place as
/// a fraction of the stream, little-endian u16 / 65536), then the stream.
pub struct Cuts<'a> {
    pub flags: u8,
    pub fractions: Vec<u16>,
    pub stream: &'a [u8],
}

pub fn read_cuts(data: &[u8]) -> Option<Cuts<'_>> {
    let (&ctrl, rest) = data.split_first()?;
    let (positions, stream) = rest.split_at_checked(usize::from(ctrl & 0x0f) * 2)?;
    Some(Cuts {
        flags: ctrl & 0xf0,
        fractions: positions
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect(),
        stream,
    })
}

/// `stream` cut at `fractions` of its length, in order; empty chunks (which
/// Envoy delivers too) are kept.
pub fn chunks<'s>(stream: &'s [u8], fractions: &[u16]) -> Vec<&'s [u8]> {
    let mut at: Vec<usize> = fractions
        .iter()
        .map(|&f| usize::from(f) * stream.len() / 65536)
        .collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for cut in at {
        out.push(&stream[start..cut]);
        start = cut;
    }
    out.push(&stream[start..]);
    out
}

/// The data of every event of an SSE body (what a client would read).
pub fn sse_events(body: &[u8]) -> Vec<Vec<u8>> {
    let mut parser = aipipe_core::sse::SseParser::default();
    let mut out = Vec::new();
    parser.feed(body, |d| out.push(d.to_vec()));
    parser.finish(|d| out.push(d.to_vec()));
    out
}
