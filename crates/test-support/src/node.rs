//! Node packages for the tests that run real JavaScript clients (the AI SDK suite, the TypeScript SDK, the browser
//! tests). Each suite's SQLite and PostgreSQL variants run in one process at the same time; two `npm ci` in one
//! folder delete each other's `node_modules`, so installs are serialised here.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// True when `node` and `npm` both run on this machine.
pub fn have_node() -> bool {
    let runs = |bin: &str| Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success());
    runs("node") && runs("npm")
}

/// Runs `npm ci` in `dir` unless every `markers` path (relative to `dir`) exists already. Holds a process-wide lock,
/// so concurrent callers install once and the others find the packages in place. Panics when npm fails.
pub fn ensure_packages(dir: &Path, markers: &[&str], env: &[(&str, &str)]) {
    let _guard = INSTALL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if markers.iter().all(|m| dir.join(m).exists()) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .envs(env.iter().copied())
        .current_dir(dir)
        .status()
        .expect("npm runs (Node is installed)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}
