//! Computer-ID (PCID) rules of the original: `[A-Za-z0-9_-]`, 1 to 31 characters,
//! case-insensitive, stored in lower case.

/// Longest PCID accepted.
pub const MAX_PCID_LEN: usize = 31;

/// Why a PCID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcidError {
    /// Empty string.
    #[error("the computer ID is empty")]
    Empty,
    /// Longer than [`MAX_PCID_LEN`].
    #[error("the computer ID has {0} characters; at most 31 are allowed")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("the computer ID contains {0:?}; use only letters A-Z, digits, '-' and '_'")]
    BadChar(char),
}

/// Validates `pcid` and returns it in lower case.
pub fn normalize(pcid: &str) -> Result<String, PcidError> {
    if pcid.is_empty() {
        return Err(PcidError::Empty);
    }
    if let Some(c) = pcid.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(PcidError::BadChar(c));
    }
    if pcid.len() > MAX_PCID_LEN {
        return Err(PcidError::TooLong(pcid.len()));
    }
    Ok(pcid.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(normalize("Desk-01_A").unwrap(), "desk-01_a");
        assert_eq!(normalize(""), Err(PcidError::Empty));
        assert_eq!(normalize(&"a".repeat(31)).unwrap().len(), 31);
        assert_eq!(normalize(&"a".repeat(32)), Err(PcidError::TooLong(32)));
        assert_eq!(normalize("a b"), Err(PcidError::BadChar(' ')));
        assert_eq!(normalize("日本"), Err(PcidError::BadChar('日')));
    }
}
