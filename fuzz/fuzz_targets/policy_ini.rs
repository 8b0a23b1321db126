//! `ThinGatePolicy.ini` (`gateway/src/policy.rs`), the company's rules.
//!
//! Checks: no panic; allocation bounded; every refusal names a line of the
//! file (1 to its number of lines) and the file's path; an accepted file keeps
//! the promises office PCs rely on (a message of at most 1,024 characters
//! without control characters, an idle limit of at most a week, no minimum
//! build 0, wake groups of two or more valid lower-case computer IDs, each in
//! one group only).
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thingate::policy::{GatePolicy, PolicyError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = Budget::start(budget_for(data.len()));
    let path = Path::new("/etc/thingate/ThinGatePolicy.ini");
    let lines = text.strip_prefix('\u{feff}').unwrap_or(text).lines().count();
    match GatePolicy::parse(text, path) {
        Ok(p) => {
            let r = &p.rules;
            if let Some(m) = &r.server_message {
                assert!(!m.is_empty() && m.chars().count() <= 1024 && !m.chars().any(char::is_control));
            }
            assert!(r.idle_timeout_s.is_none_or(|s| (1..=7 * 86_400).contains(&s)));
            assert_ne!(r.min_client_build, Some(0));
            let mut seen = HashSet::new();
            for g in &p.wake_groups {
                assert!(g.members.len() >= 2);
                for m in &g.members {
                    assert_eq!(thin_protocol::pcid::normalize(m).as_deref(), Ok(m.as_str()));
                    assert!(seen.insert(m.clone()), "{m} in two groups");
                }
            }
        }
        Err(PolicyError::Line { path: p, line, msg }) => {
            assert_eq!(p, path);
            assert!((1..=lines).contains(&line), "line {line} of a {lines}-line file: {msg}");
        }
        Err(e) => panic!("parse gave {e}"),
    }
    budget.check("policy_ini");
});
