//! The app's own settings file, `settings.json` in the platform config dir: the chat hotkey,
//! whether finished replies notify, and whether (and where) to look for signed updates. A missing file is written with the defaults (so people find the knob); a broken
//! one is reported and the defaults are used — the app always starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The hotkey when the settings say nothing.
pub const DEFAULT_HOTKEY: &str = "CommandOrControl+Shift+Space";

/// What `settings.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// A global shortcut that toggles the chat (`null` turns it off), in Tauri's accelerator
    /// syntax, e.g. `"CommandOrControl+Shift+Space"` or `"Alt+F12"`.
    pub hotkey: Option<String>,
    /// A "your agent replied" notification when a reply finishes while the chat is closed.
    /// Approvals always notify: a command waits for the person.
    pub notify_replies: bool,
    /// Look for signed updates (at start, every six hours, and from the tray's "Check for
    /// updates"); nothing is installed without the person's yes.
    pub check_updates: bool,
    /// Where the update manifest is (`null`: the address built into this release).
    /// `$CLAWTRAY_UPDATE_URL` overrides it.
    pub update_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hotkey: Some(DEFAULT_HOTKEY.to_owned()),
            notify_replies: true,
            check_updates: true,
            update_url: None,
        }
    }
}

/// The settings file in `config_dir`.
#[must_use]
pub fn path(config_dir: &Path) -> PathBuf {
    config_dir.join("settings.json")
}

/// Read the settings; returns them and, when the file was unusable, a sentence saying why.
#[must_use]
pub fn load(config_dir: &Path) -> (Settings, Option<String>) {
    let file = path(config_dir);
    match std::fs::read(&file) {
        Ok(bytes) => match serde_json::from_slice::<Settings>(&bytes) {
            Ok(s) => (s, None),
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "{} is not valid ({e}); using the default settings until it is fixed",
                    file.display()
                )),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let defaults = Settings::default();
            // best effort: a read-only config dir still runs with the defaults
            let _ = std::fs::create_dir_all(config_dir).and_then(|()| {
                let json = serde_json::to_vec_pretty(&defaults).map_err(std::io::Error::other)?;
                std::fs::write(&file, json)
            });
            (defaults, None)
        }
        Err(e) => (
            Settings::default(),
            Some(format!(
                "cannot read {} ({e}); using the default settings",
                file.display()
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_written_with_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (s, warning) = load(dir.path());
        assert_eq!(s, Settings::default());
        assert!(warning.is_none());
        let written = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(written.contains(DEFAULT_HOTKEY), "{written}");
        assert_eq!(load(dir.path()).0, s, "and reads back the same");
    }

    #[test]
    fn the_hotkey_can_be_changed_or_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), r#"{"hotkey":"Alt+F12"}"#).unwrap();
        assert_eq!(load(dir.path()).0.hotkey.as_deref(), Some("Alt+F12"));
        std::fs::write(path(dir.path()), r#"{"hotkey":null}"#).unwrap();
        assert_eq!(load(dir.path()).0.hotkey, None);
    }

    #[test]
    fn reply_notifications_are_on_unless_turned_off_and_older_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        // a file written before the setting existed: replies notify
        std::fs::write(path(dir.path()), r#"{"hotkey":"Alt+F12"}"#).unwrap();
        assert!(load(dir.path()).0.notify_replies);
        std::fs::write(path(dir.path()), r#"{"notify_replies":false}"#).unwrap();
        let (s, warning) = load(dir.path());
        assert!(!s.notify_replies);
        assert!(warning.is_none());
        assert_eq!(
            s.hotkey.as_deref(),
            Some(DEFAULT_HOTKEY),
            "the rest keeps its default"
        );
    }

    #[test]
    fn updates_are_looked_for_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), r#"{"hotkey":"Alt+F12"}"#).unwrap();
        let s = load(dir.path()).0;
        assert!(s.check_updates);
        assert_eq!(s.update_url, None);
        std::fs::write(
            path(dir.path()),
            r#"{"check_updates":false,"update_url":"https://example.org/latest.json"}"#,
        )
        .unwrap();
        let s = load(dir.path()).0;
        assert!(!s.check_updates);
        assert_eq!(
            s.update_url.as_deref(),
            Some("https://example.org/latest.json")
        );
    }

    #[test]
    fn a_broken_file_gives_the_defaults_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            &b"{not json"[..],
            br#"{"hotkee":"Alt+F1"}"#,
            br#"{"hotkey":5}"#,
        ] {
            std::fs::write(path(dir.path()), bad).unwrap();
            let (s, warning) = load(dir.path());
            assert_eq!(s, Settings::default());
            let warning = warning.expect("a sentence");
            assert!(warning.contains("settings.json is not valid"), "{warning}");
        }
        assert_eq!(
            std::fs::read(path(dir.path())).unwrap(),
            br#"{"hotkey":5}"#,
            "a broken file is left for the person to fix, not overwritten"
        );
    }
}
