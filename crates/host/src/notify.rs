//! Notifications through the desktop's notification service (`org.freedesktop.Notifications` on
//! the session bus, over the same zbus the tray uses). Where the server supports actions the
//! notification carries an "Open chat" action (and the default action, a click on it); an
//! invoked action becomes [`Intent::OpenChat`]. No server: a log line, nothing else.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zbus::zvariant::Value;

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

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;
}

/// The freedesktop notification client.
pub struct DesktopNotifier {
    proxy: NotificationsProxy<'static>,
    /// The last notification shown (a new reply replaces it rather than stacking up).
    last: tokio::sync::Mutex<u32>,
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
        tokio::spawn(async move {
            while let Some(sig) = invoked.next().await {
                if let Ok(args) = sig.args() {
                    debug!(id = args.id, action = %args.action_key, "a notification was clicked");
                    if args.action_key == "default" || args.action_key == "open" {
                        let _ = intents.send(Intent::OpenChat);
                    }
                }
            }
        });
        Ok(Self {
            proxy,
            last: tokio::sync::Mutex::new(0),
        })
    }
}

impl Notifier for DesktopNotifier {
    async fn notify(&self, summary: &str, body: &str) {
        // asked each time: the notification server may have been replaced since
        let actions_ok = self
            .proxy
            .get_capabilities()
            .await
            .is_ok_and(|c| c.iter().any(|c| c == "actions"));
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
