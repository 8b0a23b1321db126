//! What a new office-PC password must be: at least [`MIN_CHARS`] characters
//! and a strength estimate (zxcvbn) of at least [`MIN_SCORE`] of 4, about
//! 10^10 guesses. The window, the command line and the admin port all call
//! [`check`], so the rule and its message are the same everywhere.

use serde::{Deserialize, Serialize};

/// Fewest characters of a new password.
pub const MIN_CHARS: usize = 10;
/// Lowest zxcvbn score (0-4) of a new password.
pub const MIN_SCORE: u8 = 3;

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than [`MIN_CHARS`] characters.
    #[error("the password has {chars} characters; it needs at least {min}", min = MIN_CHARS)]
    TooShort {
        /// Characters typed.
        chars: usize,
    },
    /// Long enough, but easy to guess.
    #[error("the password is too easy to guess{}; use a longer phrase of unrelated words", hint_text(.hint))]
    Guessable {
        /// zxcvbn's score, 0-4.
        score: u8,
        /// zxcvbn's warning, when it has one (English).
        hint: Option<String>,
    },
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_deref().map(|h| format!(" ({})", h.trim_end_matches('.').to_lowercase())).unwrap_or_default()
}

/// Checks a new password; `context` holds words an attacker knows (the
/// computer ID, the brand's name), which do not count as strength.
pub fn check(password: &str, context: &[&str]) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(WeakPassword::TooShort { chars });
    }
    let estimate = zxcvbn::zxcvbn(password, context);
    let score = u8::from(estimate.score());
    if score < MIN_SCORE {
        let hint = estimate.feedback().and_then(|f| f.warning()).map(|w| w.to_string());
        return Err(WeakPassword::Guessable { score, hint });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_contextual_passwords_are_refused_with_a_reason() {
        assert_eq!(check("Pw-123", &[]), Err(WeakPassword::TooShort { chars: 6 }));
        assert_eq!(check("パスワード", &[]), Err(WeakPassword::TooShort { chars: 5 }));
        for weak in ["password123", "qwertyuiop", "aaaaaaaaaaaa", "1234567890"] {
            let e = check(weak, &[]).unwrap_err();
            assert!(matches!(e, WeakPassword::Guessable { score, .. } if score < MIN_SCORE), "{weak}: {e:?}");
            assert!(e.to_string().starts_with("the password is too easy to guess"), "{e}");
        }
        // The computer ID does not make a password strong.
        assert!(check("taro-desk-2024", &["taro-desk"]).is_err());
        let e = check("password123", &[]).unwrap_err().to_string();
        assert!(e.contains("(this is"), "the reason is given: {e}");
    }

    #[test]
    fn long_unrelated_phrases_pass() {
        // Including every password the tests and the demo set.
        for strong in [
            "correct horse battery staple",
            "Kumo-ni-noru 7 hikouki",
            "open sesame, kind tortoise",
            "otp cli copper lantern",
            "bench copper lantern river",
            "wine e2e copper lantern",
            "demo tram violet ledger",
            "pw-from-the-window",
            "first tram violet ledger",
            "second copper lantern river",
            "window copper lantern",
            "new tram violet ledger",
        ] {
            assert_eq!(check(strong, &["desk-01"]), Ok(()), "{strong}");
        }
    }
}
