//! The office PC's long-term identity: an Ed25519 key pair whose public key
//! names the machine (the MSID). Registration and every server session prove
//! possession of the private key by signing a fresh gateway challenge.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

/// Errors with identities.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file is not a PEM PKCS#8 Ed25519 key.
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    BadKey(String),
    /// A hex field did not decode.
    #[error("bad hex in {0}")]
    BadHex(&'static str),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// The office PC's key pair.
pub struct Identity {
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("msid", &self.msid()).finish_non_exhaustive()
    }
}

impl Identity {
    /// Makes a new random key pair.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("system RNG works").as_ref().to_vec();
        Self::from_pkcs8(&pkcs8).expect("fresh key parses")
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| IdentityError::BadKey(e.to_string()))?;
        Ok(Self { pkcs8: der.to_vec(), pair })
    }

    /// Loads a key from PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| IdentityError::BadKey(e.to_string()))?;
        Self::from_pkcs8(&der)
    }

    /// The key as PEM, for a file of mode 0600.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.pkcs8);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out
    }

    /// Public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The machine's MSID.
    pub fn msid(&self) -> String {
        msid_for(self.pair.public_key().as_ref())
    }

    /// Signs a gateway challenge; returns hex.
    pub fn sign_challenge(&self, nonce_hex: &str) -> Result<String, IdentityError> {
        let nonce = hex::decode(nonce_hex).map_err(|_| IdentityError::BadHex("nonce"))?;
        let msg = challenge_message(&nonce, self.pair.public_key().as_ref());
        Ok(hex::encode(self.pair.sign(&msg).as_ref()))
    }
}

/// Hash of a public key as 40 upper-case hex digits (the `CertHash` field).
pub fn key_hash(public_key: &[u8]) -> String {
    hex::encode_upper(&Sha256::digest(public_key)[..20])
}

/// MSID of a public key: `MSID-DESK-` and its [`key_hash`].
pub fn msid_for(public_key: &[u8]) -> String {
    format!("MSID-DESK-{}", key_hash(public_key))
}

/// The bytes that a server signs to answer a challenge.
pub fn challenge_message(nonce: &[u8], public_key: &[u8]) -> Vec<u8> {
    let mut m = b"thintelework server login v1\0".to_vec();
    m.extend_from_slice(nonce);
    m.extend_from_slice(public_key);
    m
}

/// Verifies a challenge signature; returns the MSID on success.
pub fn verify_challenge(public_key_hex: &str, nonce: &[u8], signature_hex: &str) -> Result<String, IdentityError> {
    let pk = hex::decode(public_key_hex).map_err(|_| IdentityError::BadHex("public_key"))?;
    if pk.len() != 32 {
        return Err(IdentityError::BadHex("public_key"));
    }
    let sig = hex::decode(signature_hex).map_err(|_| IdentityError::BadHex("signature"))?;
    UnparsedPublicKey::new(&ED25519, &pk)
        .verify(&challenge_message(nonce, &pk), &sig)
        .map_err(|_| IdentityError::BadSignature)?;
    Ok(msid_for(&pk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_pem_round_trip() {
        let id = Identity::generate();
        let again = Identity::from_pem(&id.to_pem()).unwrap();
        assert_eq!(id.msid(), again.msid());
        assert!(id.msid().starts_with("MSID-DESK-") && id.msid().len() == 50);
        let nonce = [7u8; 32];
        let sig = id.sign_challenge(&hex::encode(nonce)).unwrap();
        assert_eq!(verify_challenge(&id.public_key_hex(), &nonce, &sig).unwrap(), id.msid());
        assert!(verify_challenge(&id.public_key_hex(), &[8u8; 32], &sig).is_err());
        let other = Identity::generate();
        assert!(verify_challenge(&other.public_key_hex(), &nonce, &sig).is_err());
    }
}
