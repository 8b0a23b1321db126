//! Logs of a running gateway: stderr always; with `SaveLog 1` daily-rotated
//! files under `gate_log/` next to `ThinGate.ini`; with `SysLogHostname` each
//! line also goes to syslog over UDP (RFC 3164 framing). Secrets never reach a
//! log: they are `Secret`s whose `Debug` prints `MASKED`, and no code path
//! formats a password, OTP or key.

use std::net::UdpSocket;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::GateConfig;

/// Keeps the file writer flushing; hold it until exit.
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Sends every written line to syslog as one datagram.
#[derive(Clone)]
struct Syslog {
    sock: Arc<UdpSocket>,
}

impl std::io::Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // <134> = facility local0, severity informational.
        let line = String::from_utf8_lossy(buf);
        let msg = format!("<134>thingate[{}]: {}", std::process::id(), line.trim_end());
        let _ = self.sock.send(msg.as_bytes());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Syslog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

/// Installs the log outputs the configuration asks for.
pub fn init(cfg: &GateConfig) -> std::io::Result<LogGuard> {
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter());
    let mut guard = None;
    let file = if cfg.save_log {
        let dir = cfg.dir.join("gate_log");
        std::fs::create_dir_all(&dir)?;
        let appender = tracing_appender::rolling::daily(&dir, "thingate.log");
        let (writer, g) = tracing_appender::non_blocking(appender);
        guard = Some(g);
        Some(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer).with_filter(filter()))
    } else {
        None
    };
    let syslog = match &cfg.syslog_hostname {
        Some(host) => {
            let sock = UdpSocket::bind(if host.contains(':') { "[::]:0" } else { "0.0.0.0:0" })?;
            sock.connect((host.as_str(), cfg.syslog_port))?;
            let w = Syslog { sock: Arc::new(sock) };
            Some(tracing_subscriber::fmt::layer().with_ansi(false).without_time().with_writer(w).with_filter(filter()))
        }
        None => None,
    };
    let _ = tracing_subscriber::registry().with(stderr).with(file).with(syslog).try_init();
    Ok(LogGuard(guard))
}
