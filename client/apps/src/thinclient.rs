//! `thinclient`: the home PC's app. Without a subcommand it opens ThinClient's
//! window; see `thinclient --help`.
#![forbid(unsafe_code)]
// A double-click opens the window without a console; see `thin_tunnel::platform::console`.
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thin_tunnel::{client_agent, entry};
use thin_ui::strings::Key;
use thin_ui::{cli, viewer};

#[derive(Parser)]
#[command(
    name = "thinclient",
    about = "Home PC app: connects to an office PC by computer ID and opens the remote desktop"
)]
struct Cli {
    /// EntryPoint.dat to use instead of the one compiled in.
    #[arg(long, global = true)]
    entry_point: Option<PathBuf>,
    /// Proxy to the gateway: http://[user:pass@]host:port, socks5://..., or `direct`.
    #[arg(long, global = true)]
    proxy: Option<String>,
    /// Without a subcommand: open the window.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open ThinClient's window (what a double-click does).
    Window {
        /// Computer ID to fill in.
        pcid: Option<String>,
        /// Viewer command ({addr}, {host}, {port}); default mstsc on Windows, xfreerdp elsewhere.
        #[arg(long)]
        viewer: Option<String>,
    },
    /// Connect to a computer ID, open a local port, start the viewer.
    Connect {
        /// Computer ID of the office PC.
        pcid: String,
        /// Read the password from standard input. If the computer asks for a
        /// one-time password (sent by e-mail), it is read from the next line,
        /// after a prompt on standard error.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Local address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Do not start the viewer.
        #[arg(long)]
        no_launch: bool,
        /// Viewer command ({addr}, {host}, {port}); default mstsc on Windows, xfreerdp elsewhere.
        #[arg(long)]
        viewer: Option<String>,
    },
    /// Show this home PC's device ID, which an office PC's owner adds to let it connect.
    Device,
    /// Wake a sleeping office PC (Wake-on-LAN) through another office PC on its LAN.
    Wake {
        /// Computer ID of the office PC to wake.
        pcid: String,
        /// Computer ID of an office PC online on the same LAN, which sends
        /// the packet; you log in to it with its password.
        #[arg(long)]
        via: String,
        /// Read the password of the `--via` office PC from standard input
        /// (and a one-time password from the next line, if it asks).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

include!(concat!(env!("OUT_DIR"), "/brand_gen.rs"));

fn main() -> ExitCode {
    thin_tunnel::brand::set(&BRAND);
    thin_tunnel::platform::limits::raise_open_files();
    let cli: Cli = cli::parse();
    match &cli.cmd {
        None => window(&cli, None, None),
        Some(Cmd::Window { pcid, viewer }) => window(&cli, pcid.as_deref(), viewer.clone()),
        Some(Cmd::Device) => device(),
        Some(_) => cli::block_on("thinclient", "warn", real_main(cli)),
    }
}

fn window(cli: &Cli, pcid: Option<&str>, viewer: Option<String>) -> ExitCode {
    entry::init_logging("warn");
    let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), None);
    let r = thin_ui::gui::open_client_app(link, viewer, pcid).map_err(|e| {
        thin_ui::gui::show_failure(&thin_ui::strings::text(Key::APP_TITLE_CLIENT), &e);
        anyhow::anyhow!("{e}")
    });
    cli::exit_code("thinclient", r)
}

/// `thinclient device`: the device ID, made on first use (a home PC's owner
/// asks for it to have the office PC's owner add it).
fn device() -> ExitCode {
    entry::init_logging("warn");
    let store = thin_tunnel::device::DeviceStore::user_default();
    let r = store.load_or_create().map(|k| println!("{}", thin_ui::strings::fmt(Key::CLI_DEVICE_ID, &[&k.id()])));
    cli::exit_code("thinclient", r.map_err(anyhow::Error::from))
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), None)?;
    let Some(cmd) = cli.cmd else { unreachable!("the window has no runtime") };
    match cmd {
        Cmd::Connect { pcid, listen, no_launch, viewer: viewer_cmd, .. } => {
            let pw = entry::read_secret_line()?;
            let tunnel = client_agent::connect_with_otp(&link, &pcid, &pw, &cli::otp_from_stdin).await?;
            if let Some(note) = &tunnel.note {
                eprintln!("{note}");
            }
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            println!("{}", thin_ui::strings::fmt(Key::LISTENING_ON, &[&addr]));
            let _ = std::io::stdout().flush();
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            if !no_launch {
                let mut child = viewer::launch(addr, viewer_cmd.as_deref())?;
                tokio::spawn(async move {
                    let _ = child.wait().await;
                    stop.cancel();
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                });
            }
            tunnel.serve(listener, shutdown).await?;
            Ok(())
        }
        Cmd::Wake { pcid, via, .. } => {
            let pw = entry::read_secret_line()?;
            let tunnel = client_agent::connect_with_otp(&link, &via, &pw, &cli::otp_from_stdin).await?;
            let reply = tunnel.wake(&pcid).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(why) = reply.error {
                anyhow::bail!("{why}");
            }
            println!("{}", thin_ui::strings::fmt(Key::WAKE_SENT, &[&via, &pcid, &reply.sent]));
            Ok(())
        }
        Cmd::Window { .. } | Cmd::Device => unreachable!("answered without a runtime"),
    }
}

#[test]
fn every_help_text_comes_from_the_string_tables() {
    let missing = thin_ui::cli_help::missing_keys(&<Cli as clap::CommandFactory>::command());
    assert!(missing.is_empty(), "no table text for {missing:?}");
}
