//! The gateway's files as an admin handles them: an edit of
//! `MachineDatabase.config` while stopped, RSA certificates, bad keys.

use std::process::Command;

use thin_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edit_made_while_stopped_is_honoured_at_start() {
    let gw = TestGateway::start().await;
    let port = gw.addr.port();
    let pc = gw.register("before", "pw").await;
    let g = gw.shutdown().await;

    let db = g.path("MachineDatabase.config");
    let text = std::fs::read_to_string(&db).unwrap();
    assert!(text.contains("string Pcid before"), "{text}");
    assert!(text.contains("\r\n") && text.contains("declare Machines"));
    std::fs::write(&db, text.replace("string Pcid before", "string Pcid renamed-by-admin")).unwrap();

    let gw = g.start_on(port).await;
    assert!(gw.gateway.registry.is_registered("renamed-by-admin"));
    assert!(!gw.gateway.registry.is_registered("before"));
    let _pc = pc.serve(&gw.link, echo_server().await).await;
    let t = gw.connect("renamed-by-admin", "pw").await;
    assert_tunnel_echo(&t, 10_000, 1).await;
    gw.shutdown().await;
}

fn openssl_rsa_leaf(dir: &std::path::Path, bits: u32, pki: &Pki) -> bool {
    // The CA key is not kept by Pki, so make an RSA CA and leaf with openssl.
    let _ = pki;
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:{bits} -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=RSA-CA -sha256 \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null; \
         openssl req -newkey rsa:{bits} -nodes -keyout ThinGate.key -out leaf.csr -subj /CN=127.0.0.1 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ThinGate.cer -days 30 -sha256 -extfile ext.cnf 2>/dev/null",
        d = dir.display()
    );
    Command::new("sh").arg("-c").arg(sh).status().map(|s| s.success()).unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_2048_certificates_work_and_rsa_1024_is_refused() {
    let g = GateDir::new("");
    assert!(openssl_rsa_leaf(g.dir.path(), 2048, &g.pki), "openssl is needed for this test (apt-get install openssl)");
    let ca = std::fs::read_to_string(g.path("ca.pem")).unwrap();
    let gw = g.start().await;
    let (status, body) = https::get(gw.addr, &ca, "/thingate/").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("PACK"));
    gw.shutdown().await;

    let g = GateDir::new("");
    assert!(openssl_rsa_leaf(g.dir.path(), 1024, &g.pki));
    let err = g.load_error();
    assert!(err.contains("ThinGate.cer") && err.contains("1024 bits") && err.contains("2048"), "{err}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let g = GateDir::new("");
    let other = Pki::new();
    std::fs::write(g.path("ThinGate.key"), other.key_pem).unwrap();
    let err = g.load_error();
    assert!(err.contains("ThinGate.key") && err.contains("does not belong"), "{err}");
    std::fs::write(g.path("ThinGate.cer"), "not a cert").unwrap();
    let err = g.load_error();
    assert!(err.contains("ThinGate.cer") && err.contains("PEM"), "{err}");
}
