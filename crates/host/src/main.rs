//! `clawtray`, the tray host: the long-lived half of the desktop app. It keeps the connection to
//! your agent (pairing in the OS keyring, messages kept while offline), shows the tray icon and
//! notifications, and starts the chat window (`clawtray-chat`, the other half) when you click the
//! icon. It never loads a web view.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod app;
mod autostart;
mod chat;
mod hotkey;
mod instance;
mod notify;
mod platform;
mod settings;
mod tray;
mod update;
mod x11_hotkey;

use clap::Parser;

/// clawtray — chat with your OpenClaw agent from the tray.
///
/// Two processes make the app: `clawtray` (this one: the tray icon, notifications, the hotkey and
/// the connection to your agent; it runs all day and uses little memory) and `clawtray-chat` (the
/// chat window, started when you click the icon and gone when you close it). Launching
/// `clawtray` while it runs opens the chat.
#[derive(Parser, Debug)]
#[command(version = update::VERSION, about, long_about)]
struct Args {
    /// Started at login: stay in the tray without opening the chat.
    #[arg(long)]
    autostart: bool,
    /// A `clawtray://pair?code=…&relay=…` link (as `clawtray-agent pair` prints): opens the
    /// pairing dialog filled in, for you to confirm.
    link: Option<String>,
    /// Restarted by an update from this version (the new version says so once).
    #[arg(long, hide = true, value_name = "VERSION")]
    updated_from: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawtray could not start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let opts = app::Options {
        autostarted: args.autostart,
        link: args.link,
        updated_from: args.updated_from,
    };
    let exit = rt.block_on(app::run(opts));
    // every task of the old version ends before the new one starts in this process's place
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match exit {
        Ok(app::Exit::Done) => std::process::ExitCode::SUCCESS,
        Ok(app::Exit::Restart { exe, args }) => {
            use std::os::unix::process::CommandExt as _;
            let e = std::process::Command::new(&exe).args(&args).exec();
            eprintln!("clawtray: the update is installed, but {} could not be started: {e}; start clawtray again", exe.display());
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("clawtray: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
