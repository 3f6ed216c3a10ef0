//! TLS to a real, throwaway PostgreSQL (`aipipe_tests::postgres`, started
//! with `ssl=on` and a certificate made here by rcgen): what each `sslmode`
//! accepts and refuses, that the control plane's connections are encrypted,
//! and that a password in the URL is in no message (control-plane/README.md,
//! "PostgreSQL", "The URL").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::temp_dir;

use std::path::Path;
use std::time::{Duration, Instant};

use aipipe_control_plane::config::{Database, PostgresUrl, parse_database_url};
use aipipe_control_plane::db::Db;
use aipipe_control_plane::db::pg;
use aipipe_tests::postgres::Postgres;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const PASSWORD: &str = "hunter2-tls-pw";

/// A CA's PEM certificate and the issuer that signs with it.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for `localhost` only, signed by `ca`: its PEM
/// certificate and key.
fn server_cert(ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn url(text: &str) -> PostgresUrl {
    match parse_database_url("AIPIPE_DATABASE_URL", text) {
        Ok(Database::Postgres(u)) => u,
        Ok(Database::Sqlite(p)) => panic!("{} is not PostgreSQL", p.display()),
        Err(e) => panic!("{text}: {e}"),
    }
}

/// `postgres://postgres:PASSWORD@HOST:PORT/aipipe?QUERY` (the server trusts
/// every local connection: the password is only there to be kept secret).
fn url_of(host: &str, port: u16, query: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@{host}:{port}/aipipe?{query}")
}

/// Whether this session's connection is encrypted (`pg_stat_ssl`).
fn encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Connects with `query`'s TLS settings; Ok(encrypted) or the error text,
/// which must never hold the password.
fn try_connect(host: &str, port: u16, query: &str) -> Result<bool, String> {
    let text = url_of(host, port, query);
    let u = url(&text);
    match pg::connect(&u) {
        Ok(mut client) => Ok(encrypted(&mut client)),
        Err(e) => {
            eprintln!("{host} ?{query}: {e}");
            assert!(!e.contains(PASSWORD), "the password is shown: {e}");
            assert!(
                e.starts_with(&format!(
                    "connecting to postgres://postgres:***@{host}:{port}/aipipe"
                )),
                "{e}"
            );
            Err(e)
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn each_sslmode_checks_what_libpq_checks_against_a_tls_server() {
    let started = Instant::now();
    let ca = make_ca("aipipe test CA");
    let other = make_ca("another CA");
    let (cert, key) = server_cert(&ca);
    let pg = Postgres::start_with_tls(&cert, &key);
    pg.create_database("aipipe");
    let port = pg.port();
    let dir = temp_dir("pg-tls");
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let other_file = write(&dir, "other-ca.pem", &other.pem());
    let ours = format!("sslrootcert={ca_file}");
    let theirs = format!("sslrootcert={other_file}");

    // verify-full: our CA and the name on the certificate.
    assert_eq!(
        try_connect("localhost", port, &format!("sslmode=verify-full&{ours}")),
        Ok(true)
    );
    // A host name the certificate does not hold (the same server).
    let e = try_connect("127.0.0.1", port, &format!("sslmode=verify-full&{ours}")).unwrap_err();
    assert!(
        e.contains("not valid for name") && e.contains("sslmode=verify-full"),
        "{e}"
    );
    assert!(e.contains("and name the host"), "{e}");
    // A CA that did not sign it.
    let e = try_connect("localhost", port, &format!("sslmode=verify-full&{theirs}")).unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(e.contains(&other_file), "says which roots: {e}");
    // The system's roots (no sslrootcert) do not hold a test CA.
    let e = try_connect("localhost", port, "sslmode=verify-full").unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("system's root certificates"),
        "{e}"
    );

    // verify-ca: the chain, not the name.
    assert_eq!(
        try_connect("127.0.0.1", port, &format!("sslmode=verify-ca&{ours}")),
        Ok(true)
    );
    let e = try_connect("127.0.0.1", port, &format!("sslmode=verify-ca&{theirs}")).unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // require: encrypted, certificate unchecked; with a root file it is
    // checked as verify-ca (libpq's rule).
    assert_eq!(try_connect("127.0.0.1", port, "sslmode=require"), Ok(true));
    let e = try_connect("127.0.0.1", port, &format!("sslmode=require&{theirs}")).unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert_eq!(
        try_connect("127.0.0.1", port, &format!("sslmode=require&{ours}")),
        Ok(true)
    );
    // prefer (the default) takes TLS when offered; disable never does.
    assert_eq!(try_connect("127.0.0.1", port, "sslmode=prefer"), Ok(true));
    assert_eq!(try_connect("127.0.0.1", port, "sslmode=disable"), Ok(false));

    // A root file that is missing, or holds no certificate.
    let missing = dir.join("missing.pem").display().to_string();
    let e = try_connect(
        "localhost",
        port,
        &format!("sslmode=verify-full&sslrootcert={missing}"),
    )
    .unwrap_err();
    assert!(e.contains(&format!("sslrootcert={missing}")), "{e}");
    let empty = write(&dir, "empty.pem", "not a certificate\n");
    let e = try_connect(
        "localhost",
        port,
        &format!("sslmode=verify-full&sslrootcert={empty}"),
    )
    .unwrap_err();
    assert!(e.contains("holds no usable CA certificate"), "{e}");

    // The control plane itself on verify-full: the pool's writer and
    // readers and the listener are all encrypted connections.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let full = url(&url_of(
        "localhost",
        port,
        &format!("sslmode=verify-full&{ours}&application_name=aipipe-tls-test"),
    ));
    let db = rt.block_on(Db::open_postgres(&full, 60_000)).unwrap();
    let tenants = rt.block_on(db.list_tenants()).unwrap();
    assert!(tenants.is_empty(), "a fresh database: {tenants:?}");
    let ours_only = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.application_name = 'aipipe-tls-test'";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The writer, the readers used (two: one read at start, one here)
        // and the listener (on its own thread), none in plain text.
        let seen = pg.psql("postgres", ours_only);
        if seen.trim() == "4|0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the control plane's connections: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(db);
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("TLS checks done in {:?}", started.elapsed());
}

#[test]
fn a_server_without_tls_is_refused_when_tls_is_required() {
    let pg = Postgres::start();
    pg.create_database("aipipe");
    let port = pg.port();
    for mode in ["require", "verify-full&sslrootcert=system"] {
        let e = try_connect("localhost", port, &format!("sslmode={mode}")).unwrap_err();
        assert!(e.contains("server does not support TLS"), "{mode}: {e}");
    }
    // prefer goes on without it, as libpq does.
    assert_eq!(try_connect("127.0.0.1", port, "sslmode=prefer"), Ok(false));
    assert_eq!(try_connect("127.0.0.1", port, ""), Ok(false));
    // Over the unix socket, prefer stays plain; require is refused at once.
    let socket = pg.dir().display().to_string().replace('/', "%2F");
    let on_socket =
        |q: &str| format!("postgres://postgres:{PASSWORD}@{socket}:{port}/aipipe?sslmode={q}");
    let mut client = pg::connect(&url(&on_socket("prefer"))).unwrap();
    assert!(!encrypted(&mut client));
    let e = parse_database_url("AIPIPE_DATABASE_URL", &on_socket("require")).unwrap_err();
    assert!(e.contains("unix socket") && !e.contains(PASSWORD), "{e}");
}
