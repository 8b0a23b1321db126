//! Tunnels waiting to be paired: a client's connection waits here, under a
//! one-time id, until the office PC's data connection attaches to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use tokio::sync::oneshot;

/// Waiting tunnels; `T` is what the attaching side hands over (its stream).
#[derive(Debug)]
pub struct Pairing<T> {
    pending: Mutex<HashMap<String, oneshot::Sender<T>>>,
}

impl<T> Default for Pairing<T> {
    fn default() -> Self {
        Self { pending: Mutex::new(HashMap::new()) }
    }
}

impl<T> Pairing<T> {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<T>>> {
        self.pending.lock().expect("pending lock")
    }

    /// Opens a wait under a fresh random id (128 bits, hex); it ends when
    /// the [`Waiting`] is dropped.
    pub fn expect(self: &Arc<Self>) -> Waiting<T> {
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id.clone(), tx);
        Waiting { id, rx, pairing: self.clone() }
    }

    /// Hands `end` to the wait with this id; gives it back when nobody waits.
    /// A wait that gave up just now drops `end`.
    pub fn attach(&self, id: &str, end: T) -> Result<(), T> {
        let tx = self.pending().remove(id);
        match tx {
            Some(tx) => {
                let _ = tx.send(end);
                Ok(())
            }
            None => Err(end),
        }
    }

    /// Number of open waits.
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending().is_empty()
    }
}

/// One open wait; dropping it withdraws the id.
#[derive(Debug)]
pub struct Waiting<T> {
    id: String,
    rx: oneshot::Receiver<T>,
    pairing: Arc<Pairing<T>>,
}

impl<T> Waiting<T> {
    /// The one-time id to send to the office PC.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The attached end, or `None` when nothing attached within `wait`.
    pub async fn within(mut self, wait: Duration) -> Option<T> {
        tokio::time::timeout(wait, &mut self.rx).await.ok()?.ok()
    }
}

impl<T> Drop for Waiting<T> {
    fn drop(&mut self) {
        self.pairing.pending().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pairs_once_and_withdraws_on_drop_or_timeout() {
        let p = Arc::new(Pairing::<u32>::default());
        let w = p.expect();
        let id = w.id().to_string();
        assert_eq!((id.len(), p.len()), (32, 1));
        assert_eq!(p.attach(&id, 7), Ok(()));
        assert_eq!(p.attach(&id, 8), Err(8), "an id pairs once");
        assert_eq!(w.within(Duration::from_secs(1)).await, Some(7));
        let w = p.expect();
        let id = w.id().to_string();
        assert_eq!(w.within(Duration::from_secs(1)).await, None);
        assert!(p.is_empty() && p.attach(&id, 9) == Err(9), "a timed-out wait is withdrawn");
        drop(p.expect());
        assert!(p.is_empty());
    }
}
