//! Settings: flags with environment fallbacks (clap), then resolved into the
//! secrets the service runs with. Missing secrets stop the start with a
//! message saying which variable to set, unless `--dev` asks for generated ones.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::crypto;

/// aipipe's control plane: tenants, provider keys, virtual keys, catalog,
/// usage and stats; serves the routing table to every Envoy.
#[derive(Debug, Clone, Parser)]
#[command(name = "aipipe-control-plane", version)]
pub struct Settings {
    /// Admin API listener (operators; every route but /healthz and /metrics needs X-Admin-Secret).
    #[arg(long, env = "AIPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8082")]
    pub admin_listen: SocketAddr,

    /// Internal API listener (filters only; token-authenticated).
    #[arg(long, env = "AIPIPE_INTERNAL_LISTEN", default_value = "127.0.0.1:8083")]
    pub internal_listen: SocketAddr,

    /// SQLite database file; its directory is created if missing.
    #[arg(
        long,
        env = "AIPIPE_DB",
        default_value = "./data/aipipe.db",
        global = true
    )]
    pub db: PathBuf,

    /// Where the data lives: `sqlite://PATH` (the default: `--db`'s file) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (several control
    /// planes may share one: control-plane/README.md, "Replicas"). Prefer
    /// the environment variable when the URL holds a password.
    #[arg(
        long,
        env = "AIPIPE_DATABASE_URL",
        hide_env_values = true,
        global = true,
        conflicts_with = "db"
    )]
    pub database_url: Option<RawUrl>,

    /// Secret expected in the X-Admin-Secret header. Prefer the environment
    /// variable: flags are visible in the process list.
    #[arg(long, env = "AIPIPE_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,

    /// 64 hex digits (32 bytes): encrypts provider keys at rest.
    #[arg(long, env = "AIPIPE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Token filters send in the x-aipipe-internal-token header.
    #[arg(long, env = "AIPIPE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,

    /// Model penalties halve every this many milliseconds
    /// (control-plane/README.md, "Penalties").
    #[arg(long, env = "AIPIPE_PENALTY_DECAY_MS", default_value_t = crate::penalty::DEFAULT_DECAY_MS,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub penalty_decay_ms: u64,

    /// Wrong admin secrets one client address may send per minute before it
    /// is answered 429 for the rest of that minute; 0 turns the throttle off
    /// (control-plane/README.md, "Configuration").
    #[arg(long, env = "AIPIPE_ADMIN_FAILURES_PER_MINUTE", default_value_t = crate::admin::throttle::DEFAULT_MAX_FAILURES)]
    pub admin_failures_per_minute: u32,

    /// Where budget alerts are POSTed (an http:// URL): a JSON event when a
    /// tenant's spend reaches 50, 80 and 100 % of its budget
    /// (control-plane/README.md, "Budget alerts").
    #[arg(long, env = "AIPIPE_BUDGET_WEBHOOK_URL")]
    pub budget_webhook_url: Option<String>,
    /// Raw usage records older than this many days are deleted (the hourly
    /// and daily rollups that stats read are kept); 0 keeps them forever
    /// (control-plane/README.md, "Stats").
    #[arg(long, env = "AIPIPE_USAGE_RETENTION_DAYS", default_value_t = 90)]
    pub usage_retention_days: u32,

    /// The gateway (Envoy's listener, http://) evals send their tasks
    /// through (control-plane/README.md, "Evals").
    #[arg(long, env = "AIPIPE_GATEWAY_URL", default_value = crate::evals::run::DEFAULT_GATEWAY_URL)]
    pub gateway_url: String,

    /// A running eval whose control plane has not written its heartbeat for
    /// this many milliseconds is failed as interrupted by any control plane
    /// on the database — a replica that died mid-eval (control-plane/README.md,
    /// "Replicas"). Heartbeats are written six times within it.
    #[arg(long, env = "AIPIPE_EVAL_STALE_MS", default_value_t = crate::evals::run::DEFAULT_STALE_MS,
        value_parser = clap::value_parser!(u64).range(1000..))]
    pub eval_stale_ms: u64,

    /// Instead of serving: a one-off command on the database.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Development mode: generate any missing secret (admin secret and
    /// internal token printed once; master key stored beside the database).
    #[arg(long, env = "AIPIPE_DEV")]
    pub dev: bool,
}

/// One-off commands (the service runs when none is given).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// The model catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Copy a SQLite database into an empty PostgreSQL database (or refresh
    /// a previous copy of the same one): the schema, every table in one
    /// transaction (provider keys stay sealed), row counts verified; safe to
    /// re-run (control-plane/README.md, "PostgreSQL").
    Migrate {
        /// The source: sqlite://PATH.
        #[arg(long)]
        from: RawUrl,
        /// The target: postgres://…; default: AIPIPE_DATABASE_URL (better
        /// for a URL with a password: flags show in the process list).
        #[arg(long)]
        to: Option<RawUrl>,
    },
}

/// A database URL as given, before [`parse_database_url`]: it may hold a
/// password, so its `Debug` never shows it (and clap, which takes it as is,
/// never echoes it in a parse error).
#[derive(Clone, PartialEq, Eq)]
pub struct RawUrl(pub String);

impl std::str::FromStr for RawUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for RawUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// Where the control plane's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

/// A validated `postgres://` URL. It may hold a password: `Display` and
/// `Debug` show it redacted; only [`PostgresUrl::config`] reads the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

/// libpq's `sslmode` (control-plane/README.md, "PostgreSQL", "The URL").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, plain otherwise (the default).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the server's certificate chains to a root of `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// The certificates a server's is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of CA certificates (`sslrootcert=PATH`, or libpq's default
    /// `~/.postgresql/root.crt` when it exists).
    File(PathBuf),
    /// The system's roots (`sslrootcert=system`, or verify-full without a
    /// root file).
    System,
}

/// What the server's certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encrypted, not authenticated (libpq's prefer and require
    /// without a root certificate).
    Nothing,
    /// That it chains to one of the roots, whatever name it holds.
    Chain,
    /// That it chains to one of the roots and names the host.
    ChainAndHost,
}

/// The TLS a PostgreSQL URL asks for, resolved as libpq resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// The roots, when the server's certificate is checked.
    pub roots: Option<RootCerts>,
    pub verify: Verify,
}

impl PostgresUrl {
    /// The driver's connection settings: the URL less its `sslmode` and
    /// `sslrootcert` (the driver knows neither verify-* nor root files;
    /// [`PostgresUrl::tls`] reads them), with the driver's TLS mode set to
    /// the one that sends what `sslmode` asks for.
    pub fn config(&self) -> Result<postgres::Config, String> {
        let (rest, _) = split_tls_params(&self.0);
        let mut config = rest
            .parse::<postgres::Config>()
            .map_err(|e| scrub(&format!("{}: {e}", redact(&self.0)), &self.0))?;
        config.ssl_mode(match self.tls()?.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        });
        Ok(config)
    }

    /// The TLS the URL asks for (libpq's rules; control-plane/README.md,
    /// "PostgreSQL", "The URL"). libpq's default root file,
    /// `~/.postgresql/root.crt`, counts when `sslrootcert` is not given and
    /// it exists, as in libpq: it makes prefer and require check the chain.
    pub fn tls(&self) -> Result<Tls, String> {
        let default_root = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
            .filter(|p| p.is_file());
        resolve_tls(&self.0, default_root)
    }

    /// The password, if the URL has one: error texts are scrubbed of it.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, &self.0)
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => url.fmt(f),
        }
    }
}

/// The URL without its `sslmode` and `sslrootcert` query parameters, and
/// those parameters (values percent-decoded; the last of a repeated one
/// counts, as in the driver).
fn split_tls_params(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == "sslmode" || k == "sslrootcert" {
            tls.push((k.to_owned(), percent_decode(v)));
        } else {
            kept.push(kv);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, tls)
}

/// libpq's rules for `sslmode` and `sslrootcert` (`default_root`: libpq's
/// `~/.postgresql/root.crt` if it exists). Never weaker than libpq:
/// - a root file, given or default, makes prefer and require check the
///   chain (libpq checks it whenever it has a root file);
/// - verify-ca needs a root file: against the system's roots it would take
///   any certificate any public CA signed (libpq refuses it too);
/// - verify-full without a root file checks against the system's roots;
/// - `sslrootcert=system` means the system's roots, makes verify-full the
///   default and refuses a weaker mode (libpq 16's rule).
fn resolve_tls(url: &str, default_root: Option<PathBuf>) -> Result<Tls, String> {
    let shown = redact(url);
    let (_, params) = split_tls_params(url);
    let mut mode = None;
    let mut root = None;
    for (k, v) in params {
        if k == "sslmode" {
            mode = Some(SslMode::parse(&v).ok_or_else(|| {
                format!(
                    "`{shown}`: sslmode={v} is not one of disable, prefer, require, verify-ca, verify-full"
                )
            })?);
        } else if v.is_empty() {
            return Err(format!("`{shown}`: sslrootcert names no file"));
        } else if v == "system" {
            root = Some(RootCerts::System);
        } else {
            root = Some(RootCerts::File(PathBuf::from(v)));
        }
    }
    let explicit_system = root == Some(RootCerts::System);
    let root = root.or(default_root.map(RootCerts::File));
    let mode = match (mode, explicit_system) {
        (None, true) => SslMode::VerifyFull,
        (None, false) => SslMode::Prefer,
        (Some(m), true) if m != SslMode::VerifyFull => {
            return Err(format!(
                "`{shown}`: sslrootcert=system checks against the system's roots, which only \
                 means something with the host name checked: use sslmode=verify-full (or leave sslmode out)"
            ));
        }
        (Some(m), _) => m,
    };
    let (roots, verify) = match (mode, root) {
        (SslMode::Disable, _) => (None, Verify::Nothing),
        (SslMode::Prefer | SslMode::Require, Some(RootCerts::File(f))) => {
            (Some(RootCerts::File(f)), Verify::Chain)
        }
        (SslMode::Prefer | SslMode::Require, _) => (None, Verify::Nothing),
        (SslMode::VerifyCa, Some(RootCerts::File(f))) => (Some(RootCerts::File(f)), Verify::Chain),
        (SslMode::VerifyCa, _) => {
            return Err(format!(
                "`{shown}`: sslmode=verify-ca needs sslrootcert=PATH (the CA that signed the \
                 server's certificate): against the system's roots it would take any publicly \
                 signed certificate; or use sslmode=verify-full"
            ));
        }
        (SslMode::VerifyFull, root) => (
            Some(root.unwrap_or(RootCerts::System)),
            Verify::ChainAndHost,
        ),
    };
    Ok(Tls {
        mode,
        roots,
        verify,
    })
}

/// Parses a database URL: `sqlite://PATH` (everything after the scheme is
/// the path, as written: `sqlite:///var/lib/aipipe.db`,
/// `sqlite://data/aipipe.db`) or `postgres://…` / `postgresql://…` (the
/// driver's URL syntax, with libpq's `sslmode` and `sslrootcert`: see
/// [`resolve_tls`]). `what` names the setting in errors; a password is
/// never part of one.
pub fn parse_database_url(what: &str, url: &str) -> Result<Database, String> {
    let url = url.trim();
    let shown = redact(url);
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(format!(
                "{what}: `{shown}` names no file: sqlite://PATH (e.g. sqlite://./data/aipipe.db)"
            ));
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PostgresUrl(url.to_owned());
        let config = pg
            .config()
            .map_err(|e| format!("{what}: not a valid PostgreSQL URL: {e}"))?;
        if config.get_hosts().is_empty() {
            return Err(format!(
                "{what}: `{shown}` names no host: postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(format!(
                "{what}: `{shown}` names no user: postgres://USER@HOST:PORT/DATABASE"
            ));
        }
        let tls = pg.tls().map_err(|e| format!("{what}: {e}"))?;
        let unix = config
            .get_hosts()
            .iter()
            .any(|h| !matches!(h, postgres::config::Host::Tcp(_)));
        if unix && tls.mode >= SslMode::Require {
            return Err(format!(
                "{what}: `{shown}` asks for sslmode={} on a unix socket, where PostgreSQL has no \
                 TLS: use sslmode=disable or prefer for a socket, or a TCP host for TLS",
                tls.mode.name()
            ));
        }
        return Ok(Database::Postgres(pg));
    }
    Err(format!(
        "{what}: `{shown}` is neither sqlite://PATH nor postgres://USER@HOST:PORT/DATABASE"
    ))
}

/// `url` with any password replaced by `***`: the one in the user info
/// (`user:PASSWORD@host`) and a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***{host}"),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// The passwords `url` holds (as written and percent-decoded).
fn passwords(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut found = Vec::new();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
    {
        found.push(pw.to_owned());
    }
    if let Some((_, query)) = tail.split_once('?') {
        for kv in query.split('&') {
            if let Some((k, v)) = kv.split_once('=')
                && k.eq_ignore_ascii_case("password")
            {
                found.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    found
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b.get(i), hex) {
            (Some(b'%'), Some(v)) => {
                out.push(v);
                i += 3;
            }
            (Some(&c), _) => {
                out.push(c);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every password of `url` replaced by `***` (a driver's
/// message might quote one).
fn scrub(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    for pw in passwords(url) {
        text = text.replace(&pw, "***");
    }
    text
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum CatalogCommand {
    /// Update the prices and context windows of the catalog's models from a
    /// price list in LiteLLM's model_prices_and_context_window.json format:
    /// quality figures are never touched, models the catalog lacks are not
    /// added (control-plane/README.md, "Catalog import").
    Import {
        /// The price list (JSON).
        file: PathBuf,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The secrets the service runs with.
#[derive(Clone)]
pub struct Secrets {
    pub admin_secret: String,
    pub master_key: [u8; 32],
    pub internal_token: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// What resolving generated, for the operator to read once (dev mode only).
#[derive(Debug, Default)]
pub struct Generated {
    pub admin_secret: bool,
    pub internal_token: bool,
    pub master_key_file: Option<PathBuf>,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Settings {
    /// The database: `--database-url`, else `--db`'s SQLite file.
    pub fn database(&self) -> Result<Database, String> {
        match &self.database_url {
            Some(url) => parse_database_url("AIPIPE_DATABASE_URL", &url.0),
            None => Ok(Database::Sqlite(self.db.clone())),
        }
    }

    /// The SQLite file, when the database is one (the dev master key is kept
    /// beside it); a PostgreSQL URL is an error that names it without its
    /// password.
    pub fn sqlite_path(&self) -> Result<PathBuf, String> {
        match self.database()? {
            Database::Sqlite(path) => Ok(path),
            Database::Postgres(url) => Err(format!("{url} is not a SQLite file")),
        }
    }

    /// How long raw usage records are kept; None: forever.
    pub fn usage_kept_ms(&self) -> Option<u64> {
        (self.usage_retention_days > 0).then(|| u64::from(self.usage_retention_days) * 86_400_000)
    }

    /// Resolves the secrets; `Err` is the message to print before exiting.
    pub fn secrets(&self) -> Result<(Secrets, Generated), String> {
        let mut generated = Generated::default();
        let mut missing = Vec::new();
        let admin_secret = match present(&self.admin_secret) {
            Some(s) => s,
            None if self.dev => {
                generated.admin_secret = true;
                crypto::new_secret().map_err(|e| e.to_string())?
            }
            None => {
                missing.push("AIPIPE_ADMIN_SECRET");
                String::new()
            }
        };
        let internal_token = match present(&self.internal_token) {
            Some(s) => s,
            None if self.dev => {
                generated.internal_token = true;
                crypto::new_secret().map_err(|e| e.to_string())?
            }
            None => {
                missing.push("AIPIPE_INTERNAL_TOKEN");
                String::new()
            }
        };
        let master_key = match present(&self.master_key) {
            Some(s) => Some(crypto::parse_master_key(&s)?),
            None if self.dev => {
                let file = self.dev_master_key_file();
                let key = dev_master_key(&file)?;
                generated.master_key_file = Some(file);
                Some(key)
            }
            None => {
                missing.push("AIPIPE_MASTER_KEY");
                None
            }
        };
        if !self.dev {
            for (name, value) in [
                ("AIPIPE_ADMIN_SECRET", &admin_secret),
                ("AIPIPE_INTERNAL_TOKEN", &internal_token),
            ] {
                let bits = estimated_bits(value);
                if !value.is_empty() && bits < MIN_SECRET_BITS {
                    return Err(format!(
                        "refusing to start: {name} is too weak (about {bits} bits; at least {MIN_SECRET_BITS} needed — e.g. `openssl rand -hex 32`). --dev allows weaker secrets for development."
                    ));
                }
            }
        }
        match (missing.is_empty(), master_key) {
            (true, Some(master_key)) => Ok((
                Secrets {
                    admin_secret,
                    master_key,
                    internal_token,
                },
                generated,
            )),
            _ => Err(format!(
                "refusing to start: {} not set. Set {} (AIPIPE_MASTER_KEY: `openssl rand -hex 32`), or run with --dev to generate development secrets.",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
            )),
        }
    }

    pub fn dev_master_key_file(&self) -> PathBuf {
        self.sqlite_path()
            .unwrap_or_else(|_| self.db.clone())
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join("dev-master-key")
    }
}

/// The least strength an admin secret or internal token may have.
const MIN_SECRET_BITS: u32 = 128;

/// An upper estimate of a secret's strength: its length times the bits of
/// an alphabet made of the character classes it uses (lower case, upper
/// case, digits, anything else). A random 32-character hex string is ~165
/// by this count; `hunter2` is ~37.
fn estimated_bits(s: &str) -> u32 {
    let has = |f: fn(&char) -> bool| s.chars().any(|c| f(&c));
    let alphabet = [
        (has(char::is_ascii_lowercase), 26.0),
        (has(char::is_ascii_uppercase), 26.0),
        (has(char::is_ascii_digit), 10.0),
        (has(|c| !c.is_ascii_alphanumeric()), 32.0),
    ]
    .iter()
    .filter(|(present, _)| *present)
    .map(|(_, n)| n)
    .sum::<f64>();
    if alphabet <= 1.0 {
        return 0;
    }
    (s.chars().count() as f64 * alphabet.log2()) as u32
}

/// Reads the dev master key, creating it (mode 0600) on first use.
fn dev_master_key(file: &std::path::Path) -> Result<[u8; 32], String> {
    if let Ok(text) = std::fs::read_to_string(file) {
        return crypto::parse_master_key(&text).map_err(|e| format!("{}: {e}", file.display()));
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let key: [u8; 32] = crypto::random_bytes().map_err(|e| e.to_string())?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(file)
        .map_err(|e| format!("creating {}: {e}", file.display()))?;
    std::io::Write::write_all(&mut f, hex::encode(key).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut all = vec!["aipipe-control-plane"];
        all.extend_from_slice(args);
        Settings::try_parse_from(all).unwrap()
    }

    #[test]
    fn catalog_import_is_a_command_that_takes_the_database_flag_anywhere() {
        let s = settings(&[
            "catalog",
            "import",
            "prices.json",
            "--db",
            "/tmp/x.db",
            "--dry-run",
        ]);
        assert_eq!(s.db, PathBuf::from("/tmp/x.db"));
        assert!(matches!(
            s.command,
            Some(Command::Catalog(CatalogCommand::Import { ref file, dry_run: true }))
                if file == &PathBuf::from("prices.json")
        ));
        assert!(settings(&["--dev"]).command.is_none(), "no command: serve");
    }

    #[test]
    fn database_urls_are_parsed_and_passwords_never_shown() {
        assert_eq!(
            parse_database_url("x", "sqlite:///var/lib/aipipe.db").unwrap(),
            Database::Sqlite(PathBuf::from("/var/lib/aipipe.db"))
        );
        assert_eq!(
            parse_database_url("x", "sqlite://data/a.db").unwrap(),
            Database::Sqlite(PathBuf::from("data/a.db"))
        );
        let url = "postgres://aipipe:s3cr%40t@db.internal:5433/aipipe?sslmode=disable";
        let Database::Postgres(pg) = parse_database_url("x", url).unwrap() else {
            panic!("not PostgreSQL");
        };
        assert_eq!(
            pg.to_string(),
            "postgres://aipipe:***@db.internal:5433/aipipe?sslmode=disable"
        );
        assert!(!format!("{pg:?}").contains("s3cr"));
        let config = pg.config().unwrap();
        assert_eq!(config.get_password(), Some(&b"s3cr@t"[..]));
        assert_eq!(
            pg.scrub("oops s3cr@t and s3cr%40t"),
            "oops *** and ***",
            "raw and decoded forms"
        );
        assert_eq!(
            redact("postgresql://u@h/db?password=pw&application_name=a"),
            "postgresql://u@h/db?password=***&application_name=a"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        for (bad, says) in [
            ("sqlite://", "names no file"),
            ("mysql://root:pw@h/db", "neither sqlite://PATH"),
            ("/var/lib/aipipe.db", "neither sqlite://PATH"),
            (
                "postgres://u:pw@h/db?sslmode=verify-ca",
                "needs sslrootcert",
            ),
            (
                "postgres://u:pw@h/db?sslmode=verify-everything",
                "not one of disable",
            ),
            (
                "postgres://u:pw@%2Frun%2Fpostgresql/db?sslmode=require",
                "unix socket",
            ),
            (
                "postgres://u:pw@h:notaport/db",
                "not a valid PostgreSQL URL",
            ),
            (
                "postgres://u:pw@h/db?nonsense=1",
                "not a valid PostgreSQL URL",
            ),
        ] {
            let e = parse_database_url("AIPIPE_DATABASE_URL", bad).unwrap_err();
            assert!(
                e.contains(says) && e.starts_with("AIPIPE_DATABASE_URL"),
                "{bad}: {e}"
            );
            assert!(!e.contains(":pw@"), "{bad}: the password is shown: {e}");
        }
        // A PostgreSQL URL has no SQLite path, and says so without its
        // password; --db and the URL are one setting.
        let s = settings(&["--database-url", "postgres://u:pw@h/db"]);
        let e = s.sqlite_path().unwrap_err();
        assert!(
            e.contains("not a SQLite file") && !e.contains(":pw@"),
            "{e}"
        );
        let s = settings(&["--database-url", "sqlite:///tmp/a.db"]);
        assert_eq!(s.sqlite_path().unwrap(), PathBuf::from("/tmp/a.db"));
        assert_eq!(
            settings(&[]).sqlite_path().unwrap(),
            PathBuf::from("./data/aipipe.db")
        );
        let mut all = vec!["aipipe-control-plane"];
        all.extend(["--db", "/tmp/a.db", "--database-url", "sqlite:///tmp/b.db"]);
        assert!(
            Settings::try_parse_from(all).is_err(),
            "--db and --database-url conflict"
        );
    }

    /// libpq's rules, resolved without a server (the connections
    /// themselves: tests/postgres_tls.rs).
    #[test]
    fn sslmode_and_sslrootcert_resolve_as_in_libpq() {
        use RootCerts::{File, System};
        use Verify::{Chain, ChainAndHost, Nothing};
        let ca = || Some(File(PathBuf::from("/etc/ca b.pem")));
        let home = Some(PathBuf::from("/home/a/.postgresql/root.crt"));
        let home_root = || Some(File(PathBuf::from("/home/a/.postgresql/root.crt")));
        let q = "postgres://u:pw@h/db?";
        for (query, default_root, mode, roots, verify) in [
            ("", None, SslMode::Prefer, None, Nothing),
            (
                "sslmode=disable",
                home.clone(),
                SslMode::Disable,
                None,
                Nothing,
            ),
            ("sslmode=prefer", None, SslMode::Prefer, None, Nothing),
            ("sslmode=require", None, SslMode::Require, None, Nothing),
            // A root file makes prefer and require check the chain.
            (
                "sslmode=require&sslrootcert=/etc/ca%20b.pem",
                None,
                SslMode::Require,
                ca(),
                Chain,
            ),
            (
                "sslmode=require",
                home.clone(),
                SslMode::Require,
                home_root(),
                Chain,
            ),
            ("", home.clone(), SslMode::Prefer, home_root(), Chain),
            (
                "sslmode=verify-ca&sslrootcert=/etc/ca%20b.pem",
                None,
                SslMode::VerifyCa,
                ca(),
                Chain,
            ),
            (
                "sslmode=verify-ca",
                home.clone(),
                SslMode::VerifyCa,
                home_root(),
                Chain,
            ),
            // The given file wins over the default one.
            (
                "sslrootcert=/etc/ca%20b.pem&sslmode=verify-full",
                home.clone(),
                SslMode::VerifyFull,
                ca(),
                ChainAndHost,
            ),
            (
                "sslmode=verify-full",
                None,
                SslMode::VerifyFull,
                Some(System),
                ChainAndHost,
            ),
            (
                "sslmode=verify-full",
                home.clone(),
                SslMode::VerifyFull,
                home_root(),
                ChainAndHost,
            ),
            (
                "sslrootcert=system",
                home.clone(),
                SslMode::VerifyFull,
                Some(System),
                ChainAndHost,
            ),
            // The last of a repeated parameter counts.
            (
                "sslmode=disable&sslmode=require",
                None,
                SslMode::Require,
                None,
                Nothing,
            ),
        ] {
            let url = format!("{q}{query}");
            let tls = resolve_tls(&url, default_root).unwrap();
            assert_eq!(
                tls,
                Tls {
                    mode,
                    roots,
                    verify
                },
                "{query}"
            );
        }
        for (query, says) in [
            ("sslmode=verify-ca", "needs sslrootcert=PATH"),
            ("sslmode=verify-ca&sslrootcert=system", "sslrootcert=system"),
            (
                "sslmode=require&sslrootcert=system",
                "use sslmode=verify-full",
            ),
            ("sslmode=Require", "not one of disable"),
            ("sslrootcert=", "names no file"),
        ] {
            let e = resolve_tls(&format!("{q}{query}&password=pw2"), None).unwrap_err();
            assert!(e.contains(says), "{query}: {e}");
            assert!(!e.contains(":pw@") && !e.contains("pw2"), "{query}: {e}");
        }
        // The driver gets the URL less the two, and the mode that sends
        // what was asked for.
        let Database::Postgres(pg) = parse_database_url(
            "x",
            "postgres://u@h/db?sslrootcert=/c.pem&application_name=a&sslmode=verify-ca",
        )
        .unwrap() else {
            panic!("not PostgreSQL");
        };
        let config = pg.config().unwrap();
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(config.get_application_name(), Some("a"));
        assert_eq!(
            split_tls_params("postgres://u@h/db?sslmode=disable").0,
            "postgres://u@h/db"
        );
        // Parameters libpq has and this control plane does not (client
        // certificates, revocation lists) are refused, not ignored.
        let e = parse_database_url("x", "postgres://u@h/db?sslcert=/c.pem").unwrap_err();
        assert!(e.contains("not a valid PostgreSQL URL"), "{e}");
    }

    #[test]
    fn missing_secrets_are_named() {
        let mut s = settings(&[]);
        s.admin_secret = None;
        s.master_key = None;
        s.internal_token = None;
        let e = s.secrets().unwrap_err();
        assert!(e.contains("AIPIPE_ADMIN_SECRET"), "{e}");
        assert!(e.contains("AIPIPE_MASTER_KEY"), "{e}");
        assert!(e.contains("AIPIPE_INTERNAL_TOKEN"), "{e}");
        assert!(e.contains("--dev"), "{e}");
    }

    #[test]
    fn weak_secrets_are_refused_unless_in_dev_mode() {
        let key = "11".repeat(32);
        let strong = "0123456789abcdef".repeat(2);
        for (admin, token, refused) in [
            ("abcd", strong.as_str(), Some("AIPIPE_ADMIN_SECRET")),
            (strong.as_str(), "password", Some("AIPIPE_INTERNAL_TOKEN")),
            (strong.as_str(), strong.as_str(), None),
        ] {
            let s = settings(&[
                "--admin-secret",
                admin,
                "--internal-token",
                token,
                "--master-key",
                &key,
            ]);
            match (s.secrets(), refused) {
                (Err(e), Some(name)) => {
                    assert!(e.contains(name) && e.contains("too weak"), "{e}");
                    assert!(
                        !e.contains(admin) || admin == strong,
                        "the secret is echoed: {e}"
                    );
                }
                (Ok(_), None) => {}
                (other, _) => panic!("{admin}/{token}: {:?}", other.map(|_| ())),
            }
        }
        let key = std::env::temp_dir().join(format!("aipipe-cp-weak-{}", std::process::id()));
        let db = key.join("aipipe.db");
        let dev = settings(&[
            "--admin-secret",
            "abcd",
            "--internal-token",
            "t",
            "--master-key",
            &"22".repeat(32),
            "--db",
            db.to_str().unwrap(),
            "--dev",
        ]);
        assert!(dev.secrets().is_ok(), "--dev allows weak secrets");
        let _ = std::fs::remove_dir_all(&key);
        assert!(estimated_bits(&"f".repeat(64)) >= 256);
        assert!(estimated_bits("hunter2") < 64);
    }

    #[test]
    fn explicit_secrets_are_used_and_validated() {
        let key = "11".repeat(32);
        let strong = "0123456789abcdef".repeat(2);
        let s = settings(&[
            "--admin-secret",
            &strong,
            "--internal-token",
            &strong,
            "--master-key",
            &key,
        ]);
        let (secrets, generated) = s.secrets().unwrap();
        assert_eq!(secrets.master_key, [0x11; 32]);
        assert!(!generated.admin_secret && generated.master_key_file.is_none());
        let bad = settings(&[
            "--admin-secret",
            &strong,
            "--internal-token",
            &strong,
            "--master-key",
            "abc",
        ]);
        assert!(bad.secrets().unwrap_err().contains("64 hex digits"));
    }
}
