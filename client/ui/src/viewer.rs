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

/// The command that starts the viewer for the office PC's built-in desktop
/// at `addr`: `THIN_VIEWER_BUILTIN`, else `xfreerdp` with the one-time user,
/// the password read from its standard input (never on a command line,
/// which other users of the PC can list) and the certificate pinned by its
/// SHA-256. Placeholders as [`command`], plus `{user}` and `{sha256}` (hex
/// pairs joined by colons, as FreeRDP prints and compares fingerprints).
pub fn builtin_command(addr: SocketAddr, template: Option<&str>, user: &str, sha256: &str) -> Vec<String> {
    let default = "xfreerdp /v:{addr} /u:{user} /from-stdin:force /cert:fingerprint:sha256:{sha256}";
    let env = std::env::var("THIN_VIEWER_BUILTIN").ok();
    let t = template.or(env.as_deref()).unwrap_or(default);
    let pairs: Vec<&str> = sha256.as_bytes().chunks(2).map(|p| std::str::from_utf8(p).unwrap_or_default()).collect();
    let fingerprint = pairs.join(":");
    command(addr, Some(t)).into_iter().map(|w| w.replace("{user}", user).replace("{sha256}", &fingerprint)).collect()
}

/// Starts the viewer of a built-in desktop ([`builtin_command`]) and writes
/// `password` and a newline to its standard input.
pub async fn launch_builtin(
    addr: SocketAddr,
    template: Option<&str>,
    user: &str,
    sha256: &str,
    password: &str,
) -> std::io::Result<tokio::process::Child> {
    use tokio::io::AsyncWriteExt;
    let argv = builtin_command(addr, template, user, sha256);
    let (prog, args) = argv.split_first().ok_or_else(|| std::io::Error::other("empty viewer command"))?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(false)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
    }
    Ok(child)
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

    #[test]
    fn builtin_viewer_pins_the_certificate_and_takes_no_password_argument() {
        let a: SocketAddr = "127.0.0.1:3459".parse().unwrap();
        let argv = builtin_command(a, None, "thin", "ab12cd");
        let line = argv.join(" ");
        assert!(line.contains("/v:127.0.0.1:3459") && line.contains("/u:thin"), "{line}");
        assert!(line.contains("/cert:fingerprint:sha256:ab:12:cd") && line.contains("/from-stdin"), "{line}");
        assert!(!line.contains("/p:"), "{line}");
    }
}
