//! `clawtray-agent`: command line, logging and signals. Everything else is in the library.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use clawtray_agent::config::{check_ws_url, resolve_gateway, GatewayInputs};
use clawtray_agent::error::AgentError;
use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use clawtray_agent::keys::KeyStore;
use clawtray_agent::service::{self, ServiceConfig};
use clawtray_agent::state::StateDir;

#[derive(Debug, Parser)]
#[command(
    name = "clawtray-agent",
    version,
    about = "Pair desktops with your OpenClaw gateway through a clawtray relay"
)]
struct Args {
    /// Where keys, pairings and queued messages live (default: the platform data dir).
    #[arg(long, env = "CLAWTRAY_AGENT_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
    /// Where the agent's static key lives: auto (a systemd credential if given, else the OS
    /// keyring if one answers, else a file in the state dir), keyring, credential or file. The
    /// key is moved there when found elsewhere.
    #[arg(
        long,
        env = "CLAWTRAY_AGENT_KEY_STORE",
        global = true,
        default_value = "auto"
    )]
    key_store: KeyStore,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// The OpenClaw gateway (default: from the local OpenClaw config, else ws://127.0.0.1:18789).
    #[arg(long)]
    gateway: Option<String>,
    /// The gateway token (default: OPENCLAW_GATEWAY_TOKEN, else the local OpenClaw config).
    /// Visible to other local users in the process list: prefer --gateway-token-file or the
    /// environment variable.
    #[arg(long, conflicts_with = "gateway_token_file")]
    gateway_token: Option<String>,
    /// Read the gateway token from this file (its first line), e.g. a systemd credential
    /// (`$CREDENTIALS_DIRECTORY/gateway-token`).
    #[arg(long, value_name = "PATH")]
    gateway_token_file: Option<PathBuf>,
    /// Allow sending the token over ws:// to another machine.
    #[arg(long)]
    allow_insecure_gateway: bool,
    /// Let paired desktops answer exec approvals of runs started anywhere on the gateway (other
    /// channels, cron, other devices), not only of their own chats. Asks the gateway for
    /// `operator.admin`, which grants far more than approvals: see docs/security.md.
    #[arg(long, env = "CLAWTRAY_APPROVE_ALL_DEVICES")]
    approve_all_devices: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show a pairing code and pair one desktop.
    Pair {
        /// The relay both sides use.
        #[arg(long, env = "CLAWTRAY_RELAY", default_value = "ws://127.0.0.1:8765")]
        relay: String,
        /// How this agent is shown on the desktop.
        #[arg(long)]
        name: Option<String>,
        /// Allow a ws:// relay on another machine.
        #[arg(long)]
        allow_insecure_relay: bool,
    },
    /// Serve every paired desktop (the long-lived service).
    Run {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The gateway chat session to use.
        #[arg(long, default_value = "main")]
        session_key: String,
        /// Seconds between heartbeats on each relay link (a missed answer drops the link).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=300))]
        relay_heartbeat: u64,
        /// Seconds before retrying a pairing the relay refuses (doubling to an hour). The pairing
        /// is kept: only the desktop (end to end) or `clawtray-agent unpair` ends it.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        relay_refused_retry: u64,
    },
    /// Show paired desktops and whether the gateway is reachable.
    Status {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// End the pairing with a desktop (by name or session id), or with all of them. The running
    /// agent tells the desktop end to end and forgets the pairing once the desktop confirms.
    Unpair {
        name: Option<String>,
        /// End it at once at the relay instead (the desktop keeps its copy until its person
        /// unpairs there): for a desktop that is gone for good.
        #[arg(long)]
        now: bool,
        /// Seconds to wait for the desktop's confirmation before leaving it to the running agent.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// The agent's static key: where it lives, or export it for a systemd credential.
    Key {
        #[command(subcommand)]
        action: KeyCmd,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Say where the key lives (moving it first where --key-store wants it).
    Where,
    /// Print the key (base64) for `systemd-creds encrypt --name=clawtray-agent-key - FILE`; see
    /// docs/agent.md. Anyone who holds it can answer your desktops as this agent.
    Export,
}

fn state_dir(args: &Args) -> Result<StateDir, AgentError> {
    args.state_dir
        .clone()
        .or_else(|| {
            directories::ProjectDirs::from("", "", "clawtray-agent")
                .map(|d| d.data_dir().to_owned())
        })
        .map(|d| StateDir::new(d).with_key_store(args.key_store))
        .ok_or_else(|| AgentError::Config("no home directory; pass --state-dir".into()))
}

fn gateway_config(g: &GatewayArgs, state: &StateDir) -> Result<GatewayConfig, AgentError> {
    let from_file = match &g.gateway_token_file {
        Some(path) => Some(read_token_file(path)?),
        None => None,
    };
    let (url, token) = resolve_gateway(&GatewayInputs {
        url: g.gateway.clone(),
        token: g.gateway_token.clone().or(from_file),
        env_token: std::env::var("OPENCLAW_GATEWAY_TOKEN").ok(),
        config_path: std::env::var_os("OPENCLAW_CONFIG_PATH").map(PathBuf::from),
        home: directories::BaseDirs::new().map(|b| b.home_dir().to_owned()),
        allow_insecure: g.allow_insecure_gateway,
    })?;
    Ok(GatewayConfig {
        url,
        token,
        identity_path: state.gateway_identity_path(),
        identity_key: Some(state.gateway_identity_key()?),
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
        approve_all_devices: g.approve_all_devices,
    })
}

/// The first line of `path`, trimmed; an empty or unreadable file is an error that says so.
fn read_token_file(path: &std::path::Path) -> Result<String, AgentError> {
    let raw = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        AgentError::Config(format!(
            "cannot read the gateway token file {}: {e}",
            path.display()
        ))
    })?);
    let token = raw.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(AgentError::Config(format!(
            "the gateway token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "OpenClaw agent".into())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(args: Args) -> Result<ExitCode, AgentError> {
    let state = state_dir(&args)?;
    match args.command {
        Cmd::Pair {
            relay,
            name,
            allow_insecure_relay,
        } => {
            check_ws_url(&relay, true, allow_insecure_relay)?;
            let name = name.unwrap_or_else(host_name);
            clawtray_agent::pair::pair(&state, &relay, &name, &mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            gateway,
            session_key,
            relay_heartbeat,
            relay_refused_retry,
        } => {
            let gw = gateway_config(&gateway, &state)?;
            service::run(
                ServiceConfig {
                    state,
                    gateway: gw,
                    session_key,
                    ping_interval: Duration::from_secs(relay_heartbeat),
                    refused_retry: Duration::from_secs(relay_refused_retry),
                },
                shutdown_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { gateway } => {
            let pairings = state.pairings()?;
            if pairings.is_empty() {
                println!("no paired desktops: run `clawtray-agent pair`");
            }
            for p in &pairings {
                println!(
                    "paired: {} (session {}, via {})",
                    p.desktop_name, p.session, p.relay_url
                );
            }
            let gw = gateway_config(&gateway, &state)?;
            let url = gw.url.clone();
            let (_client, mut events) = GatewayClient::start(gw)?;
            let reached = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match events.recv().await {
                        Ok(GatewayEvent::Connected { server_version, .. }) => {
                            return Ok(server_version)
                        }
                        Ok(GatewayEvent::Disconnected { reason }) => return Err(reason),
                        Ok(_) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            })
            .await;
            match reached {
                Ok(Ok(v)) => println!("gateway: reachable at {url} (OpenClaw {v})"),
                Ok(Err(e)) => println!("gateway: not reachable: {e}"),
                Err(_) => println!("gateway: no answer from {url}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Key { action } => {
            let key = state.static_key()?;
            match action {
                KeyCmd::Where => println!("{}", state.key_home()?),
                KeyCmd::Export => {
                    println!("{}", clawtray_agent::keys::export(&key).as_str());
                    eprintln!("(this is the agent's private key: pipe it straight into `systemd-creds encrypt`, never into a file or a chat)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Unpair { name, now, wait } => {
            let pairings = state.pairings()?;
            let chosen: Vec<_> = pairings
                .iter()
                .filter(|p| {
                    name.as_deref()
                        .is_none_or(|n| p.desktop_name == n || p.session == n)
                })
                .collect();
            if chosen.is_empty() {
                println!("no matching paired desktop");
                return Ok(ExitCode::from(3));
            }
            if now {
                for p in chosen {
                    if let Ok(Some(token)) = state.token(&p.session) {
                        if let Err(e) = revoke(p, token.expose()).await {
                            eprintln!("warning: could not tell the relay ({e}); the pairing is forgotten here anyway");
                        }
                    }
                    state.remove_pairing(&p.session)?;
                    println!("unpaired {} (ended at the relay; the desktop keeps its copy until its person unpairs there)", p.desktop_name);
                }
                return Ok(ExitCode::SUCCESS);
            }
            for p in &chosen {
                state.request_unpair(&p.session)?;
            }
            if !state.service_running()? {
                for p in chosen {
                    println!("{}: will be unpaired once `clawtray-agent run` is running and the desktop connects (or use --now)", p.desktop_name);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
            let mut left: Vec<_> = chosen.into_iter().cloned().collect();
            loop {
                let live = state.pairings()?;
                left.retain(|p| {
                    let gone = !live.iter().any(|l| l.session == p.session);
                    if gone {
                        println!("unpaired {} (the desktop confirmed)", p.desktop_name);
                    }
                    !gone
                });
                if left.is_empty() || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for p in &left {
                println!("{}: the desktop has not confirmed yet; the agent keeps telling it and forgets the pairing when it does (or use --now)", p.desktop_name);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Revoke the pairing at the relay now (`unpair --now`).
async fn revoke(p: &clawtray_agent::state::Pairing, token: &str) -> Result<(), AgentError> {
    use futures_util::{SinkExt, StreamExt};
    let mut url = url::Url::parse(&p.relay_url)
        .map_err(|e| AgentError::Relay(format!("the stored relay URL is not valid: {e}")))?;
    url.set_path("/v1/agent");
    url.query_pairs_mut()
        .append_pair("session", &p.session)
        .append_pair("instance", "unpair");
    let mut ws = clawtray_transport::connect(
        url.as_str(),
        Some(token),
        clawtray_transport::RELAY_MAX_MESSAGE,
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| AgentError::Relay(e.to_string()))?;
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        clawtray_proto::control::ControlFrame::Revoke.to_json(),
    ))
    .await
    .map_err(|e| AgentError::Relay(e.to_string()))?;
    let _ = tokio::time::timeout(Duration::from_secs(3), ws.next()).await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWTRAY_LOG")
        .unwrap_or_else(|_| "info".into());
    // colours only on a terminal: journald and log files get plain text
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_token_file;

    #[test]
    fn a_token_file_gives_its_first_line_and_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway-token");
        std::fs::write(&path, "  s3cret-token \nignored\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cret-token");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        let e = read_token_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the gateway token file"), "{e}");
    }
}
