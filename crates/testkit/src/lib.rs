//! Test harness for clawtray's cross-process tests (never shipped).
//!
//! - [`bins`]: the workspace's binaries next to the test executable (built on first use).
//! - [`agent`]: real `clawtray-agent run` and `pair` processes.
//! - [`chat_ui`]: a person's actions in the real chat window, through WebDriver.
//! - [`desktop`]: the desktop app's tray host and its chat window (attached to by WebKitWebDriver).
//! - [`display`]: a private X display (Xvfb).
//! - [`webdriver`]: a minimal W3C WebDriver client.
//! - [`files`]: incompressible bytes and valid PNGs of any size, for file tests and benches.
//! - [`faulty_link`]: a TCP proxy that stalls or resets the links it carries, on command.
//! - [`haproxy`]: HAProxy in front of relay nodes, configured by the shipped example.
//! - [`mitm`]: a hostile relay (WebSocket man-in-the-middle) that tampers with what it carries.
//! - [`redis`]: real `redis-server` processes: one plain server, or a Redis Cluster with replicas.
//! - [`relay`]: the real `clawtray-relay` binary as a child process (start, SIGKILL, SIGTERM,
//!   restart on the same port and database, HTTP probes, its log).
//! - [`scan`]: files under a folder, and whether they hold a secret or plaintext.
//! - [`agent_end`]: a scripted agent end: pairs, resumes, answers meetings, and replies to chat
//!   with streamed deltas — built on `clawtray_proto::endpoint`, speaking to the real relay.
//! - [`fake_model`]: an OpenAI-compatible streaming model on 127.0.0.1 for the real gateway.
//! - [`gateway`]: the real OpenClaw gateway (pinned, from npm) as a child process, offline.
//! - [`ws`]: a WebSocket client end with an optional bearer token.

pub mod agent;
pub mod agent_end;
pub mod bins;
pub mod chat_ui;
pub mod desktop;
pub mod display;
pub mod fake_model;
pub mod faulty_link;
pub mod files;
pub mod gateway;
pub mod haproxy;
pub mod mitm;
pub mod redis;
pub mod relay;
pub mod scan;
pub mod tls;
pub mod tray;
pub mod webdriver;
pub mod ws;

/// A loopback port nobody listens on right now.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `bin` in one of `$PATH`'s directories, if it is there.
#[must_use]
pub fn on_path(bin: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(bin))
        .find(|p| p.exists())
}

/// A work dir for a test that starts processes, named `<prefix>.XXXXXX` under the temp dir and
/// kept (their logs are what a failure leaves to read); its path is printed.
#[must_use]
pub fn kept_work_dir(prefix: &str) -> std::path::PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}."))
        .tempdir()
        .expect("tempdir")
        .keep();
    eprintln!("{prefix}: work dir {}", dir.display());
    dir
}
