//! The root context. The module serves two roles, chosen by the root id in
//! Envoy's config, each a type of its own: the filter (aipipe-core's request
//! flow, one `Filter` per worker VM, one `Request` per stream) and the
//! singleton (`singleton`: table polling and usage shipping on the main
//! thread). The third, the upstream filter on the provider clusters, is a
//! module of its own (`upstream.wasm`, filter/upstream-wasm).

use std::rc::Rc;

use aipipe_core::config::{Config, SingletonConfig};
use aipipe_core::contract::{SINGLETON_ROOT_ID, UPSTREAM_ROOT_ID, USAGE_QUEUE};
use aipipe_core::flow::{Action, Filter, Request, Singleton, batch};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{self, ContextType};

use crate::host::{USAGE_FLUSH, WasmHost};

/// What this root context turned out to be once configured.
#[derive(Default)]
enum Role {
    #[default]
    Unconfigured,
    Filter {
        filter: Rc<Filter>,
        host: Rc<WasmHost>,
    },
    Singleton {
        /// Boxed: the largest role by far, and there is one per Envoy.
        singleton: Box<Singleton>,
        host: WasmHost,
        /// The shared queue the workers put usage records on.
        queue: Option<u32>,
    },
}

#[derive(Default)]
pub struct Root {
    role: Role,
}

impl Context for Root {
    /// Envoy asks whether this root context may go (proxy-wasm's contract:
    /// true, it is deleted now; false, it stays until it calls `done()`).
    fn on_done(&mut self) -> bool {
        match &self.role {
            Role::Filter { host, .. } => {
                Self::filter_done(host);
                true
            }
            // The singleton is a bootstrap extension: no listener or filter
            // update reaches it, and Envoy tears it down only as it exits,
            // after its main loop has stopped, when no call can go out any
            // more (so waiting for one, returning false, would gain nothing).
            // What it still holds is lost unless Envoy was drained first
            // (control-plane/README.md, "Stopping without losing usage").
            Role::Singleton { singleton, .. } => {
                let held = singleton.unacknowledged();
                if held > 0 {
                    log::warn!(
                        "singleton: Envoy exits with {held} usage records not acknowledged by the control plane: they are lost (drain Envoy before stopping it)"
                    );
                }
                true
            }
            Role::Unconfigured => true,
        }
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Role::Singleton {
            singleton, host, ..
        } = &mut self.role
        {
            singleton.on_call_response(host, token_id, body_size);
        }
    }
}

impl Root {
    /// The filter role is done (Envoy tears this plugin down: its listener or
    /// filter configuration was replaced or removed): what its worker holds
    /// goes on the usage queue now, not on a tick that will not come.
    fn filter_done(host: &WasmHost) {
        let held = host.held_usage();
        host.flush_usage();
        if held > 0 {
            log::info!("plugin torn down: {held} held usage records handed to the singleton");
        }
    }
}

impl RootContext for Root {
    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Role::Singleton {
            singleton,
            host,
            queue,
        } = &mut self.role
            && *queue == Some(queue_id)
        {
            // Each message is one worker's batch of records.
            let messages = std::iter::from_fn(|| hostcalls::dequeue_shared_queue(queue_id).ok()?);
            let records =
                messages.flat_map(|m| batch::records(&m).map(<[u8]>::to_vec).collect::<Vec<_>>());
            singleton.take_records(host, records);
        }
    }

    fn on_tick(&mut self) {
        match &mut self.role {
            Role::Singleton {
                singleton, host, ..
            } => singleton.poll(host),
            Role::Filter { host, .. } => host.flush_usage(),
            Role::Unconfigured => {}
        }
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let root_id = hostcalls::get_property(vec!["plugin_root_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        if root_id == SINGLETON_ROOT_ID.as_bytes() {
            return match SingletonConfig::parse(&bytes) {
                Ok(config) => {
                    let host = WasmHost::new();
                    let singleton = Box::new(Singleton::new(config.control_plane, &host));
                    if let Err(s) = hostcalls::set_tick_period(singleton.poll_interval()) {
                        log::error!("singleton: cannot set tick period: {s:?}");
                        return false;
                    }
                    let queue = match hostcalls::register_shared_queue(USAGE_QUEUE) {
                        Ok(q) => Some(q),
                        Err(s) => {
                            log::error!("singleton: cannot register the usage queue: {s:?}");
                            None
                        }
                    };
                    self.role = Role::Singleton {
                        singleton,
                        host,
                        queue,
                    };
                    true
                }
                Err(e) => {
                    log::error!("refusing singleton configuration: {e}");
                    false
                }
            };
        }
        if root_id == UPSTREAM_ROOT_ID.as_bytes() {
            log::error!(
                "root id {UPSTREAM_ROOT_ID} is upstream.wasm's (target/wasm32-wasip1/release/upstream.wasm): point the upstream filter's vm_config.code at it"
            );
            return false;
        }
        match Config::parse(&bytes) {
            Ok(config) => {
                let host = Rc::new(WasmHost::new());
                let filter = Filter::new(config, host.as_ref());
                // Each worker's tick sends the usage records it holds.
                if let Err(s) = hostcalls::set_tick_period(USAGE_FLUSH) {
                    log::error!("cannot set the usage flush tick: {s:?}");
                    return false;
                }
                log::info!(
                    "configured (bootstrap table version {})",
                    filter
                        .table_version()
                        .map_or_else(|| "none".to_owned(), |v| v.to_string())
                );
                self.role = Role::Filter { filter, host };
                true
            }
            Err(e) => {
                log::error!("refusing plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.role {
            Role::Filter { filter, host } => {
                host.stream_began();
                Some(Box::new(Http {
                    request: filter.request(),
                    host: host.clone(),
                    logged: false,
                }))
            }
            Role::Unconfigured | Role::Singleton { .. } => None,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One stream through the filter: Envoy's callbacks, mapped onto the flow.
struct Http {
    request: Request,
    host: Rc<WasmHost>,
    /// Whether `on_log` ran (the stream left the worker's in-flight count).
    logged: bool,
}

impl Drop for Http {
    // A stream Envoy ends without logging it still leaves the count (what
    // it held goes with the next flush).
    fn drop(&mut self) {
        if !self.logged {
            self.host.stream_ended_unlogged();
        }
    }
}

fn action(a: Action) -> types::Action {
    match a {
        Action::Continue => types::Action::Continue,
        Action::Pause => types::Action::Pause,
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.request
            .on_call_response(self.host.as_ref(), token_id, body_size);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(
            self.request
                .on_request_headers(self.host.as_ref(), end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(
            self.request
                .on_request_body(self.host.as_ref(), body_size, end_of_stream),
        )
    }

    fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(
            self.request
                .on_response_headers(self.host.as_ref(), end_of_stream),
        )
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(
            self.request
                .on_response_body(self.host.as_ref(), body_size, end_of_stream),
        )
    }

    fn on_log(&mut self) {
        self.request.on_log(self.host.as_ref());
        if !self.logged {
            self.logged = true;
            self.host.stream_logged();
        }
    }
}
