//! `ThinGatePolicy.ini`: the company's rules, beside `ThinGate.ini`, which the
//! gateway sends to every office PC over its control session
//! ([`thin_protocol::policy::Policy`]), and the Wake-on-LAN groups.
//!
//! One `KEY value` a line in the original's key names; `#`, `//` and `;`
//! begin comments; a UTF-8 BOM is ignored. Parsing is strict: an unknown key,
//! a key set twice or a bad value refuses the whole file with
//! `FILE:LINE: KEY: problem; fix` (a typo in a rule must not quietly loosen
//! it). No file means no policy. [`PolicyHolder`] keeps the rules in force
//! and re-reads the file when it changes (polled) or on `SIGHUP`; a bad new
//! file is refused and the rules in force stay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_protocol::inspection::MAX_UPDATE_DAYS;
use thin_protocol::policy::{Policy, MAX_SERVER_MESSAGE};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The file name, looked for beside `ThinGate.ini`.
pub const POLICY_NAME: &str = "ThinGatePolicy.ini";

/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 256 * 1024;

/// Most computers in all wake groups together.
pub const MAX_WAKE_MEMBERS: usize = 65_536;

/// How often the file is checked for changes.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Why `ThinGatePolicy.ini` was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}; check its permissions, or remove it to run without a policy", path.display())]
    Read {
        /// The policy file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("{}: larger than {MAX_POLICY_BYTES} bytes; a policy is a few lines", path.display())]
    TooLarge {
        /// The policy file.
        path: PathBuf,
    },
    /// A line is wrong: `PATH:LINE: KEY: what is wrong; fix`.
    #[error("{}:{line}: {msg}", path.display())]
    Line {
        /// The policy file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// `KEY: what is wrong; fix`.
        msg: String,
    },
}

/// A wake group: office PCs that may wake one another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeGroup {
    /// The group's name, for messages.
    pub name: String,
    /// Computer IDs, lower case.
    pub members: Vec<String>,
}

/// Everything `ThinGatePolicy.ini` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatePolicy {
    /// The rules sent to office PCs.
    pub rules: Policy,
    /// `WOL_GROUP name pcid1,pcid2,...` lines.
    pub wake_groups: Vec<WakeGroup>,
}

impl GatePolicy {
    /// Reads `path`; no file is the empty policy.
    pub fn load(path: &Path) -> Result<GatePolicy, PolicyError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GatePolicy::default()),
            Err(source) => return Err(PolicyError::Read { path: path.to_owned(), source }),
            Ok(m) if m.len() > MAX_POLICY_BYTES => return Err(PolicyError::TooLarge { path: path.to_owned() }),
            Ok(_) => {}
        }
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Checks `text`; `path` names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<GatePolicy, PolicyError> {
        let bad = |line: usize, key: &str, msg: String| PolicyError::Line {
            path: path.to_owned(),
            line,
            msg: format!("{key}: {msg}"),
        };
        let mut p = GatePolicy::default();
        let mut seen: HashMap<&'static str, usize> = HashMap::new();
        let mut group_of: HashMap<String, (String, usize)> = HashMap::new();
        for (i, line) in text.strip_prefix('\u{feff}').unwrap_or(text).lines().enumerate() {
            let (n, line) = (i + 1, line.trim());
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") || line.starts_with(';') {
                continue;
            }
            let end = line.find(char::is_whitespace).unwrap_or(line.len());
            let (name, value) = (&line[..end], line[end..].trim());
            let Some(key) = KEYS.iter().copied().find(|k| k.eq_ignore_ascii_case(name)) else {
                let shown: String = name.chars().take(40).collect();
                return Err(bad(n, &shown, format!("unknown key; the keys are {}", KEYS.join(", "))));
            };
            if key != "WOL_GROUP" {
                if let Some(first) = seen.insert(key, n) {
                    return Err(bad(
                        n,
                        key,
                        format!("set again (first on line {first}); keep only one of the two lines"),
                    ));
                }
            }
            let flag = || match value {
                "1" => Ok(true),
                "0" => Ok(false),
                v => Err(bad(n, key, format!("{v:?} is not 0 or 1; write \"{key} 1\" to enforce it"))),
            };
            let r = &mut p.rules;
            match key {
                "ENFORCE_OTP" => r.enforce_otp = flag()?,
                "ENFORCE_MACCHECK" => r.enforce_maccheck = flag()?,
                "ENFORCE_INSPECTION" => r.enforce_inspection = flag()?,
                "DISABLE_SHARE" => r.disable_share = flag()?,
                "INSPECTION_ALLOW_OTHER_OS" => r.inspection_allow_other_os = flag()?,
                "INSPECTION_UPDATE_DAYS" => {
                    r.inspection_update_days = match value.parse::<u32>() {
                        Ok(d) if d <= MAX_UPDATE_DAYS => Some(d),
                        _ => {
                            return Err(bad(
                                n,
                                key,
                                format!(
                                    "{value:?} is not a number of days; write e.g. \"{key} 30\" \
                                     (at most {MAX_UPDATE_DAYS}; 0: updates not checked)"
                                ),
                            ))
                        }
                    }
                }
                "IDLE_TIMEOUT" => r.idle_timeout_s = idle(value).map_err(|m| bad(n, key, m))?,
                "REQUIRE_MINIMUM_CLIENT_BUILD" => {
                    r.min_client_build = match value.parse::<u32>() {
                        Ok(0) => None,
                        Ok(b) => Some(b),
                        Err(_) => {
                            return Err(bad(
                                n,
                                key,
                                format!("{value:?} is not a build number; write e.g. \"{key} 120\" (0: no minimum)"),
                            ))
                        }
                    }
                }
                "SERVER_MESSAGE" => {
                    if value.chars().count() > MAX_SERVER_MESSAGE {
                        return Err(bad(n, key, format!("longer than {MAX_SERVER_MESSAGE} characters; shorten it")));
                    }
                    if value.chars().any(char::is_control) {
                        return Err(bad(n, key, "holds control characters; write plain text on one line".into()));
                    }
                    r.server_message = Some(value.to_string()).filter(|v| !v.is_empty());
                }
                "WOL_GROUP" => {
                    let g = wake_group(value).map_err(|m| bad(n, key, m))?;
                    for m in &g.members {
                        if let Some((other, line)) = group_of.insert(m.clone(), (g.name.clone(), n)) {
                            return Err(bad(
                                n,
                                key,
                                format!(
                                    "{m} is already in group {other} (line {line}); a computer belongs to one wake group"
                                ),
                            ));
                        }
                    }
                    if group_of.len() > MAX_WAKE_MEMBERS {
                        return Err(bad(n, key, format!("more than {MAX_WAKE_MEMBERS} computers in wake groups")));
                    }
                    p.wake_groups.push(g);
                }
                _ => unreachable!("every key of KEYS is handled"),
            }
        }
        Ok(p)
    }

    /// The wake group both computers are in, if any.
    pub fn shared_wake_group(&self, a: &str, b: &str) -> Option<&WakeGroup> {
        self.wake_groups.iter().find(|g| g.members.iter().any(|m| m == a) && g.members.iter().any(|m| m == b))
    }

    /// What the admin should know about the rules as written.
    pub fn findings(&self, path: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let r = &self.rules;
        if !r.enforce_inspection && (r.inspection_update_days.is_some() || r.inspection_allow_other_os) {
            out.push(format!(
                "{}: INSPECTION_UPDATE_DAYS and INSPECTION_ALLOW_OTHER_OS apply only with ENFORCE_INSPECTION 1; \
                 no home PC is inspected now",
                path.display()
            ));
        }
        if self.rules.disable_share {
            out.push(format!(
                "{}: DISABLE_SHARE is applied by Windows office PCs (the Remote Desktop host's redirection \
                 policy); on other office PCs, turn off drive and clipboard redirection in their RDP host's settings",
                path.display()
            ));
        }
        out
    }
}

/// The keys of the file.
const KEYS: [&str; 10] = [
    "ENFORCE_OTP",
    "ENFORCE_MACCHECK",
    "ENFORCE_INSPECTION",
    "INSPECTION_UPDATE_DAYS",
    "INSPECTION_ALLOW_OTHER_OS",
    "IDLE_TIMEOUT",
    "REQUIRE_MINIMUM_CLIENT_BUILD",
    "SERVER_MESSAGE",
    "DISABLE_SHARE",
    "WOL_GROUP",
];

/// `IDLE_TIMEOUT`: minutes as the original (`30`), or seconds with `s` (`90s`); 0 is none.
fn idle(v: &str) -> Result<Option<u64>, String> {
    let (num, unit) = match v.strip_suffix('s') {
        Some(n) => (n, 1),
        None => (v.strip_suffix('m').unwrap_or(v), 60),
    };
    match num.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(x) if x * unit <= 7 * 86_400 => Ok(Some(x * unit)),
        _ => Err(format!(
            "{v:?} is not a time; write minutes (\"IDLE_TIMEOUT 30\") or seconds (\"IDLE_TIMEOUT 90s\"), at most a week, 0 for none"
        )),
    }
}

/// `WOL_GROUP name pcid1,pcid2,...`.
fn wake_group(v: &str) -> Result<WakeGroup, String> {
    let usage = "write \"WOL_GROUP name pcid1,pcid2,...\" (a name, then two or more computer IDs separated by commas)";
    let end = v.find(char::is_whitespace).unwrap_or(v.len());
    let (name, list) = (&v[..end], v[end..].trim());
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("{name:?} is not a group name (letters, digits, - and _); {usage}"));
    }
    let mut members = Vec::new();
    for id in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        let pcid = thin_protocol::pcid::normalize(id).map_err(|e| format!("{e}; {usage}"))?;
        if !members.contains(&pcid) {
            members.push(pcid);
        }
    }
    if members.len() < 2 {
        return Err(format!("group {name} has fewer than two computers; {usage}"));
    }
    Ok(WakeGroup { name: name.to_string(), members })
}

/// The policy in force, and its file.
#[derive(Debug)]
pub struct PolicyHolder {
    path: PathBuf,
    tx: watch::Sender<Arc<GatePolicy>>,
    /// The bytes last read (to see a change without trusting times).
    last: Mutex<Option<Vec<u8>>>,
}

impl PolicyHolder {
    /// Loads `ThinGatePolicy.ini` beside `ini`; a bad file stops the start.
    pub fn load_beside(ini: &Path) -> Result<Arc<PolicyHolder>, PolicyError> {
        let dir = ini.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let path = dir.join(POLICY_NAME);
        let policy = GatePolicy::load(&path)?;
        for f in policy.findings(&path) {
            warn!("{f}");
        }
        if !policy.rules.is_empty() || !policy.wake_groups.is_empty() {
            info!(file = %path.display(), "policy in force");
        }
        let last = std::fs::read(&path).ok();
        Ok(Arc::new(PolicyHolder { path, tx: watch::channel(Arc::new(policy)).0, last: Mutex::new(last) }))
    }

    /// No policy (a gateway built without a file).
    pub fn none() -> Arc<PolicyHolder> {
        let path = PathBuf::from(POLICY_NAME);
        Arc::new(PolicyHolder { path, tx: watch::channel(Arc::default()).0, last: Mutex::new(None) })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<GatePolicy> {
        self.tx.borrow().clone()
    }

    /// Follows changes of the policy in force.
    pub fn subscribe(&self) -> watch::Receiver<Arc<GatePolicy>> {
        self.tx.subscribe()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file; a bad file is refused and the rules in force stay.
    /// Returns whether the rules changed.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let bytes = std::fs::read(&self.path).ok();
        *self.last.lock().expect("policy lock") = bytes;
        let new = GatePolicy::load(&self.path)?;
        for f in new.findings(&self.path) {
            warn!("{f}");
        }
        Ok(self.tx.send_if_modified(|cur| {
            if **cur == new {
                return false;
            }
            *cur = Arc::new(new);
            true
        }))
    }

    /// Reloads when the file's bytes differ from those last read.
    fn reload_if_changed(&self) {
        let now = std::fs::read(&self.path).ok();
        if *self.last.lock().expect("policy lock") == now {
            return;
        }
        self.report(self.reload());
    }

    /// Logs the outcome of a reload.
    pub fn report(&self, r: Result<bool, PolicyError>) {
        match r {
            Ok(true) => info!(file = %self.path.display(), "policy changed; sent to the office PCs online"),
            Ok(false) => {}
            Err(e) => error!("new policy refused, the rules in force stay: {e}"),
        }
    }

    /// Checks the file for changes every [`POLL_EVERY`] until `shutdown`.
    pub async fn watch_file(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatePolicy, String> {
        GatePolicy::parse(text, Path::new("/x/ThinGatePolicy.ini")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_in_the_originals_names() {
        let p = parse(
            "\u{feff}# rules\nENFORCE_OTP 1\n; c\nenforce_maccheck 0\nENFORCE_INSPECTION 0\nIDLE_TIMEOUT 30\n\
             REQUIRE_MINIMUM_CLIENT_BUILD 120\nSERVER_MESSAGE Hello,  staff!\nDISABLE_SHARE 1\n\
             WOL_GROUP floor1 Desk-01, desk-02,desk-03\n// end\n",
        )
        .unwrap();
        let r = &p.rules;
        assert!(r.enforce_otp && !r.enforce_maccheck && !r.enforce_inspection && r.disable_share);
        assert_eq!((r.idle_timeout_s, r.min_client_build), (Some(1800), Some(120)));
        assert_eq!(r.server_message.as_deref(), Some("Hello,  staff!"));
        assert_eq!(p.wake_groups[0].members, ["desk-01", "desk-02", "desk-03"]);
        assert_eq!(p.shared_wake_group("desk-03", "desk-01").map(|g| &*g.name), Some("floor1"));
        assert!(p.shared_wake_group("desk-03", "desk-04").is_none());
        assert_eq!(parse("IDLE_TIMEOUT 90s").unwrap().rules.idle_timeout_s, Some(90));
        assert_eq!(parse("IDLE_TIMEOUT 0\nREQUIRE_MINIMUM_CLIENT_BUILD 0").unwrap(), GatePolicy::default());
        assert!(parse("").unwrap().rules.is_empty());
    }

    #[test]
    fn inspection_keys_make_the_rule() {
        use thin_protocol::inspection::{Rule, DEFAULT_UPDATE_DAYS};
        let rule = |text: &str| Rule::from_policy(&parse(text).unwrap().rules);
        assert_eq!(rule("ENFORCE_INSPECTION 0"), None);
        let default = rule("ENFORCE_INSPECTION 1").unwrap();
        assert_eq!(default, Rule { update_days: Some(DEFAULT_UPDATE_DAYS), allow_other_os: false });
        let set = rule("ENFORCE_INSPECTION 1\ninspection_update_days 14\nINSPECTION_ALLOW_OTHER_OS 1").unwrap();
        assert_eq!(set, Rule { update_days: Some(14), allow_other_os: true });
        assert_eq!(rule("ENFORCE_INSPECTION 1\nINSPECTION_UPDATE_DAYS 0").unwrap().update_days, None);
        let p = Path::new("/x/ThinGatePolicy.ini");
        let alone = parse("INSPECTION_UPDATE_DAYS 14").unwrap();
        assert!(alone.findings(p).iter().any(|f| f.contains("apply only with ENFORCE_INSPECTION 1")));
        assert!(!parse("ENFORCE_INSPECTION 1\nINSPECTION_UPDATE_DAYS 14")
            .unwrap()
            .findings(p)
            .iter()
            .any(|f| f.contains("apply only with")));
    }

    #[test]
    fn bad_lines_name_file_line_key_and_fix() {
        let cases = [
            ("ENFORCE_OTP yes", "/x/ThinGatePolicy.ini:1: ENFORCE_OTP: \"yes\" is not 0 or 1; write \"ENFORCE_OTP 1\""),
            ("\nENFORCE_OPT 1", "/x/ThinGatePolicy.ini:2: ENFORCE_OPT: unknown key; the keys are ENFORCE_OTP"),
            ("IDLE_TIMEOUT 1\nIDLE_TIMEOUT 2", ":2: IDLE_TIMEOUT: set again (first on line 1)"),
            ("IDLE_TIMEOUT soon", ":1: IDLE_TIMEOUT: \"soon\" is not a time; write minutes"),
            ("IDLE_TIMEOUT 20000", "at most a week"),
            ("REQUIRE_MINIMUM_CLIENT_BUILD -1", ":1: REQUIRE_MINIMUM_CLIENT_BUILD: \"-1\" is not a build number"),
            ("SERVER_MESSAGE a\u{7}b", "SERVER_MESSAGE: holds control characters"),
            (
                "INSPECTION_UPDATE_DAYS month",
                ":1: INSPECTION_UPDATE_DAYS: \"month\" is not a number of days; write e.g. \"INSPECTION_UPDATE_DAYS 30\"",
            ),
            ("INSPECTION_UPDATE_DAYS 3651", "INSPECTION_UPDATE_DAYS: \"3651\" is not a number of days"),
            ("INSPECTION_UPDATE_DAYS -1", "(at most 3650; 0: updates not checked)"),
            ("INSPECTION_ALLOW_OTHER_OS yes", ":1: INSPECTION_ALLOW_OTHER_OS: \"yes\" is not 0 or 1"),
            ("INSPECTION_UPDATE_DAYS 7\nINSPECTION_UPDATE_DAYS 8", ":2: INSPECTION_UPDATE_DAYS: set again (first on line 1)"),
            ("WOL_GROUP g desk-01", "fewer than two computers"),
            ("WOL_GROUP g desk-01,bad/id", "WOL_GROUP:"),
            ("WOL_GROUP a x1,x2\nWOL_GROUP b x2,x3", ":2: WOL_GROUP: x2 is already in group a (line 1)"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let long = format!("SERVER_MESSAGE {}", "x".repeat(MAX_SERVER_MESSAGE + 1));
        assert!(parse(&long).unwrap_err().contains("shorten it"));
    }

    #[test]
    fn a_bad_reload_keeps_the_rules_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("ThinGate.ini");
        let file = dir.path().join(POLICY_NAME);
        std::fs::write(&file, "ENFORCE_OTP 1\n").unwrap();
        let h = PolicyHolder::load_beside(&ini).unwrap();
        let rx = h.subscribe();
        assert!(h.current().rules.enforce_otp);
        std::fs::write(&file, "ENFORCE_OTP 2\n").unwrap();
        assert!(h.reload().unwrap_err().to_string().contains(":1: ENFORCE_OTP"));
        assert!(h.current().rules.enforce_otp && !rx.has_changed().unwrap());
        std::fs::write(&file, "ENFORCE_OTP 1\n# same rules\n").unwrap();
        assert!(!h.reload().unwrap(), "the same rules are no change");
        std::fs::remove_file(&file).unwrap();
        assert!(h.reload().unwrap());
        assert!(h.current().rules.is_empty() && rx.has_changed().unwrap());
    }
}
