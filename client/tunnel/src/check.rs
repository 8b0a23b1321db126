//! The home-PC check after the end-to-end login ([`thin_protocol::device_check`]):
//! the tunnel's first stream, sealed, on which the office PC asks what it
//! needs (the device key's proof and the MAC addresses when it accepts only
//! known home PCs; the home PC's state when the company's policy requires the
//! inspection), and accepts or refuses. No other stream is served before the
//! office PC accepted.
//!
//! Known home PCs are listed in the office PC's `thinsvr.toml`
//! (`allowed_devices`, and `allowed_macs` for the original's MAC check), and
//! added by its owner (`thinsvr devices --add ID`, or `thinsvr devices --pair`:
//! the next new home PC that logs in with the password within the time given
//! is added). `ENFORCE_MACCHECK` of the company's policy makes the check
//! mandatory.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thin_protocol::device_check::{CheckAsk, CheckReport, CheckVerdict};
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::inspection::{judge, HomeState, Rule};
use thin_protocol::policy::{format_mac, parse_mac, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::device::DeviceStore;
use crate::mux::{MuxStream, Opener};
use crate::settings::{AllowedDevice, ConfigDir, ServerSettings};

/// Stream kind: the home-PC check (the tunnel's first stream).
pub const KIND_CHECK: u8 = 4;

/// Longest wait for each step of the check: reading a Windows PC's state
/// through WMI can take seconds.
pub const CHECK_WAIT: Duration = Duration::from_secs(30);

/// Most MAC addresses a report may carry.
const MAX_MACS: usize = 16;

/// What the office PC asks under `rules` and its own settings: the device
/// when known home PCs are required or pairing is open.
pub fn what_to_ask(rules: &Policy, s: &ServerSettings) -> CheckAsk {
    CheckAsk { device: required(rules, s) || pairing(s, now_s()), inspection: rules.enforce_inspection }
}

fn required(rules: &Policy, s: &ServerSettings) -> bool {
    s.devices_only || rules.enforce_maccheck
}

fn pairing(s: &ServerSettings, now: u64) -> bool {
    s.pair_until.is_some_and(|t| now < t)
}

/// Client side: answers the office PC's questions on a new stream. `Ok(note)`
/// when accepted (with a remark for the user, if any); `Err(message)` when
/// refused. An office PC too old to know the check closes the stream: nothing asked.
pub async fn client_check(opener: &Opener, binding: &[u8; 32], store: &DeviceStore) -> Result<Option<String>, String> {
    let lost = |e: &dyn std::fmt::Display| format!("the office PC's check failed: {e}");
    let mut st = opener.open().await.map_err(|e| lost(&e))?;
    st.write_all(&[KIND_CHECK]).await.map_err(|e| lost(&e))?;
    let ask = match tokio::time::timeout(CHECK_WAIT, read_frame::<CheckAsk, _>(&mut st)).await {
        Ok(Ok(ask)) => ask,
        // Closed unread: an office PC that predates the check.
        Ok(Err(_)) => return Ok(None),
        Err(_) => return Err(lost(&"no answer in time")),
    };
    let mut report = CheckReport::default();
    if ask.device {
        let store = store.clone();
        let binding = *binding;
        let (proof, macs) = tokio::task::spawn_blocking(move || {
            let key = store.load_or_create().map_err(|e| format!("this home PC's device key: {e}"))?;
            let name = crate::server_agent::hostname();
            Ok::<_, String>((key.prove(&binding, &name), crate::wake::local_macs(&[])))
        })
        .await
        .map_err(|e| lost(&e))??;
        report.device = Some(proof);
        report.macs = macs;
    }
    if ask.inspection {
        let home = tokio::task::spawn_blocking(crate::inspection::read_home_state).await.map_err(|e| lost(&e))?;
        report.home = Some(home);
    }
    write_frame(&mut st, &report).await.map_err(|e| lost(&e))?;
    match tokio::time::timeout(CHECK_WAIT, read_frame::<CheckVerdict, _>(&mut st)).await {
        Ok(Ok(CheckVerdict::Accepted { note })) => Ok(note),
        Ok(Ok(CheckVerdict::Refused { message })) => Err(message),
        Ok(Err(e)) => Err(lost(&e)),
        Err(_) => Err(lost(&"no answer in time")),
    }
}

/// Server side: waits for the check stream (the tunnel's first), asks, and
/// decides. `Ok` when the tunnel may serve; `Err(why)` for the log when it
/// must close (the client was told why when it could be).
pub async fn server_check(
    first: Option<MuxStream>,
    ask: &CheckAsk,
    rules: &Policy,
    dir: &ConfigDir,
    binding: &[u8; 32],
) -> Result<(), String> {
    let Some(mut st) = first else { return Err("the tunnel closed before the home-PC check".into()) };
    let mut kind = [0u8; 1];
    match tokio::time::timeout(CHECK_WAIT, st.read_exact(&mut kind)).await {
        Ok(Ok(_)) if kind[0] == KIND_CHECK => {}
        Ok(Ok(_)) => {
            return Err(
                "the home PC's app did not send the home-PC check this office PC requires (an app too old)".into()
            )
        }
        _ => return Err("the home PC did not start the home-PC check in time".into()),
    }
    answer_check(&mut st, ask, rules, dir, binding).await
}

/// Asks, reads the report, decides and tells the client.
pub async fn answer_check(
    st: &mut MuxStream,
    ask: &CheckAsk,
    rules: &Policy,
    dir: &ConfigDir,
    binding: &[u8; 32],
) -> Result<(), String> {
    write_frame(st, ask).await.map_err(|e| e.to_string())?;
    let report = match tokio::time::timeout(CHECK_WAIT, read_frame::<CheckReport, _>(st)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("the home-PC check: {e}")),
        Err(_) => return Err("the home PC did not answer the check in time".into()),
    };
    let verdict = match decide(ask, &report, rules, dir, binding, now_s()) {
        Ok(note) => CheckVerdict::Accepted { note },
        Err(message) => CheckVerdict::Refused { message },
    };
    let _ = write_frame(st, &verdict).await;
    let _ = st.flush().await;
    let _ = st.shutdown().await;
    if matches!(verdict, CheckVerdict::Refused { .. }) {
        // The tunnel closes after a refusal: first let the client read it
        // (it closes the stream then), for at most a few seconds.
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while matches!(st.read(&mut rest).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    match verdict {
        CheckVerdict::Accepted { .. } => Ok(()),
        CheckVerdict::Refused { message } => Err(message),
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Serialises the read-modify-write of `thinsvr.toml` when pairing adds a device.
static SETTINGS_WRITE: Mutex<()> = Mutex::new(());

/// The office PC's decision; `Ok(note)` to accept, `Err(message for the home
/// PC's user)` to refuse. Pairing adds the device to `thinsvr.toml`.
fn decide(
    ask: &CheckAsk,
    report: &CheckReport,
    rules: &Policy,
    dir: &ConfigDir,
    binding: &[u8; 32],
    now: u64,
) -> Result<Option<String>, String> {
    // Who it is first (no change yet), then its state, then pairing (which
    // changes the list): a home PC that fails the inspection is not added.
    let known = if ask.device { Some(device_known(report, rules, dir, binding, now)?) } else { None };
    // `ask` was made from these same rules, so the rule is there when asked.
    if let Some(rule) = Rule::from_policy(rules).filter(|_| ask.inspection) {
        let unreported = HomeState::default();
        judge(&rule, report.home.as_ref().unwrap_or(&unreported))?;
    }
    match known {
        Some(Known::Pair { id, name }) => pair(dir, &id, &name, now),
        _ => Ok(None),
    }
}

/// The device's standing: on the list (or not required), or to be added by pairing.
enum Known {
    Yes,
    Pair { id: String, name: String },
}

fn device_known(
    report: &CheckReport,
    rules: &Policy,
    dir: &ConfigDir,
    binding: &[u8; 32],
    now: u64,
) -> Result<Known, String> {
    let Some(proof) = &report.device else {
        return Err("this home PC did not prove its device key; update the app".into());
    };
    let id =
        crate::device::verify(proof, binding).map_err(|why| format!("this home PC's device proof failed: {why}"))?;
    let macs: Vec<String> =
        report.macs.iter().take(MAX_MACS).filter_map(|m| parse_mac(m).ok()).map(|m| format_mac(&m)).collect();
    let settings = dir.settings().map_err(|e| {
        warn!("{e}");
        "the office PC cannot read its settings; ask its user to check the app".to_string()
    })?;
    if allowed(&settings, &id, &macs) {
        info!(device = %id, "known home PC");
        return Ok(Known::Yes);
    }
    let name = shown_name(&proof.name);
    if pairing(&settings, now) {
        return Ok(Known::Pair { id, name });
    }
    if !required(rules, &settings) {
        // Asked only because pairing was open, and it has closed since.
        return Ok(Known::Yes);
    }
    let why = if rules.enforce_maccheck && !settings.devices_only {
        "the company's policy (ENFORCE_MACCHECK) lets only known home PCs connect"
    } else {
        "this office PC accepts only known home PCs"
    };
    info!(device = %id, "unknown home PC refused");
    Err(format!(
        "{why}, and this one ({name}, device ID {id}) is not on its list. Ask the office PC's user to add it: \
         `thinsvr devices --add {id}`, or `thinsvr devices --pair` there and connect again within the time it gives"
    ))
}

fn allowed(s: &ServerSettings, id: &str, macs: &[String]) -> bool {
    s.allowed_devices.iter().any(|d| crate::device::same_id(&d.id, id))
        || macs.iter().any(|m| s.allowed_macs.iter().any(|a| parse_mac(a).is_ok_and(|a| format_mac(&a) == *m)))
}

/// A name from the network, for a list and a message: printable, short.
fn shown_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if clean.trim().is_empty() {
        "unnamed".into()
    } else {
        clean.trim().to_string()
    }
}

/// Adds the device while pairing is open, and closes pairing: one device per `pair`.
fn pair(dir: &ConfigDir, id: &str, name: &str, now: u64) -> Result<Option<String>, String> {
    let _guard = SETTINGS_WRITE.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = dir.settings().map_err(|e| e.to_string())?;
    if !pairing(&s, now) {
        return Err("pairing on the office PC has just ended; ask its user to pair again".into());
    }
    s.pair_until = None;
    s.allowed_devices.push(AllowedDevice { id: id.to_string(), name: name.to_string(), added: now });
    dir.save_settings(&s).map_err(|e| {
        warn!("{e}");
        "the office PC could not save its list of home PCs; ask its user to check the app".to_string()
    })?;
    info!(device = %id, %name, "home PC added by pairing");
    Ok(Some(format!("this home PC ({name}, device ID {id}) was added to the office PC's known home PCs")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceKey;

    fn report(key: &DeviceKey, binding: &[u8; 32], macs: &[&str]) -> CheckReport {
        CheckReport {
            device: Some(key.prove(binding, "home-laptop")),
            macs: macs.iter().map(|m| m.to_string()).collect(),
            home: None,
        }
    }

    #[test]
    fn known_devices_and_macs_pass_strangers_are_refused_with_their_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir(tmp.path().to_path_buf());
        let key = DeviceKey::ephemeral();
        let b = [3u8; 32];
        let ask = CheckAsk { device: true, inspection: false };
        let rules = Policy::default();
        // Not required (pairing closed since the ask): let through.
        assert_eq!(decide(&ask, &report(&key, &b, &[]), &rules, &dir, &b, 100), Ok(None));
        let mut s = ServerSettings { devices_only: true, ..ServerSettings::default() };
        dir.save_settings(&s).unwrap();
        let err = decide(&ask, &report(&key, &b, &[]), &rules, &dir, &b, 100).unwrap_err();
        assert!(err.contains(&key.id()) && err.contains("thinsvr devices --add"), "{err}");

        s.allowed_macs.push("00:11:22:aa:bb:cc".into());
        dir.save_settings(&s).unwrap();
        assert_eq!(decide(&ask, &report(&key, &b, &["00-11-22-AA-BB-CC"]), &rules, &dir, &b, 100), Ok(None));

        s.allowed_macs.clear();
        s.allowed_devices.push(AllowedDevice { id: key.id().to_uppercase(), name: "x".into(), added: 1 });
        dir.save_settings(&s).unwrap();
        assert_eq!(decide(&ask, &report(&key, &b, &[]), &rules, &dir, &b, 100), Ok(None));
        // A proof from another login is refused.
        let err = decide(&ask, &report(&key, &[4u8; 32], &[]), &rules, &dir, &b, 100).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        // No proof at all.
        let err = decide(&ask, &CheckReport::default(), &rules, &dir, &b, 100).unwrap_err();
        assert!(err.contains("device key"), "{err}");
        let maccheck = Policy { enforce_maccheck: true, ..Policy::default() };
        let other = DeviceKey::ephemeral();
        dir.save_settings(&ServerSettings::default()).unwrap();
        let err = decide(&ask, &report(&other, &b, &[]), &maccheck, &dir, &b, 100).unwrap_err();
        assert!(err.contains("ENFORCE_MACCHECK"), "{err}");
    }

    #[test]
    fn pairing_adds_one_device_then_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir(tmp.path().to_path_buf());
        let s = ServerSettings { devices_only: true, pair_until: Some(200), ..ServerSettings::default() };
        dir.save_settings(&s).unwrap();
        let (a, b) = (DeviceKey::ephemeral(), DeviceKey::ephemeral());
        let bind = [9u8; 32];
        let ask = CheckAsk { device: true, inspection: false };
        // Expired pairing adds nothing.
        assert!(decide(&ask, &report(&a, &bind, &[]), &Policy::default(), &dir, &bind, 200).is_err());
        let note = decide(&ask, &report(&a, &bind, &[]), &Policy::default(), &dir, &bind, 150).unwrap().unwrap();
        assert!(note.contains(&a.id()) && note.contains("home-laptop"), "{note}");
        let s = dir.settings().unwrap();
        assert_eq!(s.pair_until, None);
        assert_eq!(s.allowed_devices.len(), 1);
        assert!(decide(&ask, &report(&b, &bind, &[]), &Policy::default(), &dir, &bind, 160).is_err(), "only one");
        assert_eq!(decide(&ask, &report(&a, &bind, &[]), &Policy::default(), &dir, &bind, 170), Ok(None));
    }

    #[test]
    fn names_from_the_network_are_cleaned() {
        assert_eq!(shown_name("a\u{1b}[31mb\n"), "a[31mb");
        assert_eq!(shown_name("  "), "unnamed");
        assert_eq!(shown_name(&"x".repeat(500)).len(), 64);
    }
}
