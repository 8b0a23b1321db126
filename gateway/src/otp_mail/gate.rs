//! [`MailGate`]: when an office PC may have a one-time password mailed.
//!
//! A mail goes out only for a client that is connecting to that computer: each
//! client tunnel opens one [`MailTicket`] for its computer ID, good for one
//! mail within [`LOGIN_WINDOW`] while the tunnel lives. On top, every machine
//! (by MSID, so reconnecting or renaming does not reset it) and the gateway
//! as a whole have an hourly budget, and `SmtpAllowedDomains` restricts the
//! recipients. Together they keep the gateway from being a mail relay for
//! anyone who can register a key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::SmtpSettings;
use crate::rate::{Rate, Throttle, Throttled};

/// How long after a client started connecting its tunnel may still have a
/// mail sent (the office PC asks right after the password step).
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Why a mail is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailDenied {
    /// The recipient's domain is not in `SmtpAllowedDomains`.
    #[error(
        "this gateway mails one-time passwords only to addresses at {allowed} (SmtpAllowedDomains), not at {domain}"
    )]
    Domain {
        /// The recipient's domain.
        domain: String,
        /// The allowed domains, for the message.
        allowed: String,
    },
    /// No client is connecting to this computer, or its tunnel had its mail.
    #[error(
        "no client is logging in to this computer now; a one-time password is mailed only for a client's login, once"
    )]
    NoLogin,
    /// The machine's hourly budget is spent.
    #[error("this computer had {0} one-time password mails within the last hour (SmtpMaxMailsPerMachine); try again in {1} s")]
    Machine(u32, u64),
    /// The gateway's hourly budget is spent.
    #[error(
        "the gateway sent {0} one-time password mails within the last hour (SmtpMaxMailsTotal); try again in {1} s"
    )]
    Total(u32, u64),
}

#[derive(Debug)]
struct Ticket {
    id: u64,
    opened: Instant,
    spent: bool,
}

/// Tickets, budgets and allowed domains of OTP mail.
#[derive(Debug)]
pub struct MailGate {
    budget: Throttle<String>,
    per_machine: u32,
    total: u32,
    allowed: Vec<String>,
    /// Open tickets by computer ID.
    tickets: Mutex<HashMap<String, Vec<Ticket>>>,
    next: AtomicU64,
}

/// A client tunnel's right to one mail; withdrawn on drop.
#[derive(Debug)]
pub struct MailTicket {
    gate: Arc<MailGate>,
    pcid: String,
    id: u64,
}

impl Drop for MailTicket {
    fn drop(&mut self) {
        let mut map = self.gate.tickets.lock().expect("tickets lock");
        if let Some(list) = map.get_mut(&self.pcid) {
            list.retain(|t| t.id != self.id);
            if list.is_empty() {
                map.remove(&self.pcid);
            }
        }
    }
}

impl MailGate {
    /// The gate for these settings.
    pub fn new(smtp: &SmtpSettings) -> Arc<Self> {
        let (per_machine, total) = (smtp.max_mails_per_machine, smtp.max_mails_total);
        Arc::new(Self {
            budget: Throttle::new(Rate::per_hour(per_machine), Rate::per_hour(total)),
            per_machine,
            total,
            allowed: smtp.allowed_domains.clone(),
            tickets: Mutex::default(),
            next: AtomicU64::new(1),
        })
    }

    /// Opens the ticket of a client tunnel to `pcid` (lower case).
    pub fn open_ticket(self: &Arc<Self>, pcid: &str) -> MailTicket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let t = Ticket { id, opened: Instant::now(), spent: false };
        self.tickets.lock().expect("tickets lock").entry(pcid.to_string()).or_default().push(t);
        MailTicket { gate: self.clone(), pcid: pcid.to_string(), id }
    }

    /// Tickets open now (for tests and figures).
    pub fn open_tickets(&self) -> usize {
        self.tickets.lock().expect("tickets lock").values().map(Vec::len).sum()
    }

    /// Decides on one mail of machine `msid`, serving `pcid`, to `to` (a
    /// checked plain address). When allowed, a ticket and one unit of both
    /// budgets are spent; a ticket is spent also when a budget refuses.
    pub fn allow(&self, msid: &str, pcid: &str, to: &str) -> Result<(), MailDenied> {
        if !self.allowed.is_empty() {
            let domain = to.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
            if !self.allowed.contains(&domain) {
                return Err(MailDenied::Domain { domain, allowed: self.allowed.join(", ") });
            }
        }
        self.spend_ticket(pcid)?;
        self.budget.take(&msid.to_string()).map_err(|t| match t {
            Throttled::Key(wait) => MailDenied::Machine(self.per_machine, wait.as_secs()),
            Throttled::Total(wait) => MailDenied::Total(self.total, wait.as_secs()),
        })
    }

    fn spend_ticket(&self, pcid: &str) -> Result<(), MailDenied> {
        let now = Instant::now();
        let mut map = self.tickets.lock().expect("tickets lock");
        let t = map
            .get_mut(pcid)
            .and_then(|list| list.iter_mut().find(|t| !t.spent && now.duration_since(t.opened) < LOGIN_WINDOW))
            .ok_or(MailDenied::NoLogin)?;
        t.spent = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_machine: u32, total: u32, domains: &[&str]) -> Arc<MailGate> {
        let mut s = crate::config::GateConfig::parse("", std::path::Path::new("/x/ThinGate.ini")).unwrap().smtp;
        (s.max_mails_per_machine, s.max_mails_total) = (per_machine, total);
        s.allowed_domains = domains.iter().map(|d| d.to_string()).collect();
        MailGate::new(&s)
    }

    #[tokio::test(start_paused = true)]
    async fn one_mail_per_client_tunnel_within_the_login_window() {
        let g = gate(100, 100, &[]);
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Err(MailDenied::NoLogin), "nobody connecting");
        let t = g.open_ticket("desk");
        assert_eq!(g.allow("M2", "other", "a@example.org"), Err(MailDenied::NoLogin), "a ticket of another PC");
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Ok(()));
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Err(MailDenied::NoLogin), "one per tunnel");
        let (_a, _b) = (g.open_ticket("desk"), g.open_ticket("desk"));
        assert_eq!(g.open_tickets(), 3);
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Ok(()));
        tokio::time::advance(LOGIN_WINDOW).await;
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Err(MailDenied::NoLogin), "the window is over");
        drop(t);
        assert_eq!(g.open_tickets(), 2, "a closed tunnel's ticket is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_per_machine_and_in_total_and_allowed_domains() {
        let g = gate(2, 3, &["example.org"]);
        let tickets: Vec<_> = (0..10).map(|_| g.open_ticket("desk")).collect();
        let denied = g.allow("M1", "desk", "a@evil.example").unwrap_err();
        assert!(matches!(denied, MailDenied::Domain { ref domain, .. } if domain == "evil.example"), "{denied}");
        assert_eq!(g.allow("M1", "desk", "A@Example.ORG"), Ok(()));
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Ok(()));
        assert!(matches!(g.allow("M1", "desk", "a@example.org"), Err(MailDenied::Machine(2, 1800))));
        assert_eq!(g.allow("M2", "desk", "a@example.org"), Ok(()));
        assert!(matches!(g.allow("M3", "desk", "a@example.org"), Err(MailDenied::Total(3, _))));
        tokio::time::advance(Duration::from_secs(1800)).await;
        let _fresh = g.open_ticket("desk");
        assert_eq!(g.allow("M1", "desk", "a@example.org"), Ok(()), "half an hour refills one mail");
        drop(tickets);
    }
}
