//! The machine registry: which office PC (MSID) holds which computer ID
//! (PCID). [`MachineRegistry`] is the interface; [`FileRegistry`]
//! (`MachineDatabase.config`) is the standalone gateway's implementation, and
//! [`EtcdRegistry`] the cluster edition's (`docs/cluster.md`). Beside it, the
//! [`SessionDirectory`] says which gateway each online office PC is at:
//! [`LocalDirectory`] on one gateway, [`EtcdDirectory`] in a cluster.
//!
//! Reads are answered from memory (a clustered implementation keeps a watched
//! cache); changes are async, and [`MachineRegistry::register`] is the one
//! that must be atomic and durable before it answers.

pub mod cluster_view;
mod directory;
mod etcd;
mod etcd_directory;
mod etcd_link;
pub mod etcd_transfer;
pub mod file;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use thin_protocol::messages::ErrorCode;

pub use directory::{LocalDirectory, Presence, SessionDirectory};
pub use etcd::EtcdRegistry;
pub use etcd_directory::EtcdDirectory;
pub use etcd_link::{EtcdError, EtcdLink, Keys};
pub use file::FileRegistry;

/// A boxed future, so that [`MachineRegistry`] can be used as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The cause of a failed write to the registry's store.
pub type StorageError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An office PC's request to hold a computer ID.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The machine, proven by its key.
    pub msid: &'a str,
    /// Hash of its key, stored with a new machine.
    pub cert_hash: &'a str,
    /// The computer ID asked for, as typed.
    pub pcid: &'a str,
    /// DNS name of its address, or the address (`crate::host_names`).
    pub host: &'a str,
    /// Address it connects from.
    pub ip: IpAddr,
    /// False when the gateway takes no new machines (`DisableRegister`);
    /// known machines may still rename.
    pub allow_new: bool,
}

/// Why a claim was refused. The messages go to the office PC as they are.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The computer ID breaks the naming rules.
    #[error(transparent)]
    InvalidPcid(#[from] thin_protocol::pcid::PcidError),
    /// Another machine holds the computer ID.
    #[error("the computer ID \"{0}\" is already registered by another computer; choose another ID")]
    Taken(String),
    /// New machines are not accepted.
    #[error("this gateway does not accept new computers (DisableRegister is set); ask the gateway admin")]
    Closed,
    /// The change could not be stored; nothing changed.
    #[error("the gateway cannot save its database; try again later")]
    Storage(#[source] StorageError),
}

impl RegisterError {
    /// The code sent with the refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidPcid(_) => ErrorCode::InvalidPcid,
            Self::Taken(_) => ErrorCode::PcidTaken,
            Self::Closed => ErrorCode::RegisterDisabled,
            Self::Storage(_) => ErrorCode::Internal,
        }
    }
}

/// Why the admin's change to a machine (disable, enable, remove) failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No machine holds the computer ID.
    #[error("no computer is registered with the ID \"{0}\"")]
    Unknown(String),
    /// The change could not be stored.
    #[error("the change could not be stored: {0}")]
    Storage(#[source] StorageError),
}

/// What an office PC the admin disabled is told when it registers or serves,
/// or when its session is ended.
pub fn disabled_message(pcid: &str) -> String {
    format!(
        "the gateway admin has disabled this computer (ID \"{pcid}\"): it can neither register nor serve at this \
         gateway until the admin enables it again; ask the gateway admin"
    )
}

/// What the office PC of a machine the admin removed is told when its
/// session is ended.
pub fn removed_message(pcid: &str) -> String {
    format!(
        "the gateway admin has removed this computer (ID \"{pcid}\") from the gateway: run `thinsvr register --pcid \
         ID` to register it again, or ask the gateway admin"
    )
}

/// How long a machine has been known, for who keeps a session when the
/// gateway is full (`MaxServerSessions`): a machine that has served before
/// outranks one that never has, and among those alike the one registered
/// earlier outranks the later. A flood of fresh keys therefore never pushes
/// out the office PCs that were there before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The machine had served (`NumServer` above 0) before this session.
    pub served: bool,
    /// When it registered, Unix ms (0 = unknown: an old entry, ranked first).
    pub registered_ms: i64,
}

impl Standing {
    /// The standing of a stored machine.
    pub fn of(m: &crate::machine_db::Machine) -> Standing {
        Standing { served: m.num_server > 0 || m.last_server_date != 0, registered_ms: m.create_date }
    }

    /// True when `self` keeps its session before `other` does.
    pub fn outranks(&self, other: &Standing) -> bool {
        (!self.served, self.registered_ms) < (!other.served, other.registered_ms)
    }
}

/// The directory of registered machines.
pub trait MachineRegistry: Send + Sync + std::fmt::Debug {
    /// The computer ID held by `msid`.
    fn pcid_of(&self, msid: &str) -> Option<String>;

    /// True when some machine holds `pcid` (compared in lower case).
    fn is_registered(&self, pcid: &str) -> bool;

    /// Number of registered machines.
    fn registered_count(&self) -> usize;

    /// Writes of the store so far (a burst of claims may share one).
    fn saves(&self) -> u64;

    /// How long `msid` has been known (`None`: not registered).
    fn standing(&self, msid: &str) -> Option<Standing>;

    /// Claims or renames a computer ID for `claim.msid`, durably; returns
    /// the computer ID as stored (lower case). A refused claim changes nothing.
    fn register<'a>(&'a self, claim: Claim<'a>) -> BoxFuture<'a, Result<String, RegisterError>>;

    /// Notes that `msid` started serving from `ip` (last server date, address,
    /// mask, count); stored with the next [`MachineRegistry::flush`] at the latest.
    fn note_serving<'a>(&'a self, msid: &'a str, ip: IpAddr, server_mask: u64) -> BoxFuture<'a, ()>;

    /// Notes that a client was relayed to `msid` (client count, first and
    /// last client dates); stored like [`MachineRegistry::note_serving`].
    fn note_client<'a>(&'a self, msid: &'a str) -> BoxFuture<'a, ()>;

    /// Stores what is noted but not yet stored.
    fn flush(&self) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Every registered machine, as known now (sorted by computer ID).
    fn machines(&self) -> Vec<crate::machine_db::Machine>;

    /// True when the admin disabled `msid` (it may then neither register
    /// nor serve).
    fn is_disabled(&self, msid: &str) -> bool;

    /// Disables (or enables again) the machine holding `pcid`, durably.
    fn set_disabled<'a>(&'a self, pcid: &'a str, disabled: bool) -> BoxFuture<'a, Result<(), ChangeError>>;

    /// Removes the machine holding `pcid` and frees its computer ID, durably.
    fn remove<'a>(&'a self, pcid: &'a str) -> BoxFuture<'a, Result<(), ChangeError>>;

    /// The MAC addresses `pcid` reported for Wake-on-LAN (its `WolMacList`);
    /// empty when none or unknown. A registry that keeps none answers empty.
    fn wol_macs(&self, pcid: &str) -> Vec<String> {
        let _ = pcid;
        Vec::new()
    }

    /// Notes the MAC addresses `msid` reports (checked by the caller), kept as
    /// its `WolMacList`; stored like [`MachineRegistry::note_serving`].
    fn note_wol_macs<'a>(&'a self, msid: &'a str, macs: &'a [String]) -> BoxFuture<'a, ()> {
        let _ = (msid, macs);
        Box::pin(std::future::ready(()))
    }
}
