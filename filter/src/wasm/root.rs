//! The root context: parses and validates the plugin configuration once and
//! hands every request context a shared view of it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::http::Http;
use crate::config::Config;
use crate::table::Table;

/// What every request of this VM shares.
pub struct Shared {
    pub cluster_header: String,
    pub max_body_bytes: usize,
    pub table: Option<Rc<Table>>,
    /// Random per VM, so request ids differ across workers and restarts.
    id_seed: u64,
    next_id: std::cell::Cell<u64>,
}

impl Shared {
    /// A request id unique across this Envoy's VMs.
    pub fn request_id(&self) -> String {
        let n = self.next_id.get().wrapping_add(1);
        self.next_id.set(n);
        format!("{:016x}{:08x}", self.id_seed, n & 0xffff_ffff)
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::parse(&bytes) {
            Ok(config) => {
                let mut seed = RandomState::new().build_hasher();
                seed.write_u64(0x6169_7069_7065);
                self.shared = Some(Rc::new(Shared {
                    cluster_header: config.cluster_header,
                    max_body_bytes: config.max_body_bytes,
                    table: config.table.map(Rc::new),
                    id_seed: seed.finish(),
                    next_id: std::cell::Cell::new(0),
                }));
                log::info!(
                    "configured (table version {})",
                    self.shared
                        .as_ref()
                        .and_then(|s| s.table.as_ref())
                        .map_or_else(|| "none".to_owned(), |t| t.version.to_string())
                );
                true
            }
            Err(e) => {
                log::error!("refusing plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
