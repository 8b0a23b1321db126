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
use thin_tunnel::desktop::DesktopInfo;
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
    /// Show this PC's state (antivirus, updates) as an office PC under the
    /// company's inspection rule sees it.
    Inspect {
        /// Print the report as JSON, exactly as it is sent to the office PC.
        #[arg(long)]
        json: bool,
    },
}

include!(concat!(env!("OUT_DIR"), "/brand_gen.rs"));

fn main() -> ExitCode {
    thin_tunnel::brand::set(&BRAND);
    thin_tunnel::platform::limits::raise_open_files();
    thin_tunnel::platform::heap::keep_freed_memory();
    let cli: Cli = cli::parse();
    match &cli.cmd {
        None => window(&cli, None, None),
        Some(Cmd::Window { pcid, viewer }) => window(&cli, pcid.as_deref(), viewer.clone()),
        Some(Cmd::Device) => device(),
        Some(Cmd::Inspect { json }) => inspect(*json),
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

/// `thinclient inspect`: reads the state (no gateway needed) and prints it.
fn inspect(json: bool) -> ExitCode {
    let state = thin_tunnel::inspection::read_home_state();
    let text = if json {
        serde_json::to_string_pretty(&state).map_err(anyhow::Error::from)
    } else {
        Ok(inspection_text(&state))
    };
    cli::exit_code("thinclient", text.map(|t| println!("{t}")))
}

/// The state in the user's words, then the verdict of the usual rule.
fn inspection_text(s: &thin_protocol::inspection::HomeState) -> String {
    use thin_protocol::inspection::{judge, Rule, DEFAULT_UPDATE_DAYS};
    use thin_ui::strings::{fmt, text};
    let mut lines = vec![fmt(Key::INSPECT_SYSTEM, &[&s.os])];
    match (&s.antivirus_unread, s.antivirus.is_empty()) {
        (Some(why), true) => lines.push(fmt(Key::INSPECT_ANTIVIRUS_UNREAD, &[why])),
        (None, true) => lines.push(text(Key::INSPECT_NO_ANTIVIRUS).into_owned()),
        _ => {}
    }
    for a in &s.antivirus {
        let on = text(if a.enabled { Key::INSPECT_AV_ON } else { Key::INSPECT_AV_OFF });
        let sig = text(if a.up_to_date { Key::INSPECT_SIGNATURES_CURRENT } else { Key::INSPECT_SIGNATURES_OLD });
        lines.push(fmt(Key::INSPECT_ANTIVIRUS, &[&a.name, &on, &sig]));
    }
    match (s.last_update_days, &s.update_unread) {
        (Some(d), _) => lines.push(fmt(Key::INSPECT_UPDATES, &[&d, &s.update_source.as_deref().unwrap_or("?")])),
        (None, why) => lines.push(fmt(Key::INSPECT_UPDATES_UNREAD, &[&why.as_deref().unwrap_or("?")])),
    }
    let usual = Rule { update_days: Some(DEFAULT_UPDATE_DAYS), allow_other_os: false };
    match judge(&usual, s) {
        Ok(()) => lines.push(fmt(Key::INSPECT_PASSES, &[&DEFAULT_UPDATE_DAYS])),
        Err(why) => {
            lines.push(fmt(Key::INSPECT_FAILS, &[&DEFAULT_UPDATE_DAYS]));
            lines.extend(why.lines().skip(1).map(str::to_string));
        }
    }
    lines.join("\n")
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
            let desktop = tunnel.desktop().await?;
            if !no_launch {
                let mut child = match &desktop {
                    DesktopInfo::Rdp => viewer::launch(addr, viewer_cmd.as_deref())?,
                    DesktopInfo::Builtin { sha256 } => {
                        let pw = tunnel.desktop_password();
                        viewer::launch_builtin(addr, None, thin_tunnel::desktop::USER, sha256, pw.expose()).await?
                    }
                };
                tokio::spawn(async move {
                    let _ = child.wait().await;
                    stop.cancel();
                });
            } else {
                if let DesktopInfo::Builtin { sha256 } = &desktop {
                    // The user starts the viewer: tell them what it needs.
                    let pw = tunnel.desktop_password();
                    println!(
                        "{}",
                        thin_ui::strings::fmt(
                            Key::BUILTIN_DESKTOP_CREDENTIALS,
                            &[&thin_tunnel::desktop::USER, &pw.expose(), &sha256]
                        )
                    );
                    let _ = std::io::stdout().flush();
                }
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
        Cmd::Window { .. } | Cmd::Device | Cmd::Inspect { .. } => unreachable!("these have no runtime"),
    }
}

#[test]
fn every_help_text_comes_from_the_string_tables() {
    let missing = thin_ui::cli_help::missing_keys(&<Cli as clap::CommandFactory>::command());
    assert!(missing.is_empty(), "no table text for {missing:?}");
}

#[test]
fn inspection_text_names_every_part_and_the_usual_verdict() {
    use thin_protocol::inspection::{Antivirus, HomeState, Platform};
    let s = HomeState {
        os: "Microsoft Windows 10 Pro 10.0.19043".into(),
        platform: Platform::Windows,
        antivirus: vec![Antivirus {
            name: "Windows Defender".into(),
            enabled: true,
            up_to_date: false,
            product_state: None,
        }],
        last_update_days: Some(45),
        update_source: Some("Win32_QuickFixEngineering".into()),
        ..HomeState::default()
    };
    let t = thin_ui::strings::fmt_in;
    let en = inspection_text(&s);
    let lines: Vec<&str> = en.lines().collect();
    assert_eq!(lines[0], t(thin_ui::strings::language(), Key::INSPECT_SYSTEM, &[&s.os]));
    assert!(lines[1].contains("Windows Defender"), "{en}");
    assert!(lines[2].contains("45"), "{en}");
    assert_eq!(lines[3], t(thin_ui::strings::language(), Key::INSPECT_FAILS, &[&30]));
    assert!(lines[4].starts_with("- the antivirus signatures are out of date") && lines[5].contains("45 days"), "{en}");
    let unread = HomeState {
        antivirus: vec![],
        antivirus_unread: Some("WMI did not answer".into()),
        last_update_days: None,
        update_unread: Some("no date".into()),
        ..s
    };
    let text = inspection_text(&unread);
    assert!(text.contains("WMI did not answer") && text.contains("no date"), "{text}");
}
