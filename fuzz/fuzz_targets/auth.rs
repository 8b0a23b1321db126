//! The end-to-end login (`protocol/src/auth.rs`, OPAQUE) as each side decodes
//! what the other sent, and the `E2e` frames that carry it.
//!
//! * the server decodes KE1 and answers it (`ServerAuth::start`);
//! * the client decodes KE2 (`auth::fuzzing::client_decode_ke2`, the first
//!   step of `ClientAuth::finish`, before the password work);
//! * the server, after a real KE1, decodes and checks KE3
//!   (`ServerAuth::finish`);
//! * the client checks the server's `Ready` confirmation MAC
//!   (`SessionKey::verify`).
//!
//! The key-stretching function (Argon2) runs only while setting up, once per
//! process (a password file and one real login); no input reaches it: the
//! server side of OPAQUE never runs it, and the client's `finish` is fuzzed
//! only up to it.
//!
//! Input: a selector byte. 0-3: the rest is a raw message, base64-encoded by
//! the target (KE1, KE2, KE3, MAC), so that the fuzzer mutates the binary
//! encoding. Otherwise the rest is an `E2e` frame's JSON, dispatched the way
//! the apps dispatch it.
//!
//! Checks: no panic; allocation bounded; nothing but the real KE3 logs in;
//! nothing but the real MAC verifies; decoding never reports a wrong password
//! and finishing never reports a malformed message for well-formed input.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thin_protocol::auth::{fuzzing, AuthError, ClientAuth, PasswordFile, ServerAuth, SessionKey};
use thin_protocol::messages::E2e;

const PCID: &str = "desk-01";
const PASSWORD: &str = "correct horse";

/// Set up once: a password file, a real KE1, and the real KE3 and session key
/// of one complete login.
struct Setup {
    file: PasswordFile,
    ke1: String,
    ke3: String,
    key: SessionKey,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let file = PasswordFile::create(PASSWORD).unwrap();
        let (client, ke1) = ClientAuth::start(PASSWORD).unwrap();
        let (server, ke2) = ServerAuth::start(&file, PCID, &ke1).unwrap();
        let (ke3, key) = client.finish(PASSWORD, PCID, &ke2).unwrap();
        server.finish(&ke3).unwrap();
        if let Some(dir) = std::env::var_os("THIN_FUZZ_WRITE_SEEDS") {
            write_seeds(std::path::Path::new(&dir), &ke1, &ke2, &ke3, &key.confirm("ready"));
        }
        Setup { file, ke1, ke3, key }
    })
}

/// `THIN_FUZZ_WRITE_SEEDS=fuzz/seeds/auth auth -runs=0` writes the seeds of
/// this target from one real login (fuzz/README.md).
fn write_seeds(dir: &std::path::Path, ke1: &str, ke2: &str, ke3: &str, mac: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let raw = |sel: u8, b: Vec<u8>| [vec![sel], b].concat();
    let json = |m: &E2e| [vec![9], serde_json::to_vec(m).unwrap()].concat();
    let seeds = [
        ("ke1", raw(0, B64.decode(ke1).unwrap())),
        ("ke2", raw(1, B64.decode(ke2).unwrap())),
        ("ke3", raw(2, B64.decode(ke3).unwrap())),
        ("mac", raw(3, hex::decode(mac).unwrap())),
        ("login_start", json(&E2e::LoginStart { version: 1, ke1: ke1.into() })),
        ("login_response", json(&E2e::LoginResponse { ke2: ke2.into() })),
        ("login_finish", json(&E2e::LoginFinish { ke3: ke3.into() })),
        ("ready", json(&E2e::Ready { confirm: mac.into() })),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn server_start(ke1: &str) {
    match ServerAuth::start(&setup().file, PCID, ke1) {
        Ok((_, ke2)) => assert!(fuzzing::client_decode_ke2(&ke2).is_ok(), "the server's KE2 does not decode"),
        Err(AuthError::Malformed(_)) => {}
        Err(e) => panic!("KE1 gave {e}"),
    }
}

fn client_ke2(ke2: &str) {
    match fuzzing::client_decode_ke2(ke2) {
        Ok(()) | Err(AuthError::Malformed(_)) => {}
        Err(e) => panic!("KE2 gave {e}"),
    }
}

fn server_finish(ke3: &str) {
    let s = setup();
    let (server, _) = ServerAuth::start(&s.file, PCID, &s.ke1).unwrap();
    match server.finish(ke3) {
        Ok(_) => assert_eq!(B64.decode(ke3).ok(), B64.decode(&s.ke3).ok(), "a KE3 that is not the real one logged in"),
        Err(AuthError::WrongPassword) => {
            assert!(B64.decode(ke3).is_ok_and(|b| b.len() == 64), "a malformed KE3 counted as a wrong password")
        }
        Err(AuthError::Malformed(_)) => {}
        Err(e) => panic!("KE3 gave {e}"),
    }
}

fn verify(key: &SessionKey, mac: &str) {
    if key.verify("ready", mac) {
        assert_eq!(hex::decode(mac).ok(), hex::decode(key.confirm("ready")).ok(), "a wrong MAC verified");
    }
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let budget = Budget::start(budget_for(data.len()));
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel {
        0 => server_start(&B64.encode(rest)),
        1 => client_ke2(&B64.encode(rest)),
        2 => server_finish(&B64.encode(rest)),
        3 => verify(&s.key, &hex::encode(rest)),
        _ => match serde_json::from_slice::<E2e>(rest) {
            Ok(E2e::LoginStart { ke1, .. }) => server_start(&ke1),
            Ok(E2e::LoginResponse { ke2 }) => client_ke2(&ke2),
            Ok(E2e::LoginFinish { ke3 }) => server_finish(&ke3),
            Ok(E2e::Ready { confirm }) => verify(&s.key, &confirm),
            Ok(_) | Err(_) => {}
        },
    }
    budget.check("auth");
});
