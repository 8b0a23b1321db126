//! `thingate`: the relay gateway. See `thingate --help`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thingate::daemon::{self, DaemonFiles};
use thingate::Gateway;

#[derive(Parser)]
#[command(
    name = "thingate",
    version,
    about = "Thin Telework relay gateway: TLS on one port, registration of office PCs, relay"
)]
struct Cli {
    /// Without a command: the banner and the usage, as the original prints them.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run in the foreground; prints `listening on ADDR:PORT` first.
    Run {
        /// Path of ThinGate.ini (default: ThinGate.ini beside this program).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the process id here (removed on exit).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Start in the background (pid file next to the config).
    Start {
        /// Path of ThinGate.ini (default: ThinGate.ini beside this program).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pid file (default: thingate.pid next to the config).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Stop the background gateway gracefully (SIGTERM).
    Stop {
        /// Path of ThinGate.ini (default: ThinGate.ini beside this program).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pid file (default: thingate.pid next to the config).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Compare this host with the recommended kernel and limits settings
    /// (manual 5-5), and say how many office PCs and how much traffic it holds.
    Doctor {
        /// Path of ThinGate.ini, for its TunnelKeepAlive and MaxServerSessions
        /// (default: ThinGate.ini beside this program, when there is one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Move machines between a MachineDatabase.config and the cluster's etcd
    /// (the cluster edition, StandaloneMode 0; docs/cluster.md).
    Cluster {
        /// What to do.
        #[command(subcommand)]
        op: ClusterOp,
        /// Path of the cluster member's ThinGate.ini (default: beside this program).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Read the admin console's password from standard input (one line) and
    /// print the `AdminPassword` line for ThinGate.ini (an Argon2 hash).
    AdminPassword,
    /// Tell whether the background gateway runs.
    Status {
        /// Path of ThinGate.ini (default: ThinGate.ini beside this program).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pid file (default: thingate.pid next to the config).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterOp {
    /// Add every machine of a single-host database to the cluster; machines
    /// and computer IDs the cluster already has are left as they are.
    Import {
        /// The MachineDatabase.config to read.
        #[arg(long)]
        database: PathBuf,
    },
    /// Write every machine of the cluster to a database file (atomically, the
    /// previous file kept as a backup).
    Export {
        /// The MachineDatabase.config to write.
        #[arg(long)]
        database: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(cmd) = cli.cmd else {
        print!("{}", banner());
        return ExitCode::SUCCESS;
    };
    let config = |given: Option<PathBuf>| given.map_or_else(daemon::config_beside_exe, Ok);
    match cmd {
        Cmd::Run { config: c, pid_file } => match config(c) {
            Ok(c) => run(c, pid_file),
            Err(e) => fail(e),
        },
        Cmd::Start { config: c, pid_file } => match config(c).and_then(|c| {
            let files = DaemonFiles::for_config(&c, pid_file);
            daemon::start(&c, &files)
        }) {
            Ok(line) => {
                println!("{line}");
                println!("The ThinGate service has been started.");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Cmd::Stop { config: c, pid_file } => {
            match config(c).and_then(|c| daemon::stop(&DaemonFiles::for_config(&c, pid_file))) {
                Ok(_) => {
                    println!("ThinGate service has been stopped.");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Doctor { config: c } => {
            let given = c.is_some();
            let gate = match config(c) {
                Ok(p) if given || p.exists() => match thingate::config::GateConfig::load(&p) {
                    Ok(g) => Some(g),
                    Err(e) => return fail(e),
                },
                Ok(_) => None,
                Err(e) if given => return fail(e),
                Err(_) => None,
            };
            let (text, bad) = thingate::doctor::report(&thingate::doctor::check());
            print!("{text}");
            let keepalive_ms = gate.as_ref().map_or(10_000, |g| g.tunnel_keepalive.as_millis() as u64);
            let host = thingate::doctor::sizing::this_host(keepalive_ms);
            let sizing = thingate::doctor::sizing::size(host);
            print!("{}", thingate::doctor::sizing::report(host, &sizing, gate.map(|g| g.max_sessions as u64)));
            if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Cluster { op, config: c } => match config(c) {
            Ok(c) => cluster(&c, op),
            Err(e) => fail(e),
        },
        Cmd::AdminPassword => admin_password(),
        Cmd::Status { config: c, pid_file } => match config(c) {
            Ok(c) => status(&c, pid_file),
            Err(e) => fail(e),
        },
    }
}

/// What `thingate` alone prints: name, version and usage, like the original's
/// `thingate` without arguments.
fn banner() -> String {
    let ini = daemon::config_beside_exe().map_or_else(|e| e.to_string(), |p| p.display().to_string());
    format!(
        "ThinGate service program, version {version}\n\
         Thin Telework relay gateway: TLS on one port, registration of office PCs, relay\n\
         \n\
         thingate command usage:\n\
         \n\
         thingate start  - Start the ThinGate service.\n\
         thingate stop   - Stop the ThinGate service if the service has been already started.\n\
         thingate status - Tell whether the ThinGate service runs, with its live figures.\n\
         thingate run    - Run in the foreground (for systemd and containers).\n\
         thingate doctor - Compare this host with the recommended settings; how many office PCs it holds.\n\
         thingate cluster import|export --database FILE - Move machines into or out of the cluster's etcd.\n\
         thingate admin-password - Hash the admin console's password (read from standard input) for ThinGate.ini.\n\
         \n\
         Settings: {ini}\n\
         (ThinGate.ini beside this program; another with --config FILE). Details: thingate --help\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Exit codes of `status`, as LSB init scripts use them: 0 running, 1 running
/// but the figures are unreadable, 3 not running.
fn status(config: &Path, pid_file: Option<PathBuf>) -> ExitCode {
    use thingate::status;
    let cfg = match thingate::config::GateConfig::load(config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let files = DaemonFiles::for_config(config, pid_file);
    let pid = daemon::running_pid(&files);
    let listen = pid
        .and_then(|_| status::listening_line(&files.stdout))
        .unwrap_or(std::net::SocketAddr::new(cfg.listen_address, cfg.listen_port));
    let target = status::local_target(listen);
    let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    match rt.block_on(status::fetch_metrics(&cfg, target)) {
        Ok(text) => {
            println!("ThinGate is running{who}, listening on {listen}");
            print!("{}", status::summary(&status::parse(&text)));
            cluster_status(&rt, &cfg);
            ExitCode::SUCCESS
        }
        Err(status::StatusError::Connect { .. }) if pid.is_none() => {
            println!("ThinGate is not running (nothing answers on {target})");
            ExitCode::from(3)
        }
        Err(e) => {
            println!("ThinGate is running{who}, listening on {listen}, but its figures cannot be read: {e}");
            ExitCode::from(1)
        }
    }
}

/// The cluster lines of `status` for a member (`StandaloneMode 0`), read from
/// etcd with the member's own `ClusterEtcd*` settings: the members, office
/// PCs online per member, and etcd's health per endpoint. When etcd does not
/// answer (each call within `ClusterEtcdTimeout`), says so; the exit code
/// stays the gateway's.
fn cluster_status(rt: &tokio::runtime::Runtime, cfg: &thingate::config::GateConfig) {
    use thingate::registry::cluster_view;
    let Some(s) = &cfg.cluster else { return };
    println!("Cluster {}, this member {}", s.name, s.public_url);
    let (view, health) = rt.block_on(async { tokio::join!(cluster_view::read_with(s), cluster_view::health(s)) });
    match view {
        Ok(v) => print!("{}", cluster_view::summary(&v)),
        Err(e) => println!("  {:<24}unavailable: {e}", "cluster view"),
    }
    print!("{}", cluster_view::health_summary(&health));
}

/// `thingate cluster import|export`.
fn cluster(config: &Path, op: ClusterOp) -> ExitCode {
    use thingate::machine_db::MachineDb;
    use thingate::registry::{etcd_transfer, EtcdLink};
    let cfg = match thingate::config::GateConfig::load(config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let Some(settings) = cfg.cluster else {
        return fail(format!(
            "{}: StandaloneMode is 1; thingate cluster works with a cluster member's ThinGate.ini \
             (StandaloneMode 0 and the Cluster* keys, docs/cluster.md)",
            config.display()
        ));
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    rt.block_on(async move {
        let link = match EtcdLink::connect(&settings).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        match op {
            ClusterOp::Import { database } => {
                if !database.is_file() {
                    return fail(format!(
                        "{}: no such file; name a MachineDatabase.config with --database",
                        database.display()
                    ));
                }
                let db = match MachineDb::open(&database) {
                    Ok(db) => db,
                    Err(e) => return fail(e),
                };
                match etcd_transfer::import(&link, &db).await {
                    Ok(r) => {
                        println!(
                            "imported {} machines into cluster {}; {} were there already; {} left out",
                            r.imported,
                            settings.name,
                            r.already,
                            r.conflicts.len()
                        );
                        for c in &r.conflicts {
                            println!("left out: {c}");
                        }
                        if r.conflicts.is_empty() {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        }
                    }
                    Err(e) => fail(e),
                }
            }
            ClusterOp::Export { database } => {
                let db = match etcd_transfer::export(&link, MachineDb::in_memory(&database)).await {
                    Ok(db) => db,
                    Err(e) => return fail(e),
                };
                // The file is the whole truth: a journal left beside it by an
                // earlier gateway would be applied over it when opened.
                let saved = db.save().and_then(|()| {
                    thingate::machine_db::journal::Journal::new(&db).clear().map_err(|source| {
                        thingate::machine_db::DbError::Save {
                            path: thingate::machine_db::journal::path_of(&database),
                            source,
                        }
                    })
                });
                match saved {
                    Ok(()) => {
                        println!(
                            "exported {} machines of cluster {} to {}",
                            db.len(),
                            settings.name,
                            database.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        }
    })
}

/// `thingate admin-password`: the hash line for ThinGate.ini; the password
/// itself is never printed.
fn admin_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        return fail(format!("cannot read the password from standard input: {e}"));
    }
    let password = line.trim_end_matches(['\r', '\n']);
    match thingate::admin::password::hash(password) {
        Ok(h) => {
            println!("AdminPassword {h}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("thingate: error: {e}");
    ExitCode::from(2)
}

fn run(config: PathBuf, pid_file: Option<PathBuf>) -> ExitCode {
    let cfg = match thingate::config::GateConfig::load(&config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let _logs = match thingate::logging::init(&cfg) {
        Ok(g) => g,
        Err(e) => return fail(format!("cannot open the logs: {e}")),
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    rt.block_on(async move {
        // Handlers first: a SIGTERM right after "listening" (or after the pid
        // file names this process) must stop the gateway gracefully, with its
        // database saved, not kill it.
        let signals = Signals::install();
        let gw = match Gateway::open_at(cfg, &config).await {
            Ok(gw) => gw,
            Err(e) => return fail(e),
        };
        let running = match gw.start().await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        println!("listening on {}", running.addr);
        let _ = std::io::stdout().flush();
        if let Some(p) = &pid_file {
            if let Err(e) = daemon::write_pid(p) {
                return fail(format!("{}: {e}", p.display()));
            }
        }
        signals.wait(&running).await;
        running.shutdown().await;
        if let Some(p) = &pid_file {
            let _ = std::fs::remove_file(p);
        }
        ExitCode::SUCCESS
    })
}

/// The signals that stop the gateway (TERM, INT) or reload its certificate and policy (HUP).
struct Signals {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let streams =
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
                (Ok(t), Ok(i), Ok(h)) => Some((t, i, h)),
                _ => None,
            };
        Self { streams }
    }

    async fn wait(self, running: &thingate::RunningGateway) {
        let Some((mut term, mut int, mut hup)) = self.streams else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => {
                    match running.gateway.reload_tls() {
                        Ok(()) => tracing::info!("SIGHUP: certificate and key reloaded"),
                        Err(e) => tracing::error!("SIGHUP: new certificate refused, the old one stays in use: {e}"),
                    }
                    // And the policy file, at once (it is also polled).
                    running.gateway.policy.report(running.gateway.policy.reload());
                }
            }
        }
    }
}
