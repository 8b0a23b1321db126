//! Choosing the entry point (`--entry-point FILE` or the one compiled in) and
//! the proxy, and reading secrets from standard input.

use std::path::Path;

use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;

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
