//! The singleton: one root context on Envoy's main thread (a bootstrap Wasm
//! service with `singleton: true` and the filter's `vm_id`). It polls the
//! control plane for the routing table and publishes a changed table to
//! shared data, where every worker VM's filter picks it up (ENVOY-NOTES 8–9:
//! polling from the filter's own roots would poll once per worker).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::config::{ControlPlane, SHARED_TABLE_KEY, SHARED_VERSION_KEY};
use crate::table::{RoutingTable, Table};
use crate::usage::{TABLE_PATH, TOKEN_HEADER, VERSION_HEADER};

pub struct Singleton {
    cp: ControlPlane,
    /// Version of the table last published.
    version: Option<u64>,
    /// The table call in flight, if any.
    pending: Option<u32>,
    /// Whether the last call answered; failures are logged on change only.
    reachable: Option<bool>,
}

impl Singleton {
    pub fn new(cp: ControlPlane) -> Self {
        Self {
            cp,
            version: None,
            pending: None,
            reachable: None,
        }
    }

    pub fn start(&mut self) -> bool {
        if let Err(s) = hostcalls::set_tick_period(Duration::from_millis(self.cp.poll_ms)) {
            log::error!("singleton: cannot set tick period: {s:?}");
            return false;
        }
        self.poll();
        true
    }

    /// Asks for the table unless a call is still in flight.
    pub fn poll(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let version = self.version.map(|v| v.to_string());
        let mut headers = vec![
            (":method", "GET"),
            (":path", TABLE_PATH),
            (":authority", self.cp.authority.as_str()),
            (TOKEN_HEADER, self.cp.token.as_str()),
        ];
        if let Some(v) = &version {
            headers.push((VERSION_HEADER, v.as_str()));
        }
        match hostcalls::dispatch_http_call(
            &self.cp.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(self.cp.timeout_ms),
        ) {
            Ok(token) => self.pending = Some(token),
            Err(s) => self.mark(
                false,
                &format!("cannot call cluster {}: {s:?}", self.cp.cluster),
            ),
        }
    }

    pub fn on_response(&mut self, token: u32, body_size: usize) {
        if self.pending != Some(token) {
            return;
        }
        self.pending = None;
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        match status.as_slice() {
            b"304" => self.mark(true, ""),
            b"200" => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.publish(&body);
            }
            other => self.mark(
                false,
                &format!("table request answered {}", String::from_utf8_lossy(other)),
            ),
        }
    }

    /// Validates the table exactly as the workers will, then publishes it:
    /// the table first, its version last, so a worker that sees the new
    /// version finds the table behind it.
    fn publish(&mut self, body: &[u8]) {
        let raw: RoutingTable = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return self.mark(false, &format!("table is not valid JSON: {e}")),
        };
        let version = raw.version;
        if let Err(e) = Table::compile(raw) {
            return self.mark(false, &format!("table version {version} refused: {e}"));
        }
        let published =
            hostcalls::set_shared_data(SHARED_TABLE_KEY, Some(body), None).and_then(|()| {
                hostcalls::set_shared_data(
                    SHARED_VERSION_KEY,
                    Some(version.to_string().as_bytes()),
                    None,
                )
            });
        match published {
            Ok(()) => {
                self.version = Some(version);
                self.mark(true, "");
                log::info!("singleton: published routing table version {version}");
            }
            Err(s) => self.mark(false, &format!("cannot publish the table: {s:?}")),
        }
    }

    fn mark(&mut self, ok: bool, why: &str) {
        if self.reachable != Some(ok) {
            if ok {
                log::info!("singleton: control plane reachable");
            } else {
                log::warn!("singleton: {why}; filters keep routing with the last table");
            }
        }
        self.reachable = Some(ok);
    }
}
