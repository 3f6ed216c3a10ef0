//! `demo-seed`: seeds the demo tenant into a running control plane, as
//! `make demo` does — for the one-shot `seed` service of
//! `docker-compose.yaml`, which runs it from the mock provider's image.
//!
//! Environment: `AIPIPE_ADMIN_SECRET` (required), `AIPIPE_DEMO_KEY` (default
//! `aipipe-demo-key`), `AIPIPE_CONTROL_PLANE_ADMIN` (the admin API's base
//! URL, default `http://127.0.0.1:8082`). Waits up to 60 s for the control
//! plane, then exits 0 once the tenant, its mock provider keys and the demo
//! key are there (also when they already were).

use std::time::Duration;

use aipipe_tests::demo::{CP_ADMIN, DEFAULT_KEY, env, seed, wait_for_control_plane};

fn main() {
    if let Err(why) = run() {
        eprintln!("demo-seed: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let secret = env("AIPIPE_ADMIN_SECRET").ok_or("AIPIPE_ADMIN_SECRET is not set")?;
    let key = env("AIPIPE_DEMO_KEY").unwrap_or_else(|| DEFAULT_KEY.to_owned());
    let base =
        env("AIPIPE_CONTROL_PLANE_ADMIN").unwrap_or_else(|| format!("http://127.0.0.1:{CP_ADMIN}"));
    let base = base.trim_end_matches('/');
    wait_for_control_plane(base, Duration::from_secs(60))?;
    seed(base, &secret, &key)?;
    println!("demo-seed: tenant `demo` and its key are in {base}");
    Ok(())
}
