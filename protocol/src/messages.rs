//! Messages exchanged in frames, one enum per direction. With the gateway:
//! [`Hello`] opens every upgraded connection; an office PC's control session
//! then speaks [`ServerToGate`] and hears [`GateToServer`]; both ends of a
//! tunnel hear [`GateToTunnel`]. [`E2e`] is spoken end to end between client
//! and server through a relayed pipe, where the gateway only copies bytes.
//!
//! Every enum is tagged the same way (`"t"`, snake case), so a frame's bytes
//! depend only on its variant, not on the enum that carries it.

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::secret::Secret;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why the gateway or a peer refused something. Stable codes, so that apps can
/// map them to plain-language messages in the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peer speaks another protocol version.
    Version,
    /// The message was not expected at this point.
    Protocol,
    /// The computer ID breaks the naming rules.
    InvalidPcid,
    /// The computer ID belongs to another machine.
    PcidTaken,
    /// The gateway does not accept new registrations.
    RegisterDisabled,
    /// No machine has this computer ID.
    UnknownPcid,
    /// The machine is registered but not connected now.
    ServerOffline,
    /// The server did not pick up the tunnel in time.
    Timeout,
    /// The gateway is at its session or tunnel limit.
    Busy,
    /// The machine must register before it can serve.
    NotRegistered,
    /// The signature over the challenge did not verify.
    BadSignature,
    /// Wrong password (end to end).
    WrongPassword,
    /// Too many failed logins: locked for a while (end to end).
    LockedOut,
    /// Wrong one-time password, and no tries left for this code (end to end).
    WrongOtp,
    /// The one-time password is no longer valid (end to end).
    OtpExpired,
    /// The one-time password could not be mailed (no SMTP server at the
    /// gateway, mail server unreachable or refusing); the message says why.
    OtpMailFailed,
    /// Anything else.
    Internal,
}

/// The first frame of every upgraded connection, peer -> gateway: it says
/// which of the three kinds of connection this is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Hello {
    /// An office PC opens its control connection; answered with
    /// [`GateToServer::Challenge`], then [`ServerToGate`] frames follow.
    ServerHello {
        /// Protocol version of the sender.
        version: u16,
        /// Ed25519 public key of the office PC (hex).
        public_key: String,
        /// Host name of the office PC, for the admin's lists.
        hostname: String,
    },
    /// A client asks for a tunnel to this computer; answered with [`GateToTunnel`].
    ClientConnect {
        /// Protocol version of the sender.
        version: u16,
        /// Computer ID to reach.
        pcid: String,
        /// The app's build number (`builder build` gave it; 0 without the
        /// builder), checked against `REQUIRE_MINIMUM_CLIENT_BUILD`. Absent
        /// from older apps, which then count as build 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        build: Option<u32>,
        /// The app follows [`GateToTunnel::Redirect`] (a cluster member sends
        /// it when the computer is online at another member). Absent from
        /// older apps, which are then told where the computer is in a refusal.
        #[serde(default, skip_serializing_if = "is_false")]
        follows_redirect: bool,
        /// The app can take bare records after the login (see
        /// [`GateToTunnel::Paired`]`{ bare_records }`). Absent from older apps.
        #[serde(default, skip_serializing_if = "is_false")]
        bare_records: bool,
    },
    /// An office PC's data connection attaches to a waiting client (after
    /// [`GateToServer::Incoming`]); answered with [`GateToTunnel`].
    Attach {
        /// Protocol version of the sender.
        version: u16,
        /// The tunnel id received in `Incoming`.
        tunnel_id: String,
        /// As in [`Hello::ClientConnect`].
        #[serde(default, skip_serializing_if = "is_false")]
        bare_records: bool,
    },
    /// Any other tag: decoded so that the gateway can refuse it with
    /// [`ErrorCode::Protocol`]; never sent.
    #[serde(other, skip_serializing)]
    Unexpected,
}

/// Office PC -> gateway on a control connection, after [`Hello::ServerHello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerToGate {
    /// Signature over the challenge (hex).
    Proof {
        /// Ed25519 signature of [`crate::identity::challenge_message`].
        signature: String,
    },
    /// Claim (or rename to) this computer ID.
    Register {
        /// Requested computer ID.
        pcid: String,
        /// The gateway's registration token (`RegisterToken`), when the office
        /// PC has one; masked in `Debug`. Absent on the wire when `None`, and
        /// an absent field reads as `None`, so older peers speak as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<Secret>,
    },
    /// Start serving tunnels for the registered PCID.
    Serve {
        /// ServerMask64 bits of the original (service mode, OTP, ...).
        server_mask: u64,
        /// The office PC applies [`GateToServer::Policy`]; absent (false)
        /// from older office PCs, which the gateway then sends no policy and,
        /// while a policy is in force, does not let serve.
        #[serde(default, skip_serializing_if = "is_false")]
        policy: bool,
        /// Its MAC addresses (`00-11-22-AA-BB-CC`), kept as the machine's
        /// `WolMacList` for Wake-on-LAN; at most 16.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        macs: Vec<String>,
    },
    /// On a serving control session: mail this one-time password. Answered
    /// with [`GateToServer::OtpMailed`] carrying the same `request_id`.
    OtpMail {
        /// Chosen by the server to match the answer.
        request_id: u64,
        /// The recipient's address (from the server's settings).
        to: String,
        /// Six digits; masked in `Debug`.
        code: Secret,
        /// The system name shown in the subject (the server's entry point).
        system: String,
        /// How long the code is valid, in seconds, for the mail's text.
        valid_s: u64,
    },
    /// On a serving control session: a user logged in to this office PC asks
    /// it to wake `pcid` (Wake-on-LAN). Answered with
    /// [`GateToServer::WakeMacs`] carrying the same `request_id`. Sent only by
    /// office PCs that announced ServerMask64 bit 128.
    Wake {
        /// Chosen by the office PC to match the answer.
        request_id: u64,
        /// The computer to wake.
        pcid: String,
    },
    /// Liveness probe; answered with `Pong`.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// Any other tag: decoded so that the gateway can refuse it with
    /// [`ErrorCode::Protocol`]; never sent.
    #[serde(other, skip_serializing)]
    Unexpected,
}

/// Gateway -> office PC on a control connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum GateToServer {
    /// Prove possession of the key by signing this.
    Challenge {
        /// Random nonce (hex).
        nonce: String,
    },
    /// Who you are and how often to ping.
    Welcome {
        /// MSID derived from the public key.
        msid: String,
        /// Computer ID bound to this MSID, if any.
        pcid: Option<String>,
        /// Keepalive interval in milliseconds.
        keepalive_ms: u64,
        /// Silence after which the peer is considered dead, in milliseconds.
        timeout_ms: u64,
    },
    /// Registration stored.
    Registered {
        /// The computer ID as stored (lower case).
        pcid: String,
    },
    /// Session established.
    Serving {
        /// Random session id, as shown in `/thinstat/`.
        session_id: String,
    },
    /// A client wants a tunnel; open a data connection with [`Hello::Attach`].
    Incoming {
        /// One-time tunnel id (hex, 128 bits).
        tunnel_id: String,
    },
    /// Outcome of [`ServerToGate::OtpMail`].
    OtpMailed {
        /// The `request_id` of the `OtpMail`.
        request_id: u64,
        /// `None`: handed to the mail server; otherwise why not.
        error: Option<String>,
    },
    /// The company's rules, after `Serving` and again whenever the admin
    /// changes them; sent only to office PCs that announced `policy` in
    /// [`ServerToGate::Serve`]. An empty policy lifts every rule.
    Policy {
        /// The rules in force.
        policy: Policy,
    },
    /// Outcome of [`ServerToGate::Wake`]: the MAC addresses to send the
    /// magic packet to, or why not.
    WakeMacs {
        /// The `request_id` of the `Wake`.
        request_id: u64,
        /// The target's MAC addresses (empty on refusal).
        macs: Vec<String>,
        /// `None`: allowed; otherwise why not.
        error: Option<String>,
    },
    /// Liveness probe; answered with `Pong`.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// Refusal; the connection closes after it.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

/// Gateway -> either end of a tunnel: the client's connection
/// ([`Hello::ClientConnect`]) and the office PC's data connection
/// ([`Hello::Attach`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum GateToTunnel {
    /// Paired; raw bytes follow.
    Paired {
        /// Keepalive interval for the end-to-end session, in milliseconds.
        keepalive_ms: u64,
        /// Silence after which the peer is considered dead, in milliseconds.
        timeout_ms: u64,
        /// Both apps asked for bare records and both legs are TLS 1.3 that
        /// the gateway relays record by record. After the end-to-end login
        /// each app then sends its leg's `close_notify` and, from there on,
        /// each end-to-end record bare: a TLS application-data header
        /// (`17 03 03`, length), the end-to-end record, and 17 zero bytes
        /// where the leg's content type and tag would be (the same length
        /// as the record sealed). The gateway passes the `close_notify` on
        /// as its own and the bare records as they come, without opening or
        /// sealing them: the end-to-end keys, which it does not hold, already
        /// protect them. Absent from older gateways, and `false` for older
        /// apps: each leg then stays sealed to the end.
        #[serde(default, skip_serializing_if = "is_false")]
        bare_records: bool,
    },
    /// Refusal; the connection closes after it.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The computer is online at another gateway of the cluster: ask there
    /// (only to an app that said [`Hello::ClientConnect`]`{ follows_redirect }`).
    /// The connection closes after it. The app goes only to an `https://` URL,
    /// checks that gateway's certificate against the same pinned CA, and
    /// follows a bounded number of redirects.
    Redirect {
        /// The member's `ClusterPublicUrl`.
        gateway: String,
    },
}

/// Frames exchanged end to end between client and server inside a paired pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum E2e {
    /// Client -> server: OPAQUE KE1 (base64).
    LoginStart {
        /// Protocol version of the sender.
        version: u16,
        /// Serialized `CredentialRequest`.
        ke1: String,
    },
    /// Server -> client: OPAQUE KE2 (base64).
    LoginResponse {
        /// Serialized `CredentialResponse`.
        ke2: String,
    },
    /// Client -> server: OPAQUE KE3 (base64).
    LoginFinish {
        /// Serialized `CredentialFinalization`.
        ke3: String,
    },
    /// Client -> server: the client could not open the server's answer (wrong password).
    LoginAbort,
    /// Server -> client: a one-time password was sent; answer with `OtpAnswer`.
    OtpRequired {
        /// Where the code was sent, partly masked (e.g. `a***@example.org`).
        destination: String,
        /// Answers allowed for this code.
        tries: u32,
        /// Seconds the code stays valid.
        valid_s: u64,
    },
    /// Client -> server: the one-time password typed by the user.
    OtpAnswer {
        /// Six digits; masked in `Debug`.
        code: Secret,
    },
    /// Server -> client: the answer was wrong; answer again with `OtpAnswer`.
    OtpWrong {
        /// Answers still allowed for this code.
        tries_left: u32,
    },
    /// Either side: still there (a person is typing, a mail is on its way).
    /// Keeps the relay from timing out; ignored otherwise.
    Wait,
    /// Server -> client: authenticated; multiplexed streams follow.
    Ready {
        /// MAC over the transcript with the session key (hex), so the client
        /// knows the server that answers is the one that completed the login.
        confirm: String,
    },
    /// Refusal; the pipe closes after it.
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// Seconds until another attempt may succeed (lockout).
        retry_after_s: Option<u64>,
    },
}

/// How the apps and the gateway word a one-time password's validity:
/// `5 minutes`, `1 minute`, `90 seconds`.
pub fn validity_text(valid_s: u64) -> String {
    match valid_s {
        60 => "1 minute".into(),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        1 => "1 second".into(),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_codes_are_plain_on_the_wire_and_masked_in_debug() {
        let m = ServerToGate::OtpMail {
            request_id: 7,
            to: "a@example.org".into(),
            code: Secret::new("123456"),
            system: "S".into(),
            valid_s: 300,
        };
        assert!(!format!("{m:?}").contains("123456"));
        let wire = serde_json::to_string(&m).unwrap();
        assert!(wire.contains(r#""code":"123456""#), "{wire}");
        let e = E2e::OtpAnswer { code: Secret::new("654321") };
        assert!(!format!("{e:?}").contains("654321"));
        match serde_json::from_str::<E2e>(r#"{"t":"otp_answer","code":"654321"}"#).unwrap() {
            E2e::OtpAnswer { code } => assert_eq!(code.expose(), "654321"),
            other => panic!("{other:?}"),
        }
        let r = ServerToGate::Register { pcid: "p".into(), token: Some(Secret::new("Reg-Token-42")) };
        assert!(!format!("{r:?}").contains("Reg-Token-42"), "the registration token is masked");
        let refused = serde_json::to_string(&ErrorCode::OtpMailFailed).unwrap();
        assert_eq!(refused, r#""otp_mail_failed""#);
    }

    #[test]
    fn validity_is_worded_in_minutes_or_seconds() {
        assert_eq!(validity_text(300), "5 minutes");
        assert_eq!(validity_text(60), "1 minute");
        assert_eq!(validity_text(90), "90 seconds");
        assert_eq!(validity_text(1), "1 second");
    }

    /// Every frame spoken with the gateway, encoded by the per-direction enums,
    /// byte for byte as the single `Msg` enum of protocol version 1 wrote it.
    #[test]
    fn per_direction_enums_keep_the_wire_bytes() {
        fn wire<T: Serialize>(m: &T) -> String {
            serde_json::to_string(m).unwrap()
        }
        let hello = [
            (
                Hello::ServerHello { version: 1, public_key: "ab12".into(), hostname: "desk".into() },
                r#"{"t":"server_hello","version":1,"public_key":"ab12","hostname":"desk"}"#,
            ),
            (
                Hello::ClientConnect {
                    version: 1,
                    pcid: "desk-01".into(),
                    build: None,
                    follows_redirect: false,
                    bare_records: false,
                },
                r#"{"t":"client_connect","version":1,"pcid":"desk-01"}"#,
            ),
            (
                Hello::ClientConnect {
                    version: 1,
                    pcid: "desk-01".into(),
                    build: Some(3),
                    follows_redirect: true,
                    bare_records: false,
                },
                r#"{"t":"client_connect","version":1,"pcid":"desk-01","build":3,"follows_redirect":true}"#,
            ),
            (
                Hello::ClientConnect {
                    version: 1,
                    pcid: "desk-01".into(),
                    build: Some(3),
                    follows_redirect: true,
                    bare_records: true,
                },
                r#"{"t":"client_connect","version":1,"pcid":"desk-01","build":3,"follows_redirect":true,"bare_records":true}"#,
            ),
            (
                Hello::Attach { version: 1, tunnel_id: "abcd".into(), bare_records: false },
                r#"{"t":"attach","version":1,"tunnel_id":"abcd"}"#,
            ),
            (
                Hello::Attach { version: 1, tunnel_id: "abcd".into(), bare_records: true },
                r#"{"t":"attach","version":1,"tunnel_id":"abcd","bare_records":true}"#,
            ),
        ];
        let to_gate = [
            (ServerToGate::Proof { signature: "5151".into() }, r#"{"t":"proof","signature":"5151"}"#),
            (ServerToGate::Register { pcid: "desk-01".into(), token: None }, r#"{"t":"register","pcid":"desk-01"}"#),
            (
                ServerToGate::Register { pcid: "desk-01".into(), token: Some(Secret::new("tok")) },
                r#"{"t":"register","pcid":"desk-01","token":"tok"}"#,
            ),
            (ServerToGate::Serve { server_mask: 18, policy: false, macs: vec![] }, r#"{"t":"serve","server_mask":18}"#),
            (
                ServerToGate::OtpMail {
                    request_id: 7,
                    to: "a@example.org".into(),
                    code: Secret::new("123456"),
                    system: "Acme".into(),
                    valid_s: 300,
                },
                r#"{"t":"otp_mail","request_id":7,"to":"a@example.org","code":"123456","system":"Acme","valid_s":300}"#,
            ),
            (ServerToGate::Ping, r#"{"t":"ping"}"#),
            (ServerToGate::Pong, r#"{"t":"pong"}"#),
        ];
        let to_server = [
            (GateToServer::Challenge { nonce: "00ff".into() }, r#"{"t":"challenge","nonce":"00ff"}"#),
            (
                GateToServer::Welcome {
                    msid: "MSID-DESK-AA".into(),
                    pcid: Some("desk-01".into()),
                    keepalive_ms: 10000,
                    timeout_ms: 30000,
                },
                r#"{"t":"welcome","msid":"MSID-DESK-AA","pcid":"desk-01","keepalive_ms":10000,"timeout_ms":30000}"#,
            ),
            (
                GateToServer::Welcome {
                    msid: "MSID-DESK-AA".into(),
                    pcid: None,
                    keepalive_ms: 10000,
                    timeout_ms: 30000,
                },
                r#"{"t":"welcome","msid":"MSID-DESK-AA","pcid":null,"keepalive_ms":10000,"timeout_ms":30000}"#,
            ),
            (GateToServer::Registered { pcid: "desk-01".into() }, r#"{"t":"registered","pcid":"desk-01"}"#),
            (GateToServer::Serving { session_id: "0A1B".into() }, r#"{"t":"serving","session_id":"0A1B"}"#),
            (GateToServer::Incoming { tunnel_id: "abcd".into() }, r#"{"t":"incoming","tunnel_id":"abcd"}"#),
            (
                GateToServer::OtpMailed { request_id: 7, error: None },
                r#"{"t":"otp_mailed","request_id":7,"error":null}"#,
            ),
            (
                GateToServer::OtpMailed { request_id: 8, error: Some("no smtp".into()) },
                r#"{"t":"otp_mailed","request_id":8,"error":"no smtp"}"#,
            ),
            (GateToServer::Ping, r#"{"t":"ping"}"#),
            (GateToServer::Pong, r#"{"t":"pong"}"#),
            (
                GateToServer::Error { code: ErrorCode::PcidTaken, message: "taken".into() },
                r#"{"t":"error","code":"pcid_taken","message":"taken"}"#,
            ),
        ];
        let to_tunnel = [
            (
                GateToTunnel::Paired { keepalive_ms: 500, timeout_ms: 5000, bare_records: false },
                r#"{"t":"paired","keepalive_ms":500,"timeout_ms":5000}"#,
            ),
            (
                GateToTunnel::Paired { keepalive_ms: 500, timeout_ms: 5000, bare_records: true },
                r#"{"t":"paired","keepalive_ms":500,"timeout_ms":5000,"bare_records":true}"#,
            ),
            (
                GateToTunnel::Error { code: ErrorCode::PcidTaken, message: "taken".into() },
                r#"{"t":"error","code":"pcid_taken","message":"taken"}"#,
            ),
            (
                GateToTunnel::Redirect { gateway: "https://gw2.example.org/thingate/".into() },
                r#"{"t":"redirect","gateway":"https://gw2.example.org/thingate/"}"#,
            ),
        ];
        for (m, json) in &hello {
            assert_eq!(wire(m), *json);
            assert_eq!(wire(&serde_json::from_str::<Hello>(json).unwrap()), *json);
        }
        for (m, json) in &to_gate {
            assert_eq!(wire(m), *json);
            assert_eq!(wire(&serde_json::from_str::<ServerToGate>(json).unwrap()), *json);
        }
        for (m, json) in &to_server {
            assert_eq!(wire(m), *json);
            assert_eq!(wire(&serde_json::from_str::<GateToServer>(json).unwrap()), *json);
        }
        for (m, json) in &to_tunnel {
            assert_eq!(wire(m), *json);
            assert_eq!(wire(&serde_json::from_str::<GateToTunnel>(json).unwrap()), *json);
        }
        // A missing optional field still reads as `None`, as before.
        let w = r#"{"t":"welcome","msid":"M","keepalive_ms":1,"timeout_ms":2}"#;
        assert!(matches!(serde_json::from_str(w).unwrap(), GateToServer::Welcome { pcid: None, .. }));
    }

    #[test]
    fn frames_of_another_direction_decode_as_unexpected_and_are_never_sent() {
        for json in [r#"{"t":"pong"}"#, r#"{"t":"serve","server_mask":1}"#, r#"{"t":"no_such_tag"}"#] {
            assert!(matches!(serde_json::from_str(json).unwrap(), Hello::Unexpected), "{json}");
        }
        for json in [r#"{"t":"server_hello","version":1,"public_key":"k","hostname":"h"}"#, r#"{"t":"attach"}"#] {
            assert!(matches!(serde_json::from_str(json).unwrap(), ServerToGate::Unexpected), "{json}");
        }
        assert!(serde_json::to_string(&Hello::Unexpected).is_err());
        assert!(serde_json::to_string(&ServerToGate::Unexpected).is_err());
    }
}
