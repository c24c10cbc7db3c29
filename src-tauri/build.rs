//! Build-time: the Tauri context, and the app's own commands declared so that each needs its
//! permission (`allow-<command>`) in a capability — a command not listed there is refused.

/// The commands the UI may invoke (also in `src/lib.rs`'s handler and `capabilities/default.json`).
const COMMANDS: &[&str] = &[
    "status",
    "pair",
    "send",
    "abort",
    "history",
    "unpair",
    "reconnect",
    "take_pair_link",
    "decide",
    "approvals",
    "sessions",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .config_path("../tauri.conf.json")
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build configuration");
}
