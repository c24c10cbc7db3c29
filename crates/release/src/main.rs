//! `clawtray-release`: what a maintainer needs to publish signed updates.
//!
//! - `keygen --out DIR`: a new minisign key pair (`update-key.sec`, mode 0600; `update-key.pub`)
//!   and the public key in the form the app embeds (`update-key.pub.b64`, also printed);
//! - `sign --key FILE PACKAGE…`: `PACKAGE.sig` beside each package (base64 of the minisign
//!   signature file, as Tauri's updater writes it);
//! - `manifest --version V --url-base URL PACKAGE…`: the update manifest (JSON) on stdout, one
//!   entry per package, keyed by platform (`linux-x86_64-deb`, `linux-x86_64-rpm`, …).
//!
//! A password-protected secret key (minisign's default, and `tauri signer generate`'s) is opened
//! with `$CLAWTRAY_SIGNING_KEY_PASSWORD`; without it the key must be unencrypted.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod keys;
mod manifest;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Sign clawtray packages and write update manifests")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new update signing key pair in DIR (refuses to overwrite one).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign packages with the secret key: PACKAGE.sig beside each.
    Sign {
        #[arg(long, env = "CLAWTRAY_SIGNING_KEY")]
        key: PathBuf,
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
    /// Print the update manifest for signed packages (each needs its PACKAGE.sig).
    Manifest {
        /// The version the packages carry.
        #[arg(long)]
        version: String,
        /// Where the packages will be served; each URL is this plus the file's name.
        #[arg(long)]
        url_base: String,
        /// Release notes shown with the offer.
        #[arg(long)]
        notes: Option<String>,
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let done = match args.command {
        Command::Keygen { out } => keys::keygen(&out).map(|b64| println!("{b64}")),
        Command::Sign { key, packages } => keys::sign_all(&key, &packages),
        Command::Manifest {
            version,
            url_base,
            notes,
            packages,
        } => manifest::write(&version, &url_base, notes.as_deref(), &packages)
            .map(|json| println!("{json}")),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawtray-release: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What went wrong, in a sentence.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0} exists already; move it away to make a new key (the app trusts the old one)")]
    KeyExists(PathBuf),
    #[error("cannot read or write {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a minisign secret key, or its password ($CLAWTRAY_SIGNING_KEY_PASSWORD) is wrong: {1}")]
    BadKey(PathBuf, String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("{0} has no signature beside it ({0}.sig): run `clawtray-release sign` first")]
    Unsigned(PathBuf),
    #[error("cannot tell which platform {0} is for (expected a .deb, .rpm or .tar.gz named …_amd64/x86_64/arm64/aarch64…)")]
    UnknownPlatform(PathBuf),
}
