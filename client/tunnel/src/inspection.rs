//! Reads the home PC's state for the company's inspection rule
//! ([`thin_protocol::inspection`]), never inventing a value: what cannot be
//! read is reported as unread, with the reason.
//!
//! - **Windows** (`platform::wmi`): the antivirus products registered with
//!   Security Center (WMI `root\SecurityCenter2` `AntiVirusProduct`), on/off
//!   and signatures decoded from `productState`; the days since the latest
//!   update in `Win32_QuickFixEngineering` (`InstalledOn`: the Windows
//!   updates installed by the servicing stack, which every monthly cumulative
//!   update is; the Windows Update Agent's own history API is richer but is
//!   a much larger COM surface for the same date); the system's name from
//!   `Win32_OperatingSystem`. WMI can hang on a broken PC, so each query runs
//!   on a thread of its own and is given up after [`READ_LIMIT`].
//! - **Linux**: the system's name from `/etc/os-release` (`PRETTY_NAME`); no
//!   antivirus (there is no system-wide registry of one to ask); as the last
//!   update, the last change of the package manager's database (e.g.
//!   `/var/lib/dpkg/status`, rewritten by every install, upgrade or removal of
//!   a package: an upper bound on how fresh the updates are, not proof that
//!   every update was taken).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thin_protocol::inspection::{HomeState, Platform};

/// Longest wait for the system's answers (WMI on Windows).
pub const READ_LIMIT: Duration = Duration::from_secs(20);

/// The home PC's state (blocking; at most about [`READ_LIMIT`]).
pub fn read_home_state() -> HomeState {
    read_state(READ_LIMIT)
}

#[cfg(windows)]
fn read_state(limit: Duration) -> HomeState {
    use crate::platform::wmi;
    use thin_protocol::inspection::Antivirus;
    let deadline = std::time::Instant::now() + limit;
    let av = bounded(wmi::antivirus_products);
    let updates = bounded(wmi::update_install_dates);
    let os = bounded(wmi::os_name);
    let mut s = HomeState { platform: Platform::Windows, ..HomeState::default() };
    s.os = answer(os, deadline, limit).ok().filter(|n: &String| !n.is_empty()).unwrap_or_else(|| "Windows".into());
    match answer(av, deadline, limit) {
        Ok(list) => {
            s.antivirus = list
                .into_iter()
                .map(|(name, state)| {
                    let (enabled, up_to_date) = decode_product_state(state);
                    Antivirus { name, enabled, up_to_date, product_state: Some(state) }
                })
                .collect()
        }
        Err(e) => s.antivirus_unread = Some(e),
    }
    match answer(updates, deadline, limit) {
        Ok(dates) => match latest_days_ago(&dates, today()) {
            Some(d) => {
                s.last_update_days = Some(d);
                s.update_source = Some("Win32_QuickFixEngineering".into());
            }
            None => {
                let shown: Vec<&str> = dates.iter().map(String::as_str).take(3).collect();
                s.update_unread = Some(format!(
                    "Win32_QuickFixEngineering lists no install date that can be read ({} updates{})",
                    dates.len(),
                    if shown.is_empty() { String::new() } else { format!(", e.g. {shown:?}") }
                ));
            }
        },
        Err(e) => s.update_unread = Some(e),
    }
    s
}

/// The answer on `rx`, or "did not answer" once `deadline` has passed.
#[cfg_attr(not(windows), allow(dead_code))]
fn answer<T>(
    rx: std::sync::mpsc::Receiver<Result<T, String>>,
    deadline: std::time::Instant,
    limit: Duration,
) -> Result<T, String> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    rx.recv_timeout(left).unwrap_or_else(|_| Err(format!("WMI did not answer within {} s", limit.as_secs())))
}

/// Runs `f` on a thread of its own; the answer arrives on the channel. A
/// call that hangs leaves its thread behind (it cannot be stopped), and the
/// caller stops waiting.
#[cfg_attr(not(windows), allow(dead_code))]
fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> std::sync::mpsc::Receiver<Result<T, String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("inspection".into()).spawn(move || {
        let _ = tx.send(f());
    });
    if let Err(e) = spawned {
        let (tx, rx2) = std::sync::mpsc::channel();
        let _ = tx.send(Err(format!("cannot start a thread: {e}")));
        return rx2;
    }
    rx
}

#[cfg(not(windows))]
fn read_state(_limit: Duration) -> HomeState {
    let platform = if cfg!(target_os = "linux") { Platform::Linux } else { Platform::Other };
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| os_release_name(&t))
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let mut s = HomeState {
        os,
        platform,
        antivirus_unread: Some("not available on this system: it has no system-wide antivirus registry".into()),
        ..HomeState::default()
    };
    let found = PACKAGE_DATABASES.iter().find_map(|p| std::fs::metadata(p).ok().map(|m| (*p, m.modified())));
    match found {
        Some((path, Ok(modified))) => {
            let secs = modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            s.last_update_days = Some(today().saturating_sub(secs / 86_400) as u32);
            s.update_source = Some(format!("{path} (last change of the installed packages)"));
        }
        Some((path, Err(e))) => s.update_unread = Some(format!("{path}: {e}")),
        None => {
            s.update_unread =
                Some(format!("no package database of a known package manager ({})", PACKAGE_DATABASES.join(", ")))
        }
    }
    s
}

/// The package managers' databases, the first found counts: dpkg (Debian,
/// Ubuntu), rpm (Fedora, RHEL, SUSE; sqlite, then Berkeley DB), pacman
/// (Arch), apk (Alpine).
#[cfg(not(windows))]
const PACKAGE_DATABASES: [&str; 5] = [
    "/var/lib/dpkg/status",
    "/var/lib/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/var/lib/pacman/local",
    "/lib/apk/db/installed",
];

/// `PRETTY_NAME` (else `NAME`) of an `os-release` file.
#[cfg_attr(windows, allow(dead_code))]
fn os_release_name(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('=')).map(|v| {
            let v = v.trim();
            v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).replace("\\\"", "\"")
        })
    };
    value("PRETTY_NAME").or_else(|| value("NAME")).filter(|v| !v.is_empty())
}

/// Security Center's `productState` as (real-time protection on, signatures
/// up to date). Its three bytes, as publicly documented (Microsoft keeps
/// the layout internal): the product type, then the scanner state (`0x10`
/// bit set: on; `0x00`/`0x01`: off or snoozed), then the signature state
/// (`0x00`: up to date, `0x10`: out of date). E.g. `397568` = `0x061100`:
/// on, up to date; `393472` = `0x060100`: off; `397584` = `0x061110`: on,
/// out of date.
pub fn decode_product_state(state: u32) -> (bool, bool) {
    let scanner = (state >> 8) & 0xff;
    let signatures = state & 0xff;
    (scanner & 0x10 != 0, signatures == 0)
}

/// Days since the latest of `dates` (`InstalledOn` texts), counted from
/// `today` (days since 1970-01-01); a date in the future counts as today.
/// `None` when none can be read.
pub fn latest_days_ago(dates: &[String], today: u64) -> Option<u32> {
    let latest = dates.iter().filter_map(|d| installed_on_day(d)).max()?;
    Some(today.saturating_sub(latest).min(u32::MAX as u64) as u32)
}

/// Days since 1970-01-01 of an `InstalledOn` text, as Windows writes it:
/// `M/D/YYYY` (the usual form), `D/M/YYYY` when the first number cannot be a
/// month, `YYYYMMDD`, `YYYY-MM-DD`, or 16 hex digits of a FILETIME (older
/// systems).
pub fn installed_on_day(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let ticks = u64::from_str_radix(t, 16).ok()?;
        // 100 ns ticks since 1601-01-01; 1601 to 1970 is 134,774 days.
        return (ticks / 864_000_000_000).checked_sub(134_774);
    }
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        let n = |r: std::ops::Range<usize>| t[r].parse::<u32>().ok();
        return civil_day(n(0..4)?, n(4..6)?, n(6..8)?);
    }
    let parts: Vec<u32> = t.split(['/', '-', '.']).map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    match parts[..] {
        [y, m, d] if y > 31 => civil_day(y, m, d),
        [a, b, y] if y > 31 && a > 12 => civil_day(y, b, a),
        [a, b, y] if y > 31 => civil_day(y, a, b),
        _ => None,
    }
}

/// Days since 1970-01-01 of a date of the Gregorian calendar (years 1970-9999).
fn civil_day(y: u32, m: u32, d: u32) -> Option<u64> {
    const DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > DAYS[m as usize - 1] {
        return None;
    }
    if m == 2 && d == 29 && !leap(y) {
        return None;
    }
    let before_year: u64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let before_month: u32 = (1..m).map(|k| if k == 2 && !leap(y) { 28 } else { DAYS[k as usize - 1] }).sum();
    Some(before_year + before_month as u64 + d as u64 - 1)
}

/// Today, in days since 1970-01-01 (UTC).
fn today() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_states_decode_as_publicly_documented() {
        assert_eq!(decode_product_state(397_568), (true, true), "0x061100: Defender on, up to date");
        assert_eq!(decode_product_state(266_240), (true, true), "0x041000: on, up to date");
        assert_eq!(decode_product_state(393_472), (false, true), "0x060100: off");
        assert_eq!(decode_product_state(262_144), (false, true), "0x040000: off");
        assert_eq!(decode_product_state(397_584), (true, false), "0x061110: on, out of date");
        assert_eq!(decode_product_state(393_488), (false, false), "0x060110: off, out of date");
    }

    #[test]
    fn install_dates_in_every_form_windows_writes() {
        let day = |y, m, d| civil_day(y, m, d).unwrap();
        assert_eq!(day(1970, 1, 1), 0);
        assert_eq!(day(2000, 3, 1), 11_017);
        assert_eq!(day(2024, 12, 31), 20_088);
        assert_eq!(installed_on_day("3/14/2024"), Some(day(2024, 3, 14)), "M/D/YYYY");
        assert_eq!(installed_on_day("2/3/2024"), Some(day(2024, 2, 3)), "ambiguous: month first, as WMI writes");
        assert_eq!(installed_on_day("22/2/2016"), Some(day(2016, 2, 22)), "D/M/YYYY when the first is no month");
        assert_eq!(installed_on_day("20240314"), Some(day(2024, 3, 14)));
        assert_eq!(installed_on_day("2024-03-14"), Some(day(2024, 3, 14)));
        // 2011-09-22 as a FILETIME in hex (as older systems report it).
        assert_eq!(installed_on_day("01cc79384cc4d800"), Some(day(2011, 9, 22)));
        for bad in ["", "soon", "13/13/2024", "2/30/2024", "2/29/2023", "1/1/24", "0/1/2024", "1/2/3/2024"] {
            assert_eq!(installed_on_day(bad), None, "{bad:?}");
        }
        assert_eq!(installed_on_day("2/29/2024"), Some(day(2024, 2, 29)), "leap day");
    }

    #[test]
    fn the_latest_update_counts_and_unreadable_dates_do_not() {
        let today = civil_day(2024, 4, 1).unwrap();
        let dates: Vec<String> = ["1/10/2024", "", "3/12/2024", "junk", "2/13/2024"].map(String::from).to_vec();
        assert_eq!(latest_days_ago(&dates, today), Some(20));
        assert_eq!(latest_days_ago(&["5/1/2024".to_string()], today), Some(0), "a future date counts as today");
        assert_eq!(latest_days_ago(&["junk".to_string()], today), None);
        assert_eq!(latest_days_ago(&[], today), None);
    }

    #[test]
    fn a_query_that_does_not_answer_by_the_deadline_is_reported_unread() {
        use std::time::Instant;
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let stuck = bounded(move || {
            let _ = hold.recv();
            Ok(1)
        });
        assert_eq!(answer(stuck, Instant::now(), READ_LIMIT), Err("WMI did not answer within 20 s".to_string()));
        drop(release);
        let quick = bounded(|| Ok(2));
        assert_eq!(answer(quick, Instant::now() + Duration::from_secs(600), READ_LIMIT), Ok(2));
        let failed = bounded(|| Err::<u8, _>("WMI AntiVirusProduct: 0x80041003".to_string()));
        assert_eq!(
            answer(failed, Instant::now() + Duration::from_secs(600), READ_LIMIT).unwrap_err(),
            "WMI AntiVirusProduct: 0x80041003"
        );
    }

    #[test]
    fn os_release_names_the_system() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(os_release_name(t).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os_release_name("NAME=Arch\n").as_deref(), Some("Arch"));
        assert_eq!(os_release_name("ID=x\nPRETTY_NAME=\n").as_deref(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_reports_what_it_can_read_and_says_what_not() {
        let s = read_home_state();
        assert_eq!(s.platform, Platform::Linux);
        assert!(!s.os.is_empty());
        assert!(s.antivirus.is_empty() && s.antivirus_unread.as_deref().is_some_and(|w| w.contains("antivirus")));
        // Either a date with its source, or the reason there is none.
        assert_eq!(s.last_update_days.is_some(), s.update_source.is_some(), "{s:?}");
        assert_eq!(s.last_update_days.is_none(), s.update_unread.is_some(), "{s:?}");
        if std::path::Path::new("/var/lib/dpkg/status").exists() {
            assert!(s.update_source.as_deref().unwrap().starts_with("/var/lib/dpkg/status"), "{s:?}");
        }
    }
}
