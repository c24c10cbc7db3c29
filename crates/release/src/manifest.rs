//! The update manifest the app fetches (the JSON of Tauri's updater).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::keys::sig_path;
use crate::ReleaseError;

/// The platform key a package is for, from its file name (`clawtray_0.2.0_amd64.deb` →
/// `linux-x86_64-deb`).
pub fn platform_of(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    let arch = if name.contains("amd64") || name.contains("x86_64") {
        "x86_64"
    } else if name.contains("arm64") || name.contains("aarch64") {
        "aarch64"
    } else {
        return None;
    };
    let kind = if name.ends_with(".deb") {
        "-deb"
    } else if name.ends_with(".rpm") {
        "-rpm"
    } else if name.ends_with(".tar.gz") {
        ""
    } else {
        return None;
    };
    Some(format!("linux-{arch}{kind}"))
}

/// The manifest as JSON text.
pub fn write(
    version: &str,
    url_base: &str,
    notes: Option<&str>,
    packages: &[PathBuf],
) -> Result<String, ReleaseError> {
    let mut platforms = Map::new();
    for p in packages {
        let key = platform_of(p).ok_or_else(|| ReleaseError::UnknownPlatform(p.clone()))?;
        let sig =
            std::fs::read_to_string(sig_path(p)).map_err(|_| ReleaseError::Unsigned(p.clone()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let url = format!("{}/{name}", url_base.trim_end_matches('/'));
        platforms.insert(key, json!({ "url": url, "signature": sig.trim() }));
    }
    let m = json!({
        "version": version,
        "notes": notes.unwrap_or(""),
        "pub_date": now_rfc3339(),
        "platforms": Value::Object(platforms),
    });
    serde_json::to_string_pretty(&m).map_err(|e| ReleaseError::Sign(e.to_string()))
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (days from the civil calendar algorithm; no date crate needed
/// for one timestamp).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_come_from_file_names() {
        let p = |s: &str| platform_of(Path::new(s));
        assert_eq!(
            p("clawtray_0.2.0_amd64.deb").as_deref(),
            Some("linux-x86_64-deb")
        );
        assert_eq!(
            p("clawtray-0.2.0-1.x86_64.rpm").as_deref(),
            Some("linux-x86_64-rpm")
        );
        assert_eq!(
            p("clawtray_0.2.0_arm64.deb").as_deref(),
            Some("linux-aarch64-deb")
        );
        assert_eq!(
            p("clawtray-agent-0.2.0-x86_64-linux.tar.gz").as_deref(),
            Some("linux-x86_64")
        );
        assert_eq!(p("clawtray.exe"), None);
        assert_eq!(p("clawtray_0.2.0_amd64.zip"), None);
    }

    #[test]
    fn the_date_is_a_date() {
        let d = now_rfc3339();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}
