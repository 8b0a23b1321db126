//! What the gateway (`thingate`) and the apps (`thinsvr`, `thinclient`) agree on.
//!
//! * [`frame`]: length-prefixed JSON frames with a hard size bound;
//! * [`messages`]: the versioned messages carried in those frames, one enum per direction;
//! * [`http`]: the HTTP/1.1 request that opens every connection (one port, HTTPS-shaped);
//! * [`tls`]: rustls configurations, with the apps pinned to their entry point's CA;
//! * [`cert_policy`]: which keys, signatures and names the gateway and the apps accept, and why not;
//! * [`entry_point`]: the `EntryPoint.dat` format (CA, gateway URL, system name);
//! * [`identity`]: the office PC's long-term key pair and the MSID derived from it;
//! * [`auth`]: end-to-end password authentication between client and server (OPAQUE);
//! * [`pcid`]: computer-ID rules;
//! * [`device_check`]: the home-PC check after the end-to-end login (device key, MACs, inspection);
//! * [`inspection`]: the home PC's state that the inspection rule judges;
//! * [`records`]: TLS 1.3 records opened and sealed in place (the relay, and the apps' tunnels), with [`traffic_secrets`] to follow key updates;
//! * [`policy`]: the company's rules the gateway sends to office PCs, and MAC addresses for Wake-on-LAN.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cert_policy;
pub mod device_check;
pub mod entry_point;
pub mod frame;
pub mod http;
pub mod identity;
pub mod inspection;
pub mod messages;
pub mod pcid;
pub mod policy;
pub mod read_ahead;
pub mod records;
pub mod secret;
pub mod stb;
pub mod tls;
pub mod traffic_secrets;

/// Version of the wire protocol spoken after the HTTP upgrade. Peers with another
/// major version are refused with a clear message.
pub const PROTOCOL_VERSION: u16 = 1;

/// Version of the end-to-end protocol between the apps (login, record layer),
/// which the gateway never reads. Version 2 encrypts every tunnel end to end.
pub const E2E_VERSION: u16 = 2;

/// The `Upgrade:` token that switches an HTTP connection to the framed protocol.
pub const UPGRADE_TOKEN: &str = "thintelework/1";

/// Path of the controller functions (alive check, upgrade).
pub const GATE_PATH: &str = "/thingate/";
