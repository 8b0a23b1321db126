//! The gateway bundle's `ThinGate.ini` as the builder renders it: it follows
//! the manual's SMTP example (a plain relay on port 25, `SmtpSslType 0`) with
//! the TLS and AUTH settings commented, and, used as it is (only the ports and
//! paths pointed at the test's), the gateway mails one-time passwords through
//! a plain SMTP relay (aiosmtpd).

use builder::build::compiled::Vars;
use thin_e2e::smtp::{login_with_mailed_code, SmtpServer, SmtpTls};
use thin_e2e::{assert_tunnel_echo, GateDir};

/// `ThinGate.ini` of the embedded default brand, rendered as `builder build` does.
fn shipped_ini() -> (String, Vars) {
    let (brand, _) = builder::manifest::load(&builder::paths::default_brand_dir(), None);
    let vars = Vars::new(&brand, 1);
    (builder::render::render(builder::render::THINGATE_INI, &vars).unwrap(), vars)
}

/// The lines that are not comments.
fn settings(ini: &str) -> Vec<&str> {
    ini.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} is not in the shipped file once:\n{text}");
    text.replacen(from, to, 1)
}

#[test]
fn the_shipped_ini_follows_the_manuals_smtp_example() {
    let (ini, _) = shipped_ini();
    let on = settings(&ini);
    for line in ["SmtpServerPort 25", "SmtpSslType 0"] {
        assert!(on.contains(&line), "{line:?} is not set:\n{ini}");
    }
    for key in ["SmtpServerHostname", "SmtpOtpFrom", "SmtpUsername", "SmtpPassword", "SmtpAuthType", "SmtpCaFile"] {
        assert!(!on.iter().any(|l| l.split_whitespace().next() == Some(key)), "{key} is set:\n{ini}");
        let commented = format!("# {key} ");
        assert!(ini.lines().any(|l| l.starts_with(&commented)), "no commented {key} example:\n{ini}");
    }
    for alternative in ["SmtpSslType\nabove to 2 with SmtpServerPort 587", "to 1 with SmtpServerPort 465"] {
        let flat = ini.replace("\n# ", "\n");
        assert!(flat.contains(alternative), "{alternative:?} is not explained:\n{ini}");
    }
}

#[test]
fn otp_mail_goes_through_a_plain_relay_with_the_shipped_ini() {
    thin_e2e::init_logging();
    let (ini, vars) = shipped_ini();
    let smtp = SmtpServer::start(SmtpTls::None, "", "", None);
    let g = GateDir::new("");
    // Only what must point at this test's ports and folder changes.
    let ini = once(&ini, &format!("ListenPort {}\n", vars.listen_port), "ListenAddress 127.0.0.1\nListenPort 0\n");
    let ini = once(&ini, &format!("DatabaseFile {}/", vars.gate_state_dir), "DatabaseFile ");
    let ini = once(&ini, "# SmtpServerHostname 192.168.3.50\n", "SmtpServerHostname 127.0.0.1\n");
    let ini = once(&ini, "SmtpServerPort 25\n", &format!("SmtpServerPort {}\n", smtp.port));
    let ini = once(&ini, "# SmtpOtpFrom telework@example.org\n", "SmtpOtpFrom telework@example.org\n");
    std::fs::write(g.ini(), &ini).unwrap();

    let mail = thin_e2e::block_on(async {
        let gw = g.start().await;
        let (pc, tunnel, mail) = login_with_mailed_code(&gw, &smtp, "desk-otp", "alice@example.org").await;
        assert_tunnel_echo(&tunnel, 10_000, 1).await;
        // The registration is in the database's journal, or already folded into the file.
        let stored = ["MachineDatabase.config", "MachineDatabase.config.journal"].map(|f| gw.dir.path(f).exists());
        assert!(stored.contains(&true), "the database is in the test's folder");
        drop((pc, tunnel));
        gw.shutdown().await;
        mail
    });
    assert!(mail.contains("From: telework@example.org"), "{mail}");
    assert!(mail.contains("To: alice@example.org"), "{mail}");
    let subject = mail.lines().find(|l| l.starts_with("Subject: ")).unwrap_or_default();
    assert!(subject.contains(&vars.system_name) && subject.contains("desk-otp"), "{mail}");
}
