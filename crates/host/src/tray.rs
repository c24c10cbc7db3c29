//! The tray icon: a StatusNotifierItem with a dbusmenu on the session bus (`ksni`). A left click
//! (`Activate`) toggles the chat; the menu keeps Open chat, Pair…, Unpair, Reconnect now, Start at
//! login and Quit; the icon (by name, with pixmaps for hosts without the files) and the tooltip
//! show the connection state; exec approvals waiting for the person turn the item's status to
//! `NeedsAttention` (the attention icon, the count in the tooltip and atop the menu). Everything the person asks for goes to the host as an [`Intent`].
//! The icon is there whether or not a panel is: a panel that appears later picks it up.

use std::path::{Path, PathBuf};

use ksni::menu::{CheckmarkItem, MenuItem, StandardItem};
use ksni::{Icon, ToolTip, TrayMethods};
use tokio::sync::mpsc;

use clawtray_client::state::PeerPresence;
use clawtray_client::ConnectionState;

use crate::platform::{Intent, TrayBackend};

/// One look of the icon: its name (file `<name>.png` in the theme path) and tooltip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub icon: &'static str,
    pub tooltip: &'static str,
}

/// The look for `state`.
#[must_use]
pub fn look(state: &ConnectionState) -> Look {
    let (icon, tooltip) = match state {
        ConnectionState::Online {
            peer: PeerPresence::Online,
        } => ("clawtray-online", "clawtray — online"),
        ConnectionState::Online {
            peer: PeerPresence::Away,
        } => (
            "clawtray-away",
            "clawtray — your agent is offline; messages queue",
        ),
        ConnectionState::Connecting | ConnectionState::Handshaking | ConnectionState::Pairing => {
            ("clawtray-connecting", "clawtray — connecting…")
        }
        ConnectionState::WaitingToRetry { .. } => {
            ("clawtray-offline", "clawtray — offline, retrying")
        }
        ConnectionState::Refused { .. } => (
            "clawtray-offline",
            "clawtray — the relay refuses this pairing; open to pair again",
        ),
        ConnectionState::Unpaired | ConnectionState::NeedsRepairing { .. } => {
            ("clawtray-unpaired", "clawtray — not paired")
        }
    };
    Look { icon, tooltip }
}

/// The icons, as PNG files (for the icon name) and decoded (for the pixmap).
/// The icon shown while approvals wait (the item's attention icon).
pub const ATTENTION_ICON: &str = "clawtray-attention";

/// One agent's state in a word or two (the tray menu and tooltip with several agents).
#[must_use]
pub fn state_word(state: &ConnectionState) -> &'static str {
    match state {
        ConnectionState::Online {
            peer: PeerPresence::Online,
        } => "online",
        ConnectionState::Online {
            peer: PeerPresence::Away,
        } => "agent offline",
        ConnectionState::Connecting | ConnectionState::Handshaking | ConnectionState::Pairing => {
            "connecting"
        }
        ConnectionState::WaitingToRetry { .. } => "relay unreachable",
        ConnectionState::Refused { .. } | ConnectionState::NeedsRepairing { .. } => {
            "needs pairing again"
        }
        ConnectionState::Unpaired => "not paired",
    }
}

/// The tooltip: the state's, or the approvals waiting.
pub fn tooltip(look: Look, waiting: usize) -> String {
    match waiting {
        0 => look.tooltip.to_owned(),
        1 => "clawtray — 1 approval waiting for you".to_owned(),
        n => format!("clawtray — {n} approvals waiting for you"),
    }
}

const ICONS: [(&str, &[u8]); 6] = [
    (
        ATTENTION_ICON,
        include_bytes!("../../../icons/tray-attention.png"),
    ),
    (
        "clawtray-online",
        include_bytes!("../../../icons/tray-online.png"),
    ),
    (
        "clawtray-away",
        include_bytes!("../../../icons/tray-away.png"),
    ),
    (
        "clawtray-connecting",
        include_bytes!("../../../icons/tray-connecting.png"),
    ),
    (
        "clawtray-offline",
        include_bytes!("../../../icons/tray-offline.png"),
    ),
    (
        "clawtray-unpaired",
        include_bytes!("../../../icons/tray-unpaired.png"),
    ),
];

/// A PNG as the ARGB32 (network byte order) pixmap StatusNotifierItem wants.
fn pixmap(png_bytes: &[u8]) -> Option<Icon> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    if info.color_type != png::ColorType::Rgba {
        return None;
    }
    let data = buf[..info.buffer_size()]
        .chunks_exact(4)
        .flat_map(|p| [p[3], p[0], p[1], p[2]])
        .collect();
    Some(Icon {
        width: i32::try_from(info.width).ok()?,
        height: i32::try_from(info.height).ok()?,
        data,
    })
}

/// Write the icon files into `dir` (the item's icon theme path); best effort.
fn write_icons(dir: &Path) {
    if clawtray_client::ipc::endpoint::private_dir(dir).is_err() {
        return;
    }
    for (name, bytes) in ICONS {
        let _ = std::fs::write(dir.join(format!("{name}.png")), bytes);
    }
}

/// What the tray menu says about updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateMenu {
    /// "Check for updates" is offered (this copy can update itself).
    pub can_check: bool,
    /// A newer version on offer.
    pub offered: Option<String>,
    /// It is being downloaded and installed.
    pub installing: bool,
}

struct Item {
    look: Look,
    update: UpdateMenu,
    /// The paired agents (name, state), when there are several.
    agents: Vec<(String, ConnectionState)>,
    /// Approvals waiting for the person.
    waiting: usize,
    autostart: bool,
    paired: bool,
    open_label: String,
    theme_path: PathBuf,
    /// The icons decoded once (the panel reads the pixmap on every change).
    pixmaps: Vec<(&'static str, Icon)>,
    intents: mpsc::UnboundedSender<Intent>,
}

impl Item {
    fn send(&self, i: Intent) {
        let _ = self.intents.send(i);
    }
}

impl ksni::Tray for Item {
    fn id(&self) -> String {
        "clawtray".into()
    }
    fn title(&self) -> String {
        "clawtray".into()
    }
    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(Intent::ToggleChat);
    }
    fn icon_theme_path(&self) -> String {
        self.theme_path.display().to_string()
    }
    fn icon_name(&self) -> String {
        self.look.icon.into()
    }
    fn icon_pixmap(&self) -> Vec<Icon> {
        self.pixmap_of(self.look.icon)
    }
    fn status(&self) -> ksni::Status {
        if self.waiting > 0 {
            ksni::Status::NeedsAttention
        } else {
            ksni::Status::Active
        }
    }
    fn attention_icon_name(&self) -> String {
        ATTENTION_ICON.into()
    }
    fn attention_icon_pixmap(&self) -> Vec<Icon> {
        self.pixmap_of(ATTENTION_ICON)
    }
    fn tool_tip(&self) -> ToolTip {
        let title = if self.agents.len() > 1 && self.waiting == 0 {
            let each: Vec<String> = self
                .agents
                .iter()
                .map(|(n, s)| format!("{n}: {}", state_word(s)))
                .collect();
            format!("clawtray — {}", each.join(", "))
        } else {
            tooltip(self.look, self.waiting)
        };
        ToolTip {
            title,
            ..Default::default()
        }
    }
    fn menu(&self) -> Vec<MenuItem<Self>> {
        let mut items = Vec::new();
        if self.waiting > 0 {
            items.push(
                StandardItem {
                    label: match self.waiting {
                        1 => "1 approval waiting…".to_owned(),
                        n => format!("{n} approvals waiting…"),
                    },
                    activate: Box::new(|t: &mut Self| t.send(Intent::OpenChat)),
                    ..Default::default()
                }
                .into(),
            );
            items.push(MenuItem::Separator);
        }
        if self.agents.len() > 1 {
            for (name, state) in &self.agents {
                items.push(
                    StandardItem {
                        label: format!("{name} — {}", state_word(state)),
                        activate: Box::new(|t: &mut Self| t.send(Intent::OpenChat)),
                        ..Default::default()
                    }
                    .into(),
                );
            }
            items.push(MenuItem::Separator);
        }
        items.extend([
            StandardItem {
                label: self.open_label.clone(),
                activate: Box::new(|t: &mut Self| t.send(Intent::OpenChat)),
                ..Default::default()
            }
            .into(),
            StandardItem {
                label: "Pair…".into(),
                activate: Box::new(|t: &mut Self| t.send(Intent::OpenChat)),
                ..Default::default()
            }
            .into(),
            StandardItem {
                // with several agents, the window says which one to unpair
                label: "Unpair".into(),
                enabled: self.paired && self.agents.len() <= 1,
                activate: Box::new(|t: &mut Self| t.send(Intent::Unpair)),
                ..Default::default()
            }
            .into(),
            StandardItem {
                label: "Reconnect now".into(),
                enabled: self.paired,
                activate: Box::new(|t: &mut Self| t.send(Intent::Reconnect)),
                ..Default::default()
            }
            .into(),
            MenuItem::Separator,
        ]);
        if let Some(v) = &self.update.offered {
            items.push(
                StandardItem {
                    label: if self.update.installing {
                        format!("Installing clawtray {v}…")
                    } else {
                        format!("Install clawtray {v} and restart")
                    },
                    enabled: !self.update.installing,
                    activate: Box::new(|t: &mut Self| t.send(Intent::InstallUpdate)),
                    ..Default::default()
                }
                .into(),
            );
        }
        if self.update.can_check {
            items.push(
                StandardItem {
                    label: "Check for updates".into(),
                    enabled: !self.update.installing,
                    activate: Box::new(|t: &mut Self| t.send(Intent::CheckForUpdates)),
                    ..Default::default()
                }
                .into(),
            );
        }
        items.extend([
            CheckmarkItem {
                label: "Start at login".into(),
                checked: self.autostart,
                activate: Box::new(|t: &mut Self| {
                    t.autostart = !t.autostart;
                    t.send(Intent::SetAutostart(t.autostart));
                }),
                ..Default::default()
            }
            .into(),
            StandardItem {
                label: "Quit".into(),
                activate: Box::new(|t: &mut Self| t.send(Intent::Quit)),
                ..Default::default()
            }
            .into(),
        ]);
        items
    }
}

impl Item {
    fn pixmap_of(&self, name: &str) -> Vec<Icon> {
        self.pixmaps
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| i.clone())
            .into_iter()
            .collect()
    }
}

/// The StatusNotifierItem backend.
pub struct SniTray {
    handle: ksni::Handle<Item>,
}

impl SniTray {
    /// Put the icon on the session bus. `theme_dir` receives the icon files.
    ///
    /// # Errors
    /// A sentence when the session bus cannot be reached.
    pub async fn start(
        intents: mpsc::UnboundedSender<Intent>,
        hotkey: Option<&str>,
        autostart: bool,
        theme_dir: PathBuf,
    ) -> Result<Self, String> {
        write_icons(&theme_dir);
        let item = Item {
            look: look(&ConnectionState::Unpaired),
            update: UpdateMenu::default(),
            agents: Vec::new(),
            waiting: 0,
            autostart,
            paired: false,
            open_label: hotkey
                .map_or_else(|| "Open chat".to_owned(), |h| format!("Open chat ({h})")),
            theme_path: theme_dir,
            pixmaps: ICONS
                .iter()
                .filter_map(|(n, b)| Some((*n, pixmap(b)?)))
                .collect(),
            intents,
        };
        let handle = item
            .assume_sni_available(true)
            .spawn()
            .await
            .map_err(|e| format!("cannot put the tray icon on the session bus: {e}"))?;
        Ok(Self { handle })
    }
}

impl SniTray {
    /// The paired agents and their states (listed in the menu and tooltip when there are
    /// several).
    pub async fn show_agents(&self, agents: Vec<(String, ConnectionState)>) {
        self.handle
            .update(move |i: &mut Item| i.agents = agents)
            .await;
    }
}

impl SniTray {
    /// What the menu offers about updates.
    pub async fn show_update(&self, update: UpdateMenu) {
        self.handle
            .update(move |i: &mut Item| i.update = update)
            .await;
    }
}

impl TrayBackend for SniTray {
    async fn show_state(&self, state: &ConnectionState) {
        let l = look(state);
        let paired = !matches!(
            state,
            ConnectionState::Unpaired | ConnectionState::NeedsRepairing { .. }
        );
        self.handle
            .update(move |i: &mut Item| {
                i.look = l;
                i.paired = paired;
            })
            .await;
    }

    async fn show_autostart(&self, on: bool) {
        self.handle
            .update(move |i: &mut Item| i.autostart = on)
            .await;
    }

    async fn show_approvals(&self, waiting: usize) {
        self.handle
            .update(move |i: &mut Item| i.waiting = waiting)
            .await;
    }

    async fn shutdown(&self) {
        self.handle.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icon_decodes_to_an_argb_pixmap() {
        for (name, bytes) in ICONS {
            let icon = pixmap(bytes).unwrap_or_else(|| panic!("{name} decodes"));
            assert_eq!(icon.data.len(), (icon.width * icon.height * 4) as usize);
            assert!(icon.data.chunks(4).any(|p| p[0] > 0), "{name} is not blank");
        }
    }

    #[test]
    fn every_state_has_an_icon_that_exists() {
        for s in [
            ConnectionState::Unpaired,
            ConnectionState::Connecting,
            ConnectionState::Online {
                peer: PeerPresence::Online,
            },
            ConnectionState::Online {
                peer: PeerPresence::Away,
            },
        ] {
            let l = look(&s);
            assert!(ICONS.iter().any(|(n, _)| *n == l.icon), "{s:?}");
        }
        assert_ne!(
            look(&ConnectionState::Online {
                peer: PeerPresence::Online
            }),
            look(&ConnectionState::Online {
                peer: PeerPresence::Away
            })
        );
    }
}
