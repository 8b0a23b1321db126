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

/// The machine record as the admin reads it after a save.
async fn saved_record(gw: &TestGateway, pcid: &str) -> (String, thingate::machine_db::Machine) {
    gw.state().registry.flush().await.expect("the database saves");
    let path = gw.dir.path("MachineDatabase.config");
    let db = thingate::machine_db::MachineDb::open(&path).unwrap();
    (read(&path), db.by_pcid(pcid).cloned().unwrap_or_else(|| panic!("{pcid} is not in the file")))
}

/// The `Hostname` of the one session in `/thinstat/`, in both formats.
async fn thinstat_host(gw: &TestGateway) -> String {
    let (status, json) = gw.get("/thinstat/?format=json").await;
    assert_eq!(status, 200, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["NumSession"], 1, "{json}");
    assert_eq!(v["Sessions"][0]["IpAddress"], "127.0.0.1", "{json}");
    let host = v["Sessions"][0]["Hostname"].as_str().unwrap().to_string();
    let (_, text) = gw.get("/thinstat/").await;
    assert!(text.contains(&format!("Hostname[0] {host}\r\n")), "{text}");
    host
}

/// `NoLookupDnsHostname 0` (the default): `/thinstat/` and `CreateHost` show
/// the DNS name of the office PC's address (127.0.0.1 is `localhost` in
/// /etc/hosts), as the original does, not the name the PC reports; and each
/// client relayed counts in `NumClient`, `FirstClientDate`, `LastClientDate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_office_pc_shows_as_its_address_dns_name_and_its_clients_are_counted() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("desk-01", "pw").await;
    assert_eq!(thinstat_host(&gw).await, "localhost");
    let (text, m) = saved_record(&gw, "desk-01").await;
    assert!(text.contains("\tstring CreateHost localhost\r\n"), "{text}");
    assert_eq!((m.create_ip.as_str(), m.num_client, m.first_client_date, m.last_client_date), ("127.0.0.1", 0, 0, 0));

    let before = thingate::machine_db::now_ms();
    let t = gw.connect("desk-01", "pw").await;
    assert_tunnel_echo(&t, 1000, 1).await;
    let (text, first) = saved_record(&gw, "desk-01").await;
    let after = thingate::machine_db::now_ms();
    assert_eq!(first.num_client, 1, "{text}");
    assert!((before..=after).contains(&first.first_client_date), "{text}");
    assert_eq!(first.last_client_date, first.first_client_date);
    // In the file: the original's epoch (Unix ms minus 9 h).
    let orig = first.last_client_date - thingate::machine_db::ORIGINAL_EPOCH_OFFSET_MS;
    assert!(text.contains(&format!("\tuint64 LastClientDate {orig}\r\n")), "{text}");
    assert!(text.contains("\tuint64 NumClient 1\r\n"), "{text}");

    let wait_ms = first.last_client_date + 2;
    wait_for("a later millisecond", std::time::Duration::from_secs(1), || async move {
        (thingate::machine_db::now_ms() > wait_ms).then_some(())
    })
    .await;
    let t2 = gw.connect("desk-01", "pw").await;
    assert_tunnel_echo(&t2, 1000, 1).await;
    let (text, second) = saved_record(&gw, "desk-01").await;
    assert_eq!(second.num_client, 2, "{text}");
    assert_eq!(second.first_client_date, first.first_client_date, "the first client date stays");
    assert!(second.last_client_date > first.last_client_date, "{text}");
    // Kept across a restart.
    let port = gw.addr.port();
    drop((t, t2));
    let gw = gw.shutdown().await.start_on(port).await;
    let (_, kept) = saved_record(&gw, "desk-01").await;
    assert_eq!((kept.num_client, kept.last_client_date), (2, second.last_client_date));
    gw.shutdown().await;
}

/// `NoLookupDnsHostname 1`: no look-up; the address itself is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_lookup_dns_hostname_the_address_is_shown() {
    let gw = TestGateway::with_ini("NoLookupDnsHostname 1").await;
    let _pc = gw.office_pc("desk-02", "pw").await;
    assert_eq!(thinstat_host(&gw).await, "127.0.0.1");
    let (text, m) = saved_record(&gw, "desk-02").await;
    assert_eq!(m.create_host, "127.0.0.1", "{text}");
    gw.shutdown().await;
}
