//! Row 6 — the tray app at rest: resident memory of its whole process tree (the app and its web
//! view processes) under Xvfb with the window closed after 60 s idle, and wake-ups per minute
//! (context switches of every thread in the tree over the last 30 s of that minute); then with
//! the chat open, and closed again. Baseline in the same run: the same binary with
//! `CLAWTRAY_BENCH_KEEP_WEBVIEW=1`, which hides the window instead of destroying it — the stock
//! Tauri tray app that keeps a hidden web view. The global hotkey (xdotool) opens and closes it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawtray_testkit::display::Xvfb;

use crate::report::Row;
use crate::stats::{rss_kib, status_field};
use crate::ws::sibling_bin;

const IDLE: Duration = Duration::from_secs(60);
const HOTKEY: &str = "ctrl+shift+space";

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok());
            if let Some(pp) = ppid {
                parents.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

fn tree_rss_mib(pid: u32) -> f64 {
    tree(pid).into_iter().map(rss_kib).sum::<u64>() as f64 / 1024.0
}

/// Context switches of every thread of every process in the tree.
fn tree_switches(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .flat_map(|p| {
            std::fs::read_dir(format!("/proc/{p}/task"))
                .map(|d| d.flatten().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .filter_map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            Some(
                status_field(&status, "voluntary_ctxt_switches")?
                    + status_field(&status, "nonvoluntary_ctxt_switches")?,
            )
        })
        .sum()
}

fn window_shown(x: &Xvfb) -> bool {
    Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--onlyvisible", "--name", "^clawtray$"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

fn press(x: &Xvfb) {
    let _ = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["key", "--clearmodifiers", HOTKEY])
        .status();
}

async fn wait_shown(x: &Xvfb, shown: bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if window_shown(x) == shown {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

struct Measured {
    open: f64,
    rest: f64,
    wakeups_per_min: f64,
    open_again: Option<f64>,
    closed_again: Option<f64>,
}

struct App {
    child: Child,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn measure(bin: &Path, keep_webview: bool) -> Option<Measured> {
    let x = Xvfb::start();
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let mut cmd = Command::new(bin);
    cmd.env("DISPLAY", &x.display)
        .env("HOME", h)
        .env("XDG_CONFIG_HOME", h.join(".config"))
        .env("XDG_DATA_HOME", h.join(".local/share"))
        .env("XDG_CACHE_HOME", h.join(".cache"))
        .env("CLAWTRAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if keep_webview {
        cmd.env("CLAWTRAY_BENCH_KEEP_WEBVIEW", "1");
    }
    let app = App {
        child: cmd.spawn().expect("start the app"),
    };
    let pid = app.child.id();
    if !wait_shown(&x, true).await {
        eprintln!("bench: the app's window never showed");
        return None;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open = tree_rss_mib(pid);
    press(&x);
    if !wait_shown(&x, false).await {
        eprintln!("bench: the hotkey did not close the window");
        return None;
    }
    tokio::time::sleep(IDLE / 2).await;
    let before = tree_switches(pid);
    tokio::time::sleep(IDLE / 2).await;
    let wakeups_per_min = (tree_switches(pid) - before) as f64 * 60.0 / (IDLE / 2).as_secs_f64();
    let rest = tree_rss_mib(pid);
    let (mut open_again, mut closed_again) = (None, None);
    if !keep_webview {
        press(&x);
        if wait_shown(&x, true).await {
            tokio::time::sleep(Duration::from_secs(5)).await;
            open_again = Some(tree_rss_mib(pid));
            press(&x);
            if wait_shown(&x, false).await {
                tokio::time::sleep(Duration::from_secs(10)).await;
                closed_again = Some(tree_rss_mib(pid));
            }
        }
    }
    Some(Measured {
        open,
        rest,
        wakeups_per_min,
        open_again,
        closed_again,
    })
}

pub async fn run(rows: &mut Vec<Row>) {
    let bin = sibling_bin("clawtray");
    let (Some(ours), Some(stock)) = (measure(&bin, false).await, measure(&bin, true).await) else {
        return;
    };
    rows.push(
        Row::new(
            "tray app at rest (window closed, 60 s idle), RSS of the process tree",
            ours.rest,
            "MiB",
        )
        .against("hidden web view kept", stock.rest)
        .target("≤ 60 MB", ours.rest * 1.048_576 <= 60.0),
    );
    rows.push(
        Row::new(
            "tray app at rest, wake-ups per minute (whole tree)",
            ours.wakeups_per_min,
            "",
        )
        .against("hidden web view kept", stock.wakeups_per_min)
        .target("~0 (≤ 60/min)", ours.wakeups_per_min <= 60.0),
    );
    rows.push(
        Row::new(
            "tray app with the chat open, RSS of the process tree",
            ours.open,
            "MiB",
        )
        .against("hidden web view kept, open", stock.open),
    );
    if let (Some(again), Some(closed)) = (ours.open_again, ours.closed_again) {
        rows.push(
            Row::new(
                "tray app: chat opened again, RSS of the process tree",
                again,
                "MiB",
            )
            .against("first opening", ours.open),
        );
        rows.push(
            Row::new(
                "tray app: chat opened again, then closed — RSS after closing",
                closed,
                "MiB",
            )
            .against("at rest before", ours.rest)
            .target(
                "memory comes back (≤ 1.1× at rest)",
                closed <= ours.rest * 1.1,
            ),
        );
    }
}
