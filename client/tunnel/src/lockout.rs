//! Failed-login lockout on the office PC: after `attempts` failures in a row,
//! refuse every login for `duration`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lockout state shared by every tunnel of a server.
#[derive(Debug)]
pub struct Lockout {
    attempts: u32,
    duration: Duration,
    state: Mutex<(u32, Option<Instant>)>,
}

impl Lockout {
    /// `attempts` failures lock for `duration`.
    pub fn new(attempts: u32, duration: Duration) -> Self {
        Self { attempts: attempts.max(1), duration, state: Mutex::new((0, None)) }
    }

    /// `Err(seconds left)` while locked.
    pub fn check(&self) -> Result<(), u64> {
        let mut st = self.state.lock().expect("lockout lock");
        if let Some(until) = st.1 {
            let now = Instant::now();
            if now < until {
                return Err((until - now).as_secs().max(1));
            }
            *st = (0, None);
        }
        Ok(())
    }

    /// Counts a failure; returns true when this failure locked the account.
    pub fn failed(&self) -> bool {
        let mut st = self.state.lock().expect("lockout lock");
        st.0 += 1;
        if st.0 >= self.attempts {
            st.1 = Some(Instant::now() + self.duration);
            return true;
        }
        false
    }

    /// A success clears the count.
    pub fn succeeded(&self) {
        *self.state.lock().expect("lockout lock") = (0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_attempts_and_unlocks() {
        let l = Lockout::new(3, Duration::from_millis(50));
        assert!(!l.failed());
        assert!(!l.failed());
        assert!(l.check().is_ok());
        assert!(l.failed());
        assert!(l.check().is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        while l.check().is_err() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        l.failed();
        l.succeeded();
        assert!(!l.failed());
    }
}
