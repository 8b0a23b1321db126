//! Wake-on-LAN between office PCs: a user logged in (end to end, with the
//! password of that PC) to one office PC asks it to wake another; the office
//! PC asks the gateway for the target's MAC addresses
//! ([`ServerToGate::Wake`](thin_protocol::messages::ServerToGate::Wake)), and
//! the gateway answers only when the admin put both computers in one wake
//! group (`WOL_GROUP` in `ThinGatePolicy.ini`), within rate limits per asking
//! PC and per target. The MAC addresses are the target's `WolMacList`, which
//! it reported while it served.

use thin_protocol::messages::GateToServer;
use tracing::info;

use crate::policy::GatePolicy;
use crate::rate::{Rate, Throttle};
use crate::registry::MachineRegistry;

/// Wake requests one office PC may pass on per minute.
pub const PER_ASKER_PER_MINUTE: u32 = 6;

/// Wake requests for one target per minute (a sleeping PC needs one).
pub const PER_TARGET_PER_MINUTE: u32 = 2;

/// Wake requests of all office PCs together per minute.
pub const TOTAL_PER_MINUTE: u32 = 600;

/// Rate limits of wake requests.
#[derive(Debug)]
pub struct WakeLimits {
    asker: Throttle<String>,
    target: Throttle<String>,
}

impl Default for WakeLimits {
    fn default() -> Self {
        let total = Rate::per_minute(TOTAL_PER_MINUTE);
        Self {
            asker: Throttle::new(Rate::per_minute(PER_ASKER_PER_MINUTE), total),
            target: Throttle::new(Rate::per_minute(PER_TARGET_PER_MINUTE), total),
        }
    }
}

/// A wake request of the office PC serving `asker` for `target` (as typed).
pub struct WakeAsk<'a> {
    /// The `request_id` to answer with.
    pub request_id: u64,
    /// The asking office PC's computer ID (`None`: not serving).
    pub asker: Option<&'a str>,
    /// The computer to wake, as the user typed it.
    pub target: &'a str,
}

/// The answer to a wake request: the MAC addresses, or why not.
pub fn answer(
    policy: &GatePolicy,
    registry: &dyn MachineRegistry,
    limits: &WakeLimits,
    ask: WakeAsk<'_>,
) -> GateToServer {
    let refuse =
        |error: String| GateToServer::WakeMacs { request_id: ask.request_id, macs: Vec::new(), error: Some(error) };
    let Some(asker) = ask.asker else { return refuse("this office PC is not serving".into()) };
    let target = match thin_protocol::pcid::normalize(ask.target) {
        Ok(t) => t,
        Err(e) => return refuse(e.to_string()),
    };
    if target == asker {
        return refuse(format!("\"{target}\" cannot wake itself; name another office PC on its LAN with --via"));
    }
    if policy.shared_wake_group(asker, &target).is_none() {
        return refuse(format!(
            "\"{asker}\" may not wake \"{target}\": the gateway's admin has not put both in one wake group \
             (WOL_GROUP in ThinGatePolicy.ini)"
        ));
    }
    if let Err(t) = limits.asker.take(&asker.to_string()) {
        return refuse(format!(
            "too many wake requests through \"{asker}\"; try again in {} s",
            t.retry_after().as_secs()
        ));
    }
    if let Err(t) = limits.target.take(&target) {
        return refuse(format!(
            "\"{target}\" was asked to wake just now; try again in {} s",
            t.retry_after().as_secs()
        ));
    }
    let macs = registry.wol_macs(&target);
    if macs.is_empty() {
        return refuse(format!(
            "\"{target}\" has reported no MAC address (WolMacList); it must have served once with this version"
        ));
    }
    info!(%asker, %target, "wake request passed on");
    GateToServer::WakeMacs { request_id: ask.request_id, macs, error: None }
}
