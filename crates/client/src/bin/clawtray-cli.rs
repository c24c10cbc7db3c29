//! `clawtray-cli`: clawtray for terminal users and tests — pair, status, chat, history, exec
//! approvals, unpair.
//! The pairing lives in the OS keyring, exactly as for the tray app.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::broadcast::error::RecvError;

use clawtray_client::agents::{choose, Slots, FIRST_SLOT};
use clawtray_client::approvals::{ApprovalBook, ApprovalChange};
use clawtray_client::outgoing_files::{mime_for_name, OutgoingFile};
use clawtray_client::relay_url::DEFAULT_RELAY_URL;
use clawtray_client::session_store::{KeyringSessionStore, SessionInfo};
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ClientEvent, ConnectionState, RelayClient};
use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest, ToDesktop};

#[derive(Debug, Parser)]
#[command(
    name = "clawtray-cli",
    version,
    about = "Chat with your OpenClaw agent through a clawtray relay"
)]
struct Args {
    /// Where the outbox lives (default: the platform data dir).
    #[arg(long, env = "CLAWTRAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Where the pairing's metadata lives (default: the platform config dir).
    #[arg(long, env = "CLAWTRAY_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
    /// Allow ws:// relays on other machines (your device token would travel in clear).
    #[arg(long, global = true)]
    allow_insecure_relay: bool,
    /// The agent's session (conversation) for `chat` and `history` (default: its main one;
    /// `sessions` lists them; a new name starts a new one).
    #[arg(long, global = true)]
    session: Option<String>,
    /// Which agent, when this desktop is paired with several (its name, or its slot as
    /// `agents` lists it; default: the only one).
    #[arg(long, global = true)]
    agent: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The agents this desktop is paired with.
    Agents,
    /// Pair with the code the agent shows (like 73514062-K4Q7-2MXD); an agent paired before
    /// stays paired.
    Pair {
        code: String,
        /// The relay the agent uses.
        #[arg(long, env = "CLAWTRAY_RELAY", default_value = DEFAULT_RELAY_URL)]
        relay: String,
        /// How this device is shown to the agent.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the pairing and whether the agent is reachable.
    Status {
        /// Seconds to wait for the agent.
        #[arg(long, default_value_t = 5)]
        wait: u64,
    },
    /// Send MESSAGE and print the streamed reply; with no message, chat interactively.
    Chat {
        message: Option<String>,
        /// Attach a file (repeat for several; up to the agent's gateway's limits).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<std::path::PathBuf>,
        /// Seconds to wait for the agent and the reply.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Print the conversation so far (the latest LIMIT messages, or with --all all of them).
    History {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Page back to the conversation's first message.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// List the agent's sessions (conversations), most recent first.
    Sessions {
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// List the commands waiting for your approval.
    Approvals {
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Answer an approval: ID (or a unique start of it) and allow-once, allow-always or deny.
    Approve {
        id: String,
        /// allow-once, allow-always or deny.
        decision: String,
        /// Seconds to wait for the agent's word.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Forget the pairing (and tell the relay).
    Unpair,
}

fn dirs(args: &Args) -> Result<(PathBuf, PathBuf), String> {
    let proj = directories::ProjectDirs::from("", "", "clawtray");
    let data = args
        .data_dir
        .clone()
        .or_else(|| proj.as_ref().map(|p| p.data_dir().to_owned()));
    let config = args
        .config_dir
        .clone()
        .or_else(|| proj.as_ref().map(|p| p.config_dir().to_owned()));
    match (data, config) {
        (Some(d), Some(c)) => Ok((d, c)),
        _ => Err("no home directory found; pass --data-dir and --config-dir".into()),
    }
}

fn device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "clawtray-cli".into())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWTRAY_LOG")
        .unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let (data_dir, config_dir) = dirs(&args)?;
    let slots = Slots::new(data_dir, config_dir);
    let paired = paired_slots(&slots);
    if matches!(args.command, Cmd::Agents) {
        if paired.is_empty() {
            println!("not paired: run `clawtray-cli pair CODE`");
            return Ok(ExitCode::from(3));
        }
        for (slot, info) in &paired {
            println!("{}  {}  via {}", slot, info.agent_name, info.relay_url);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // the slot this command works on: a free one (or a new one) to pair, else the chosen agent's
    let (slot, fresh) = match &args.command {
        Cmd::Pair { .. } => match slots
            .ids()
            .into_iter()
            .find(|id| !paired.iter().any(|(s, _)| s == id))
        {
            Some(free) => (free, false),
            None => (slots.new_id(), true),
        },
        _ if paired.is_empty() => (FIRST_SLOT.to_owned(), false),
        _ => (choose(&paired, args.agent.as_deref())?.0.clone(), false),
    };
    let slot_dirs = slots.dirs(&slot);
    let mut config = ClientConfig::new(slot_dirs.data, device_name());
    config.allow_insecure_relay = args.allow_insecure_relay;
    let store = Arc::new(KeyringSessionStore::new(slot_dirs.config));
    let client = RelayClient::start(config, store);
    let session = args.session.as_deref();
    let code = match args.command {
        Cmd::Agents => ExitCode::SUCCESS,
        Cmd::Pair {
            code,
            relay,
            name: _,
        } => {
            let info = match client.pair(&code, &relay).await {
                Ok(info) => info,
                Err(e) => {
                    client.shutdown().await;
                    if fresh {
                        slots.remove(&slot);
                    }
                    return Err(e.to_string());
                }
            };
            println!("paired with {} via {}", info.agent_name, info.relay_url);
            if !paired.is_empty() {
                println!(
                    "this desktop is paired with {} agents now: choose one with --agent NAME",
                    paired.len() + 1
                );
            }
            // let the first meeting run so the agent sees us online
            let _ = wait_online(&client, Duration::from_secs(5)).await;
            ExitCode::SUCCESS
        }
        Cmd::Status { wait } => {
            let Some(info) = client.session().await else {
                println!("not paired: run `clawtray-cli pair CODE`");
                client.shutdown().await;
                return Ok(ExitCode::from(3));
            };
            println!(
                "paired with {} via {} (session {})",
                info.agent_name, info.relay_url, info.session_id
            );
            let online = wait_online(&client, Duration::from_secs(wait)).await;
            println!("{}", describe(&client.state().borrow()));
            let queued = client.queued().await;
            if !queued.is_empty() {
                println!("{} message(s) queued for the agent", queued.len());
            }
            if online {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(4)
            }
        }
        Cmd::Chat {
            message: Some(text),
            files,
            timeout,
        } => {
            let files = read_files(&files)?;
            one_shot(&client, session, &text, files, Duration::from_secs(timeout)).await?
        }
        Cmd::Chat {
            message: None,
            files,
            timeout,
        } if !files.is_empty() => {
            let files = read_files(&files)?;
            one_shot(&client, session, "", files, Duration::from_secs(timeout)).await?
        }
        Cmd::Chat {
            message: None,
            timeout,
            ..
        } => interactive(&client, session, Duration::from_secs(timeout)).await?,
        Cmd::History {
            limit,
            all,
            timeout,
        } => {
            let within = Duration::from_secs(timeout);
            let mut shown = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let Some((page, older)) =
                    history_page(&client, session, limit, before.as_deref(), within).await?
                else {
                    eprintln!("the agent did not answer in time; the request stays queued");
                    client.shutdown().await;
                    return Ok(ExitCode::from(4));
                };
                shown.splice(0..0, page);
                match older {
                    Some(c) if all => before = Some(c),
                    _ => break,
                }
            }
            for m in shown {
                println!("{}: {}", m.role, m.text);
            }
            ExitCode::SUCCESS
        }
        Cmd::Sessions { timeout } => {
            let mut events = client.subscribe();
            client.list_sessions().await.map_err(|e| e.to_string())?;
            let listed = wait_for_chat(&mut events, Duration::from_secs(timeout), |m| match m {
                ToDesktop::Sessions { sessions } => Step::Done(sessions),
                _ => Step::Wait,
            })
            .await?;
            let Some(sessions) = listed else {
                eprintln!("{NO_ANSWER}");
                client.shutdown().await;
                return Ok(ExitCode::from(4));
            };
            for s in sessions {
                let mut line = s.key.clone();
                if let Some(t) = &s.title {
                    line.push_str(&format!("  \"{t}\""));
                }
                if s.default {
                    line.push_str("  (default)");
                }
                if s.running {
                    line.push_str("  (replying)");
                }
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Approvals { timeout } => {
            let book = approvals_now(&client, Duration::from_secs(timeout)).await?;
            if book.is_empty() {
                println!("no approvals waiting");
            }
            for a in book.pending() {
                println!("{}", describe_approval(a));
            }
            ExitCode::SUCCESS
        }
        Cmd::Approve {
            id,
            decision,
            timeout,
        } => approve(&client, &id, &decision, Duration::from_secs(timeout)).await?,
        Cmd::Unpair => {
            let name = client.session().await.map(|i| i.agent_name);
            client.unpair().await.map_err(|e| e.to_string())?;
            client.shutdown().await;
            slots.remove(&slot);
            match name {
                Some(n) => println!("unpaired from {n}"),
                None => println!("unpaired"),
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    client.shutdown().await;
    Ok(code)
}

/// The agents this desktop is paired with: (slot, pairing), from each slot's metadata (the
/// keyring is not asked: that is for the slot a command works on).
fn paired_slots(slots: &Slots) -> Vec<(String, SessionInfo)> {
    slots
        .ids()
        .into_iter()
        .filter_map(
            |id| match KeyringSessionStore::new(slots.dirs(&id).config).info() {
                Ok(Some(info)) => Some((id, info)),
                Ok(None) => None,
                Err(e) => {
                    eprintln!("warning: the pairing in slot {id} cannot be read: {e}");
                    None
                }
            },
        )
        .collect()
}

/// What the agent did not do in time.
const NO_ANSWER: &str = "the agent did not answer in time (is it online? `clawtray-cli status`)";

/// What a chat message means to a command waiting for its answer.
enum Step<T> {
    /// Not the answer: keep waiting.
    Wait,
    /// The answer.
    Done(T),
    /// The agent said no, in a sentence.
    Fail(String),
}

/// Wait up to `within` for the chat message that answers a request (`pick` reads each one);
/// `Ok(None)` when none came in time.
async fn wait_for_chat<T>(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    within: Duration,
    mut pick: impl FnMut(ToDesktop) -> Step<T>,
) -> Result<Option<T>, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Ok(None),
            Ok(Err(RecvError::Closed)) => return Err("the client stopped".into()),
            Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Ok(ClientEvent::Chat { message })) => match pick(message) {
                Step::Wait => {}
                Step::Done(v) => return Ok(Some(v)),
                Step::Fail(why) => return Err(why),
            },
            Ok(Ok(_)) => {}
        }
    }
}

/// The approvals waiting, as the agent lists them now.
async fn approvals_now(client: &RelayClient, within: Duration) -> Result<ApprovalBook, String> {
    let mut events = client.subscribe();
    client.list_approvals().await.map_err(|e| e.to_string())?;
    let mut book = ApprovalBook::new();
    let listed = wait_for_chat(&mut events, within, |m| {
        if matches!(book.apply(&m), ApprovalChange::Replaced) {
            Step::Done(())
        } else {
            Step::Wait
        }
    })
    .await?;
    listed.map(|()| book).ok_or_else(|| NO_ANSWER.to_owned())
}

/// One approval, for a terminal: the command exactly as it will run, then where and until when.
fn describe_approval(a: &ApprovalRequest) -> String {
    let mut lines = Vec::new();
    lines.push(format!("approval {}", a.id));
    lines.push(format!("  command: {}", a.command));
    if let Some(cwd) = &a.cwd {
        lines.push(format!("  in:      {cwd}"));
    }
    let mut whom = Vec::new();
    if let Some(h) = &a.host {
        whom.push(format!("host {h}"));
    }
    if let Some(g) = &a.agent_id {
        whom.push(format!("agent {g}"));
    }
    if let Some(k) = &a.session_key {
        whom.push(format!("session {k}"));
    }
    if !whom.is_empty() {
        lines.push(format!("  for:     {}", whom.join(", ")));
    }
    if let Some(w) = &a.warning {
        lines.push(format!("  warning: {w}"));
    }
    let left = a
        .expires_at_ms
        .saturating_sub(now_ms())
        .checked_div(1000)
        .unwrap_or(0);
    lines.push(format!("  expires: in {} min {} s", left / 60, left % 60));
    let answers: Vec<&str> = a.allowed.iter().map(|d| d.as_str()).collect();
    lines.push(format!(
        "  answer:  clawtray-cli approve {} {}",
        a.id,
        answers.join("|")
    ));
    lines.join("\n")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `approve ID DECISION`: send the answer (kept and delivered once, like a message) and wait
/// for the agent's word — resolved, or refused with its sentence.
async fn approve(
    client: &RelayClient,
    id: &str,
    decision: &str,
    within: Duration,
) -> Result<ExitCode, String> {
    let Some(decision) = ApprovalDecision::parse(decision) else {
        return Err(format!(
            "unknown answer {decision:?}: use allow-once, allow-always or deny"
        ));
    };
    let book = approvals_now(client, within).await?;
    let Some(a) = book.find(id) else {
        return Err(format!(
            "no approval waiting matches {id:?} (`clawtray-cli approvals` lists them)"
        ));
    };
    if !a.allowed.contains(&decision) {
        let offered: Vec<&str> = a.allowed.iter().map(|d| d.as_str()).collect();
        return Err(format!(
            "this approval does not allow {}; it allows {}",
            decision.as_str(),
            offered.join(" or ")
        ));
    }
    let id = a.id.clone();
    let mut events = client.subscribe();
    client
        .decide(&id, decision)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = wait_for_chat(&mut events, within, |m| match m {
        ToDesktop::ApprovalResolved {
            id: done,
            decision: d,
            by,
        } if done == id => Step::Done(Ok(match d {
            Some(d) => format!(
                "{}: {}{}",
                id,
                d.as_str(),
                by.map(|b| format!(" (by {b})")).unwrap_or_default()
            ),
            None if by.as_deref() == Some("expiry") => format!("{id}: expired"),
            None => format!("{id}: no longer waiting"),
        })),
        ToDesktop::ApprovalRefused {
            id: refused,
            message,
        } if refused == id => Step::Done(Err(message)),
        _ => Step::Wait,
    })
    .await;
    match outcome {
        Ok(Some(Ok(line))) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some(Err(message))) => {
            eprintln!("not taken: {message}");
            Ok(ExitCode::from(3))
        }
        Ok(None) => {
            eprintln!("the agent has not confirmed yet; the answer stays queued and will be delivered once");
            Ok(ExitCode::from(4))
        }
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

fn describe(s: &ConnectionState) -> String {
    match s {
        ConnectionState::Unpaired => "not paired".into(),
        ConnectionState::Pairing => "pairing…".into(),
        ConnectionState::Connecting => "connecting to the relay…".into(),
        ConnectionState::Handshaking => "securing the connection with the agent…".into(),
        ConnectionState::Online {
            peer: PeerPresence::Online,
        } => "online: the agent is connected".into(),
        ConnectionState::Online {
            peer: PeerPresence::Away,
        } => "connected to the relay; the agent is away (messages will queue)".into(),
        ConnectionState::WaitingToRetry { last_error, .. } => {
            format!("offline, retrying soon ({last_error})")
        }
        ConnectionState::Refused { reason, .. } => format!(
            "the relay refuses the pairing: {reason} (kept until you run `clawtray-cli unpair` and pair again)"
        ),
        ConnectionState::NeedsRepairing { reason } => format!("the pairing is gone: {reason}"),
    }
}

async fn wait_online(client: &RelayClient, within: Duration) -> bool {
    let mut state = client.state();
    tokio::time::timeout(within, async {
        loop {
            match &*state.borrow_and_update() {
                ConnectionState::Online {
                    peer: PeerPresence::Online,
                } => return true,
                ConnectionState::Unpaired
                | ConnectionState::NeedsRepairing { .. }
                | ConnectionState::Refused { .. } => return false,
                _ => {}
            }
            if state.changed().await.is_err() {
                return false;
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Print one reply as it streams; returns the exit code.
async fn stream_reply(
    client: &RelayClient,
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    id: &str,
    within: Duration,
) -> ExitCode {
    let mut run: Option<String> = None;
    let mut printed = String::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut stdout = std::io::stdout();
    loop {
        let ev = tokio::select! {
            ev = tokio::time::timeout_at(deadline, events.recv()) => ev,
            _ = tokio::signal::ctrl_c() => {
                if let Some(r) = &run {
                    let _ = client.abort(r).await;
                    eprintln!("\n[aborting…]");
                    continue;
                }
                eprintln!("\n[interrupted; the message stays queued]");
                return ExitCode::from(130);
            }
        };
        let ev = match ev {
            Err(_) => {
                eprintln!(
                    "\n[no reply in time{}]",
                    if run.is_none() {
                        "; the message stays queued and will be delivered when the agent is back"
                    } else {
                        ""
                    }
                );
                return ExitCode::from(4);
            }
            Ok(Err(RecvError::Lagged(n))) => {
                eprintln!("[missed {n} events]");
                continue;
            }
            Ok(Err(RecvError::Closed)) => return ExitCode::FAILURE,
            Ok(Ok(ev)) => ev,
        };
        match ev {
            ClientEvent::Chat { message } => match message {
                ToDesktop::ChatAck {
                    id: acked, run_id, ..
                } if acked == id => run = Some(run_id),
                ToDesktop::ChatDelta { run_id, text, .. } if run.as_deref() == Some(&run_id) => {
                    printed.push_str(&text);
                    let _ = write!(stdout, "{text}");
                    let _ = stdout.flush();
                }
                ToDesktop::ChatReply { run_id, text, .. } if run.as_deref() == Some(&run_id) => {
                    // the final text is authoritative: print whatever the deltas missed
                    if let Some(rest) = text.strip_prefix(printed.as_str()) {
                        let _ = write!(stdout, "{rest}");
                    } else if printed != text {
                        let _ = write!(stdout, "\n{text}");
                    }
                    let _ = writeln!(stdout);
                    return ExitCode::SUCCESS;
                }
                ToDesktop::ChatAborted { run_id, .. } if run.as_deref() == Some(&run_id) => {
                    let _ = writeln!(stdout, "\n[aborted]");
                    return ExitCode::from(130);
                }
                // run ids are message ids: an error for ours, or for its run, ends it
                ToDesktop::ChatError {
                    run_id: Some(r),
                    message,
                    ..
                } if r == id || run.as_deref() == Some(r.as_str()) => {
                    eprintln!("\n[error: {message}]");
                    return ExitCode::FAILURE;
                }
                // a note that belongs to no run (the agent's gateway is away; the message is
                // kept): say it and keep waiting until the timeout
                ToDesktop::ChatError {
                    run_id: None,
                    message,
                    ..
                } => eprintln!("[note: {message}]"),
                // the reply waits for a person's yes: say what and how to answer
                ToDesktop::ApprovalRequested { approval } => {
                    eprintln!("\n[the agent asks to run a command; answer from another terminal]");
                    // on stderr: stdout carries the reply only
                    eprintln!("{}", describe_approval(&approval));
                }
                ToDesktop::ApprovalResolved { id, decision, by } => eprintln!(
                    "[approval {id}: {}]",
                    match decision {
                        Some(d) => d.as_str(),
                        None if by.as_deref() == Some("expiry") => "expired",
                        None => "no longer waiting",
                    }
                ),
                _ => {}
            },
            ClientEvent::State { state } => {
                if matches!(
                    state,
                    ConnectionState::NeedsRepairing { .. }
                        | ConnectionState::WaitingToRetry { .. }
                        | ConnectionState::Refused { .. }
                ) {
                    eprintln!("[{}]", describe(&state));
                }
            }
            ClientEvent::Notice { message } => eprintln!("[{message}]"),
            ClientEvent::Message { .. } => {}
        }
    }
}

/// One page of a session's history: its messages and the cursor of the page before it, or
/// `None` when the agent did not answer within `within`.
async fn history_page(
    client: &RelayClient,
    session: Option<&str>,
    limit: u32,
    before: Option<&str>,
    within: Duration,
) -> Result<Option<HistoryPage>, String> {
    let mut events = client.subscribe();
    client
        .load_history_page(session, limit, before)
        .await
        .map_err(|e| e.to_string())?;
    wait_for_chat(&mut events, within, |m| match m {
        ToDesktop::History {
            messages,
            session: s,
            before: b,
            older,
        } if s.as_deref() == session && b.as_deref() == before => Step::Done((messages, older)),
        ToDesktop::ChatError {
            run_id: None,
            message,
            session: s,
        } if s.as_deref() == session => Step::Fail(message),
        _ => Step::Wait,
    })
    .await
}

/// A page of history and the cursor of the page before it.
type HistoryPage = (Vec<clawtray_proto::chat::HistoryMessage>, Option<String>);

/// Read the files to attach (a sentence naming the file when one cannot be read).
fn read_files(paths: &[std::path::PathBuf]) -> Result<Vec<OutgoingFile>, String> {
    paths
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let name = p
                .file_name()
                .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            Ok(OutgoingFile {
                mime: mime_for_name(&name).to_owned(),
                name,
                bytes,
            })
        })
        .collect()
}

async fn one_shot(
    client: &RelayClient,
    session: Option<&str>,
    text: &str,
    files: Vec<OutgoingFile>,
    within: Duration,
) -> Result<ExitCode, String> {
    let mut events = client.subscribe();
    let id = client
        .send_with_files(session, text, None, files)
        .await
        .map_err(|e| e.to_string())?
        .id;
    Ok(stream_reply(client, &mut events, &id, within).await)
}

async fn interactive(
    client: &RelayClient,
    session: Option<&str>,
    within: Duration,
) -> Result<ExitCode, String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    eprintln!(
        "{} — type a message and press Enter; Ctrl-D quits, Ctrl-C stops a reply",
        describe(&client.state().borrow())
    );
    loop {
        eprint!("> ");
        let Ok(Some(line)) = lines.next_line().await else {
            return Ok(ExitCode::SUCCESS);
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut events = client.subscribe();
        let id = client
            .send_to(session, line, None)
            .await
            .map_err(|e| e.to_string())?
            .id;
        stream_reply(client, &mut events, &id, within).await;
    }
}
