//! Choosing the entry point (`--entry-point FILE` or the one compiled in) and
//! the proxy, and reading secrets from standard input.

use std::path::Path;

use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;
use zeroize::Zeroize;

/// Loads `path`, or the compiled-in entry point when `None`.
pub fn load(path: Option<&Path>) -> anyhow::Result<EntryPoint> {
    match path {
        Some(p) => Ok(EntryPoint::load(p)?),
        None => match crate::brand::get().entry_point {
            Some(text) => Ok(EntryPoint::parse(text, "compiled-in EntryPoint.dat")?),
            None => anyhow::bail!(
                "this build has no entry point compiled in; pass --entry-point EntryPoint.dat (builds made by `builder build` carry one)"
            ),
        },
    }
}

/// Builds the gateway link, with the proxy from the option, saved setting,
/// environment or system.
pub fn link(
    path: Option<&Path>,
    proxy_opt: Option<&str>,
    saved_proxy: Option<&str>,
) -> anyhow::Result<crate::link::Link> {
    let ep = load(path)?;
    let proxy = crate::proxy::resolve(proxy_opt, saved_proxy, &ep.url.host)?;
    Ok(crate::link::Link::new(ep, proxy)?)
}

/// Reads one line from standard input as a secret (trailing newline removed).
pub fn read_secret_line() -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(Secret::new(pw))
}

/// Asks for a one-time password on standard error and reads it from the next
/// line of standard input (after the password line). End of input cancels.
/// The read runs on a thread of its own, so that an abandoned prompt (the code
/// expired meanwhile) does not keep the app from exiting.
pub fn otp_from_stdin(req: crate::otp::OtpRequest) -> crate::otp::OtpAnswer {
    use std::io::Write;
    let notice = if req.retry {
        crate::strings::fmt("OTP_WRONG_TRIES", &[&req.tries_left])
    } else {
        crate::strings::fmt("OTP_SENT", &[&req.destination])
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{notice}\n{} ", crate::strings::text("OTP_PROMPT"));
    let _ = err.flush();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let code = match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim().to_string()).filter(|c| !c.is_empty()).map(Secret::new),
            _ => None,
        };
        line.zeroize();
        let _ = tx.send(code);
    });
    Box::pin(async move { rx.await.ok().flatten() })
}

/// Sets up logging to stderr (`RUST_LOG`, default `warn`).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Size at which a log file is set aside as `<name>.1` when the app starts.
pub const LOG_ROTATE_BYTES: u64 = 8 * 1024 * 1024;

/// Sets `path` aside as `<path>.1` (replacing an older one) when it has grown
/// to `limit` bytes, so that a service that runs for years keeps at most two
/// files' worth of log. Returns whether it did.
pub fn rotate_log(path: &Path, limit: u64) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() >= limit => {
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            std::fs::rename(path, old)?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets up logging appended to `path` (`RUST_LOG`, default `default`), set
/// aside first when it has grown to [`LOG_ROTATE_BYTES`]; falls back to
/// stderr when the file cannot be opened.
pub fn init_logging_to_file(default: &str, path: &Path) {
    let file = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| rotate_log(path, LOG_ROTATE_BYTES))
        .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(path));
    let Ok(file) = file else { return init_logging(default) };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// The command line of `C` as the user sees it: the brand's version line for
/// `--version`, and `--help` in the user's language.
pub fn command<C: clap::Parser>() -> clap::Command {
    let line = crate::strings::fmt("APP_VERSION_LINE", &[&env!("CARGO_PKG_VERSION")]);
    let cmd = <C as clap::CommandFactory>::command().version(line);
    crate::cli_help::localize(cmd, crate::strings::language()).0
}

/// Parses the command line of `C` (see [`command`]). A mistake is told in the
/// user's language (exit code 2).
pub fn parse<C: clap::Parser>() -> C {
    crate::console::attach_parent_console();
    let cmd = command::<C>();
    let app = cmd.get_name().to_string();
    let fail = |e: clap::Error| -> ! {
        match crate::cli_help::error_text(&e, &app, crate::strings::language()) {
            Some(text) => {
                eprintln!("{text}");
                std::process::exit(2)
            }
            None => e.exit(),
        }
    };
    let matches = cmd.try_get_matches().unwrap_or_else(|e| fail(e));
    <C as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| fail(e))
}

/// Runs `body` on a tokio runtime with logging set up; an error is printed as
/// `<name>: error: ...` and gives exit code 1.
pub fn block_on<Fut>(name: &str, log_default: &str, body: Fut) -> std::process::ExitCode
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging(log_default);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    exit_code(name, rt.block_on(body))
}

/// The exit code of a result, printing the error.
pub fn exit_code(name: &str, r: anyhow::Result<()>) -> std::process::ExitCode {
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", crate::strings::fmt("CLI_ERROR", &[&name, &format!("{e:#}")]));
            std::process::ExitCode::from(1)
        }
    }
}

/// Parses `C` and runs `body` with it (see [`parse`] and [`block_on`]).
pub fn main_with<C, F, Fut>(name: &str, log_default: &str, body: F) -> std::process::ExitCode
where
    C: clap::Parser,
    F: FnOnce(C) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let cli = parse::<C>();
    block_on(name, log_default, body(cli))
}

#[cfg(test)]
mod tests {
    use super::rotate_log;

    #[test]
    fn a_grown_log_is_set_aside_once_and_a_small_one_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("thinsvr.log");
        assert!(!rotate_log(&log, 10).unwrap(), "no log yet");
        std::fs::write(&log, b"0123456789").unwrap();
        std::fs::write(d.path().join("thinsvr.log.1"), b"older").unwrap();
        assert!(rotate_log(&log, 10).unwrap());
        assert!(!log.exists());
        assert_eq!(std::fs::read(d.path().join("thinsvr.log.1")).unwrap(), b"0123456789");
        std::fs::write(&log, b"short").unwrap();
        assert!(!rotate_log(&log, 10).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), b"short");
    }
}
