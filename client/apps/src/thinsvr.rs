//! `thinsvr`: the office PC's app. See `thinsvr --help`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thin_client::settings::ConfigDir;
use thin_client::{entry, otp, server_agent};

#[derive(Parser)]
#[command(
    name = "thinsvr",
    about = "Office PC app: registers a computer ID at the gateway and serves remote-desktop tunnels"
)]
struct Cli {
    /// EntryPoint.dat to use instead of the one compiled in.
    #[arg(long, global = true)]
    entry_point: Option<PathBuf>,
    /// Folder for the key pair, password verifier and settings.
    #[arg(long, global = true)]
    config_dir: Option<PathBuf>,
    /// Proxy to the gateway: http://[user:pass@]host:port, socks5://..., or `direct`.
    #[arg(long, global = true)]
    proxy: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Claim (or rename to) a computer ID and set the password.
    Register {
        /// Computer ID: letters, digits, '-' and '_', at most 31.
        #[arg(long)]
        pcid: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Run as the background service (what the installers register); same as `run`
    /// with the settings of the config folder.
    Service,
    /// Ask every client session for a one-time password, mailed by the gateway to
    /// ADDR (the gateway needs SmtpServerHostname in ThinGate.ini); or stop asking.
    Otp {
        /// Mail address that receives the one-time passwords.
        #[arg(long, value_name = "ADDR", required_unless_present = "disable", conflicts_with = "disable")]
        email: Option<String>,
        /// Stop asking for one-time passwords.
        #[arg(long)]
        disable: bool,
    },
    /// Keep the session to the gateway and forward tunnels to the target.
    Run {
        /// Local service the tunnels reach (default from settings, 127.0.0.1:3389).
        #[arg(long)]
        target: Option<String>,
    },
}

fn default_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PROGRAMDATA") {
        return PathBuf::from(p).join(thin_client::brand::get().app_id).join("ThinServer");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".config").join(thin_client::brand::get().app_id.to_lowercase()).join("thinsvr")
}

include!(concat!(env!("OUT_DIR"), "/brand_gen.rs"));

fn main() -> ExitCode {
    thin_client::brand::set(&BRAND);
    entry::main_with::<Cli, _, _>("thinsvr", "info", real_main)
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let dir = ConfigDir(cli.config_dir.clone().unwrap_or_else(default_dir));
    let saved = dir.settings()?;
    if let Cmd::Otp { email, .. } = &cli.cmd {
        let mut settings = saved;
        settings.otp_email = match email {
            Some(e) => Some(otp::check_email(e).map_err(anyhow::Error::msg)?),
            None => None,
        };
        dir.save_settings(&settings)?;
        match &settings.otp_email {
            Some(e) => println!("one-time passwords on: every client session must also type the code mailed to {e}"),
            None => println!("one-time passwords off"),
        }
        return Ok(());
    }
    let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), saved.proxy.as_deref())?;
    match cli.cmd {
        Cmd::Register { pcid, .. } => {
            let pw = entry::read_secret_line()?;
            let stored = server_agent::register(&link, &dir, &pcid, &pw).await?;
            println!("registered as {stored}");
            Ok(())
        }
        other => {
            let target = match other {
                Cmd::Run { target } => target,
                _ => None,
            };
            let shutdown = tokio_util::sync::CancellationToken::new();
            let (tx, mut rx) = tokio::sync::watch::channel(server_agent::ServerState::Connecting);
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let st = rx.borrow().clone();
                    if let server_agent::ServerState::Online { pcid, .. } = st {
                        println!("online as {pcid}");
                    }
                }
            });
            let stop = shutdown.clone();
            tokio::spawn(async move {
                wait_signal().await;
                stop.cancel();
            });
            server_agent::run(link, dir, target, shutdown, tx).await?;
            Ok(())
        }
    }
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
