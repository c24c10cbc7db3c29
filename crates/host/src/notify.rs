//! Notifications through the desktop's notification service (`org.freedesktop.Notifications` on
//! the session bus, over the same zbus the tray uses). Where the server supports actions a reply's
//! notification carries an "Open chat" action (and the default action, a click on it), and an exec
//! approval's carries its answers — Allow once, Always, Deny, as the gateway allows — each an
//! [`Intent::Decide`] for that approval; a click elsewhere is [`Intent::OpenChat`]. An approval's
//! notification stays until it is answered (here or anywhere) and is then taken away. No server:
//! a log line, nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zbus::zvariant::Value;

use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest};

use crate::platform::{Intent, Notifier};

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;
}

/// The button label of an answer.
fn label(d: ApprovalDecision) -> &'static str {
    match d {
        ApprovalDecision::AllowOnce => "Allow once",
        ApprovalDecision::AllowAlways => "Always",
        ApprovalDecision::Deny => "Deny",
    }
}

/// What an approval's notification says: the command exactly, then where and for whom.
#[must_use]
pub fn approval_text(a: &ApprovalRequest) -> (String, String) {
    let mut body = a.command.clone();
    if let Some(cwd) = &a.cwd {
        body.push_str(&format!("\nin {cwd}"));
    }
    if let Some(agent) = &a.agent_id {
        body.push_str(&format!("\nagent {agent}"));
    }
    if let Some(w) = &a.warning {
        body.push_str(&format!("\n⚠ {w}"));
    }
    ("Your agent asks to run a command".to_owned(), body)
}

/// Approval notifications on screen: notification id → approval id.
type Shown = Arc<std::sync::Mutex<HashMap<u32, String>>>;

/// The freedesktop notification client.
pub struct DesktopNotifier {
    proxy: NotificationsProxy<'static>,
    /// The last notification shown (a new reply replaces it rather than stacking up).
    last: tokio::sync::Mutex<u32>,
    /// Approval notifications on screen.
    shown: Shown,
}

impl DesktopNotifier {
    /// Connect on `conn`; invoked actions go to `intents`.
    ///
    /// # Errors
    /// When the proxy cannot be made (the bus is gone).
    pub async fn start(
        conn: &zbus::Connection,
        intents: mpsc::UnboundedSender<Intent>,
    ) -> zbus::Result<Self> {
        let proxy = NotificationsProxy::new(conn).await?;
        let mut invoked = proxy.receive_action_invoked().await?;
        let shown: Shown = Arc::default();
        let ours = shown.clone();
        tokio::spawn(async move {
            while let Some(sig) = invoked.next().await {
                if let Ok(args) = sig.args() {
                    debug!(id = args.id, action = %args.action_key, "a notification was clicked");
                    let approval = ours.lock().ok().and_then(|m| m.get(&args.id).cloned());
                    let intent = match (approval, ApprovalDecision::parse(&args.action_key)) {
                        (Some(id), Some(decision)) => Intent::Decide { id, decision },
                        _ if args.action_key == "install" => Intent::InstallUpdate,
                        _ if args.action_key == "default" || args.action_key == "open" => {
                            Intent::OpenChat
                        }
                        _ => continue,
                    };
                    let _ = intents.send(intent);
                }
            }
        });
        Ok(Self {
            proxy,
            last: tokio::sync::Mutex::new(0),
            shown,
        })
    }
}

impl DesktopNotifier {
    /// Whether the server shows actions (asked each time: it may have been replaced since).
    async fn has_actions(&self) -> bool {
        self.proxy
            .get_capabilities()
            .await
            .is_ok_and(|c| c.iter().any(|c| c == "actions"))
    }
}

impl DesktopNotifier {
    /// Offer an update: an "Install and restart" button where the server has actions (the
    /// tray menu has the same item either way).
    pub async fn offer_update(&self, version: &str, notes: Option<&str>) {
        let actions: &[&str] = if self.has_actions().await {
            &["install", "Install and restart"]
        } else {
            &[]
        };
        let summary = format!("clawtray {version} is available");
        let mut body =
            "Install it from here or from the tray menu; your pairings and messages stay."
                .to_owned();
        if let Some(n) = notes.filter(|n| !n.trim().is_empty()) {
            body = format!("{}\n\n{body}", n.trim());
        }
        let mut hints = HashMap::new();
        hints.insert("desktop-entry", Value::from("clawtray"));
        if let Err(e) = self
            .proxy
            .notify("clawtray", 0, "", &summary, &body, actions, hints, -1)
            .await
        {
            warn!("cannot show a notification (is a notification service running?): {e}");
        }
    }
}

impl Notifier for DesktopNotifier {
    async fn ask(&self, approval: &ApprovalRequest) {
        let (summary, body) = approval_text(approval);
        let mut actions: Vec<&str> = Vec::new();
        if self.has_actions().await {
            actions.extend(["default", "Open chat"]);
            for d in &approval.allowed {
                actions.extend([d.as_str(), label(*d)]);
            }
        }
        let mut hints = HashMap::new();
        hints.insert("desktop-entry", Value::from("clawtray"));
        // a command waits for the person: keep it on screen until it is answered
        hints.insert("urgency", Value::from(2u8));
        hints.insert("resident", Value::from(true));
        match self
            .proxy
            .notify("clawtray", 0, "", &summary, &body, &actions, hints, 0)
            .await
        {
            Ok(id) => {
                if let Ok(mut m) = self.shown.lock() {
                    m.insert(id, approval.id.clone());
                }
            }
            Err(e) => warn!(
                "cannot show an approval notification (is a notification service running?): {e}"
            ),
        }
    }

    async fn withdraw(&self, approval_id: &str) {
        let ids: Vec<u32> = self
            .shown
            .lock()
            .map(|mut m| {
                let ids: Vec<u32> = m
                    .iter()
                    .filter(|(_, a)| *a == approval_id)
                    .map(|(n, _)| *n)
                    .collect();
                for n in &ids {
                    m.remove(n);
                }
                ids
            })
            .unwrap_or_default();
        for id in ids {
            let _ = self.proxy.close_notification(id).await;
        }
    }

    async fn notify(&self, summary: &str, body: &str) {
        let actions_ok = self.has_actions().await;
        let actions: &[&str] = if actions_ok {
            &["default", "Open chat", "open", "Open chat"]
        } else {
            &[]
        };
        let mut hints = HashMap::new();
        hints.insert("desktop-entry", Value::from("clawtray"));
        let mut last = self.last.lock().await;
        match self
            .proxy
            .notify("clawtray", *last, "", summary, body, actions, hints, -1)
            .await
        {
            Ok(id) => *last = id,
            Err(e) => warn!("cannot show a notification (is a notification service running?): {e}"),
        }
    }
}
