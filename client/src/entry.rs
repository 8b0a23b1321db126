//! Choosing the entry point (`--entry-point FILE` or the one compiled in) and
//! the proxy, and reading secrets from standard input.

use std::path::Path;

use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;

/// Loads `path`, or the compiled-in entry point when `None`.
pub fn load(path: Option<&Path>) -> anyhow::Result<EntryPoint> {
    match path {
        Some(p) => Ok(EntryPoint::load(p)?),
        None => match crate::brand::ENTRY_POINT {
            Some(text) => Ok(EntryPoint::parse(text, "compiled-in EntryPoint.dat")?),
            None => anyhow::bail!(
                "this build has no entry point compiled in; pass --entry-point EntryPoint.dat (builds made by `builder build` carry one)"
            ),
        },
    }
}

/// Builds the gateway link, with the proxy from the option, saved setting,
/// environment or system.
pub fn link(path: Option<&Path>, proxy_opt: Option<&str>, saved_proxy: Option<&str>) -> anyhow::Result<crate::link::Link> {
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
