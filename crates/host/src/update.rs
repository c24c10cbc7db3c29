//! Signed updates in the tray host (the process that runs all day; the chat window has no part in
//! them). The host looks at the update manifest a minute after it starts, every six hours, and
//! when the person picks "Check for updates"; a newer version is offered in the tray menu and a
//! notification. Only when the person picks "Install" is the package downloaded, its minisign
//! signature checked against the key built into this build (`clawtray_client::update`), the
//! package manager run (through `pkexec`, which asks for the password, unless already root) and
//! the host restarted on the new version. A package that is not signed with that key is never
//! installed, and the person is told why.
//!
//! Built into the binary by `scripts/package`: `CLAWTRAY_VERSION` (the package's version),
//! `CLAWTRAY_UPDATE_PUBKEY` (the public key) and `CLAWTRAY_UPDATE_URL` (the default manifest
//! address). A build without a key (a plain `cargo build`) does not look for updates.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tracing::{info, warn};

use clawtray_client::update::{offer, InstallKind, Offer, UpdateError, UpdateKey};

/// This build's version: the package's (`CLAWTRAY_VERSION` at build time), else the crate's.
pub const VERSION: &str = match option_env!("CLAWTRAY_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
/// The public key updates must be signed with (base64 of a minisign public key file).
const PUBKEY: Option<&str> = option_env!("CLAWTRAY_UPDATE_PUBKEY");
/// Where the manifest is, unless the settings or `$CLAWTRAY_UPDATE_URL` say otherwise.
const DEFAULT_URL: Option<&str> = option_env!("CLAWTRAY_UPDATE_URL");

/// The first look, after start (not to compete with login).
pub const FIRST_CHECK_AFTER: Duration = Duration::from_secs(60);
/// Between looks.
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// A manifest is small; anything bigger is not one.
const MANIFEST_LIMIT: u64 = 256 * 1024;
/// The largest package downloaded.
const PACKAGE_LIMIT: u64 = 512 * 1024 * 1024;
/// How long one download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// What the update machinery tells the host.
#[derive(Debug)]
pub enum UpdateEvent {
    /// A look at the manifest; `asked`: the person asked for it (so "up to date" is worth saying).
    Checked {
        asked: bool,
        result: Result<Option<Offer>, UpdateError>,
    },
    /// The new version is installed: restart on it.
    Installed { version: String },
    /// Nothing was installed, and why.
    NotInstalled(UpdateError),
}

/// Updates, when this build and the settings allow them.
pub struct Updater {
    url: String,
    key: std::sync::Arc<UpdateKey>,
    kind: InstallKind,
    /// The host's executable as it was started (the package replaces the file under it).
    exe: PathBuf,
    downloads: PathBuf,
}

impl Updater {
    /// Set up from the settings; `Err` says why this copy does not look for updates.
    ///
    /// # Errors
    /// A sentence: updates turned off, no key in this build, no manifest address, or a copy not
    /// installed by a package manager.
    pub async fn new(enabled: bool, url: Option<&str>, cache_dir: &Path) -> Result<Self, String> {
        if !enabled {
            return Err("looking for updates is turned off in settings.json".into());
        }
        let key = UpdateKey::from_base64(PUBKEY).map_err(|e| e.to_string())?;
        let url = std::env::var("CLAWTRAY_UPDATE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| url.map(str::to_owned))
            .or_else(|| DEFAULT_URL.map(str::to_owned))
            // scripts/package builds the variable in empty when no address was given
            .filter(|u| !u.is_empty())
            .ok_or("this build has no update address; updates come from your package manager")?;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot tell where clawtray is: {e}"))?;
        let kind = install_kind(&exe).await;
        if kind == InstallKind::Unmanaged {
            return Err(format!(
                "{} was not installed by a package manager; update it the way it was installed",
                exe.display()
            ));
        }
        Ok(Self {
            url,
            key: std::sync::Arc::new(key),
            kind,
            exe,
            downloads: cache_dir.join("updates"),
        })
    }

    /// The host's executable as it was started.
    #[must_use]
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Look at the manifest in the background; the answer comes as [`UpdateEvent::Checked`].
    pub fn check(&self, asked: bool, events: tokio::sync::mpsc::UnboundedSender<UpdateEvent>) {
        let (url, kind) = (self.url.clone(), self.kind);
        tokio::spawn(async move {
            let result = fetch(url.clone(), MANIFEST_LIMIT)
                .await
                .and_then(|body| offer(&body, VERSION, kind));
            match &result {
                Ok(Some(o)) => info!(version = %o.version, "an update is available"),
                Ok(None) => info!(version = VERSION, "clawtray is up to date"),
                Err(e) => warn!("looking for updates at {url}: {e}"),
            }
            let _ = events.send(UpdateEvent::Checked { asked, result });
        });
    }

    /// Download, verify and install `offer` in the background (the person said yes); the
    /// outcome comes as [`UpdateEvent::Installed`] or [`UpdateEvent::NotInstalled`].
    pub fn install(&self, offer: Offer, events: tokio::sync::mpsc::UnboundedSender<UpdateEvent>) {
        let key = self.key.clone();
        let (kind, exe, dir) = (self.kind, self.exe.clone(), self.downloads.clone());
        tokio::spawn(async move {
            let version = offer.version.clone();
            let event = match install(&offer, &key, kind, &exe, &dir).await {
                Ok(()) => {
                    info!(%version, "the update is installed; restarting on it");
                    UpdateEvent::Installed { version }
                }
                Err(e) => {
                    warn!("{e}");
                    UpdateEvent::NotInstalled(e)
                }
            };
            let _ = events.send(event);
        });
    }
}

/// Which package manager installed `exe`.
async fn install_kind(exe: &Path) -> InstallKind {
    let owned_by = |prog: &'static str, args: &'static [&'static str]| {
        let exe = exe.to_owned();
        async move {
            Command::new(prog)
                .args(args)
                .arg(&exe)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success())
        }
    };
    if owned_by("dpkg-query", &["-S"]).await {
        InstallKind::Deb
    } else if owned_by("rpm", &["-qf"]).await {
        InstallKind::Rpm
    } else {
        InstallKind::Unmanaged
    }
}

/// GET `url` (http or https), at most `limit` bytes.
async fn fetch(url: String, limit: u64) -> Result<Vec<u8>, UpdateError> {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .build()
            .into();
        let response = agent
            .get(&url)
            .call()
            .map_err(|e| UpdateError::Fetch(format!("{url}: {e}")))?;
        response
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| UpdateError::Fetch(format!("{url}: {e}")))
    })
    .await
    .map_err(|e| UpdateError::Fetch(e.to_string()))?
}

/// Download, check the signature, keep the file, run the package manager, and check that the
/// installed program is the new version.
async fn install(
    offer: &Offer,
    key: &UpdateKey,
    kind: InstallKind,
    exe: &Path,
    dir: &Path,
) -> Result<(), UpdateError> {
    let bytes = fetch(offer.package.url.clone(), PACKAGE_LIMIT).await?;
    key.verify(offer, &bytes)?;
    let file = dir.join(file_name(&offer.package.url, kind));
    let io = |e: std::io::Error| {
        UpdateError::Install(format!(
            "cannot keep the download in {}: {e}",
            dir.display()
        ))
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    tokio::fs::write(&file, &bytes).await.map_err(io)?;
    let mut cmd = install_command(kind, &file)?;
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| UpdateError::Install(format!("cannot run the package manager: {e}")))?;
    let _ = tokio::fs::remove_file(&file).await;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = last[last.len().saturating_sub(3)..].join(" / ");
        return Err(UpdateError::Install(match out.status.code() {
            // pkexec: the person said no, or could not say (no agent)
            Some(126 | 127) if !is_root() => "the password was not given".into(),
            _ => format!("the package manager said: {tail}"),
        }));
    }
    let now = Command::new(exe)
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !now.split_whitespace().any(|w| w == offer.version) {
        return Err(UpdateError::Install(format!(
            "the package manager finished, but {} reports {:?}, not {}",
            exe.display(),
            now.trim(),
            offer.version
        )));
    }
    Ok(())
}

/// A safe local name for the download (the URL's last segment, or a fixed one).
fn file_name(url: &str, kind: InstallKind) -> String {
    let ext = match kind {
        InstallKind::Rpm => ".rpm",
        InstallKind::Deb | InstallKind::Unmanaged => ".deb",
    };
    let last = url.rsplit('/').next().unwrap_or_default();
    let last = last.split(['?', '#']).next().unwrap_or_default();
    let ok = !last.is_empty()
        && last.ends_with(ext)
        && !last.starts_with('.')
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
    if ok {
        last.to_owned()
    } else {
        format!("clawtray-update{ext}")
    }
}

fn is_root() -> bool {
    clawtray_client::ipc::endpoint::my_uid() == 0
}

/// The package manager's command for `file` (through `pkexec` unless root).
fn install_command(kind: InstallKind, file: &Path) -> Result<Command, UpdateError> {
    let (prog, args): (&str, &[&str]) = match kind {
        InstallKind::Deb => ("/usr/bin/apt-get", &["install", "-y", "-q", "--no-install-recommends"]),
        InstallKind::Rpm if Path::new("/usr/bin/dnf").exists() => ("/usr/bin/dnf", &["install", "-y"]),
        InstallKind::Rpm => ("/usr/bin/rpm", &["-U"]),
        InstallKind::Unmanaged => {
            return Err(UpdateError::Install(
                "this copy of clawtray was not installed from a package; install the new version the way you installed this one".into(),
            ))
        }
    };
    let mut cmd = if is_root() {
        Command::new(prog)
    } else {
        let mut c = Command::new("pkexec");
        c.arg(prog);
        c
    };
    cmd.args(args)
        .arg(file)
        .env("DEBIAN_FRONTEND", "noninteractive");
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_get_safe_names() {
        let deb = InstallKind::Deb;
        assert_eq!(
            file_name("http://h/p/clawtray_0.2.0_amd64.deb", deb),
            "clawtray_0.2.0_amd64.deb"
        );
        assert_eq!(
            file_name("http://h/clawtray_0.2.0_amd64.deb?x=1", deb),
            "clawtray_0.2.0_amd64.deb"
        );
        assert_eq!(
            file_name("http://h/../../etc/passwd", deb),
            "clawtray-update.deb"
        );
        assert_eq!(file_name("http://h/a b.deb", deb), "clawtray-update.deb");
        assert_eq!(file_name("http://h/.deb", deb), "clawtray-update.deb");
        assert_eq!(
            file_name("http://h/x.deb", InstallKind::Rpm),
            "clawtray-update.rpm"
        );
    }

    #[test]
    fn the_version_is_the_packages_or_the_crates() {
        assert!(semver_like(VERSION), "{VERSION}");
    }

    fn semver_like(v: &str) -> bool {
        v.split('.').count() >= 3
            && v.split('.')
                .take(3)
                .all(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()))
    }
}
