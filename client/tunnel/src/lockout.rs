//! Failed-login lockout on the office PC: after `attempts` logins in a row that
//! did not succeed, refuse every login for `duration`.
//!
//! An attempt is counted before the server answers the client's first message
//! ([`Attempt::count`]), since that answer is what lets the client test one
//! password; a success takes the count back to zero. At most [`IN_FLIGHT`]
//! logins run at once, so parallel attempts cannot outrun the count. The
//! state is kept in a file (written atomically on every change), so a restart
//! of the service does not reset it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::warn;

/// Logins that may run at once on one office PC.
pub const IN_FLIGHT: usize = 2;

/// Why a login may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Locked: seconds left.
    Locked(u64),
    /// [`IN_FLIGHT`] logins are running already.
    Busy,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    /// Attempts since the last success or the end of the last lock.
    failures: u32,
    /// End of the lock, in seconds since the Unix epoch.
    locked_until: Option<u64>,
}

/// Lockout state shared by every tunnel of a server.
#[derive(Debug)]
pub struct Lockout {
    attempts: u32,
    duration: Duration,
    state: Mutex<State>,
    file: Option<PathBuf>,
    slots: Semaphore,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Lockout {
    /// `attempts` failures lock for `duration`; kept in memory only.
    pub fn new(attempts: u32, duration: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            duration,
            state: Mutex::new(State::default()),
            file: None,
            slots: Semaphore::new(IN_FLIGHT),
        }
    }

    /// Like [`Lockout::new`], kept in `file` across restarts. A file that
    /// cannot be read as a lockout state (damaged, or written by someone
    /// else) locks for `duration`: failing closed is the safe side.
    pub fn persistent(attempts: u32, duration: Duration, file: PathBuf) -> Self {
        let mut me = Self::new(attempts, duration);
        let read = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| format!("not a lockout state ({e})")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e.to_string()),
        };
        let state = read.unwrap_or_else(|why| {
            warn!("{}: {why}; logins are locked for {} s", file.display(), duration.as_secs());
            State { failures: me.attempts, locked_until: Some(now() + duration.as_secs()) }
        });
        me.state = Mutex::new(state);
        me.file = Some(file);
        me
    }

    fn locked(&self, st: &mut State) -> Result<(), u64> {
        if let Some(until) = st.locked_until {
            let now = now();
            if now < until {
                return Err((until - now).max(1));
            }
            *st = State::default();
        }
        Ok(())
    }

    fn save(&self, st: &State) {
        if let Some(file) = &self.file {
            let text = serde_json::to_vec(st).expect("lockout state serializes");
            if let Err(e) = crate::settings::write_secret(file, &text) {
                warn!("cannot keep the lockout state: {e}");
            }
        }
    }

    /// `Err(seconds left)` while locked.
    pub fn check(&self) -> Result<(), u64> {
        self.locked(&mut self.state.lock().expect("lockout lock"))
    }

    /// Starts a login: refused while locked or while [`IN_FLIGHT`] logins run.
    pub fn begin(&self) -> Result<Attempt<'_>, Refusal> {
        self.check().map_err(Refusal::Locked)?;
        let permit = self.slots.try_acquire().map_err(|_| Refusal::Busy)?;
        Ok(Attempt { lockout: self, _permit: permit })
    }

    /// Failures counted since the last success (for tests and status).
    pub fn failures(&self) -> u32 {
        self.state.lock().expect("lockout lock").failures
    }
}

/// One login between KE1 and its end; holds one of the [`IN_FLIGHT`] slots.
#[derive(Debug)]
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    _permit: SemaphorePermit<'a>,
}

impl Attempt<'_> {
    /// Counts this attempt as a failure until it succeeds; `Err(seconds
    /// left)` when the computer is locked and the attempt must stop. The
    /// attempt that uses up the count locks the computer, and may still
    /// succeed (which unlocks it).
    pub fn count(&self) -> Result<(), u64> {
        let l = self.lockout;
        let mut st = l.state.lock().expect("lockout lock");
        l.locked(&mut st)?;
        st.failures += 1;
        if st.failures >= l.attempts {
            st.locked_until = Some(now() + l.duration.as_secs().max(1));
        }
        l.save(&st);
        Ok(())
    }

    /// The login succeeded: the count goes back to zero.
    pub fn succeeded(self) {
        let l = self.lockout;
        let mut st = l.state.lock().expect("lockout lock");
        *st = State::default();
        l.save(&st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_attempts_and_a_success_clears_the_count() {
        let l = Lockout::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.begin().unwrap().count().unwrap();
        }
        assert!(l.check().is_ok());
        let third = l.begin().unwrap();
        third.count().unwrap();
        assert!(l.check().is_err(), "the third attempt locked");
        assert!(matches!(l.begin(), Err(Refusal::Locked(s)) if s > 50));
        // The attempt that locked may still be the right password.
        third.succeeded();
        assert!(l.check().is_ok());
        assert_eq!(l.failures(), 0);
    }

    #[test]
    fn at_most_two_logins_run_at_once() {
        let l = Lockout::new(5, Duration::from_secs(60));
        let a = l.begin().unwrap();
        let b = l.begin().unwrap();
        assert_eq!(l.begin().unwrap_err(), Refusal::Busy);
        drop(a);
        let _c = l.begin().unwrap();
        drop(b);
    }

    #[test]
    fn a_lock_ends_after_its_duration() {
        let l = Lockout::new(1, Duration::from_secs(1));
        l.begin().unwrap().count().unwrap();
        assert!(l.check().is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while l.check().is_err() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(l.failures(), 0);
    }

    #[test]
    fn the_state_survives_a_restart_and_a_damaged_file_locks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lockout.json");
        let l = Lockout::persistent(3, Duration::from_secs(60), file.clone());
        l.begin().unwrap().count().unwrap();
        l.begin().unwrap().count().unwrap();
        drop(l);
        let l = Lockout::persistent(3, Duration::from_secs(60), file.clone());
        assert_eq!(l.failures(), 2);
        l.begin().unwrap().count().unwrap();
        drop(l);
        let l = Lockout::persistent(3, Duration::from_secs(60), file.clone());
        assert!(matches!(l.begin(), Err(Refusal::Locked(_))), "still locked after a restart");
        #[cfg(unix)]
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o777,
            0o600
        );

        std::fs::write(&file, b"{ not json").unwrap();
        let l = Lockout::persistent(3, Duration::from_secs(60), file);
        assert!(l.check().is_err(), "a damaged state file fails closed");
    }
}
