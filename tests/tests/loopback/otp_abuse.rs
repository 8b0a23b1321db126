//! What a stranger with a registered key can make the gateway mail: nothing
//! unless a client is logging in to that computer, one mail per client tunnel,
//! within hourly budgets that reconnecting does not reset, only to allowed
//! domains, and always in the gateway's own words.

use std::time::Duration;

use thin_e2e::raw::{self, RawServer};
use thin_e2e::smtp::{SmtpServer, SmtpTls};
use thin_e2e::*;
use thin_protocol::identity::Identity;
use thin_protocol::messages::GateToServer;

use crate::otp::smtp_ini;

async fn smtp_and_gateway(extra: &str) -> (SmtpServer, TestGateway) {
    let pki = Pki::new();
    let smtp = SmtpServer::start(SmtpTls::None, &pki.cert_pem, &pki.key_pem, None);
    let gw = TestGateway::with_ini(&smtp_ini(smtp.port, 0, extra)).await;
    (smtp, gw)
}

/// A control session of `id` serving `pcid` (registered on first use).
async fn serving(gw: &TestGateway, id: &Identity, pcid: &str) -> RawServer {
    let id = Identity::from_pem(&id.to_pem()).unwrap();
    let mut pc = RawServer::login(gw.addr, gw.ca(), id).await;
    if pc.pcid.is_none() {
        assert!(matches!(pc.register(pcid, None).await, GateToServer::Registered { .. }));
    }
    assert!(matches!(pc.serve().await, GateToServer::Serving { .. }));
    pc
}

/// A client starts connecting to the computer of `pc`; returns once the
/// gateway told `pc` (the client then waits for the data connection).
async fn client_logging_in(gw: &TestGateway, pc: &mut RawServer, pcid: &str) -> raw::Tls {
    let client = raw::client_connect(gw.addr, gw.ca(), pcid).await;
    assert!(matches!(pc.recv().await, GateToServer::Incoming { .. }));
    client
}

/// Waits until the SMTP server holds `n` mails; returns them.
async fn mails(smtp: &SmtpServer, n: usize) -> Vec<String> {
    wait_for("the mails", Duration::from_secs(10), || {
        let m = smtp.mails();
        async move { (m.len() >= n).then_some(m) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_goes_out_only_for_a_client_logging_in_once_per_tunnel_to_allowed_domains() {
    let (smtp, gw) = smtp_and_gateway("SmtpAllowedDomains example.org, example.com\n").await;
    let id = Identity::generate();
    let mut pc = serving(&gw, &id, "mailer").await;
    let e = pc.otp_mail(1, "alice@example.org", "Acme").await.unwrap();
    assert!(e.starts_with("no client is logging in to this computer now"), "{e}");

    let _client = client_logging_in(&gw, &mut pc, "mailer").await;
    let e = pc.otp_mail(2, "victim@elsewhere.example", "Acme").await.unwrap();
    assert!(e.contains("only to addresses at example.org, example.com (SmtpAllowedDomains)"), "{e}");
    let lure = "URGENT: your account is locked, log in at http://evil.example";
    assert_eq!(pc.otp_mail(3, "alice@example.org", lure).await, None, "sent");
    let e = pc.otp_mail(4, "alice@example.org", "Acme").await.unwrap();
    assert!(e.starts_with("no client is logging in"), "one mail per client tunnel: {e}");

    let mail = mails(&smtp, 1).await.pop().unwrap();
    assert!(mail.contains("Subject: Test System: one-time password for mailer"), "the gateway's subject:\n{mail}");
    assert!(!mail.contains("evil.example") && !mail.contains("URGENT"), "the office PC's text is not mailed:\n{mail}");
    // A second client tunnel allows a second mail.
    let _second = client_logging_in(&gw, &mut pc, "mailer").await;
    assert_eq!(pc.otp_mail(5, "alice@example.org", "Acme").await, None);
    assert_eq!(mails(&smtp, 2).await.len(), 2);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_in_a_loop_does_not_reset_the_mail_budgets() {
    let (smtp, gw) = smtp_and_gateway("SmtpMaxMailsPerMachine 3\nSmtpMaxMailsTotal 5\n").await;
    let (one, two) = (Identity::generate(), Identity::generate());
    let mut refusals = Vec::new();
    let mut sent = 0;
    // Each round: a new control connection, a client logging in, one mail asked for.
    for (id, pcid, rounds) in [(&one, "spam-1", 8), (&two, "spam-2", 4)] {
        for round in 0..rounds {
            let mut pc = serving(&gw, id, pcid).await;
            let _client = client_logging_in(&gw, &mut pc, pcid).await;
            match pc.otp_mail(round, "alice@example.org", "x").await {
                None => sent += 1,
                Some(e) => refusals.push((pcid, e)),
            }
        }
    }
    assert_eq!(sent, 5, "3 for the first machine, 2 more until the total of 5: {refusals:?}");
    let by = |pcid: &str, key: &str| refusals.iter().filter(|(p, e)| *p == pcid && e.contains(key)).count();
    assert_eq!(by("spam-1", "(SmtpMaxMailsPerMachine)"), 5, "{refusals:?}");
    assert_eq!(by("spam-2", "(SmtpMaxMailsTotal)"), 2, "{refusals:?}");
    // Each OtpMailed came after the mail server took its mail: none is on its way.
    assert_eq!(smtp.mails().len(), 5);
    gw.shutdown().await;
}
