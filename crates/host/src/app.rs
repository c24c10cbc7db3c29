//! The tray host's one actor: owns the desktop core (one [`RelayClient`] per paired agent, in
//! [`Agents`]), the local channel's server,
//! the tray icon, notifications, start at login and the chat window process, and turns what the
//! person asks for ([`Intent`]s from the tray, hotkey and notifications; [`HostRequest`]s from
//! windows and second launches) into actions. Nothing here draws: the window process does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use clawtray_client::agents::{combined_state, Agents, StoreFor};
use clawtray_client::approvals::{ApprovalBook, ApprovalChange};
use clawtray_client::ipc::endpoint;
use clawtray_client::ipc::server::{self, HostRequest};
use clawtray_client::ipc::wire::{parse_pair_link, FromHost};
use clawtray_client::session_store::{KeyringSessionStore, SessionStore};
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ClientEvent, ConnectionState};
use clawtray_proto::chat::ToDesktop;

use crate::autostart::XdgAutostart;
use crate::chat::{chat_bin, ChatProcess, CLOSE_GRACE, PREWARM_AFTER};
use crate::notify::DesktopNotifier;
use crate::platform::{Autostart, Intent, Notifier, TrayBackend};
use crate::tray::{SniTray, UpdateMenu};
use crate::update::{UpdateEvent, Updater, CHECK_EVERY, FIRST_CHECK_AFTER, VERSION};
use crate::{hotkey, instance, settings};
use clawtray_client::update::{Offer, UpdateError};

/// How long a launch after a host died waits for that host's chat window to come back before it
/// opens one (the window retries every 250 ms): one window, not two.
const ORPHAN_GRACE: Duration = Duration::from_millis(800);

/// How the host was started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Started at login: stay in the tray, no window.
    pub autostarted: bool,
    /// A `clawtray://pair?…` link to open.
    pub link: Option<String>,
    /// Restarted by an update from this version.
    pub updated_from: Option<String>,
}

/// How the host ended.
#[derive(Debug)]
pub enum Exit {
    /// Quit (the tray, SIGTERM, SIGINT) or handed over to the running host.
    Done,
    /// An update is installed: run `exe args…` in this process's place.
    Restart {
        exe: std::path::PathBuf,
        args: Vec<String>,
    },
}

/// Run the host until Quit, SIGTERM or SIGINT (or hand over to a running one and return).
///
/// # Errors
/// A sentence saying what stopped it from starting.
pub async fn run(opts: Options) -> Result<Exit, String> {
    let dir = endpoint::dir();
    endpoint::private_dir(&dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
    let socket = dir.join(endpoint::SOCKET);
    let started = Instant::now();
    let _lock = loop {
        match instance::try_lock(&dir).map_err(|e| format!("cannot take the instance lock: {e}"))? {
            Some(l) => break l,
            None => match instance::hand_over(&socket, opts.link.clone()).await {
                Ok(()) => return Ok(Exit::Done),
                // the running one may be quitting: its lock goes with it
                Err(e) if started.elapsed() < instance::HANDOVER_WAIT => {
                    tracing::debug!("hand-over failed ({e}); trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            },
        }
    };
    let dirs = directories::ProjectDirs::from("", "", "clawtray").ok_or("no home directory")?;
    let _log = clawtray_client::logging::init(dirs.data_local_dir(), "clawtray");
    // a socket left behind means the last host ended without cleaning up (killed, crashed): a
    // chat window it started may still be open, reconnecting, and is adopted when it does
    let left_behind = socket.exists();
    let listener = endpoint::listen(&socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let device = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "desktop".into());
    let keyring: StoreFor = Arc::new(|dir: &std::path::Path| {
        Arc::new(KeyringSessionStore::new(dir.to_owned())) as Arc<dyn SessionStore>
    });
    let agents = Agents::open(
        ClientConfig::new(dirs.data_dir().to_owned(), device),
        dirs.config_dir().to_owned(),
        keyring,
    );
    let mut events = agents.subscribe();
    let event_source = agents.events();
    let agents = Arc::new(Mutex::new(agents));
    let (server, mut requests) = server::spawn(listener, agents.clone(), event_source);
    let (intents_tx, mut intents) = mpsc::unbounded_channel();
    let (settings, problem) = settings::load(dirs.config_dir());
    if let Some(problem) = problem {
        warn!("{problem}");
    }
    let hotkey = hotkey::register(settings.hotkey.as_deref(), intents_tx.clone());
    let autostart = XdgAutostart::new();
    let tray = match SniTray::start(
        intents_tx.clone(),
        hotkey.as_deref(),
        autostart.is_enabled(),
        dir.join("icons"),
    )
    .await
    {
        Ok(t) => Some(t),
        Err(e) => {
            warn!("{e}; running without a tray icon (launch clawtray again to open the chat)");
            None
        }
    };
    let notifier = match zbus::Connection::session().await {
        Ok(conn) => DesktopNotifier::start(&conn, intents_tx.clone()).await.ok(),
        Err(e) => {
            warn!("no session bus for notifications: {e}");
            None
        }
    };
    let (update_tx, mut update_rx) = mpsc::unbounded_channel();
    let updater = match Updater::new(
        settings.check_updates,
        settings.update_url.as_deref(),
        dirs.cache_dir(),
    )
    .await
    {
        Ok(u) => Some(u),
        Err(why) => {
            info!("not looking for updates: {why}");
            None
        }
    };
    let mut check_at = updater.as_ref().map(|_| Instant::now() + FIRST_CHECK_AFTER);
    // the update on offer, whether it is being installed, and the version to restart on
    let mut offered: Option<Offer> = None;
    let mut installing = false;
    let mut restart_as: Option<String> = None;
    // what the tray menu says about updates, from the above
    let update_menu = |offered: &Option<Offer>, installing: bool| UpdateMenu {
        can_check: updater.is_some(),
        offered: offered.as_ref().map(|o| o.version.clone()),
        installing,
    };
    if let Some(t) = &tray {
        t.show_update(update_menu(&offered, installing)).await;
    }
    if let (Some(from), Some(n)) = (&opts.updated_from, &notifier) {
        n.notify(
            &format!("clawtray is now {VERSION}"),
            &format!("Updated from {from}; your pairings and messages are as they were."),
        )
        .await;
    }
    let mut chat = ChatProcess::new(chat_bin());
    let mut windows = server.windows();
    let mut pending_link = opts.link.as_deref().and_then(parse_pair_link);
    show_agents(&agents, tray.as_ref()).await;
    // which agent asked for each approval waiting (a notification's answer goes back to it)
    let mut approval_agent: HashMap<String, String> = HashMap::new();
    info!(
        autostarted = opts.autostarted,
        version = VERSION,
        "clawtray tray host running"
    );
    // when to open the chat the launch asked for: at once, or after a window left by a host that
    // died has had its chance to come back (it reconnects every 250 ms)
    let mut open_at: Option<Instant> = None;
    if !opts.autostarted || pending_link.is_some() {
        if left_behind {
            open_at = Some(Instant::now() + ORPHAN_GRACE);
        } else {
            open(&mut chat);
        }
    }
    // the first click after login should not wait on the disk: warm the window's files once,
    // a little after start, unless a window is already opening (which warms them itself)
    let mut prewarm_at = Some(Instant::now() + PREWARM_AFTER);
    // exec approvals waiting for the person (the tray's attention, notifications' lifetimes)
    let mut approvals = ApprovalBook::new();
    let mut closing: Option<Instant> = None;
    // the chat was asked for while its window was closing: open a new one once it is gone
    let mut reopen = false;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            Some(i) = intents.recv() => {
                debug!(intent = ?i, "asked");
                let shown = chat.is_running() || *windows.borrow() > 0;
                match i {
                    Intent::ToggleChat if shown => {
                        server.tell_windows(FromHost::Close);
                        closing = Some(Instant::now() + CLOSE_GRACE);
                    }
                    Intent::OpenChat if closing.is_some() => reopen = true,
                    Intent::ToggleChat | Intent::OpenChat => {
                        reopen |= show(&mut chat, &server, *windows.borrow());
                    }
                    Intent::Unpair => {
                        // the tray offers it with one agent; with several, the window does
                        let book = agents.clone();
                        tokio::spawn(async move {
                            let mut book = book.lock().await;
                            let paired = book.paired().await;
                            if let [(slot, _)] = paired.as_slice() {
                                if let Err(e) = book.unpair(slot).await {
                                    warn!("unpair failed: {e}");
                                }
                            }
                        });
                    }
                    Intent::Reconnect => {
                        for a in agents.lock().await.list() {
                            a.client.reconnect_now().await;
                        }
                    }
                    Intent::Decide { id, decision } => {
                        // kept in that agent's outbox and delivered once, like a message
                        let client = {
                            let book = agents.lock().await;
                            let slot = approval_agent.get(&id).cloned();
                            book.resolve(slot.as_deref()).map(|a| a.client.clone())
                        };
                        if let Some(c) = client {
                            if let Err(e) = c.decide(&id, decision).await {
                                warn!("the answer could not be kept: {e}");
                            }
                        }
                    }
                    Intent::SetAutostart(on) => set_autostart(&autostart, tray.as_ref(), on).await,
                    Intent::CheckForUpdates => {
                        if let Some(u) = &updater {
                            u.check(true, update_tx.clone());
                        }
                    }
                    Intent::InstallUpdate => match (&updater, &offered) {
                        (Some(u), Some(o)) if !installing => {
                            installing = true;
                            if let Some(t) = &tray {
                                t.show_update(update_menu(&offered, installing)).await;
                            }
                            u.install(o.clone(), update_tx.clone());
                        }
                        _ => debug!("no update to install (or one is being installed)"),
                    },
                    Intent::Quit => break,
                }
            }
            Some(r) = requests.recv() => match r {
                HostRequest::Show { link } => {
                    if let Some(l) = link.as_deref().and_then(parse_pair_link) {
                        pending_link = Some(l);
                    }
                    if closing.is_some() {
                        reopen = true;
                    } else {
                        reopen |= show(&mut chat, &server, *windows.borrow());
                    }
                    if *windows.borrow() > 0 {
                        hand_link(&server, &mut pending_link);
                    }
                }
                // start at login is on by default once paired (the tray menu turns it off)
                HostRequest::Paired => set_autostart(&autostart, tray.as_ref(), true).await,
            },
            ev = events.recv() => match ev {
                Ok((_, ClientEvent::Chat { message: ToDesktop::ChatReply { text, .. } })) if *windows.borrow() == 0 && settings.notify_replies => {
                    if let Some(n) = &notifier {
                        let preview: String = text.chars().take(120).collect();
                        n.notify("Your agent replied", &preview).await;
                    }
                }
                Ok((slot, ClientEvent::Chat { message })) => {
                    match &message {
                        ToDesktop::ApprovalRequested { approval } => {
                            approval_agent.insert(approval.id.clone(), slot);
                        }
                        ToDesktop::Approvals { pending } => {
                            for a in pending {
                                approval_agent.insert(a.id.clone(), slot.clone());
                            }
                        }
                        _ => {}
                    }
                    approvals_changed(&mut approvals, &message, notifier.as_ref(), tray.as_ref()).await;
                    approval_agent.retain(|id, _| approvals.pending().iter().any(|a| a.id == *id));
                }
                Ok((slot, ClientEvent::State { state })) => {
                    if state == (ConnectionState::Online { peer: PeerPresence::Online }) {
                        // a meeting with the agent: what waits now (answered or expired meanwhile?)
                        if let Some(a) = agents.lock().await.get(&slot) {
                            let _ = a.client.list_approvals().await;
                        }
                    }
                    show_agents(&agents, tray.as_ref()).await;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = windows.changed() => {
                if *windows.borrow_and_update() > 0 {
                    // the window that was starting (or one a dead host left) is here: nothing to
                    // open or reopen
                    reopen = false;
                    open_at = None;
                    hand_link(&server, &mut pending_link);
                } else if !chat.is_running() && closing.is_some() {
                    // an adopted window (not our child) closed as asked
                    window_gone(&mut chat, &mut closing, &mut reopen);
                }
            }
            Some(u) = update_rx.recv() => {
                let asked = matches!(&u, UpdateEvent::Checked { asked: true, .. });
                match u {
                    UpdateEvent::Checked { result: Ok(Some(o)), .. } => {
                        let new = offered.as_ref().is_none_or(|had| had.version != o.version);
                        if (new || asked) && !installing {
                            if let Some(n) = &notifier {
                                n.offer_update(&o.version, o.notes.as_deref()).await;
                            }
                        }
                        offered = Some(o);
                    }
                    UpdateEvent::Checked { result: Ok(None), .. } => {
                        offered = None;
                        if asked {
                            if let Some(n) = &notifier {
                                n.notify("clawtray is up to date", &format!("{VERSION} is the newest version.")).await;
                            }
                        }
                    }
                    UpdateEvent::Checked { result: Err(e), .. } => {
                        if asked {
                            if let Some(n) = &notifier {
                                n.notify("Could not look for updates", &e.to_string()).await;
                            }
                        }
                    }
                    UpdateEvent::Installed { version } => {
                        restart_as = Some(version);
                        break;
                    }
                    UpdateEvent::NotInstalled(e) => {
                        installing = false;
                        // a package that failed its signature is not offered again until the
                        // manifest changes; one the package manager could not install is
                        if matches!(e, UpdateError::BadSignature { .. }) {
                            offered = None;
                        }
                        if let Some(n) = &notifier {
                            n.notify("The update was not installed", &e.to_string()).await;
                        }
                    }
                }
                if let Some(t) = &tray {
                    t.show_update(update_menu(&offered, installing)).await;
                }
            }
            () = sleep_until(check_at) => {
                check_at = Some(Instant::now() + CHECK_EVERY);
                if let Some(u) = &updater {
                    u.check(false, update_tx.clone());
                }
            }
            () = sleep_until(prewarm_at) => {
                prewarm_at = None;
                if !chat.is_running() && *windows.borrow() == 0 {
                    chat.prewarm();
                }
            }
            () = sleep_until(open_at) => {
                open_at = None;
                reopen |= show(&mut chat, &server, *windows.borrow());
            }
            () = chat.exited() => window_gone(&mut chat, &mut closing, &mut reopen),
            () = sleep_until(closing) => {
                chat.kill_if_running().await;
                window_gone(&mut chat, &mut closing, &mut reopen);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("clawtray is quitting");
    // restarted on a new version: the chat comes back if it was open
    let chat_was_open = *windows.borrow() > 0;
    server.tell_windows(FromHost::Close);
    tokio::time::sleep(Duration::from_millis(300)).await;
    chat.kill_if_running().await;
    if let Some(t) = &tray {
        t.shutdown().await;
    }
    drop(server);
    if let Ok(book) = Arc::try_unwrap(agents) {
        book.into_inner().shutdown().await;
    }
    let _ = std::fs::remove_file(&socket);
    Ok(match (restart_as, updater) {
        (Some(version), Some(u)) => {
            info!(%version, "restarting on the new version");
            let mut args = vec!["--updated-from".to_owned(), VERSION.to_owned()];
            if !chat_was_open {
                args.push(crate::autostart::ARG.to_owned());
            }
            Exit::Restart {
                exe: u.exe().to_owned(),
                args,
            }
        }
        _ => Exit::Done,
    })
}

fn open(chat: &mut ChatProcess) {
    if let Err(e) = chat.open() {
        warn!("{e}");
    }
}

/// Open the chat, or bring an open one to the front. Returns whether the chat must be opened
/// once the running window process ends: it runs but has no connection (starting, or dying — a
/// window that never connects is reopened when it is gone).
fn show(chat: &mut ChatProcess, server: &server::ServerHandle, windows: usize) -> bool {
    if windows > 0 {
        // ours, or one a host that died left open and that came back to this one
        server.tell_windows(FromHost::Raise);
        false
    } else if !chat.is_running() {
        open(chat);
        false
    } else {
        true
    }
}

/// Give a waiting pairing link to the connected window(s).
fn hand_link(server: &server::ServerHandle, pending: &mut Option<(String, Option<String>)>) {
    if let Some((code, relay)) = pending.take() {
        server.tell_windows(FromHost::PairLink { code, relay });
    }
}

/// The window process ended (or was ended): open a new one if the chat was asked for meanwhile.
fn window_gone(chat: &mut ChatProcess, closing: &mut Option<Instant>, reopen: &mut bool) {
    *closing = None;
    if std::mem::take(reopen) {
        open(chat);
    }
}

/// An approval event from the agent: ask the person about a new one, withdraw the notification of
/// one that no longer waits, and show the count on the tray.
async fn approvals_changed(
    book: &mut ApprovalBook,
    message: &ToDesktop,
    notifier: Option<&DesktopNotifier>,
    tray: Option<&SniTray>,
) {
    // every chat event passes here (each streamed delta too): only approval events do work
    if !matches!(
        message,
        ToDesktop::ApprovalRequested { .. }
            | ToDesktop::ApprovalResolved { .. }
            | ToDesktop::Approvals { .. }
    ) {
        return;
    }
    let before: Vec<String> = book.pending().iter().map(|a| a.id.clone()).collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let change = book.apply(message);
    book.expire(now_ms);
    if matches!(change, ApprovalChange::Nothing) {
        return;
    }
    // the tray first: a person (or a test) who sees the notification finds the icon asking too
    if let Some(t) = tray {
        t.show_approvals(book.len()).await;
    }
    if let Some(n) = notifier {
        for a in book.pending() {
            if !before.contains(&a.id) {
                n.ask(a).await;
            }
        }
        for id in &before {
            if !book.pending().iter().any(|a| a.id == *id) {
                n.withdraw(id).await;
            }
        }
    }
}

/// Show every agent's state on the tray: the combined one as its icon, each in its menu.
async fn show_agents(agents: &Mutex<Agents>, tray: Option<&SniTray>) {
    let Some(t) = tray else {
        return;
    };
    let views = agents.lock().await.views().await;
    let all: Vec<ConnectionState> = views.iter().map(|v| v.state.clone()).collect();
    t.show_state(&combined_state(&all)).await;
    let listed = views
        .into_iter()
        .filter_map(|v| Some((v.session?.agent_name, v.state)))
        .collect();
    t.show_agents(listed).await;
}

/// Turn start at login on or off and show what it is now.
async fn set_autostart(autostart: &impl Autostart, tray: Option<&SniTray>, on: bool) {
    if let Err(e) = autostart.set(on) {
        warn!("{e}");
    }
    if let Some(t) = tray {
        t.show_autostart(autostart.is_enabled()).await;
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
