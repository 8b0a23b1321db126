//! The home PC's state that a company's inspection rule (`ENFORCE_INSPECTION`)
//! looks at: antivirus products and how recently updates were installed. The
//! home PC reads it (`thin_tunnel::inspection`) and reports it inside the
//! end-to-end channel ([`crate::device_check`]); the office PC judges it.

use serde::{Deserialize, Serialize};

/// What the home PC could read of itself. Unknown values are `None`/empty, and
/// the judge treats "unknown" as "not shown to be fine".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeState {
    /// Operating system, as the user would name it (`Windows 10.0.19045`, `Debian GNU/Linux 12`).
    #[serde(default)]
    pub os: String,
    /// Registered antivirus products.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub antivirus: Vec<Antivirus>,
    /// Days since updates were last installed, when that can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_days: Option<u32>,
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
}
