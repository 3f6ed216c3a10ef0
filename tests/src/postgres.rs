//! A throwaway PostgreSQL server for tests and demos: Debian's binaries
//! (`postgresql`, installed by the Makefile), a cluster made by `initdb` in a
//! scratch directory, `postgres` listening on 127.0.0.1 on a free port with
//! its unix socket in that directory, stopped and removed on drop.
//!
//! `initdb` and `postgres` refuse to run as root; as root (CI, the dev
//! container) they run as the `postgres` user the Debian package creates,
//! which gets the scratch directory. Durability is off (`fsync`,
//! `synchronous_commit`, `full_page_writes`): the cluster lives for one test.
//!
//! [`Postgres::start_with_tls`] starts one with `ssl=on` and a certificate
//! and key the test made (the TLS tests of control-plane/tests/postgres_tls.rs);
//! [`Postgres::start`] has TLS off. [`Postgres::start_durable`] keeps
//! PostgreSQL's durability defaults, for benches that compare with SQLite's
//! fsynced commits.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Process, TempDir, free_port};

/// A running throwaway server. Stopped (fast shutdown) and its directory
/// removed on drop.
pub struct Postgres {
    // Declared before `dir`: the server stops before its directory goes.
    server: Option<Process>,
    bin: PathBuf,
    port: u16,
    /// Whether the server was started with `ssl=on` (its certificate and
    /// key are `server.crt` and `server.key` in `dir`).
    tls: bool,
    /// Whether durability is on (PostgreSQL's defaults) rather than off.
    durable: bool,
    dir: TempDir,
}

/// The directory of Debian's PostgreSQL binaries: `AIPIPE_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AIPIPE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid to run the server as: None when this process is not
/// root (the server then runs as this user).
fn server_user() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let me = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    if me != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let user = passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some("postgres")).then_some(())?;
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    });
    match user {
        Some(u) => Some(u),
        None => panic!(
            "running as root, and initdb refuses root: there is no `postgres` user to run \
             PostgreSQL as (Debian's postgresql package creates it: apt-get install postgresql)"
        ),
    }
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt as _;
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

impl Postgres {
    /// Makes a cluster, starts it and waits until it accepts connections
    /// (about a second). Panics with the server's output if it cannot.
    pub fn start() -> Self {
        Self::start_inner(None, false)
    }

    /// As [`Postgres::start`], with PostgreSQL's durability defaults
    /// (`fsync`, `synchronous_commit`, `full_page_writes` on): a commit is
    /// on disk when it returns, as SQLite's are with `synchronous=FULL`.
    pub fn start_durable() -> Self {
        Self::start_inner(None, true)
    }

    /// As [`Postgres::start`], with TLS on: `ssl=on`, serving the PEM
    /// certificate (chain) `cert_pem` with its private key `key_pem`.
    /// Clients may still connect without TLS (the server's choice is the
    /// client's `sslmode`).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_inner(Some((cert_pem, key_pem)), false)
    }

    fn start_inner(tls: Option<(&str, &str)>, durable: bool) -> Self {
        let Some(bin) = bin_dir() else {
            panic!(
                "PostgreSQL's binaries were not found under /usr/lib/postgresql/*/bin \
                 (`make test` installs Debian's postgresql package; or set AIPIPE_PG_BIN)"
            );
        };
        let user = server_user();
        let dir = TempDir::new("postgres");
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user
            && let Err(e) = std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
        {
            panic!("giving {} to the postgres user: {e}", dir.path().display());
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .stdin(Stdio::null());
        as_server_user(&mut initdb, user);
        match initdb.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("running {}: {e}", bin.join("initdb").display()),
        }
        if let Some((cert, key)) = tls {
            // The server refuses a key readable by others; it must own it.
            use std::os::unix::fs::PermissionsExt as _;
            for (name, pem, mode) in [("server.crt", cert, 0o644), ("server.key", key, 0o600)] {
                let path = dir.path().join(name);
                let written = fs::write(&path, pem)
                    .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)));
                if let Err(e) = written {
                    panic!("writing {}: {e}", path.display());
                }
                if let Some((uid, gid)) = user
                    && let Err(e) = std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                {
                    panic!("giving {} to the postgres user: {e}", path.display());
                }
            }
        }
        let mut pg = Self {
            server: None,
            bin,
            port: free_port(),
            tls: tls.is_some(),
            durable,
            dir,
        };
        pg.launch();
        pg
    }

    /// Starts the server on the cluster and port made by [`Postgres::start`]
    /// and waits until it accepts connections.
    fn launch(&mut self) {
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "max_connections=40"]);
        if !self.durable {
            cmd.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        if self.tls {
            let file = |name: &str| format!("{}", self.dir.path().join(name).display());
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", file("server.crt")))
                .arg("-c")
                .arg(format!("ssl_key_file={}", file("server.key")));
        }
        as_server_user(&mut cmd, server_user());
        match Process::spawn("postgres", cmd) {
            Ok(p) => self.server = Some(p),
            Err(e) => panic!("starting {}: {e}", self.bin.join("postgres").display()),
        }
        self.wait_ready(Duration::from_secs(30));
    }

    /// Starts a stopped server again on the same cluster and port (what was
    /// committed before the stop is there: a fast shutdown checkpoints).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn wait_ready(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let alive = self.server.as_mut().is_some_and(Process::alive);
            if !alive || Instant::now() > deadline {
                let logs = self.server.as_ref().map(Process::logs).unwrap_or_default();
                panic!(
                    "PostgreSQL did not become ready on 127.0.0.1:{} ({}):\n{logs}",
                    self.port,
                    if alive { "timed out" } else { "it exited" }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster and its unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of database `name` (which need not exist).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs SQL through `psql` on database `db`; its output (unaligned,
    /// tuples only). Panics if psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-c", sql])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => panic!(
                "psql on {db} failed: {sql}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("running psql: {e}"),
        }
    }

    /// Stops the server (fast shutdown: open sessions are disconnected),
    /// killing it if it lingers. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        if server.alive() {
            let _ = Command::new("kill")
                .args(["-s", "INT", &server.pid().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Process's drop kills what is left and, in a failing test, prints
        // the server's log.
        drop(server);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Started, it answers SQL on its port; dropped, no process of it is left
    /// (the postmaster and its children are gone) and its directory is removed.
    #[test]
    fn a_throwaway_server_starts_answers_and_leaves_nothing_behind() {
        let started = Instant::now();
        let pg = Postgres::start();
        let url = pg.create_database("scratch");
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/scratch", pg.port())
        );
        assert_eq!(pg.psql("scratch", "SELECT 40 + 2").trim(), "42");
        let pid_file = pg.dir().join("data/postmaster.pid");
        let pid = fs::read_to_string(&pid_file).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        let dir = pg.dir().to_owned();
        eprintln!("started in {:?}", started.elapsed());
        drop(pg);
        // Every server process works in the data directory: none may be left.
        let left: Vec<String> = fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let cwd = fs::read_link(e.ok()?.path().join("cwd")).ok()?;
                cwd.starts_with(&dir).then(|| cwd.display().to_string())
            })
            .collect();
        assert!(left.is_empty(), "server processes left: {left:?}");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "postmaster {pid} still runs"
        );
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}
