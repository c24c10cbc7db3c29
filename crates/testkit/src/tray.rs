//! The desktop's side of the tray and notifications, for tests: a panel (a
//! `StatusNotifierWatcher` the host's item registers with) that reads the item's icon, tooltip and
//! dbusmenu and clicks its entries over D-Bus, a real notification server (`dunst`) and a monitor
//! of the `Notify` calls on the session bus.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::zvariant::{OwnedValue, Value};

use crate::chat_ui::STEP;
use crate::desktop::{wait_until, DesktopEnv, Host};

/// The panel's half of StatusNotifierItem: items register here.
pub struct Watcher {
    pub items: Arc<Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) {
        // an item may give its bus name or its object path (then the sender is the name)
        let name = if service.starts_with('/') {
            hdr.sender().map(ToString::to_string).unwrap_or_default()
        } else {
            service.to_owned()
        };
        self.items.lock().unwrap().push(name);
    }
    fn register_status_notifier_host(&self, _service: &str) {}
    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items.lock().unwrap().clone()
    }
    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// StatusNotifierItem's `ToolTip`: icon name, pixmaps, title, text.
type ToolTip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);
/// A dbusmenu node: id, properties, children.
type MenuNode = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

/// The host's item, as the panel reaches it.
pub struct Item {
    conn: zbus::Connection,
    name: String,
}

impl Item {
    /// The item `host` registered with the panel (waits for it).
    pub async fn of(bus: &zbus::Connection, items: &Arc<Mutex<Vec<String>>>, host: &Host) -> Item {
        Self::of_pid(bus, items, host.pid()).await
    }

    /// The item the process `pid` registered with the panel (waits for it).
    pub async fn of_pid(bus: &zbus::Connection, items: &Arc<Mutex<Vec<String>>>, pid: u32) -> Item {
        let prefix = format!("org.kde.StatusNotifierItem-{pid}-");
        let find = || {
            items
                .lock()
                .unwrap()
                .iter()
                .find(|i| i.starts_with(&prefix))
                .cloned()
        };
        wait_until("the host's item to register with the panel", STEP, || {
            find().is_some()
        })
        .await;
        // the newest registration (a host restarted in place registers again)
        let find = || {
            items
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|i| i.starts_with(&prefix))
                .cloned()
        };
        Item {
            conn: bus.clone(),
            name: find().unwrap(),
        }
    }

    pub async fn prop(&self, name: &str) -> OwnedValue {
        let p = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination(self.name.as_str())
            .unwrap()
            .path("/StatusNotifierItem")
            .unwrap()
            .build()
            .await
            .unwrap();
        p.get(
            zbus::names::InterfaceName::from_static_str_unchecked("org.kde.StatusNotifierItem"),
            name,
        )
        .await
        .unwrap()
    }

    pub async fn icon(&self) -> String {
        String::try_from(self.prop("IconName").await).unwrap()
    }

    pub async fn status(&self) -> String {
        String::try_from(self.prop("Status").await).unwrap()
    }

    pub async fn tooltip(&self) -> String {
        let (_icon, _pixmaps, title, _text): ToolTip =
            self.prop("ToolTip").await.try_into().unwrap();
        title
    }

    pub async fn activate(&self) {
        self.conn
            .call_method(
                Some(self.name.as_str()),
                "/StatusNotifierItem",
                Some("org.kde.StatusNotifierItem"),
                "Activate",
                &(0i32, 0i32),
            )
            .await
            .expect("Activate");
    }

    /// The menu's items: label → id (dbusmenu `GetLayout`).
    pub async fn menu(&self) -> HashMap<String, (i32, bool)> {
        let reply = self
            .conn
            .call_method(
                Some(self.name.as_str()),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "GetLayout",
                &(0i32, -1i32, Vec::<String>::new()),
            )
            .await
            .expect("GetLayout");
        let (_rev, (_root, _props, children)): (u32, MenuNode) =
            reply.body().deserialize().expect("a dbusmenu layout");
        let mut out = HashMap::new();
        for child in children {
            let (id, props, _): MenuNode = child.try_into().expect("a menu item");
            if let Some(label) = props.get("label") {
                let label = String::try_from(label.try_clone().unwrap()).unwrap();
                let enabled = props
                    .get("enabled")
                    .map(|v| bool::try_from(v.try_clone().unwrap()).unwrap())
                    .unwrap_or(true);
                out.insert(label, (id, enabled));
            }
        }
        out
    }

    /// Click the menu item labelled `label` (dbusmenu `Event … clicked`).
    pub async fn click(&self, label: &str) {
        let menu = self.menu().await;
        let (id, enabled) = *menu
            .iter()
            .find(|(l, _)| l.starts_with(label))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no menu item {label:?} in {menu:?}"));
        assert!(enabled, "{label} is enabled");
        self.conn
            .call_method(
                Some(self.name.as_str()),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "Event",
                &(id, "clicked", Value::from(""), 0u32),
            )
            .await
            .expect("Event clicked");
    }

    /// Wait until the menu lists `label` (the icon and the menu are separate D-Bus updates: a
    /// reader may see the new icon a moment before the new menu).
    pub async fn wait_menu_item(&self, label: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let menu = self.menu().await;
            if menu.contains_key(label) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the menu never listed {label:?}: {menu:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_state(&self, what: &str, icon: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let now = self.icon().await;
            if now == icon {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: the icon is {now}, tooltip {:?}",
                self.tooltip().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `dunst` on the test display and bus.
pub struct Dunst(pub std::process::Child);

impl Drop for Dunst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn dunstctl(env: &DesktopEnv, args: &[&str]) -> String {
    let out = env
        .command(std::path::Path::new("dunstctl"))
        .args(args)
        .output()
        .expect("run dunstctl (apt package dunst)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Watch the bus for `Notify` calls (a D-Bus monitor connection); returns their bodies' text.
pub async fn notify_monitor() -> Arc<Mutex<Vec<String>>> {
    use futures_util::StreamExt;
    let conn = zbus::Connection::session().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    conn.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus.Monitoring"),
        "BecomeMonitor",
        &(
            vec!["type='method_call',interface='org.freedesktop.Notifications',member='Notify'"],
            0u32,
        ),
    )
    .await
    .expect("become a bus monitor");
    let s = seen.clone();
    tokio::spawn(async move {
        let mut stream = zbus::MessageStream::from(&conn);
        while let Some(Ok(m)) = stream.next().await {
            type Notify<'a> = (
                String,
                u32,
                String,
                String,
                String,
                Vec<String>,
                HashMap<String, OwnedValue>,
                i32,
            );
            if let Ok(b) = m.body().deserialize::<Notify>() {
                s.lock()
                    .unwrap()
                    .push(format!("{} | {} | actions {:?}", b.3, b.4, b.5));
            }
        }
    });
    seen
}

/// Play the panel on the session bus: returns its connection (keep it) and the items that
/// registered.
pub async fn start_panel() -> (zbus::Connection, Arc<Mutex<Vec<String>>>) {
    let items = Arc::new(Mutex::new(Vec::new()));
    let panel = zbus::connection::Builder::session()
        .expect("a session bus")
        .serve_at(
            "/StatusNotifierWatcher",
            Watcher {
                items: items.clone(),
            },
        )
        .expect("serve the watcher")
        .name("org.kde.StatusNotifierWatcher")
        .expect("the watcher's name")
        .build()
        .await
        .expect("play the panel on the session bus");
    (panel, items)
}

/// Start `dunst` (with `dunstrc`, if given) in `env` and wait until it serves notifications.
pub async fn start_dunst(env: &DesktopEnv, dunstrc: Option<&Path>) -> Dunst {
    let mut cmd = env.command(Path::new("dunst"));
    if let Some(rc) = dunstrc {
        cmd.arg("-config").arg(rc);
    }
    let dunst = Dunst(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dunst (apt package dunst)"),
    );
    let bus = zbus::Connection::session().await.expect("a session bus");
    let dbus = zbus::fdo::DBusProxy::new(&bus).await.expect("the bus");
    let deadline = Instant::now() + STEP;
    while !dbus
        .name_has_owner("org.freedesktop.Notifications".try_into().expect("a name"))
        .await
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "dunst never took the bus name");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dunst
}

/// Wait until a notification seen by [`notify_monitor`] contains `needle`; returns it.
pub async fn wait_notified(seen: &Arc<Mutex<Vec<String>>>, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(n) = seen.lock().unwrap().iter().find(|n| n.contains(needle)) {
            return n.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no notification with {needle:?}: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
