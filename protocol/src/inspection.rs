//! The home PC's state that a company's inspection rule (`ENFORCE_INSPECTION`)
//! looks at: antivirus products and how recently updates were installed. The
//! home PC reads it (`thin_tunnel::inspection`) and reports it inside the
//! end-to-end channel ([`crate::device_check`]); the office PC judges it
//! ([`judge`] under the [`Rule`] made from the company's policy).
//!
//! What is judged:
//! - **Windows**: at least one antivirus registered with Windows Security
//!   Center must be on and have up-to-date signatures, and updates must have
//!   been installed within `INSPECTION_UPDATE_DAYS` days (30 unless set; 0:
//!   not checked).
//! - **Other systems** (Linux): there is no system-wide antivirus registry to
//!   ask, so nothing would show the PC protected. They are refused unless the
//!   admin sets `INSPECTION_ALLOW_OTHER_OS 1`; then antivirus is not required
//!   and only the update age is judged, as far as the home PC could read it
//!   (its package manager's last change).
//!
//! Whatever could not be read counts as "not shown to be fine": the rule fails
//! closed, and the message says what could not be read.

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Days allowed since updates were last installed, when the policy sets
/// `ENFORCE_INSPECTION 1` without `INSPECTION_UPDATE_DAYS`.
pub const DEFAULT_UPDATE_DAYS: u32 = 30;

/// Largest `INSPECTION_UPDATE_DAYS` (ten years).
pub const MAX_UPDATE_DAYS: u32 = 3650;

/// The home PC's kind of system, which decides what can be judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Windows: Security Center and the installed updates can be read.
    Windows,
    /// Linux: no antivirus registry; the package manager's last change.
    Linux,
    /// Anything else, or not reported.
    #[default]
    #[serde(other)]
    Other,
}

/// What the home PC could read of itself. Unknown values are `None`/empty, and
/// the judge treats "unknown" as "not shown to be fine".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeState {
    /// Operating system, as the user would name it (`Windows 10.0.19045`, `Debian GNU/Linux 12`).
    #[serde(default)]
    pub os: String,
    /// The kind of system.
    #[serde(default)]
    pub platform: Platform,
    /// Registered antivirus products.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub antivirus: Vec<Antivirus>,
    /// Why the antivirus products could not be read (then `antivirus` is
    /// empty for want of an answer, not because none is registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub antivirus_unread: Option<String>,
    /// Days since updates were last installed, when that can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_days: Option<u32>,
    /// Where `last_update_days` comes from (`Win32_QuickFixEngineering`,
    /// `/var/lib/dpkg/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_source: Option<String>,
    /// Why `last_update_days` could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_unread: Option<String>,
}

/// One antivirus product as the system reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Antivirus {
    /// Display name (`Windows Defender`).
    pub name: String,
    /// Real-time protection on.
    pub enabled: bool,
    /// Signatures up to date.
    pub up_to_date: bool,
    /// Security Center's raw `productState`, for support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_state: Option<u32>,
}

/// The inspection rule in force, from the company's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Most days since updates were last installed; `None`: not checked
    /// (`INSPECTION_UPDATE_DAYS 0`).
    pub update_days: Option<u32>,
    /// Home PCs other than Windows may connect, judged on their update age
    /// only (`INSPECTION_ALLOW_OTHER_OS 1`).
    pub allow_other_os: bool,
}

impl Rule {
    /// The rule of `policy`; `None` when `ENFORCE_INSPECTION` is off.
    pub fn from_policy(policy: &Policy) -> Option<Rule> {
        policy.enforce_inspection.then_some(Rule {
            update_days: match policy.inspection_update_days {
                None => Some(DEFAULT_UPDATE_DAYS),
                Some(0) => None,
                Some(d) => Some(d),
            },
            allow_other_os: policy.inspection_allow_other_os,
        })
    }
}

/// Judges `state` under `rule`: `Ok` when it passes, else a message for the
/// home PC's user naming everything to fix, one line each.
pub fn judge(rule: &Rule, state: &HomeState) -> Result<(), String> {
    let mut fix: Vec<String> = Vec::new();
    let os = if state.os.trim().is_empty() { "an unnamed system" } else { state.os.trim() };
    match state.platform {
        Platform::Windows => antivirus(state, &mut fix),
        _ if state.os.trim().is_empty() && state.platform == Platform::Other => {
            fix.push(
                "this home PC did not report its state (antivirus, updates): update ThinClient to the latest version"
                    .into(),
            );
            return Err(message(&fix));
        }
        _ if !rule.allow_other_os => {
            fix.push(format!(
                "this home PC runs {os}; the company's inspection accepts only Windows PCs, whose antivirus and \
                 updates it can check: connect from a Windows PC, or ask your IT admin"
            ));
            return Err(message(&fix));
        }
        _ => {}
    }
    if let Some(limit) = rule.update_days {
        let how = match state.platform {
            Platform::Windows => "open Settings > Windows Update and install the updates it offers",
            _ => "install the system's updates (e.g. sudo apt update && sudo apt upgrade)",
        };
        match state.last_update_days {
            Some(d) if d > limit => {
                fix.push(format!("updates have not been installed for {d} days (the limit is {limit} days): {how}"))
            }
            Some(_) => {}
            None => {
                let why = state.update_unread.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
                fix.push(format!(
                    "when updates were last installed could not be read{why}: {how}, then connect again; \
                     if this stays, ask your IT admin"
                ));
            }
        }
    }
    if fix.is_empty() {
        Ok(())
    } else {
        Err(message(&fix))
    }
}

/// The Windows antivirus part of [`judge`].
fn antivirus(state: &HomeState, fix: &mut Vec<String>) {
    if let Some(why) = &state.antivirus_unread {
        fix.push(format!(
            "the antivirus state could not be read ({why}): restart the PC and connect again; if this stays, \
             ask your IT admin"
        ));
        return;
    }
    let av = &state.antivirus;
    if av.is_empty() {
        fix.push(
            "no antivirus is registered with Windows Security: turn on Microsoft Defender Antivirus \
             (Windows Security > Virus & threat protection) or install an antivirus"
                .into(),
        );
        return;
    }
    if av.iter().any(|a| a.enabled && a.up_to_date) {
        return;
    }
    let names = |pick: &dyn Fn(&Antivirus) -> bool| {
        av.iter().filter(|a| pick(a)).map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    if av.iter().any(|a| a.enabled) {
        fix.push(format!(
            "the antivirus signatures are out of date ({}): update them (Windows Security > Virus & threat \
             protection > Protection updates)",
            names(&|a| a.enabled)
        ));
    } else {
        fix.push(format!(
            "the antivirus is off ({}): turn on real-time protection (Windows Security > Virus & threat protection)",
            names(&|_| true)
        ));
    }
}

fn message(fix: &[String]) -> String {
    let mut m = String::from("The company's inspection refused this home PC. To connect, fix this:");
    for f in fix {
        m.push_str("\n- ");
        m.push_str(f);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule::from_policy(&Policy { enforce_inspection: true, ..Policy::default() }).unwrap()
    }

    fn av(name: &str, enabled: bool, up_to_date: bool) -> Antivirus {
        Antivirus { name: name.into(), enabled, up_to_date, product_state: None }
    }

    fn windows(antivirus: Vec<Antivirus>, days: Option<u32>) -> HomeState {
        HomeState {
            os: "Microsoft Windows 11 Pro 10.0.22631".into(),
            platform: Platform::Windows,
            antivirus,
            last_update_days: days,
            update_source: days.map(|_| "Win32_QuickFixEngineering".into()),
            ..HomeState::default()
        }
    }

    fn linux(days: Option<u32>) -> HomeState {
        HomeState {
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            platform: Platform::Linux,
            last_update_days: days,
            ..HomeState::default()
        }
    }

    /// The message's lines after the heading.
    fn items(r: Result<(), String>) -> Vec<String> {
        let m = r.expect_err("refused");
        assert!(m.starts_with("The company's inspection refused this home PC"), "{m}");
        m.lines().skip(1).map(|l| l.strip_prefix("- ").expect("an item").to_string()).collect()
    }

    #[test]
    fn the_rule_follows_the_policy() {
        assert_eq!(Rule::from_policy(&Policy::default()), None, "no ENFORCE_INSPECTION, no rule");
        assert_eq!(rule(), Rule { update_days: Some(DEFAULT_UPDATE_DAYS), allow_other_os: false });
        let p = |days, other| Policy {
            enforce_inspection: true,
            inspection_update_days: days,
            inspection_allow_other_os: other,
            ..Policy::default()
        };
        assert_eq!(Rule::from_policy(&p(Some(7), true)), Some(Rule { update_days: Some(7), allow_other_os: true }));
        assert_eq!(Rule::from_policy(&p(Some(0), false)).unwrap().update_days, None, "0: updates not checked");
    }

    #[test]
    fn a_protected_and_updated_windows_pc_passes() {
        let s = windows(vec![av("Windows Defender", true, true)], Some(3));
        assert_eq!(judge(&rule(), &s), Ok(()));
        assert_eq!(judge(&rule(), &windows(vec![av("Windows Defender", true, true)], Some(30))), Ok(()), "30 is in");
        // One good product is enough, beside a switched-off one.
        let two = windows(vec![av("Windows Defender", false, false), av("Other AV", true, true)], Some(0));
        assert_eq!(judge(&rule(), &two), Ok(()));
        // Updates not checked: no update date needed.
        let r = Rule { update_days: None, ..rule() };
        assert_eq!(judge(&r, &windows(vec![av("Windows Defender", true, true)], None)), Ok(()));
    }

    #[test]
    fn no_antivirus_is_named() {
        let i = items(judge(&rule(), &windows(vec![], Some(1))));
        assert_eq!(i.len(), 1, "{i:?}");
        assert!(i[0].starts_with("no antivirus is registered with Windows Security"), "{i:?}");
    }

    #[test]
    fn an_antivirus_that_is_off_is_named() {
        let s = windows(vec![av("Windows Defender", false, true), av("Other AV", false, false)], Some(1));
        let i = items(judge(&rule(), &s));
        assert_eq!(i.len(), 1, "{i:?}");
        assert!(i[0].starts_with("the antivirus is off (Windows Defender, Other AV): turn on"), "{i:?}");
    }

    #[test]
    fn old_signatures_are_named() {
        let s = windows(vec![av("Windows Defender", true, false), av("Other AV", false, true)], Some(1));
        let i = items(judge(&rule(), &s));
        assert_eq!(i.len(), 1, "{i:?}");
        assert!(i[0].starts_with("the antivirus signatures are out of date (Windows Defender): update"), "{i:?}");
    }

    #[test]
    fn old_updates_are_named_with_the_days_and_the_limit() {
        let s = windows(vec![av("Windows Defender", true, true)], Some(31));
        let i = items(judge(&rule(), &s));
        assert_eq!(
            i,
            ["updates have not been installed for 31 days (the limit is 30 days): open Settings > Windows Update \
              and install the updates it offers"]
        );
        let r = Rule { update_days: Some(60), ..rule() };
        assert_eq!(judge(&r, &s), Ok(()), "the policy's limit counts");
    }

    #[test]
    fn every_failure_is_named_at_once() {
        let s = windows(vec![av("Windows Defender", false, false)], Some(400));
        let i = items(judge(&rule(), &s));
        assert_eq!(i.len(), 2, "{i:?}");
        assert!(i[0].starts_with("the antivirus is off") && i[1].contains("400 days"), "{i:?}");
    }

    #[test]
    fn what_could_not_be_read_is_refused_and_says_why() {
        let s = HomeState {
            antivirus_unread: Some("WMI did not answer within 20 s".into()),
            update_unread: Some("Win32_QuickFixEngineering lists no install date".into()),
            ..windows(vec![], None)
        };
        let i = items(judge(&rule(), &s));
        assert_eq!(i.len(), 2, "{i:?}");
        assert!(i[0].starts_with("the antivirus state could not be read (WMI did not answer within 20 s)"), "{i:?}");
        assert!(
            i[1].starts_with(
                "when updates were last installed could not be read (Win32_QuickFixEngineering lists no install date)"
            ),
            "{i:?}"
        );
    }

    #[test]
    fn other_systems_are_refused_unless_the_policy_allows_them() {
        let i = items(judge(&rule(), &linux(Some(1))));
        assert_eq!(i.len(), 1, "{i:?}");
        assert!(
            i[0].starts_with("this home PC runs Debian GNU/Linux 12 (bookworm); the company's inspection"),
            "{i:?}"
        );
        let open = Rule { allow_other_os: true, ..rule() };
        assert_eq!(judge(&open, &linux(Some(1))), Ok(()), "no antivirus asked of Linux");
        let i = items(judge(&open, &linux(Some(45))));
        assert!(i[0].starts_with("updates have not been installed for 45 days") && i[0].contains("apt"), "{i:?}");
        let i = items(judge(&open, &linux(None)));
        assert!(i[0].starts_with("when updates were last installed could not be read:"), "{i:?}");
        let open_no_updates = Rule { update_days: None, allow_other_os: true };
        assert_eq!(judge(&open_no_updates, &linux(None)), Ok(()));
    }

    #[test]
    fn a_missing_report_asks_for_a_newer_client() {
        for r in [rule(), Rule { update_days: None, allow_other_os: true }] {
            let i = items(judge(&r, &HomeState::default()));
            assert_eq!(i.len(), 1, "{i:?}");
            assert!(i[0].starts_with("this home PC did not report its state"), "{i:?}");
        }
    }

    #[test]
    fn states_read_back_and_old_reports_read_as_unknown() {
        let s = HomeState {
            antivirus_unread: None,
            ..windows(vec![Antivirus { product_state: Some(397_568), ..av("Windows Defender", true, true) }], Some(2))
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<HomeState>(&j).unwrap(), s);
        let old: HomeState = serde_json::from_str(r#"{"os":"Windows 10"}"#).unwrap();
        assert_eq!(old.platform, Platform::Other);
        let newer: HomeState = serde_json::from_str(r#"{"os":"x","platform":"freebsd"}"#).unwrap();
        assert_eq!(newer.platform, Platform::Other, "an unknown platform reads as other");
    }
}
