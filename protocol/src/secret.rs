//! A string that never shows itself in `Debug` or logs.

use zeroize::Zeroize;

/// A secret (password, OTP, proxy credential). `Debug` prints `MASKED`; the
/// memory is wiped on drop. Serialized as the plain string, for the one message
/// that must carry it (e.g. an OTP to its mail server or its checker).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MASKED")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_masked_and_serde_is_the_plain_string() {
        let s = Secret::new("123456");
        assert_eq!(format!("{s:?}"), "MASKED");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"123456\"");
        let back: Secret = serde_json::from_str("\"654321\"").unwrap();
        assert_eq!(back.expose(), "654321");
    }
}
