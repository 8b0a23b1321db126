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
    /// Show or change the home PCs allowed to connect (known home PCs);
    /// without options it lists them.
    Devices {
        /// Allow the home PC with this device ID (`thinclient device` shows it).
        #[arg(long, value_name = "ID")]
        add: Option<String>,
        /// Name to show for the home PC added with --add.
        #[arg(long, requires = "add")]
        name: Option<String>,
        /// Allow home PCs with this MAC address (the original's MAC check).
        #[arg(long, value_name = "MAC")]
        add_mac: Option<String>,
        /// Remove a device ID or MAC address from the list.
        #[arg(long, value_name = "ID|MAC")]
        remove: Option<String>,
        /// Add the next unknown home PC that logs in with the password within MINUTES.
        #[arg(long, value_name = "MINUTES", num_args = 0..=1, default_missing_value = "10",
              value_parser = clap::value_parser!(u32).range(1..=1440))]
        pair: Option<u32>,
        /// on: only known home PCs may connect; off: any that knows the password.
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        require: Option<String>,
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
    thin_tunnel::platform::heap::keep_freed_memory();
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
    let rt = thin_tunnel::runtime::build("thinsvr")?;
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
    if let Cmd::Devices { add, name, add_mac, remove, pair, require } = cmd {
        let change = DeviceChange { add, name, add_mac, remove, pair, require };
        return devices(&dir, saved, change);
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

/// What `thinsvr devices` was asked to change.
struct DeviceChange {
    add: Option<String>,
    name: Option<String>,
    add_mac: Option<String>,
    remove: Option<String>,
    pair: Option<u32>,
    require: Option<String>,
}

/// `thinsvr devices`: changes the known home PCs in `thinsvr.toml` (checked
/// first, saved atomically, nothing saved on an error), then lists them.
fn devices(dir: &ConfigDir, mut s: thin_tunnel::settings::ServerSettings, c: DeviceChange) -> anyhow::Result<()> {
    use thin_protocol::policy::{format_mac, parse_mac};
    use thin_tunnel::device::{parse_id, same_id};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut changed = false;
    if let Some(id) = &c.add {
        let id = parse_id(id).map_err(|e| anyhow::anyhow!("--add: {e}"))?;
        s.allowed_devices.retain(|d| !same_id(&d.id, &id));
        let name = c.name.clone().unwrap_or_default().chars().filter(|c| !c.is_control()).take(64).collect();
        s.allowed_devices.push(thin_tunnel::settings::AllowedDevice { id, name, added: now });
        changed = true;
    }
    if let Some(mac) = &c.add_mac {
        let mac = format_mac(&parse_mac(mac).map_err(|e| anyhow::anyhow!("--add-mac: {e}"))?);
        if !s.allowed_macs.iter().any(|m| parse_mac(m).is_ok_and(|m| format_mac(&m) == mac)) {
            s.allowed_macs.push(mac);
        }
        changed = true;
    }
    if let Some(what) = &c.remove {
        let before = s.allowed_devices.len() + s.allowed_macs.len();
        match (parse_id(what), parse_mac(what)) {
            (Ok(id), _) => s.allowed_devices.retain(|d| !same_id(&d.id, &id)),
            (_, Ok(mac)) => s.allowed_macs.retain(|m| parse_mac(m) != Ok(mac)),
            (Err(e), Err(_)) => anyhow::bail!("--remove: {e}, or a MAC address such as 00-11-22-AA-BB-CC"),
        }
        if s.allowed_devices.len() + s.allowed_macs.len() == before {
            anyhow::bail!("{}", strings::fmt(Key::CLI_DEVICES_NOT_FOUND, &[what]));
        }
        changed = true;
    }
    if let Some(minutes) = c.pair {
        s.pair_until = Some(now + u64::from(minutes) * 60);
        changed = true;
    }
    if let Some(on) = &c.require {
        s.devices_only = on == "on";
        changed = true;
    }
    if changed {
        dir.save_settings(&s)?;
        println!("{}", strings::text(Key::CLI_DEVICES_CHANGED));
    }
    let listed = s.allowed_devices.len() + s.allowed_macs.len();
    let state = match (s.devices_only, listed) {
        (true, n) => strings::fmt(Key::CLI_DEVICES_REQUIRED, &[&n]),
        (false, 0) => strings::text(Key::CLI_DEVICES_NONE).into_owned(),
        (false, n) => strings::fmt(Key::CLI_DEVICES_OPEN, &[&n]),
    };
    println!("{state}");
    for d in &s.allowed_devices {
        println!("{}", strings::fmt(Key::CLI_DEVICES_ROW, &[&d.id, &d.name, &utc_date(d.added)]));
    }
    for m in &s.allowed_macs {
        println!("{}", strings::fmt(Key::CLI_DEVICES_MAC_ROW, &[m]));
    }
    if let Some(t) = s.pair_until.filter(|t| *t > now) {
        println!("{}", strings::fmt(Key::CLI_DEVICES_PAIRING, &[&utc_time(t)]));
    }
    Ok(())
}

/// `2026-12-01` of a Unix time (UTC).
fn utc_date(t: u64) -> String {
    utc_time(t)[..10].to_string()
}

/// `2026-12-01 13:45` of a Unix time (UTC).
fn utc_time(t: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| "????-??-?? ??:??".into())
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
fn utc_times_read_as_calendar_dates() {
    assert_eq!(utc_time(0), "1970-01-01 00:00");
    assert_eq!(utc_time(1_796_132_700), "2026-12-01 13:45");
    assert_eq!(utc_date(951_782_400), "2000-02-29");
}

#[test]
fn every_help_text_comes_from_the_string_tables() {
    let missing = thin_ui::cli_help::missing_keys(&<Cli as clap::CommandFactory>::command());
    assert!(missing.is_empty(), "no table text for {missing:?}");
}
