//! ThinGate.ini and MachineDatabase.config: fixtures, errors with line numbers,
//! round trips, and the atomic save with backups.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use thingate::config::{ConfigError, GateConfig, SmtpAuth, SmtpSsl, KEYS};
use thingate::machine_db::cfg_format::{self, Folder, Item, Value};
use thingate::machine_db::{DbError, Machine, MachineDb, ORIGINAL_EPOCH_OFFSET_MS};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(fixture(rel)).expect("fixture")
}

// ---------------------------------------------------------------- ThinGate.ini

#[test]
fn ini_defaults_and_default_text() {
    let p = Path::new("/etc/thingate/ThinGate.ini");
    let d = GateConfig::parse("", p).unwrap();
    assert_eq!(d.listen_address.to_string(), "0.0.0.0");
    assert_eq!(d.listen_port, 443);
    assert_eq!(d.server_cert, Path::new("/etc/thingate/ThinGate.cer"));
    assert_eq!(d.server_key, Path::new("/etc/thingate/ThinGate.key"));
    assert_eq!(d.database_file, Path::new("/etc/thingate/MachineDatabase.config"));
    assert_eq!((d.tunnel_timeout, d.tunnel_keepalive), (Duration::from_secs(30), Duration::from_secs(10)));
    assert_eq!(d.handshake_timeout, Duration::from_secs(10));
    assert_eq!((d.max_unestablished, d.max_connections_per_ip), (1000, 256));
    assert_eq!((d.max_sessions, d.max_tunnels_per_session), (10000, 256));
    assert!(!d.disable_dos_protection && !d.disable_register && !d.accept_proxy_protocol);
    assert!(!d.no_lookup_dns_hostname && d.save_log && d.standalone_mode);
    assert_eq!((d.syslog_hostname.as_deref(), d.syslog_port), (None, 514));
    assert_eq!((d.smtp.hostname.as_deref(), d.smtp.port, d.smtp.password.as_ref()), (None, 587, None));
    assert_eq!(
        (d.smtp.auth_type, d.smtp.ssl, d.smtp.timeout),
        (SmtpAuth::Login, SmtpSsl::StartTls, Duration::from_secs(10)),
        "the code default is STARTTLS; plain text needs SmtpSslType 0"
    );
    assert_eq!((d.smtp.allowed_domains.len(), d.smtp.system_name.as_deref()), (0, None));
    assert_eq!((d.smtp.max_mails_per_machine, d.smtp.max_mails_total), (10, 1000));
    assert_eq!((d.register_token.as_ref(), d.register_limit_per_source, d.register_limit_total), (None, 10, 100));
    assert!(d.proxy_protocol_from.is_empty());
    assert_eq!(d.stat_post_url, None);
    assert_eq!(d.dir, Path::new("/etc/thingate"));
    assert!(d.warnings.is_empty());
    let text = GateConfig::default_ini();
    assert_eq!(GateConfig::parse(text, p).unwrap(), d, "the default ini parses to the defaults");
    for (key, default, _) in KEYS {
        let line = format!("\n{key} {default}").trim_end().to_owned();
        assert!(text.contains(&format!("{line}\n")), "default_ini lacks {key}");
    }
    assert_eq!(GateConfig::parse("x", Path::new("ThinGate.ini")).unwrap().server_cert, Path::new("./ThinGate.cer"));
}

#[test]
fn ini_full_fixture() {
    let path = fixture("ini/full.ini");
    let c = GateConfig::load(&path).unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(c.listen_address.to_string(), "::1");
    assert_eq!(c.listen_port, 8443);
    assert_eq!(c.server_cert, dir.join("certs/gate.pem"));
    assert_eq!(c.server_key, Path::new("/etc/thingate/gate.key"));
    assert_eq!(c.database_file, dir.join("data/Machines.config"));
    assert_eq!(c.tunnel_timeout, Duration::from_secs(60));
    assert_eq!(c.tunnel_keepalive, Duration::from_secs(5));
    assert_eq!(c.handshake_timeout, Duration::from_secs(3));
    assert_eq!(
        (c.max_unestablished, c.max_connections_per_ip, c.max_sessions, c.max_tunnels_per_session),
        (50, 8, 100, 16)
    );
    assert!(c.disable_dos_protection && c.disable_register && c.accept_proxy_protocol && c.no_lookup_dns_hostname);
    assert!(!c.save_log && c.standalone_mode);
    assert_eq!((c.syslog_hostname.as_deref(), c.syslog_port), (Some("syslog.example.org"), 1514));
    let s = &c.smtp;
    assert_eq!((s.hostname.as_deref(), s.port), (Some("smtp.example.org"), 465));
    assert_eq!((s.otp_from.as_deref(), s.username.as_deref()), (Some("otp@example.org"), Some("mailer")));
    assert_eq!(s.password.as_ref().map(|p| p.expose()), Some("s3cret with spaces"));
    assert_eq!((s.auth_type, s.ssl, s.timeout), (SmtpAuth::Plain, SmtpSsl::Smtps, Duration::from_secs(20)));
    assert_eq!(c.stat_post_url.as_deref(), Some("https://stat.example.org/post"));
    assert_eq!(s.ca_file.as_deref(), Some(dir.join("certs/smtp-ca.pem").as_path()));
    assert_eq!(s.allowed_domains, ["example.org", "example.com"]);
    assert_eq!((s.system_name.as_deref(), s.max_mails_per_machine, s.max_mails_total), (Some("Acme Remote"), 3, 50));
    assert_eq!(c.register_token.as_ref().map(|t| t.expose()), Some("Reg-Token-77"));
    assert_eq!((c.register_limit_per_source, c.register_limit_total), (2, 20));
    assert_eq!(c.proxy_protocol_from.to_string(), "10.0.0.5/32, 192.0.2.0/24, 2001:db8::/48");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret") && debug.contains("MASKED"), "{debug}");
    assert!(!debug.contains("Reg-Token-77"), "the registration token is masked: {debug}");
}

#[test]
fn ini_unknown_key_is_a_warning_and_bom_crlf_equals_are_fine() {
    let path = fixture("ini/unknown_key.ini");
    let c = GateConfig::load(&path).unwrap();
    assert_eq!(c.listen_port, 1234);
    assert_eq!(c.smtp.password.as_ref().map(|p| p.expose()), Some("hunter2"));
    assert_eq!(
        c.warnings,
        vec![format!("{}:4: unknown key \"ListenPortt\" ignored; check its spelling", path.display())]
    );
}

#[test]
fn ini_errors_name_file_line_key_and_fix() {
    let cases = [
        ("bad_port.ini", 3, "ListenPort: \"abc\" is not a port number (0-65535); write e.g. \"ListenPort 443\""),
        ("duplicate_key.ini", 4, "ListenPort: set again (first on line 1)"),
        ("keepalive_not_below_timeout.ini", 2, "TunnelKeepAlive: 30000 ms is not shorter than TunnelTimeout"),
        ("timeout_below_default_keepalive.ini", 3, "TunnelTimeout: 5000 ms is not longer than TunnelKeepAlive"),
        ("bad_bool.ini", 1, "SaveLog: \"maybe\" is not a boolean; write 1 or 0"),
        ("bad_address.ini", 2, "ListenAddress: \"300.1.2.3\" is not an IP address"),
        ("bad_ssl_type.ini", 1, "SmtpSslType: \"3\" is not 0 (none), 1 (SMTPS) or 2 (STARTTLS)"),
        ("timeout_too_small.ini", 1, "TunnelTimeout: \"999\" is not a time in milliseconds (1000-"),
        ("zero_sessions.ini", 1, "MaxServerSessions: \"0\" is not a count (1-"),
        ("bad_mail.ini", 1, "SmtpOtpFrom: \"nobody\" is not a mail address"),
        ("bad_url.ini", 1, "StatPostUrl: \"ftp://x\" is not an http(s):// URL"),
        ("bad_proxy_from.ini", 3, "ProxyProtocolFrom: \"lb.example.org\" is not an address or a network (CIDR)"),
        ("bad_allowed_domain.ini", 1, "SmtpAllowedDomains: \"alice@example.com\" is not a mail domain"),
        ("zero_register_limit.ini", 2, "RegisterLimitPerSource: \"0\" is not a count (1-1000000)"),
    ];
    for (file, line, text) in cases {
        let path = fixture(&format!("ini/{file}"));
        let e = GateConfig::load(&path).expect_err(file);
        assert!(matches!(e, ConfigError::Line { line: l, .. } if l == line), "{file}: {e}");
        let shown = e.to_string();
        let prefix = format!("{}:{line}: {text}", path.display());
        assert!(shown.starts_with(&prefix), "{file}:\n  got  {shown}\n  want {prefix}");
        assert!(shown.contains("; "), "{file}: no fix in {shown}");
    }
    let e = GateConfig::load(Path::new("/nonexistent/ThinGate.ini")).unwrap_err();
    assert!(e.to_string().starts_with("cannot read /nonexistent/ThinGate.ini"), "{e}");
    let c = GateConfig::parse("ListenAddress [::]\nListenPort 0\nHandshakeTimeout 100", Path::new("a.ini")).unwrap();
    assert_eq!((c.listen_address.to_string(), c.listen_port), ("::".to_owned(), 0));
}

#[test]
fn ini_warns_of_plain_text_smtp_auth_and_an_unused_proxy_list() {
    let p = Path::new("/x/ThinGate.ini");
    let smtp = "SmtpServerHostname smtp.example.org\nSmtpOtpFrom o@example.org\nSmtpUsername mailer\n";
    let plain = GateConfig::parse(&format!("{smtp}SmtpSslType 0\n"), p).unwrap();
    assert_eq!(plain.smtp.ssl, SmtpSsl::None);
    assert_eq!(
        plain.warnings,
        ["/x/ThinGate.ini:4: SmtpSslType 0: SMTP AUTH sends SmtpUsername and SmtpPassword to the mail server in \
          clear text; use SmtpSslType 2 (STARTTLS) or 1 (SMTPS)"]
    );
    for safe in ["", "SmtpSslType 1\n", "SmtpSslType 2\n"] {
        assert!(GateConfig::parse(&format!("{smtp}{safe}"), p).unwrap().warnings.is_empty(), "{safe:?}");
    }
    let no_auth = "SmtpServerHostname smtp.example.org\nSmtpOtpFrom o@example.org\nSmtpSslType 0\n";
    assert!(GateConfig::parse(no_auth, p).unwrap().warnings.is_empty(), "no AUTH, nothing to leak");
    let unused = GateConfig::parse("ProxyProtocolFrom 10.0.0.5", p).unwrap().warnings;
    assert_eq!(
        unused,
        ["/x/ThinGate.ini:1: ProxyProtocolFrom is ignored while AcceptProxyProtocol is 0; set AcceptProxyProtocol 1 \
          or remove it"]
    );
}

// ------------------------------------------------------------ the text format

#[test]
fn cfg_reference_round_trips_byte_for_byte() {
    let text = read("machine_db/reference.config");
    let root = cfg_format::parse(&text).unwrap();
    assert_eq!(root.name, "root");
    assert_eq!(root.item("Revision").map(|i| &i.value), Some(&Value::Uint(5)));
    let m = &root.folder("Machines").unwrap().folders[0];
    assert_eq!(m.item("Pcid").map(|i| (i.line, &i.value)), Some((24, &Value::Str("test1".into()))));
    assert_eq!(m.item("CreateDate").map(|i| &i.value), Some(&Value::Uint64(1_606_686_022_950)));
    assert_eq!(cfg_format::write(&root), text.replace('\n', "\r\n"));
    let with_bom = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    assert_eq!(cfg_format::parse(&with_bom).unwrap(), root);
}

fn sample_tree(seed: u64) -> Folder {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 33
    };
    let texts =
        ["", " ", "$", "a b\tc", "$20", "日本語 テキスト", "\u{3000}wide", "line\r\nbreak", "#x", "{", "}", "x\u{7f}"];
    let mut root = Folder::new("root");
    for f in 0..3 + next() % 3 {
        let mut sub = Folder::new(format!("Folder {f} {}", texts[(next() % 12) as usize]));
        for i in 0..next() % 8 {
            let value = match next() % 5 {
                0 => Value::Uint(next() as u32),
                1 => Value::Uint64(next() << 31 | next()),
                2 => Value::Bool(next() % 2 == 0),
                3 => Value::Str(texts[(next() % 12) as usize].to_owned()),
                _ => Value::Bytes((0..next() % 40).map(|_| next() as u8).collect()),
            };
            sub.items.push(Item::new(format!("I{i}{}", texts[(next() % 12) as usize]), value));
        }
        sub.folders.push(Folder::new("empty"));
        root.folders.push(sub);
    }
    root.items.push(Item::new("Max", Value::Uint64(u64::MAX)));
    root.items.push(Item::new("MaxU", Value::Uint(u32::MAX)));
    root
}

fn sorted(mut f: Folder) -> Folder {
    let key = |n: &str| (n.to_ascii_lowercase(), n.to_owned());
    f.items.sort_by_key(|i| key(&i.name));
    f.folders = f.folders.into_iter().map(sorted).collect();
    f.folders.sort_by_key(|s| key(&s.name));
    f
}

#[test]
fn cfg_round_trip_property() {
    for seed in 0..200 {
        let tree = sample_tree(seed);
        let text = cfg_format::write(&tree);
        assert!(text.starts_with(cfg_format::HEADER) && text.ends_with("}\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in output");
        let back = cfg_format::parse(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        assert_eq!(back, sorted(tree), "seed {seed}");
        assert_eq!(cfg_format::write(&back), text);
        assert_eq!(cfg_format::parse(&text.replace("\r\n", "\n").replace('\t', "  ")).unwrap(), back);
    }
    assert_eq!(cfg_format::escape("a b$c\t"), "a$20b$24c$09");
    assert_eq!(cfg_format::escape(""), "$");
    assert_eq!(cfg_format::unescape("$", 1).unwrap(), "");
}

#[test]
fn cfg_errors_have_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        ("declare root\n{\n\tint64 A 1\n}\n", 3, "unknown type `int64`"),
        ("declare root\n{\n\tint64 A\n}\n", 3, "unknown type `int64`"),
        ("declare root\n{\n\tdeclare A\n\t{\n}\n", 1, "`declare root` is never closed"),
        ("declare root\n{\n\tuint A 4294967296\n}\n", 3, "is not a number for `uint`"),
        ("declare root\n{\n\tuint64 A -1\n}\n", 3, "is not a number for `uint64`"),
        ("declare root\n{\n\tstring A a$2x\n}\n", 3, "bad escape"),
        ("declare root\n{\n\tstring A a$\n}\n", 3, "bad escape"),
        ("declare root\n{\n\tstring A $FF\n}\n", 3, "UTF-8"),
        ("declare root\n{\n\tbool A maybe\n}\n", 3, "not a boolean"),
        ("declare root\n{\n\tbyte A !!\n}\n", 3, "not base64"),
        ("declare root\n{\n\tstring A\n}\n", 3, "value is missing"),
        ("declare root\n{\n\tstring A b c\n}\n", 3, "unexpected text after the value"),
        ("declare root\n{\n\tuint A 1\n\tuint A 2\n}\n", 4, "already set on line 3"),
        ("declare root\n{\n}\n}\n", 4, "without a matching `declare`"),
        ("uint A 1\n", 1, "outside any folder"),
        ("declare root\n\tuint A 1\n", 2, "expected `{`"),
        ("declare root\n", 1, "not followed by `{`"),
        ("# only a comment\n\n", 2, "no `declare root`"),
        ("declare root\n{\n}\ndeclare two\n{\n}\n", 4, "second top-level folder"),
        ("declare root\n{\n\tdeclare A\n\t{\n\t}\n\tdeclare A\n\t{\n\t}\n}\n", 6, "already declared on line 3"),
        ("declare a b\n{\n}\n", 1, "one name"),
    ];
    for (text, line, msg) in cases {
        let e = cfg_format::parse(text).expect_err(text);
        assert_eq!(e.line, *line, "{text:?}: {e}");
        assert!(e.msg.contains(msg), "{text:?}: {e}");
    }
    let deep = "declare a\n{\n".repeat(100);
    assert!(cfg_format::parse(&deep).unwrap_err().msg.contains("nested"));
}

// ------------------------------------------------------ MachineDatabase.config

#[test]
fn db_opens_the_reference_and_converts_dates() {
    let db = MachineDb::open(&fixture("machine_db/reference.config")).unwrap();
    assert_eq!(db.len(), 1);
    let m = db.by_pcid("TEST1").unwrap();
    assert_eq!(m.msid, "MSID-DESK-EA4063CBEA5FF26DE4BCF9B35551A0CFD5B3913F");
    assert_eq!(m.cert_hash, "EA4063CBEA5FF26DE4BCF9B35551A0CFD5B3913F");
    assert_eq!(m.create_date, 1_606_686_022_950 + 32_400_000);
    assert_eq!(ORIGINAL_EPOCH_OFFSET_MS, 32_400_000);
    // 2020-11-30 06:40:22.950 UTC, i.e. 15:40 in Japan.
    assert_eq!(m.create_date, 1_606_718_422_950);
    assert_eq!(m.last_server_date, 1_606_699_739_152 + 32_400_000);
    assert_eq!((m.create_host.as_str(), m.create_ip.as_str()), ("host.example.org", "203.0.113.7"));
    assert_eq!((m.server_mask64, m.num_server, m.last_ip.as_str()), (146, 0, ""));
    assert!(std::ptr::eq(db.by_msid(&m.msid).unwrap(), m));
}

#[test]
fn db_malformed_files_are_refused_with_line_and_left_untouched() {
    let cases = [
        ("bad_type.config", 25, "unknown type `int64`"),
        ("unclosed_folder.config", 10, "`declare root` is never closed"),
        ("bad_number.config", 19, "`16066860229x0` is not a number"),
        ("bad_escape.config", 20, "bad escape"),
        ("duplicate_pcid.config", 31, "computer ID `test1` is also used on line 24"),
        ("invalid_pcid.config", 24, "Pcid `te.st1`: the computer ID contains '.'"),
        ("missing_pcid.config", 16, "has no Pcid"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (file, line, msg) in cases {
        let path = tmp.path().join(file);
        fs::copy(fixture(&format!("machine_db/{file}")), &path).unwrap();
        let before = (fs::read(&path).unwrap(), fs::metadata(&path).unwrap().modified().unwrap());
        let e = MachineDb::open(&path).expect_err(file);
        assert!(matches!(e, DbError::Invalid { line: l, .. } if l == line), "{file}: {e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("{}:{line}: ", path.display())), "{file}: {shown}");
        assert!(shown.contains(msg) && shown.contains("; "), "{file}: {shown}");
        assert_eq!((fs::read(&path).unwrap(), fs::metadata(&path).unwrap().modified().unwrap()), before);
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), cases.len(), "no backups or temp files made");
    let bad = tmp.path().join("latin1.config");
    fs::write(&bad, b"declare root\n{\n\tstring A caf\xe9\n}\n").unwrap();
    assert!(MachineDb::open(&bad).unwrap_err().to_string().contains("latin1.config:3: this line is not UTF-8"));
}

#[test]
fn db_admin_edited_file_is_honoured_and_unknown_fields_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    fs::copy(fixture("machine_db/admin_edited.config"), &path).unwrap();
    let db = MachineDb::open(&path).unwrap();
    assert_eq!(db.iter().map(|m| m.pcid.as_str()).collect::<Vec<_>>(), ["desk-01", "laptop_2"]);
    let one = db.by_pcid("desk-01").unwrap();
    assert_eq!((one.num_server, one.create_host.as_str()), (3, "office pc.example.org"));
    assert_eq!(one.extra, vec![Item::new("WolMacList", Value::Str("00-11-22-33-44-55".into()))]);
    assert_eq!(db.by_msid("MSID-TWO").unwrap().create_date, 0, "0 stays 'unknown'");
    db.save().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    for want in ["\tbool AdminNote true\r\n", "\t\t\tstring WolMacList 00-11-22-33-44-55\r\n", "\t\tbyte Blob AAEC\r\n"]
    {
        assert!(text.contains(want), "{want:?} lost:\n{text}");
    }
    assert!(text.contains("\t\t\tstring CreateHost office$20pc.example.org\r\n\t\t\tstring CreateIp $\r\n"));
    assert!(text.contains("\t\t\tuint64 CreateDate 0\r\n") && text.starts_with(cfg_format::HEADER));
    let again = MachineDb::open(&path).unwrap();
    assert_eq!(again.iter().collect::<Vec<_>>(), db.iter().collect::<Vec<_>>());
}

#[test]
fn db_edits_keep_pcids_unique() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let mut db = MachineDb::open(&path).unwrap();
    assert!(db.is_empty() && !path.exists(), "a missing file is an empty database and is not created");
    assert!(db.try_upsert(Machine::new("M1", "Desk")).unwrap().is_none());
    assert!(
        matches!(db.try_upsert(Machine::new("M2", "DESK")), Err(DbError::PcidTaken { ref msid, .. }) if msid == "M1")
    );
    assert!(matches!(db.try_upsert(Machine::new("M2", "a b")), Err(DbError::BadPcid { .. })));
    assert!(matches!(db.try_upsert(Machine::new("", "ok")), Err(DbError::EmptyMsid)));
    db.upsert(Machine::new("M2", "laptop"));
    let old = db.try_upsert(Machine::new("M1", "desk2")).unwrap().unwrap();
    assert_eq!(old.pcid, "desk");
    assert!(db.by_pcid("desk").is_none() && db.by_pcid("Desk2").is_some());
    db.upsert(Machine::new("M2", "desk"));
    assert_eq!(db.remove("M1").map(|m| m.pcid), Some("desk2".into()));
    assert!(db.by_pcid("desk2").is_none() && db.remove("M1").is_none());
    assert_eq!((db.len(), db.path()), (1, path.as_path()));
    let mut m = Machine::new("M3", "x");
    (m.create_date, m.update_date, m.last_server_date) = (1_700_000_000_123, 1, 0);
    db.upsert(m.clone());
    db.save().unwrap();
    let back = MachineDb::open(&path).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("uint64 CreateDate {}\r\n", 1_700_000_000_123i64 - 32_400_000)));
    assert_eq!(back.by_msid("M3").map(|b| (b.create_date, b.last_server_date)), Some((1_700_000_000_123, 0)));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

fn backups(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir.join("backup.MachineDatabase.config")) else { return Vec::new() };
    let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn db_save_is_atomic_and_keeps_pruned_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let mut db = MachineDb::open(&path).unwrap();
    db.upsert(Machine::new("M1", "one"));
    db.save().unwrap();
    assert!(backups(tmp.path()).is_empty(), "nothing to back up on the first save");
    let first = fs::read(&path).unwrap();
    let (ino, held) = (fs::metadata(&path).unwrap().ino(), fs::File::open(&path).unwrap());
    db.upsert(Machine::new("M2", "two"));
    db.save().unwrap();
    assert_ne!(fs::metadata(&path).unwrap().ino(), ino, "replaced by rename, not rewritten in place");
    assert_eq!(std::io::read_to_string(held).unwrap().as_bytes(), first.as_slice());
    let names = backups(tmp.path());
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("MachineDatabase_") && names[0].ends_with(".config") && names[0].len() == 42,
        "{names:?}"
    );
    let bdir = tmp.path().join("backup.MachineDatabase.config");
    assert_eq!(fs::read(bdir.join(&names[0])).unwrap(), first);
    db.save().unwrap();
    assert_eq!(backups(tmp.path()).len(), 1, "at most one backup a minute");
    let mut entries: Vec<String> =
        fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    entries.sort();
    assert_eq!(entries, ["MachineDatabase.config", "backup.MachineDatabase.config"], "no temp file left");
    // Older backups beyond 32 are pruned, newest kept; other files are left alone.
    for i in 0..40 {
        fs::write(
            bdir.join(format!("MachineDatabase_2001{:02}{:02}_000000_000.config", 1 + i / 28, 1 + i % 28)),
            "old",
        )
        .unwrap();
    }
    fs::write(bdir.join("notes.txt"), "admin").unwrap();
    db.save().unwrap();
    let names = backups(tmp.path());
    assert_eq!(names.len(), 33, "32 backups + notes.txt");
    assert!(
        names.contains(&"notes.txt".to_owned())
            && !names.contains(&"MachineDatabase_20010101_000000_000.config".to_owned())
    );
    assert_eq!(names[0], "MachineDatabase_20010110_000000_000.config", "the 9 oldest of 41 are gone");
    assert!(names[31].as_str() > "MachineDatabase_2002", "the real backup is kept: {names:?}");
    assert_eq!(MachineDb::open(&path).unwrap().len(), 2);
}

#[test]
fn backups_are_bounded_in_bytes_too() {
    use thingate::machine_db::{MAX_BACKUPS, MAX_BACKUP_BYTES};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let mut db = MachineDb::open(&path).unwrap();
    db.upsert(Machine::new("M1", "one"));
    db.save().unwrap();
    // 100 older backups of 10 MiB each (sparse files): 1,000 MiB.
    let bdir = tmp.path().join("backup.MachineDatabase.config");
    fs::create_dir_all(&bdir).unwrap();
    for i in 0..100 {
        let name = format!("MachineDatabase_2001{:02}{:02}_000000_000.config", 1 + i / 28, 1 + i % 28);
        fs::File::create(bdir.join(name)).unwrap().set_len(10 << 20).unwrap();
    }
    db.upsert(Machine::new("M2", "two"));
    db.save().unwrap();
    let names = backups(tmp.path());
    let bytes: u64 = names.iter().map(|n| fs::metadata(bdir.join(n)).unwrap().len()).sum();
    assert!(bytes <= MAX_BACKUP_BYTES && names.len() <= MAX_BACKUPS, "{} backups, {bytes} bytes", names.len());
    assert_eq!(names.len(), 26, "the new backup and the 25 newest old ones that fit in 256 MiB");
    assert!(names[25].as_str() > "MachineDatabase_2002", "the newest (real) backup is kept: {names:?}");
    assert_eq!(names[0], "MachineDatabase_20010320_000000_000.config", "the oldest went first");
}

#[test]
fn db_open_removes_stale_temp_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let stale = tmp.path().join("MachineDatabase.config.tmp.4242.0");
    let fresh = tmp.path().join("MachineDatabase.config.tmp.4242.1");
    fs::write(&stale, "declare root\n{").unwrap();
    fs::write(&fresh, "declare root\n{").unwrap();
    let old = SystemTime::now() - Duration::from_secs(600);
    fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    let mut db = MachineDb::open(&path).unwrap();
    assert!(db.is_empty() && stale.exists(), "a missing database touches nothing");
    db.upsert(Machine::new("M1", "one"));
    db.save().unwrap();
    MachineDb::open(&path).unwrap();
    assert!(!stale.exists() && fresh.exists());
}

/// Run by `db_survives_kill_during_save` in a child process: saves forever.
#[test]
#[ignore = "helper: run by db_survives_kill_during_save"]
fn save_loop_child() {
    let Some(dir) = std::env::var_os("THINGATE_SAVE_LOOP_DIR") else { return };
    let path = Path::new(&dir).join("MachineDatabase.config");
    let mut db = MachineDb::open(&path).unwrap();
    for i in 0u64.. {
        let mut m = Machine::new(format!("MSID-{}", i % 300), format!("pc-{}", i % 300));
        m.create_host = "x".repeat(200);
        db.upsert(m);
        db.save().unwrap();
    }
}

#[test]
fn db_survives_kill_during_save() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    for round in 0..6u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "save_loop_child", "--ignored", "--test-threads=1"])
            .env("THINGATE_SAVE_LOOP_DIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(Instant::now() < deadline, "the child never saved");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(30 + round * 37 % 100));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let db = MachineDb::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(!db.is_empty());
    }
}
