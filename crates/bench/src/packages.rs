//! Row 12: the packages. Sizes of what `scripts/package` made (each package file and what it
//! installs), the app against Tauri's starter app packaged the same way (`stock-tauri`, built in
//! the same run), and how long `apt-get install` of each of the two takes (median of three, then
//! purged; as root only — elsewhere the install figures are left out and the row says so).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::report::Row;

/// How many installs are timed per package.
const INSTALLS: usize = 3;

/// The first file in `dir` whose name starts with `prefix` and ends with `suffix`.
fn find(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn kib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1024.0)
}

/// A control field of a .deb (`dpkg-deb -f`); empty when it cannot be read.
fn deb_field(deb: &Path, field: &str) -> String {
    Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(field)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `Installed-Size` of a .deb (KiB).
fn installed_kib(deb: &Path) -> f64 {
    deb_field(deb, "Installed-Size").parse().unwrap_or(0.0)
}

fn apt(args: &[&str], deb: Option<&Path>) -> bool {
    let mut c = Command::new("apt-get");
    c.args(["-y", "-q"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if let Some(d) = deb {
        // a file, not a package name, to apt: an absolute path
        c.arg(d.canonicalize().unwrap_or_else(|_| d.to_owned()));
    }
    match c.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "bench: packages: apt-get {args:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("bench: packages: apt-get: {e}");
            false
        }
    }
}

/// Median milliseconds of `apt-get install ./deb` (purged after each); None if it fails.
fn install_ms(deb: &Path) -> Option<f64> {
    let name = deb_field(deb, "Package");
    if Command::new("dpkg-query")
        .args(["-W", &name])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let _ = apt(&["purge", &name], None);
    }
    let mut times = Vec::new();
    for _ in 0..INSTALLS {
        let t = Instant::now();
        if !apt(&["install"], Some(deb)) {
            return None;
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = apt(&["purge", &name], None);
    }
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied()
}

pub fn run(rows: &mut Vec<Row>, dir: &Path) {
    let deb = |p: &str| find(dir, p, ".deb");
    let (Some(app), Some(stock)) = (deb("clawtray_"), deb("stock-tauri-app_")) else {
        eprintln!(
            "bench: packages: no clawtray_*.deb and stock-tauri-app_*.deb in {} (scripts/bench makes them)",
            dir.display()
        );
        return;
    };
    rows.push(
        Row::new(
            "app package (.deb, tray host + chat window + CLI)",
            kib(&app),
            "KiB",
        )
        .against("Tauri starter app's .deb", kib(&stock)),
    );
    rows.push(
        Row::new("app installed size", installed_kib(&app), "KiB")
            .against("Tauri starter app installed", installed_kib(&stock)),
    );
    if let Some(rpm) = find(dir, "clawtray-", ".rpm") {
        rows.push(
            Row::new("app package (.rpm)", kib(&rpm), "KiB").against("the app's .deb", kib(&app)),
        );
    }
    for p in ["agent", "relay"] {
        let (Some(d), Some(t)) = (
            deb(&format!("clawtray-{p}_")),
            find(dir, &format!("clawtray-{p}-"), ".tar.gz"),
        ) else {
            continue;
        };
        rows.push(
            Row::new(format!("{p} package (.deb)"), kib(&d), "KiB")
                .against(format!("the {p} tarball"), kib(&t)),
        );
        rows.push(Row::new(
            format!("{p} installed size"),
            installed_kib(&d),
            "KiB",
        ));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: packages: not root, so the install times are left out");
        return;
    }
    match (install_ms(&app), install_ms(&stock)) {
        (Some(a), Some(s)) => rows.push(
            Row::new("apt-get install of the app's .deb (median of 3)", a, "ms")
                .against("the starter app's .deb", s),
        ),
        _ => eprintln!("bench: packages: apt-get install failed; no install times"),
    }
}
