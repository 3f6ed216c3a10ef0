//! What the tests of the ways in (`compose.rs`, `snippets.rs`, `istio.rs`)
//! share: reading YAML as JSON values, the pinned tools the Makefile
//! installs, and running them.

use std::path::{Path, PathBuf};
use std::process::Command;

use aipipe_tests::repo_root;
use serde_json::Value;

/// A YAML file of the repository (path relative to its root) as a JSON value.
pub fn yaml(path: &str) -> Value {
    yaml_str(&read(path))
}

/// YAML text as a JSON value (aliases resolved, as Envoy reads them).
pub fn yaml_str(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}"))
}

/// Every document of a multi-document YAML file.
pub fn yaml_docs(path: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(&read(path))
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// A file of the repository as text.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A tool the Makefile installs (`make test` / `make ways-tools`), by its
/// path under the repository root.
pub fn tool(path: &str) -> PathBuf {
    let p = repo_root().join(path);
    assert!(
        p.exists(),
        "{} is missing: run `make ways-tools` (make test does)",
        p.display()
    );
    p
}

/// Runs `program args` from the repository root: (success, stdout + stderr).
pub fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .current_dir(repo_root())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `envoy --mode validate` on a config file: (success, log).
pub fn envoy_validates(config: &Path) -> (bool, String) {
    let config = config.to_string_lossy();
    run(
        &aipipe_tests::envoy_binary(),
        &["--mode", "validate", "--log-level", "error", "-c", &config],
    )
}

/// Every leaf where `a` and `b` differ: (path, a's value, b's value); a key
/// or an item only one side has is a difference with Null on the other.
pub fn differences(a: &Value, b: &Value) -> Vec<(String, Value, Value)> {
    fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<(String, Value, Value)>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (l, r) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    walk(format!("{path}.{k}"), l, r, out);
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    let (l, r) = (
                        x.get(i).unwrap_or(&Value::Null),
                        y.get(i).unwrap_or(&Value::Null),
                    );
                    walk(format!("{path}[{i}]"), l, r, out);
                }
            }
            _ if a != b => out.push((path, a.clone(), b.clone())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), a, b, &mut out);
    out
}
