//! `thinsvr`: the office PC's app. Without a subcommand it opens ThinServer's
//! window (a front end of the background service); see `thinsvr --help`.
#![forbid(unsafe_code)]
// A double-click opens the window without a console; see `thin_tunnel::platform::console`.
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thin_tunnel::control::ControlError;
use thin_tunnel::platform::acl::{secure_config_dir, PrivateDir};
use thin_tunnel::settings::ConfigDir;
use thin_tunnel::{entry, otp, server_agent, service};
use thin_ui::strings::Key;
use thin_ui::{cli, strings};

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
    /// Local admin port of the service (default: the brand's RPC port).
    #[arg(long, global = true, value_name = "PORT")]
    rpc_port: Option<u16>,
    /// Without a subcommand: open the window.
    #[command(subcommand)]
    cmd: Option<Cmd>,
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
    /// Open ThinServer's window (what a double-click does).
    Window,
    /// Run as the background service (what the installers register): the
    /// gateway session with the config folder's settings, and the local admin
    /// port the window talks to. Under Windows' service manager it reports to
    /// it; from a console it runs in the foreground until Ctrl+C.
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
    if cfg!(windows) {
        // The same folder for the service and the window, whatever their environments.
        let base = thin_tunnel::platform::known_folder::program_data()
            .or_else(|| std::env::var_os("PROGRAMDATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        return thin_brand::server_config_dir_windows(&base, thin_tunnel::brand::get().app_id);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    thin_brand::server_config_dir_unix(std::path::Path::new(&home), thin_tunnel::brand::get().app_id)
}

include!(concat!(env!("OUT_DIR"), "/brand_gen.rs"));

fn main() -> ExitCode {
    thin_tunnel::brand::set(&BRAND);
    thin_tunnel::platform::limits::raise_open_files();
    let cli: Cli = cli::parse();
    match &cli.cmd {
        None | Some(Cmd::Window) => window(cli),
        Some(Cmd::Service) => service(cli),
        Some(_) => cli::block_on("thinsvr", "info", real_main(cli)),
    }
}

fn config_dir(cli: &Cli) -> ConfigDir {
    ConfigDir(cli.config_dir.clone().unwrap_or_else(default_dir))
}

fn admin_port(cli: &Cli) -> u16 {
    cli.rpc_port.unwrap_or(thin_tunnel::brand::get().rpc_port)
}

fn window(cli: Cli) -> ExitCode {
    entry::init_logging("warn");
    let dir = config_dir(&cli);
    let saved_proxy = dir.settings().ok().and_then(|s| s.proxy);
    let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), saved_proxy.as_deref()).ok();
    let r = thin_ui::gui::open_server_app(dir, link, admin_port(&cli)).map_err(|e| {
        thin_ui::gui::show_failure(&thin_ui::strings::text(Key::APP_TITLE_SERVER), &e);
        anyhow::anyhow!("{e}")
    });
    cli::exit_code("thinsvr", r)
}

/// Makes the config folder the service's own before anything in it is read
/// (see `thin_tunnel::platform::acl`); keep the value while using it.
fn private_dir(dir: &ConfigDir) -> anyhow::Result<PrivateDir> {
    Ok(secure_config_dir(&dir.0)?)
}

/// The service's body: until `stop`, on a runtime of its own, with the config
/// folder made private (and what was moved aside logged) by the caller.
fn serve(cli: &Cli, stop: tokio_util::sync::CancellationToken, private: PrivateDir) -> anyhow::Result<()> {
    private.report();
    let dir = config_dir(cli);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let saved = dir.settings()?;
        let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), saved.proxy.as_deref());
        let link = link.map_err(|e| eprintln!("thinsvr: no gateway: {e:#}")).ok();
        let opts = service::ServiceOptions { admin_port: admin_port(cli), ..Default::default() };
        service::run(link, dir, opts, stop, None).await?;
        Ok(())
    })
}

fn service(cli: Cli) -> ExitCode {
    #[cfg(windows)]
    {
        let cli = std::sync::Arc::new(cli);
        let body = {
            let cli = cli.clone();
            Box::new(move |stop: tokio_util::sync::CancellationToken| {
                // Under the service manager nobody reads stderr: log to a file
                // in the config folder (readable by administrators only), once
                // that folder is the service's own.
                let dir = config_dir(&cli);
                let private = private_dir(&dir);
                entry::init_logging_to_file("info", &dir.0.join("thinsvr.log"));
                private.and_then(|p| serve(&cli, stop, p)).map_err(|e| format!("{e:#}").into())
            })
        };
        match thin_tunnel::platform::winsvc::run_as_service(&thin_tunnel::brand::service_name(), body) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => {}
            Err(e) => return cli::exit_code("thinsvr", Err(e.into())),
        }
        entry::init_logging("info");
        foreground(&cli)
    }
    #[cfg(not(windows))]
    {
        entry::init_logging("info");
        foreground(&cli)
    }
}

/// The service in the foreground (a console, systemd): stops on Ctrl+C or SIGTERM.
fn foreground(cli: &Cli) -> ExitCode {
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(wait_signal());
        }
        on_signal.cancel();
    });
    cli::exit_code("thinsvr", private_dir(&config_dir(cli)).and_then(|p| serve(cli, stop, p)))
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let dir = config_dir(&cli);
    let private = private_dir(&dir)?;
    private.report();
    let saved = dir.settings()?;
    let Some(cmd) = cli.cmd else { unreachable!("the window has no runtime") };
    if let Cmd::Otp { email, .. } = &cmd {
        let mut settings = saved;
        settings.otp_email = match email {
            Some(e) => Some(otp::check_email(e)?),
            None => None,
        };
        dir.save_settings(&settings)?;
        match &settings.otp_email {
            Some(e) => println!("{}", strings::fmt(Key::CLI_OTP_ON, &[e])),
            None => println!("{}", strings::text(Key::CLI_OTP_OFF)),
        }
        return Ok(());
    }
    let link = entry::link(cli.entry_point.as_deref(), cli.proxy.as_deref(), saved.proxy.as_deref())?;
    match cmd {
        Cmd::Register { pcid, .. } => {
            let pw = entry::read_secret_line()?;
            if let Err(e) = thin_tunnel::password_policy::check(pw.expose(), &[&pcid]) {
                anyhow::bail!("{}", thin_ui::wording::Wording::message(&ControlError::WeakPassword(e)));
            }
            let stored = server_agent::register(&link, &dir, &pcid, &pw).await?;
            println!("{}", strings::fmt(Key::CLI_REGISTERED, &[&stored]));
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
                        println!("{}", strings::fmt(Key::CLI_ONLINE, &[&pcid]));
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

#[test]
fn every_help_text_comes_from_the_string_tables() {
    let missing = thin_ui::cli_help::missing_keys(&<Cli as clap::CommandFactory>::command());
    assert!(missing.is_empty(), "no table text for {missing:?}");
}
