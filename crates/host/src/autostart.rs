//! Start at login through an XDG autostart entry (`$XDG_CONFIG_HOME/autostart/clawtray.desktop`,
//! written by `auto-launch`), starting the host with `--autostart` so it stays in the tray.

use auto_launch::{AutoLaunch, AutoLaunchBuilder, LinuxLaunchMode};

use crate::platform::Autostart;

/// The argument a login launch gets: stay in the tray, no window.
pub const ARG: &str = "--autostart";

/// XDG autostart for the running executable.
pub struct XdgAutostart {
    inner: Option<AutoLaunch>,
}

impl XdgAutostart {
    /// For this executable; without one (it was deleted while running) the switch does nothing.
    #[must_use]
    pub fn new() -> Self {
        let inner = std::env::current_exe().ok().and_then(|exe| {
            AutoLaunchBuilder::new()
                .set_app_name("clawtray")
                .set_app_path(&exe.to_string_lossy())
                .set_args(&[ARG])
                .set_linux_launch_mode(LinuxLaunchMode::XdgAutostart)
                .build()
                .ok()
        });
        Self { inner }
    }
}

impl Autostart for XdgAutostart {
    fn is_enabled(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|a| a.is_enabled().unwrap_or(false))
    }

    fn set(&self, on: bool) -> Result<(), String> {
        let a = self
            .inner
            .as_ref()
            .ok_or("this program's path is unknown; start at login cannot be set")?;
        let r = if on { a.enable() } else { a.disable() };
        r.map_err(|e| format!("cannot change start at login: {e}"))
    }
}
