//! Row 6 — the desktop app at rest and on click. The tray host (`clawtray`, started as at login:
//! no window) under Xvfb on the bench's private session bus: resident (RSS) and proportional (PSS)
//! memory of its whole process tree after 60 s idle with the chat closed, and wake-ups per minute
//! (context switches of every thread in the tree over the last 30 s of that minute) — against the
//! same tree with the chat open. Then the panel's left click (`Activate` on the host's
//! StatusNotifierItem, over D-Bus) → the chat window on screen (mapped), five times, against the
//! chat window program started directly (the cost of GTK/WebKit alone); and the memory after the
//! chat is closed again, against the figure at rest.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawtray_testkit::display::Xvfb;

use crate::report::Row;
use crate::stats::{ms, percentile, rss_kib, status_field};
use crate::ws::sibling_bin;

const IDLE: Duration = Duration::from_secs(60);

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

/// Wait until the chat window is (or is not) on screen; how long it took.
async fn wait_shown(x: &Xvfb, shown: bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if window_shown(x) == shown {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Proportional memory of `pid` in KiB (`smaps_rollup`).
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| status_field(&s, "Pss"))
        .unwrap_or(0)
}

fn tree_pss_mib(pid: u32) -> f64 {
    tree(pid).into_iter().map(pss_kib).sum::<u64>() as f64 / 1024.0
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Call `Activate` on the host's tray item (a left click on the icon).
async fn click(bus: &zbus::Connection, item: &str) -> bool {
    bus.call_method(
        Some(item),
        "/StatusNotifierItem",
        Some("org.kde.StatusNotifierItem"),
        "Activate",
        &(0i32, 0i32),
    )
    .await
    .is_ok()
}

struct Measured {
    rest_rss: f64,
    rest_pss: f64,
    rest_wakeups: f64,
    open_rss: f64,
    open_pss: f64,
    open_wakeups: f64,
    clicks: Vec<Duration>,
    direct: Vec<Duration>,
    closed_rss: f64,
    closed_pss: f64,
}

const OPENINGS: usize = 5;

async fn wakeups(pid: u32, over: Duration) -> f64 {
    let before = tree_switches(pid);
    tokio::time::sleep(over).await;
    tree_switches(pid).saturating_sub(before) as f64 * 60.0 / over.as_secs_f64()
}

async fn measure(host_bin: &Path, chat_bin: &Path) -> Result<Measured, String> {
    let x = Xvfb::start();
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let h = home.path();
    let runtime = h.join("runtime");
    std::fs::create_dir_all(&runtime).map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(|e| e.to_string())?;
    let env = |cmd: &mut Command| {
        cmd.env("DISPLAY", &x.display)
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("XDG_DATA_HOME", h.join(".local/share"))
            .env("XDG_CACHE_HOME", h.join(".cache"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("CLAWTRAY_CHAT_BIN", chat_bin)
            .env("CLAWTRAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut cmd = Command::new(host_bin);
    cmd.arg("--autostart");
    env(&mut cmd);
    let host = Killed(cmd.spawn().map_err(|e| format!("start the host: {e}"))?);
    let pid = host.0.id();
    let bus = zbus::Connection::session()
        .await
        .map_err(|e| format!("the bench needs a session bus (scripts/bench runs one): {e}"))?;
    let item = format!("org.kde.StatusNotifierItem-{pid}-1");
    let dbus = zbus::fdo::DBusProxy::new(&bus)
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    while !dbus
        .name_has_owner(item.as_str().try_into().map_err(|e| format!("{e}"))?)
        .await
        .unwrap_or(false)
    {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("the host's tray item never appeared on the bus".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // at rest, as at login
    tokio::time::sleep(IDLE / 2).await;
    let rest_wakeups = wakeups(pid, IDLE / 2).await;
    let (rest_rss, rest_pss) = (tree_rss_mib(pid), tree_pss_mib(pid));
    // click → on screen, and back
    let mut clicks = Vec::new();
    let (mut open_rss, mut open_pss, mut open_wakeups) = (0.0, 0.0, 0.0);
    for i in 0..OPENINGS {
        let start = Instant::now();
        if !click(&bus, &item).await {
            return Err("Activate failed".into());
        }
        wait_shown(&x, true)
            .await
            .ok_or("a click did not open the chat")?;
        clicks.push(start.elapsed());
        if i == 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            open_rss = tree_rss_mib(pid);
            open_pss = tree_pss_mib(pid);
            open_wakeups = wakeups(pid, IDLE / 2).await;
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        click(&bus, &item).await;
        wait_shown(&x, false)
            .await
            .ok_or("a click did not close the chat")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // memory comes back once the window process is gone
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (closed_rss, closed_pss) = (tree_rss_mib(pid), tree_pss_mib(pid));
    // the window program started directly: what GTK/WebKit cost on their own
    let mut direct = Vec::new();
    for _ in 0..OPENINGS {
        let mut cmd = Command::new(chat_bin);
        env(&mut cmd);
        let start = Instant::now();
        let chat = Killed(cmd.spawn().map_err(|e| format!("start the chat: {e}"))?);
        wait_shown(&x, true)
            .await
            .ok_or("the chat started directly never showed")?;
        direct.push(start.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(chat);
        wait_shown(&x, false).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(host);
    Ok(Measured {
        rest_rss,
        rest_pss,
        rest_wakeups,
        open_rss,
        open_pss,
        open_wakeups,
        clicks,
        direct,
        closed_rss,
        closed_pss,
    })
}

pub async fn run(rows: &mut Vec<Row>) {
    let (host_bin, chat_bin) = (sibling_bin("clawtray"), sibling_bin("clawtray-chat"));
    let m = match measure(&host_bin, &chat_bin).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bench: the app rows could not be measured: {e}");
            return;
        }
    };
    let mb = |mib: f64| mib * 1.048_576;
    rows.push(
        Row::new(
            "tray host at rest (chat closed, 60 s idle), RSS of the process tree",
            m.rest_rss,
            "MiB",
        )
        .against("chat open", m.open_rss)
        .target("≤ 40 MB", mb(m.rest_rss) <= 40.0),
    );
    rows.push(
        Row::new(
            "tray host at rest, PSS of the process tree",
            m.rest_pss,
            "MiB",
        )
        .against("chat open", m.open_pss)
        .target("≤ 40 MB", mb(m.rest_pss) <= 40.0),
    );
    rows.push(
        Row::new(
            "tray host at rest, wake-ups per minute (whole tree)",
            m.rest_wakeups,
            "",
        )
        .against("chat open", m.open_wakeups)
        .target("≤ 10/min", m.rest_wakeups <= 10.0),
    );
    let mut clicks = m.clicks.clone();
    let mut direct = m.direct.clone();
    let (c50, c95) = (
        ms(percentile(&mut clicks, 50.0)),
        ms(percentile(&mut clicks, 95.0)),
    );
    let (d50, d95) = (
        ms(percentile(&mut direct, 50.0)),
        ms(percentile(&mut direct, 95.0)),
    );
    rows.push(
        Row::new(
            format!("tray click → chat on screen, p50 ({OPENINGS} openings)"),
            c50,
            "ms",
        )
        .against("chat program started directly", d50)
        .target("≤ 500 ms", c50 <= 500.0),
    );
    rows.push(
        Row::new("tray click → chat on screen, p95", c95, "ms")
            .against("chat program started directly", d95)
            .target("≤ 500 ms", c95 <= 500.0),
    );
    rows.push(
        Row::new(
            "tray host after the chat was opened and closed 5×, RSS of the tree",
            m.closed_rss,
            "MiB",
        )
        .against("at rest before", m.rest_rss)
        .target(
            "memory comes back (≤ 1.1× at rest)",
            m.closed_rss <= m.rest_rss * 1.1,
        ),
    );
    rows.push(
        Row::new("… and PSS of the tree", m.closed_pss, "MiB")
            .against("at rest before", m.rest_pss),
    );
}
