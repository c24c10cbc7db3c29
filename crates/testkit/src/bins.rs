//! The workspace's own binaries (relay, agent, CLI, app) next to the running test executable.

use std::path::{Path, PathBuf};
use std::sync::Once;

/// The workspace's root folder (where `packaging/` and `docs/` are).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `target/<profile>/<name>`, built on first use unless the test command built every binary
/// already (it sets `CLAWTRAY_BINS_BUILT`).
#[must_use]
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    // target/debug/deps/<test> → target/debug/<name>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned();
    let bin = dir.join(name);
    if std::env::var_os("CLAWTRAY_BINS_BUILT").is_some() && bin.exists() {
        return bin;
    }
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            // the whole workspace's binaries: building one package alone would unify features
            // differently, rebuild dependencies and overwrite the binary other tests use
            .args(["build", "--quiet", "--workspace", "--bins"])
            .status()
            .expect("run cargo build for the workspace's binaries");
        assert!(status.success(), "building the workspace's binaries failed");
    });
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// `clawtray-cli` with its pairings under `dirs` (`dirs/data`, `dirs/config`), ready for its
/// arguments.
#[must_use]
pub fn cli_command(dirs: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(workspace_bin("clawtray-cli"));
    c.arg("--data-dir")
        .arg(dirs.join("data"))
        .arg("--config-dir")
        .arg(dirs.join("config"));
    c
}

/// Run `clawtray-cli args` with its pairings under `dirs`; its output (whatever its status).
pub async fn cli_output(dirs: &Path, args: &[&str]) -> std::process::Output {
    cli_command(dirs)
        .args(args)
        .output()
        .await
        .expect("run clawtray-cli")
}
