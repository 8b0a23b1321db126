//! `ThinGate.ini` (`gateway/src/config.rs`), the gateway's settings.
//!
//! Checks: no panic; allocation bounded; every refusal names a line of the
//! file (1 to its number of lines) and the file's path; an accepted file keeps
//! the promises the gateway relies on (keep-alive below the timeout, limits of
//! at least 1, paths under the ini's folder unless absolute).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thingate::config::{ConfigError, GateConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = Budget::start(budget_for(data.len()));
    let path = Path::new("/etc/thingate/ThinGate.ini");
    let lines = text.strip_prefix('\u{feff}').unwrap_or(text).lines().count();
    match GateConfig::parse(text, path) {
        Ok(c) => {
            assert!(c.tunnel_keepalive < c.tunnel_timeout);
            assert!(c.max_sessions >= 1 && c.max_tunnels_per_session >= 1);
            assert!(c.max_unestablished >= 1 && c.max_connections_per_ip >= 1);
            assert!(c.smtp.hostname.is_none() || c.smtp.otp_from.is_some());
            assert_eq!(c.dir, Path::new("/etc/thingate"));
            assert!(c.server_cert.starts_with("/") && c.database_file.starts_with("/"));
            assert!(c.warnings.len() <= lines);
            assert!(c.smtp.password.is_none() || format!("{:?}", c.smtp).contains("password: Some(MASKED)"));
        }
        Err(ConfigError::Line { path: p, line, msg }) => {
            assert_eq!(p, path);
            assert!((1..=lines).contains(&line), "line {line} of a {lines}-line file: {msg}");
        }
        Err(e) => panic!("parse gave {e}"),
    }
    budget.check("thingate_ini");
});
