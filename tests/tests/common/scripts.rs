//! The client scripts of `tests/sdk/` (official SDKs and clients, in
//! Python) in their batch form: each script runs its cases in one process
//! (SDK imports cost a second or two) against a stack started for it, and
//! prints one JSON line per case with what the client observed and what the
//! mock provider received for it (cleared between cases). A test then takes
//! its case's line with [`Batch::case`].

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aipipe_tests::{Envoy, Mock, TempDir, eventually, repo_root};
use serde_json::{Value, json};

/// One case: (id, case function of the script, model, prompt; None: the
/// case's own).
pub type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// The same 1x1 PNG as `tests/sdk/_common.py`.
pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// The system prompt of the scripts' cases (`SYSTEM` in `tests/sdk/_common.py`).
pub const SYSTEM: &str = "You are a helpful assistant.";

/// The PNG as the `data:` URL an OpenAI-format image part carries.
pub fn png_data_url() -> String {
    format!("data:image/png;base64,{PNG_1X1}")
}

/// What a script reads for one case.
pub fn spec(id: &str, case: &str, model: &str, prompt: Option<&str>) -> Value {
    json!({"id": id, "case": case, "model": model, "prompt": prompt})
}

/// The interpreter of `.venv/`, which has the pinned SDKs. Err: it is
/// missing (checked before a stack is started for nothing).
pub fn python() -> Result<PathBuf, String> {
    let python = repo_root().join(".venv/bin/python");
    if python.exists() {
        return Ok(python);
    }
    Err(format!(
        "{} is missing: run `make integration` (it creates .venv/ and installs the pinned SDKs)",
        python.display()
    ))
}

/// Runs `start`, which starts a stack and runs batches on it; a panic on the
/// way (a binary that would not start) becomes the error every test of the
/// batch reports.
pub fn caught<T>(what: &str, start: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(start)).unwrap_or_else(|e| {
        let message = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("{what} could not run: {message}"))
    })
}

/// What scripts printed, by (script, case id), their stderr, and the logs
/// of the stack they ran against.
pub struct Batch {
    lines: HashMap<(&'static str, String), Value>,
    stderr: String,
    logs: String,
}

impl Batch {
    /// Runs each script on its specs (see [`spec`]; a spec may name its own
    /// virtual `key`, else `key` is used), one after the other, against
    /// `envoy` and `mock`. Err: a script did not run, ran longer than
    /// `patience` or reported no case.
    pub fn run(
        python: &Path,
        scripts: Vec<(&'static str, Vec<Value>)>,
        key: &str,
        envoy: &Envoy,
        mock: &Mock,
        patience: Duration,
    ) -> Result<Self, String> {
        let mut lines = HashMap::new();
        let mut stderr = String::new();
        for (script, specs) in scripts {
            let (out, err) = run_script(python, script, specs, key, envoy, mock, patience)?;
            stderr.push_str(&err);
            for line in out {
                if let Some(id) = line["id"].as_str() {
                    lines.insert((script, id.to_owned()), line);
                }
            }
        }
        Ok(Self {
            lines,
            stderr,
            logs: stack_logs(envoy, mock),
        })
    }

    /// The line case `id` of `script` printed.
    pub fn line(&self, script: &'static str, id: &str) -> Option<&Value> {
        self.lines.get(&(script, id.to_owned()))
    }

    /// The result of case `id` of `script`; panics with the script's message
    /// (and the filter's log lines) if the case failed, and if the client's
    /// virtual key reached a provider.
    pub fn case(&self, script: &'static str, id: &str) -> Run {
        let Some(line) = self.line(script, id) else {
            panic!(
                "{script} printed no line for case {id}; its stderr:\n{}\n{}",
                self.stderr, self.logs
            );
        };
        // Shown with the failure (or with --nocapture): the whole observation.
        println!("{}", serde_json::to_string_pretty(line).unwrap_or_default());
        let upstream = line["upstream"].as_array().cloned().unwrap_or_default();
        if line["ok"] != true {
            panic!(
                "{}\n\nthe mock received: {upstream:#?}\n\n{}",
                line["error"].as_str().unwrap_or("(no message)"),
                self.logs
            );
        }
        // Whatever the route, the client's virtual key never leaves Envoy.
        for r in &upstream {
            for field in ["authorization", "x_api_key"] {
                assert!(
                    !r[field].as_str().unwrap_or("").contains("vk-"),
                    "the virtual key reached the provider in {field}: {r}"
                );
            }
        }
        Run {
            out: line["observed"].clone(),
            upstream,
        }
    }
}

/// Nothing from the environment may change where the clients go or what
/// they send.
const CLIENT_ENV: [&str; 15] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OLLAMA_HOST",
    "OLLAMA_API_KEY",
];

/// Runs one script's batch; returns its JSON lines and its stderr.
fn run_script(
    python: &Path,
    script: &str,
    specs: Vec<Value>,
    key: &str,
    envoy: &Envoy,
    mock: &Mock,
    patience: Duration,
) -> Result<(Vec<Value>, String), String> {
    let root = repo_root();
    let dir = TempDir::new("client-script");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut cmd = Command::new(python);
    cmd.current_dir(&root)
        .arg(root.join(script))
        .args(["--batch", "--key", key])
        .args(["--port", &envoy.port.to_string()])
        .args(["--mock-port", &mock.port.to_string()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?);
    for var in CLIENT_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(Value::Array(specs).to_string().as_bytes())
            .map_err(|e| format!("cannot write the cases to the script: {e}"))?;
    }
    let status = eventually(patience, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    if status.is_none() {
        return Err(format!(
            "{script} still running after {patience:?}; it printed:\n{stdout}\n{stderr}"
        ));
    }
    if lines.is_empty() {
        return Err(format!(
            "{script} reported no case ({}):\n{stdout}\n{stderr}",
            status.map(|s| s.to_string()).unwrap_or_default()
        ));
    }
    Ok((lines, stderr))
}

/// The lines of the logs that tell what the filter did, for failures.
fn stack_logs(envoy: &Envoy, mock: &Mock) -> String {
    let envoy_log = envoy.process.logs();
    let filter_lines: Vec<&str> = envoy_log
        .lines()
        .filter(|l| l.contains("[wasm]") || l.contains("[critical]") || l.contains("[error]"))
        .collect();
    format!(
        "----- envoy log, filter lines -----\n{}\n----- mock-provider log -----\n{}",
        filter_lines.join("\n"),
        mock.process.logs()
    )
}

/// A case's result: what the client observed and what the mock received.
pub struct Run {
    pub out: Value,
    /// What the mock provider received for this case, oldest first.
    pub upstream: Vec<Value>,
}

impl Run {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.out["headers"][name].as_str()
    }

    /// The one request the mock received.
    pub fn only_upstream(&self) -> &Value {
        assert_eq!(
            self.upstream.len(),
            1,
            "the mock received {} requests: {:#?}",
            self.upstream.len(),
            self.upstream
        );
        &self.upstream[0]
    }
}

/// The answer came from `provider`'s `model`, as the headers say.
pub fn assert_answered_by(r: &Run, provider: &str, model: &str, route: &str) {
    assert_eq!(r.header("x-aipipe-provider"), Some(provider), "{}", r.out);
    assert_eq!(r.header("x-aipipe-model"), Some(model), "{}", r.out);
    assert_eq!(r.header("x-aipipe-route"), Some(route), "{}", r.out);
    assert_eq!(
        r.header("x-aipipe-request-id").map(str::len),
        Some(24),
        "{}",
        r.out
    );
}

/// The mock's text: `Mock answer from <provider>/<model>: …`.
pub fn assert_mock_text(text: &Value, provider: &str, model: &str) {
    let want = format!("Mock answer from {provider}/{model}: ");
    assert!(
        text.as_str().is_some_and(|t| t.starts_with(&want)),
        "the content {text} does not start with {want:?}"
    );
}

/// The mock's tool call for the weather question: its arguments.
pub fn assert_weather_args(args: &Value) {
    assert_eq!(
        *args,
        json!({"location": "San Francisco, CA", "unit": "celsius"}),
        "{args}"
    );
}
