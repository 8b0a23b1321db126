//! End-to-end password authentication between client and server with OPAQUE
//! (`opaque-ke`, ristretto255, Argon2 stretching).
//!
//! The office PC keeps a [`PasswordFile`]: OPAQUE server setup plus the
//! registration record, never the password or a password equivalent. The
//! gateway only relays the three login messages, which give it nothing to guess
//! offline. A successful login yields a shared session key on both ends; the
//! server's closing `Ready` carries a MAC under that key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use opaque_ke::{
    CipherSuite, ClientLogin, ClientLoginFinishParameters, ClientRegistration, ClientRegistrationFinishParameters,
    CredentialFinalization, CredentialRequest, CredentialResponse, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand::rngs::OsRng;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The OPAQUE cipher suite used by every app of this project.
pub struct Suite;

impl CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

const CREDENTIAL_ID: &[u8] = b"thinsvr";

/// Errors of the authentication steps.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password did not match (detected by whichever side notices).
    #[error("wrong password")]
    WrongPassword,
    /// A message did not decode.
    #[error("malformed authentication message: {0}")]
    Malformed(String),
    /// The password file is unreadable.
    #[error("password file is damaged: {0}")]
    BadFile(String),
}

/// What the office PC stores instead of the password (file mode 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct PasswordFile {
    setup: String,
    record: String,
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordFile(MASKED)")
    }
}

fn context(pcid: &str) -> Vec<u8> {
    format!("thintelework/{} e2e pcid={pcid}", crate::E2E_VERSION).into_bytes()
}

fn decode(s: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    B64.decode(s).map_err(|e| AuthError::Malformed(format!("{what}: {e}")))
}

impl PasswordFile {
    /// Runs OPAQUE registration locally for `password`.
    pub fn create(password: &str) -> Result<Self, AuthError> {
        let mut rng = OsRng;
        let setup = ServerSetup::<Suite>::new(&mut rng);
        let start = ClientRegistration::<Suite>::start(&mut rng, password.as_bytes())
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let resp = ServerRegistration::<Suite>::start(&setup, start.message, CREDENTIAL_ID)
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let finish = start
            .state
            .finish(&mut rng, password.as_bytes(), resp.message, ClientRegistrationFinishParameters::default())
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let record = ServerRegistration::<Suite>::finish(finish.message);
        Ok(Self { setup: B64.encode(setup.serialize()), record: B64.encode(record.serialize()) })
    }

    fn parts(&self) -> Result<(ServerSetup<Suite>, ServerRegistration<Suite>), AuthError> {
        let setup = ServerSetup::<Suite>::deserialize(&decode(&self.setup, "setup")?)
            .map_err(|e| AuthError::BadFile(e.to_string()))?;
        let record = ServerRegistration::<Suite>::deserialize(&decode(&self.record, "record")?)
            .map_err(|e| AuthError::BadFile(e.to_string()))?;
        Ok((setup, record))
    }
}

/// Client side, between KE1 and KE3.
pub struct ClientAuth {
    state: ClientLogin<Suite>,
}

impl ClientAuth {
    /// Starts a login; returns the state and KE1 (base64).
    pub fn start(password: &str) -> Result<(Self, String), AuthError> {
        let start = ClientLogin::<Suite>::start(&mut OsRng, password.as_bytes())
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        Ok((Self { state: start.state }, B64.encode(start.message.serialize())))
    }

    /// Opens the server's KE2; returns KE3 (base64) and the session key.
    /// [`AuthError::WrongPassword`] when the password does not match.
    pub fn finish(self, password: &str, pcid: &str, ke2: &str) -> Result<(String, SessionKey), AuthError> {
        let msg = decode_ke2(ke2)?;
        let ctx = context(pcid);
        let params = ClientLoginFinishParameters::new(Some(&ctx), Default::default(), None);
        let fin =
            self.state.finish(&mut OsRng, password.as_bytes(), msg, params).map_err(|_| AuthError::WrongPassword)?;
        Ok((B64.encode(fin.message.serialize()), SessionKey(fin.session_key.to_vec())))
    }
}

/// Decodes one login message (base64) with `de`, which must use every byte:
/// opaque-ke reads a message from the front of its input and ignores the rest,
/// and a message with bytes after it is refused here (found by fuzzing).
fn decode_exact<T, E: std::fmt::Display>(
    s: &str,
    what: &str,
    de: impl Fn(&[u8]) -> Result<T, E>,
    len: impl Fn(&T) -> usize,
) -> Result<T, AuthError> {
    let bytes = decode(s, what)?;
    let msg = de(&bytes).map_err(|e| AuthError::Malformed(format!("{what}: {e}")))?;
    if len(&msg) != bytes.len() {
        return Err(AuthError::Malformed(format!("{what}: {} bytes after the message", bytes.len() - len(&msg))));
    }
    Ok(msg)
}

fn decode_ke1(ke1: &str) -> Result<CredentialRequest<Suite>, AuthError> {
    decode_exact(ke1, "ke1", CredentialRequest::<Suite>::deserialize, |m| m.serialize().len())
}

/// KE2 as the client reads it, before any password work (which runs the KSF).
fn decode_ke2(ke2: &str) -> Result<CredentialResponse<Suite>, AuthError> {
    decode_exact(ke2, "ke2", CredentialResponse::<Suite>::deserialize, |m| m.serialize().len())
}

fn decode_ke3(ke3: &str) -> Result<CredentialFinalization<Suite>, AuthError> {
    decode_exact(ke3, "ke3", CredentialFinalization::<Suite>::deserialize, |m| m.serialize().len())
}

/// Entry points for the fuzz targets (`fuzz/`): the decoding steps that the
/// public API only reaches after expensive work. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes a KE2 (base64) as [`super::ClientAuth::finish`] does, without
    /// running the key-stretching function.
    pub fn client_decode_ke2(ke2: &str) -> Result<(), super::AuthError> {
        super::decode_ke2(ke2).map(drop)
    }
}

/// Server side, between KE2 and KE3.
pub struct ServerAuth {
    state: ServerLogin<Suite>,
    pcid: String,
}

impl ServerAuth {
    /// Answers KE1 with KE2 (base64).
    pub fn start(file: &PasswordFile, pcid: &str, ke1: &str) -> Result<(Self, String), AuthError> {
        let (setup, record) = file.parts()?;
        let req = decode_ke1(ke1)?;
        let ctx = context(pcid);
        let params = ServerLoginParameters { context: Some(&ctx), identifiers: Default::default() };
        let start = ServerLogin::start(&mut OsRng, &setup, Some(record), req, CREDENTIAL_ID, params)
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        Ok((Self { state: start.state, pcid: pcid.to_string() }, B64.encode(start.message.serialize())))
    }

    /// Checks KE3; returns the session key, or [`AuthError::WrongPassword`].
    pub fn finish(self, ke3: &str) -> Result<SessionKey, AuthError> {
        let msg = decode_ke3(ke3)?;
        let ctx = context(&self.pcid);
        let params = ServerLoginParameters { context: Some(&ctx), identifiers: Default::default() };
        let fin = self.state.finish(msg, params).map_err(|_| AuthError::WrongPassword)?;
        Ok(SessionKey(fin.session_key.to_vec()))
    }
}

/// The key both ends share after a successful login.
pub struct SessionKey(Vec<u8>);

/// 32 bytes of key material that are wiped when dropped.
pub type KeyBytes = zeroize::Zeroizing<[u8; 32]>;

struct Len32;

impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl SessionKey {
    /// Derives a 32-byte key for `label` from this key and `transcript` (a hash
    /// of everything the login exchanged), with HKDF-SHA256: a key for one
    /// purpose and one login, bound to what both ends saw.
    pub fn expand(&self, transcript: &[u8], label: &str) -> KeyBytes {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, transcript).extract(&self.0);
        let info = [label.as_bytes()];
        let okm = prk.expand(&info, Len32).expect("32 bytes is a valid HKDF-SHA256 length");
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        okm.fill(&mut out[..]).expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    /// MAC (hex) of a label under this key.
    pub fn confirm(&self, label: &str) -> String {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hex::encode(hmac::sign(&k, label.as_bytes()).as_ref())
    }

    /// Checks a MAC in constant time.
    pub fn verify(&self, label: &str, mac_hex: &str) -> bool {
        let Ok(mac) = hex::decode(mac_hex) else { return false };
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hmac::verify(&k, label.as_bytes(), &mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_right_and_wrong() {
        let file = PasswordFile::create("correct horse").unwrap();
        let file: PasswordFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        let (c, ke1) = ClientAuth::start("correct horse").unwrap();
        let (s, ke2) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        let (ke3, ck) = c.finish("correct horse", "desk", &ke2).unwrap();
        let sk = s.finish(&ke3).unwrap();
        assert!(ck.verify("ready", &sk.confirm("ready")));
        assert!(!ck.verify("ready", &sk.confirm("other")));
        assert_eq!(*ck.expand(b"t", "c2s"), *sk.expand(b"t", "c2s"));
        assert_ne!(*ck.expand(b"t", "c2s"), *sk.expand(b"t", "s2c"));
        assert_ne!(*ck.expand(b"t", "c2s"), *sk.expand(b"u", "c2s"));

        let (c, ke1) = ClientAuth::start("wrong").unwrap();
        let (_s, ke2) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        assert!(matches!(c.finish("wrong", "desk", &ke2), Err(AuthError::WrongPassword)));
        // A different PCID context fails too (binds the login to the computer ID).
        let (c, ke1) = ClientAuth::start("correct horse").unwrap();
        let (_s, ke2) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        assert!(c.finish("correct horse", "other", &ke2).is_err());
    }

    fn with_trailing_byte(msg: &str) -> String {
        let mut b = B64.decode(msg).unwrap();
        b.push(0);
        B64.encode(b)
    }

    /// Found by fuzzing (fuzz target `auth`): opaque-ke ignores bytes after a
    /// message, so a KE3 with a byte appended logged in, and a 65-byte KE3
    /// counted as a wrong password instead of a malformed message.
    #[test]
    fn login_messages_with_bytes_after_them_are_malformed() {
        let file = PasswordFile::create("pw").unwrap();
        let (c, ke1) = ClientAuth::start("pw").unwrap();
        assert!(matches!(ServerAuth::start(&file, "desk", &with_trailing_byte(&ke1)), Err(AuthError::Malformed(_))));
        let (s, ke2) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        assert!(matches!(fuzzing::client_decode_ke2(&with_trailing_byte(&ke2)), Err(AuthError::Malformed(_))));
        let (ke3, _) = c.finish("pw", "desk", &ke2).unwrap();
        assert!(matches!(s.finish(&with_trailing_byte(&ke3)), Err(AuthError::Malformed(_))));
        // The fuzzer's input: 65 bytes as a KE3.
        let (_, ke1) = ClientAuth::start("pw").unwrap();
        let (s, _) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        let crash = "XsgJW4Kqas/SNS6T1Oi5H3xcQ86kYrXD1M3CCG+CY2beb2M3YTljZTc3MGRhMzdhYTVjNWI1N2IyYjI1ODXHFAY=";
        assert!(matches!(s.finish(crash), Err(AuthError::Malformed(_))));
    }
}
