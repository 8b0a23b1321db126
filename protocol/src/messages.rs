//! Messages exchanged in frames. [`Msg`] is spoken with the gateway; [`E2e`] is
//! spoken end to end between client and server through a relayed pipe, where the
//! gateway only copies bytes.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

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

/// Frames exchanged with the gateway after the HTTP upgrade.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// Server control connection, first frame.
    ServerHello {
        /// Protocol version of the sender.
        version: u16,
        /// Ed25519 public key of the office PC (hex).
        public_key: String,
        /// Host name of the office PC, for the admin's lists.
        hostname: String,
    },
    /// Gateway -> server: prove possession of the key by signing this.
    Challenge {
        /// Random nonce (hex).
        nonce: String,
    },
    /// Server -> gateway: signature over the challenge (hex).
    Proof {
        /// Ed25519 signature of [`crate::identity::challenge_message`].
        signature: String,
    },
    /// Gateway -> server: who you are and how often to ping.
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
    /// Server -> gateway: claim (or rename to) this computer ID.
    Register {
        /// Requested computer ID.
        pcid: String,
    },
    /// Gateway -> server: registration stored.
    Registered {
        /// The computer ID as stored (lower case).
        pcid: String,
    },
    /// Server -> gateway: start serving tunnels for the registered PCID.
    Serve {
        /// ServerMask64 bits of the original (service mode, OTP, ...).
        server_mask: u64,
    },
    /// Gateway -> server: session established.
    Serving {
        /// Random session id, as shown in `/thinstat/`.
        session_id: String,
    },
    /// Gateway -> server: a client wants a tunnel; open a data connection with `Attach`.
    Incoming {
        /// One-time tunnel id (hex, 128 bits).
        tunnel_id: String,
    },
    /// Server data connection, first frame: attach to a waiting client.
    Attach {
        /// Protocol version of the sender.
        version: u16,
        /// The tunnel id received in `Incoming`.
        tunnel_id: String,
    },
    /// Client connection, first frame: connect me to this computer.
    ClientConnect {
        /// Protocol version of the sender.
        version: u16,
        /// Computer ID to reach.
        pcid: String,
    },
    /// Gateway -> client and -> server data connection: paired; raw bytes follow.
    Paired {
        /// Keepalive interval for the end-to-end session, in milliseconds.
        keepalive_ms: u64,
        /// Silence after which the peer is considered dead, in milliseconds.
        timeout_ms: u64,
    },
    /// Server -> gateway, on a serving control session: mail this one-time
    /// password. Answered with `OtpMailed` carrying the same `request_id`.
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
    /// Gateway -> server: outcome of `OtpMail`.
    OtpMailed {
        /// The `request_id` of the `OtpMail`.
        request_id: u64,
        /// `None`: handed to the mail server; otherwise why not.
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
        let m = Msg::OtpMail {
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
}
