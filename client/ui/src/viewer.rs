//! Starting the remote-desktop viewer against the local port.

use std::net::SocketAddr;

/// The command that starts the viewer for `addr`: `mstsc /v:ADDR` on Windows;
/// elsewhere `THIN_VIEWER` (with `{addr}`, `{host}`, `{port}` placeholders) or
/// `xfreerdp /v:{addr}`.
pub fn command(addr: SocketAddr, template: Option<&str>) -> Vec<String> {
    let default = if cfg!(windows) { "mstsc.exe /v:{addr}" } else { "xfreerdp /v:{addr}" };
    let env = std::env::var("THIN_VIEWER").ok();
    let t = template.or(env.as_deref()).unwrap_or(default);
    t.split_whitespace()
        .map(|w| {
            w.replace("{addr}", &addr.to_string())
                .replace("{host}", &addr.ip().to_string())
                .replace("{port}", &addr.port().to_string())
        })
        .collect()
}

/// Starts the viewer; returns its child process.
pub fn launch(addr: SocketAddr, template: Option<&str>) -> std::io::Result<tokio::process::Child> {
    let argv = command(addr, template);
    let (prog, args) = argv.split_first().ok_or_else(|| std::io::Error::other("empty viewer command"))?;
    tokio::process::Command::new(prog).args(args).kill_on_drop(false).spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let a: SocketAddr = "127.0.0.1:3501".parse().unwrap();
        assert_eq!(command(a, Some("viewer --host {host} -p {port}")), ["viewer", "--host", "127.0.0.1", "-p", "3501"]);
        assert_eq!(command(a, Some("x /v:{addr}")), ["x", "/v:127.0.0.1:3501"]);
    }
}
