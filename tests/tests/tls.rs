//! The provider clusters of `envoy/production.yaml` really speak verified TLS.
//!
//! `--mode validate` (configs.rs) only proves Envoy accepts the file. Here
//! the `openai` cluster is cut out of the shipped file as it stands, pointed
//! at a local TLS server instead of api.openai.com:443 and made to trust a
//! throwaway CA instead of the system bundle, and a real Envoy must: reach a
//! server whose certificate names `api.openai.com` (sending that SNI), and
//! refuse one whose certificate names another host or comes from a CA it does
//! not trust (503, and the TLS verification stats say why). Certificates come
//! from the `openssl` CLI, the server is python3's `http.server` with `ssl`,
//! all on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aipipe_tests::{Envoy, TempDir, eventually, free_port, get, repo_root, upstream_wasm_path};

const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn production_yaml() -> String {
    std::fs::read_to_string(repo_root().join("envoy/production.yaml")).unwrap()
}

/// The lines of cluster `name` in `envoy/production.yaml`: from its
/// `  - name: <name>` line to the next entry (or comment) at the same level.
fn production_cluster(yaml: &str, name: &str) -> Option<String> {
    let start = format!("  - name: {name}");
    let mut lines = yaml.lines().skip_while(|l| *l != start);
    let first = lines.next()?;
    let mut block = format!("{first}\n");
    for line in lines {
        let same_level_or_above = !line.is_empty() && !line.starts_with("    ");
        if same_level_or_above {
            break;
        }
        block.push_str(line);
        block.push('\n');
    }
    Some(block)
}

#[test]
fn production_has_one_verified_tls_cluster_per_provider() {
    let yaml = production_yaml();
    for p in aipipe_core::catalog::default_providers() {
        let block = production_cluster(&yaml, &p.cluster).unwrap_or_else(|| {
            panic!(
                "envoy/production.yaml has no cluster `{}` for provider {}",
                p.cluster, p.id
            )
        });
        let host = &p.authority;
        for needed in [
            "type: LOGICAL_DNS".to_owned(),
            format!("cluster_name: {}\n", p.cluster),
            format!("address: {host}, port_value: 443 }}"),
            "UpstreamTlsContext".to_owned(),
            format!("sni: {host}\n"),
            format!("trusted_ca: {{ filename: {SYSTEM_CA_BUNDLE} }}"),
            "san_type: DNS".to_owned(),
            format!("matcher: {{ exact: {host} }}"),
            "per_connection_buffer_limit_bytes: 8388608".to_owned(),
            "max_connections:".to_owned(),
            "max_pending_requests:".to_owned(),
            "max_requests:".to_owned(),
            "max_retries:".to_owned(),
            "connect_timeout:".to_owned(),
            // Failover by redirect: the upstream filter (the anchor's
            // definition in the first cluster, an alias in the others).
            "aipipe_upstream".to_owned(),
        ] {
            assert!(
                block.contains(&needed),
                "cluster `{}` in envoy/production.yaml lacks `{needed}`:\n{block}",
                p.cluster
            );
        }
    }
}

// ---------------------------------------------------------------- certificates

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI is needed for this test");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA: `<name>.crt`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=aipipe throwaway {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate for DNS name `host` signed by CA `ca`:
/// `<name>.crt`, `<name>.key`.
fn make_server_cert(dir: &Path, name: &str, host: &str, ca: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={host}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

// ---------------------------------------------------------------- tls server

/// One TLS HTTP/1.1 server per `name,cert,key` argument, each on its own
/// free loopback port (printed as `listening <name> <port>`). Every answer
/// says which SNI and ALPN the client sent.
const TLS_SERVER: &str = r#"
import http.server, ssl, sys, threading

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        c = self.connection
        body = ("sni=%s alpn=%s" % (getattr(c, "aipipe_sni", None), c.selected_alpn_protocol())).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

def remember_sni(sock, server_name, ctx):
    sock.aipipe_sni = server_name

for arg in sys.argv[1:]:
    name, cert, key = arg.split(",")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.sni_callback = remember_sni
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening", name, srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

sys.stdin.read()
"#;

/// The python TLS server, killed on drop. It also exits when its stdin
/// closes, so it cannot outlive the test even if the test process dies.
struct TlsServer {
    child: Child,
    ports: Vec<(String, u16)>,
}

impl TlsServer {
    fn start(dir: &Path, servers: &[&str]) -> Self {
        let script = dir.join("tls_server.py");
        std::fs::write(&script, TLS_SERVER).unwrap();
        let venv_python = repo_root().join(".venv/bin/python3");
        let python = if venv_python.exists() {
            venv_python
        } else {
            PathBuf::from("python3")
        };
        let mut cmd = Command::new(python);
        cmd.current_dir(dir)
            .arg("-u")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for s in servers {
            cmd.arg(format!("{s},{s}.crt,{s}.key"));
        }
        let mut child = cmd.spawn().expect("python3 is needed for this test");
        let stdout = child.stdout.take().unwrap();
        let mut ports = Vec::new();
        for line in BufReader::new(stdout).lines().take(servers.len()) {
            let line = line.unwrap();
            let mut words = line.split_whitespace();
            assert_eq!(words.next(), Some("listening"), "tls server said {line:?}");
            let name = words.next().unwrap().to_owned();
            let port = words.next().unwrap().parse().unwrap();
            ports.push((name, port));
        }
        assert_eq!(ports.len(), servers.len(), "the tls server did not start");
        Self { child, ports }
    }

    fn port(&self, name: &str) -> u16 {
        self.ports.iter().find(|(n, _)| n == name).unwrap().1
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the test

/// Production's `openai` cluster as cluster `name`, reaching 127.0.0.1:`port`
/// and trusting only `ca_file`. SNI, the SAN check and the upstream filter
/// stay as shipped.
fn openai_cluster_as(name: &str, port: u16, ca_file: &Path) -> String {
    let block = production_cluster(&production_yaml(), "openai").unwrap();
    let mut out = block.clone();
    for (from, to) in [
        ("  - name: openai\n", format!("  - name: {name}\n")),
        ("cluster_name: openai\n", format!("cluster_name: {name}\n")),
        (
            "address: api.openai.com, port_value: 443 }",
            format!("address: 127.0.0.1, port_value: {port} }}"),
        ),
        (
            &format!("filename: {SYSTEM_CA_BUNDLE} }}"),
            format!("filename: {} }}", ca_file.display()),
        ),
        // The upstream filter, as shipped, from the built module.
        (
            "filename: target/wasm32-wasip1/release/upstream.wasm }",
            format!("filename: {} }}", upstream_wasm_path().display()),
        ),
    ] {
        assert_eq!(
            out.matches(from).count(),
            1,
            "production's openai cluster no longer has one `{from}`:\n{block}"
        );
        out = out.replace(from, &to);
    }
    assert!(out.contains("sni: api.openai.com\n"), "{out}");
    assert!(out.contains("matcher: { exact: api.openai.com }"), "{out}");
    out
}

fn plain_envoy(listener_port: u16, admin_port: u16, routes: &[&str], clusters: &str) -> String {
    let mut yaml = format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
static_resources:
  listeners:
  - name: tls_test
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls_test
          route_config:
            name: tls_test
            virtual_hosts:
            - name: tls_test
              domains: ["*"]
              routes:
"#
    );
    for r in routes {
        yaml.push_str(&format!(
            "              - match: {{ prefix: \"/{r}\" }}\n                route: {{ cluster: {r}, timeout: 10s }}\n"
        ));
    }
    yaml.push_str(
        r#"          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#,
    );
    yaml.push_str(clusters);
    yaml
}

#[test]
fn production_cluster_shape_verifies_the_provider_certificate() {
    let dir = TempDir::new("tls");
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "other_ca");
    // The right name from the trusted CA; another name from the trusted CA;
    // the right name from a CA Envoy does not trust.
    make_server_cert(d, "good", "api.openai.com", "ca");
    make_server_cert(d, "wrong_name", "api.evil.example", "ca");
    make_server_cert(d, "untrusted", "api.openai.com", "other_ca");
    let servers = TlsServer::start(d, &["good", "wrong_name", "untrusted"]);

    let names = ["good", "wrong_name", "untrusted"];
    let clusters: String = names
        .iter()
        .map(|n| openai_cluster_as(n, servers.port(n), &d.join("ca.crt")))
        .collect();
    let (listener_port, admin_port) = (free_port(), free_port());
    let yaml = plain_envoy(listener_port, admin_port, &names, &clusters);
    let envoy = Envoy::start(&yaml, listener_port, admin_port, 1);

    let good = get(&envoy.url("/good"), &[]);
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.text(), "sni=api.openai.com alpn=http/1.1");
    assert_eq!(envoy.stat("cluster.good.ssl.handshake"), Some(1));

    for (cluster, failure_stat) in [
        ("wrong_name", "fail_verify_san"),
        ("untrusted", "fail_verify_error"),
    ] {
        let r = get(&envoy.url(&format!("/{cluster}")), &[]);
        assert_eq!(r.status, 503, "{cluster}: {}", r.text());
        assert!(
            r.text().starts_with("upstream connect error"),
            "{cluster}: {}",
            r.text()
        );
        let stat = format!("cluster.{cluster}.ssl.{failure_stat}");
        assert!(
            eventually(Duration::from_secs(5), || envoy
                .stat(&stat)
                .filter(|n| *n >= 1))
            .is_some(),
            "{stat} did not count the refused certificate:\n{}",
            envoy.stats_text(&format!("cluster.{cluster}.ssl"))
        );
        assert_eq!(
            envoy.stat(&format!("cluster.{cluster}.ssl.handshake")),
            Some(0)
        );
    }
}
