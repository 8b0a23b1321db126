//! The office PC's side of OTP mail: a tunnel task asks through a [`Mailer`];
//! the control session sends `OtpMail` to the gateway and routes the answer
//! (`OtpMailed`) back to the waiting task by request id ([`InFlight`]).

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use thin_protocol::messages::ServerToGate;
use thin_protocol::secret::Secret;
use tokio::sync::{mpsc, oneshot};

/// Has a one-time password mailed; `Err` says why it was not.
pub trait OtpSender: Send + Sync {
    /// Mails `code` (valid for `valid`) to `to`.
    fn send<'a>(&'a self, to: &'a str, code: &'a Secret, valid: Duration) -> BoxFuture<'a, Result<(), String>>;
}

/// One request from a tunnel task to the control session.
pub struct MailRequest {
    to: String,
    code: Secret,
    valid_s: u64,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Hands mail requests to whichever control session is up.
#[derive(Clone, Debug)]
pub struct Mailer {
    tx: mpsc::Sender<MailRequest>,
}

impl Mailer {
    /// A mailer and the receiving end the control sessions read.
    pub fn channel() -> (Mailer, mpsc::Receiver<MailRequest>) {
        let (tx, rx) = mpsc::channel(32);
        (Mailer { tx }, rx)
    }
}

impl OtpSender for Mailer {
    fn send<'a>(&'a self, to: &'a str, code: &'a Secret, valid: Duration) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let req = MailRequest { to: to.to_string(), code: code.clone(), valid_s: valid.as_secs(), reply };
            self.tx.send(req).await.map_err(|_| "the office PC app is shutting down".to_string())?;
            answer
                .await
                .map_err(|_| "the office PC lost its connection to the gateway before the mail was sent".to_string())?
        })
    }
}

/// Mail requests sent on one control session and not answered yet. Dropping
/// it (the session ended) fails every waiting request.
#[derive(Default)]
pub struct InFlight {
    next: u64,
    waiting: HashMap<u64, oneshot::Sender<Result<(), String>>>,
}

impl InFlight {
    /// The `OtpMail` frame for `req`, or `None` when its requester gave up.
    pub fn start(&mut self, req: MailRequest, system: &str) -> Option<ServerToGate> {
        if req.reply.is_closed() {
            return None;
        }
        self.next += 1;
        self.waiting.insert(self.next, req.reply);
        Some(ServerToGate::OtpMail {
            request_id: self.next,
            to: req.to,
            code: req.code,
            system: system.to_string(),
            valid_s: req.valid_s,
        })
    }

    /// Delivers the gateway's answer.
    pub fn finish(&mut self, request_id: u64, error: Option<String>) {
        if let Some(reply) = self.waiting.remove(&request_id) {
            let _ = reply.send(error.map_or(Ok(()), Err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_requester_and_a_lost_session_fails_the_rest() {
        let (mailer, mut rx) = Mailer::channel();
        let code = Secret::new("123456");
        let mut inflight = InFlight::default();
        let m2 = mailer.clone();
        let c2 = code.clone();
        let a = tokio::spawn(async move { m2.send("a@example.org", &c2, Duration::from_secs(300)).await });
        let m3 = mailer.clone();
        let c3 = code.clone();
        let b = tokio::spawn(async move { m3.send("b@example.org", &c3, Duration::from_secs(300)).await });
        let mut ids = Vec::new();
        for _ in 0..2 {
            match inflight.start(rx.recv().await.unwrap(), "Sys").unwrap() {
                ServerToGate::OtpMail { request_id, to, valid_s, code, system } => {
                    assert_eq!((valid_s, code.expose(), system.as_str()), (300, "123456", "Sys"));
                    ids.push((request_id, to));
                }
                other => panic!("{other:?}"),
            }
        }
        let (id_a, _) = ids.iter().find(|(_, to)| to == "a@example.org").unwrap();
        inflight.finish(*id_a, Some("no SMTP".into()));
        assert_eq!(a.await.unwrap(), Err("no SMTP".into()));
        drop(inflight);
        assert!(b.await.unwrap().unwrap_err().contains("lost its connection to the gateway"));
    }
}
