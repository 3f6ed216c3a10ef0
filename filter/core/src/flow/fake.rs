//! An in-memory host for the flow's tests: one request's headers and body,
//! the answer the test feeds in, the shared data and queue of one proxy, and
//! a clock the test moves.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::host::{Host, HostError, MetricKind};

/// A local reply the flow sent.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A call the flow dispatched.
#[derive(Debug, Clone)]
pub struct Call {
    /// The token `dispatch` returned (unique across the host's life).
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct FakeHost {
    pub now_ms: Cell<u64>,
    pub request_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub request_body: RefCell<Vec<u8>>,
    pub response_headers: RefCell<Vec<(String, String)>>,
    pub response_body: RefCell<Vec<u8>>,
    pub replies: RefCell<Vec<Reply>>,
    pub calls: RefCell<Vec<Call>>,
    next_token: Cell<u32>,
    pub call_status: RefCell<Option<u16>>,
    pub call_body: RefCell<Vec<u8>>,
    pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    pub queue: RefCell<Vec<Vec<u8>>>,
    pub metrics: RefCell<Vec<(String, u64)>>,
    /// Values recorded into histograms, by metric id.
    pub histograms: RefCell<HashMap<u32, Vec<u64>>>,
    kinds: RefCell<Vec<MetricKind>>,
    /// Families: (kind, name, label count); and how many members were made.
    families: RefCell<Vec<(MetricKind, String, usize)>>,
    members: Cell<usize>,
    pub node: RefCell<Option<String>>,
    pub route_cache_cleared: Cell<u32>,
    /// Every host call the flow made, by method, in order.
    pub host_calls: RefCell<Vec<&'static str>>,
    /// Envoy's `response.code_details` of the answer (None: as for a
    /// provider's answer in these tests).
    pub code_details: RefCell<Option<String>>,
}

impl FakeHost {
    fn note(&self, call: &'static str) {
        self.host_calls.borrow_mut().push(call);
    }

    pub fn new() -> Self {
        let h = Self::default();
        h.now_ms.set(1_700_000_000_000);
        h
    }

    /// Starts a new request on the same proxy: its headers and body; the
    /// previous request's answer and replies are forgotten.
    /// The token of the last call dispatched, whoever dispatched it.
    pub fn last_token(&self) -> u32 {
        self.next_token.get()
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut all = vec![
            (":method".to_owned(), method.as_bytes().to_vec()),
            (":path".to_owned(), path.as_bytes().to_vec()),
            (":authority".to_owned(), b"aipipe.test".to_vec()),
        ];
        all.extend(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
        );
        if !body.is_empty() {
            all.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        *self.request_headers.borrow_mut() = all;
        *self.request_body.borrow_mut() = body.to_vec();
        self.response_headers.borrow_mut().clear();
        self.response_body.borrow_mut().clear();
        self.replies.borrow_mut().clear();
        self.calls.borrow_mut().clear();
        *self.code_details.borrow_mut() = None;
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.request_headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.request_body.borrow()).unwrap_or(serde_json::Value::Null)
    }

    /// The upstream's answer headers, as the provider (or Envoy) sent them.
    pub fn answer(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut all = vec![(":status".to_owned(), status.to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        *self.response_headers.borrow_mut() = all;
        *self.response_body.borrow_mut() = body.to_vec();
    }

    pub fn response_header_value(&self, name: &str) -> Option<String> {
        self.response_headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn reply(&self) -> Option<Reply> {
        self.replies.borrow().last().cloned()
    }

    /// The usage records queued so far, parsed.
    pub fn records(&self) -> Vec<crate::usage::UsageRecord> {
        self.queue
            .borrow()
            .iter()
            .filter_map(|r| serde_json::from_slice(r).ok())
            .collect()
    }

    /// The values a histogram (a family member by its flattened name,
    /// `name.value1.value2…`) recorded, in order.
    pub fn samples(&self, name: &str) -> Vec<u64> {
        let ids: Vec<u32> = self
            .metrics
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n == name)
            .map(|(i, _)| i as u32)
            .collect();
        let h = self.histograms.borrow();
        ids.iter()
            .flat_map(|i| h.get(i).cloned().unwrap_or_default())
            .collect()
    }

    /// Every histogram value recorded, by metric name.
    pub fn all_samples(&self) -> Vec<(String, u64)> {
        let names = self.metrics.borrow();
        let mut out: Vec<(String, u64)> = self
            .histograms
            .borrow()
            .iter()
            .flat_map(|(i, v)| {
                let n = names.get(*i as usize).map(|(n, _)| n.clone());
                v.iter().map(move |x| (n.clone().unwrap_or_default(), *x))
            })
            .collect();
        out.sort();
        out
    }

    /// How many family members were made.
    pub fn family_members(&self) -> usize {
        self.members.get()
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

fn set(list: &mut Vec<(String, Vec<u8>)>, name: &str, value: Option<&[u8]>) {
    list.retain(|(n, _)| n != name);
    if let Some(v) = value {
        list.push((name.to_owned(), v.to_vec()));
    }
}

impl Host for FakeHost {
    fn now(&self) -> SystemTime {
        self.note("now");
        UNIX_EPOCH + Duration::from_millis(self.now_ms.get())
    }

    fn node_id(&self) -> Option<String> {
        self.note("node_id");
        self.node.borrow().clone()
    }

    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.note("request_headers");
        self.request_headers.borrow().clone()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        self.note("set_request_header");
        set(&mut self.request_headers.borrow_mut(), name, value);
        Ok(())
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.note("request_body");
        let b = self.request_body.borrow();
        b.get(..size.min(b.len())).unwrap_or_default().to_vec()
    }

    fn splice_request_body(&self, start: usize, len: usize, with: &[u8]) -> Result<(), HostError> {
        self.note("splice_request_body");
        let mut b = self.request_body.borrow_mut();
        if start + len > b.len() {
            return Err(HostError::Refused("splice past the end".into()));
        }
        // As Envoy's buffer does it: no element-wise splice (flow-bench
        // times the flow on this host).
        let tail = b.split_off(start + len);
        b.truncate(start);
        b.extend_from_slice(with);
        b.extend_from_slice(&tail);
        Ok(())
    }

    fn clear_route_cache(&self) -> Result<(), HostError> {
        self.note("clear_route_cache");
        self.route_cache_cleared
            .set(self.route_cache_cleared.get() + 1);
        Ok(())
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.note("response_header");
        self.response_header_value(name).map(String::into_bytes)
    }

    fn response_code_details(&self) -> Option<String> {
        self.note("response_code_details");
        self.code_details.borrow().clone()
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.note("set_response_header");
        let mut h = self.response_headers.borrow_mut();
        h.retain(|(n, _)| n != name);
        if let Some(v) = value {
            h.push((name.to_owned(), v.to_owned()));
        }
        Ok(())
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        self.note("response_body");
        let b = self.response_body.borrow();
        b.get(..size.min(b.len())).unwrap_or_default().to_vec()
    }

    fn replace_response_body(&self, len: usize, with: &[u8]) -> Result<(), HostError> {
        self.note("replace_response_body");
        let mut b = self.response_body.borrow_mut();
        let len = len.min(b.len());
        let tail = b.split_off(len);
        b.clear();
        b.extend_from_slice(with);
        b.extend_from_slice(&tail);
        Ok(())
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.note("send_response");
        self.replies.borrow_mut().push(Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout: Duration,
    ) -> Result<u32, HostError> {
        self.note("dispatch");
        let token = self.next_token.get() + 1;
        self.next_token.set(token);
        self.calls.borrow_mut().push(Call {
            token,
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(token)
    }

    fn call_response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.note("call_response_header");
        match name {
            ":status" => self
                .call_status
                .borrow()
                .map(|s| s.to_string().into_bytes()),
            "content-type" => Some(b"application/json".to_vec()),
            _ => None,
        }
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        self.note("call_response_body");
        let b = self.call_body.borrow();
        b.get(..size.min(b.len())).unwrap_or_default().to_vec()
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.note("shared_get");
        match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.note("shared_set");
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(HostError::CasMismatch);
        }
        shared.insert(key.to_owned(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }

    fn enqueue_usage(&self, record: &[u8]) -> Result<(), HostError> {
        self.note("enqueue_usage");
        self.queue.borrow_mut().push(record.to_vec());
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        self.note("define_metric");
        let mut m = self.metrics.borrow_mut();
        m.push((name.to_owned(), 0));
        self.kinds.borrow_mut().push(kind);
        Some(m.len() as u32 - 1)
    }

    fn define_family(&self, kind: MetricKind, name: &str, labels: &[&str]) -> Option<u32> {
        self.note("define_family");
        let mut f = self.families.borrow_mut();
        f.push((kind, name.to_owned(), labels.len()));
        Some(f.len() as u32 - 1)
    }

    /// As the Wasm host: the values flattened into the name.
    fn family_member(&self, family: u32, values: &[&str]) -> Option<u32> {
        self.note("family_member");
        let (kind, name) = {
            let f = self.families.borrow();
            let (kind, name, n) = f.get(family as usize)?;
            assert_eq!(*n, values.len(), "label values for {name}");
            assert!(values.iter().all(|v| !v.contains('.')), "{values:?}");
            (*kind, format!("{name}.{}", values.join(".")))
        };
        self.members.set(self.members.get() + 1);
        self.define_metric(kind, &name)
    }

    fn increment_metric(&self, id: u32, by: u64) {
        self.note("increment_metric");
        if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            m.1 += by;
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        self.note("record_metric");
        if self.kinds.borrow().get(id as usize) == Some(&MetricKind::Histogram) {
            self.histograms
                .borrow_mut()
                .entry(id)
                .or_default()
                .push(value);
        } else if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            m.1 = value;
        }
    }
}
