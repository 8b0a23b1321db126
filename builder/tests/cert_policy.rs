//! `builder check` and the real code agree on certificates: for a matrix of
//! keys (RSA 2048/3072/4096 as PKCS#1 and PKCS#8, ECDSA P-256/P-384 as SEC1 and
//! PKCS#8, Ed25519, and some the apps cannot use), signatures (SHA-2, SHA-224,
//! SHA-1, ECDSA-SHA512, RSA-PSS) and name forms, all made by the `openssl` CLI
//! at test time, the check's verdict equals a real TLS connection over TCP from
//! the apps' TLS setup (entry point, `client_config`, the URL's host) to
//! `thingate`'s loader (`server_config`).

use builder::manifest::CertPaths;
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes `name.key` (PKCS#8, or PKCS#1/SEC1 when `traditional`) in `dir`.
fn key(dir: &Path, name: &str, alg: &str, traditional: bool) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    let p8 = dir.join(format!("{name}.p8"));
    let p8s = p8.to_str().unwrap();
    match alg {
        "ed25519" => openssl(dir, &["genpkey", "-algorithm", "ED25519", "-out", p8s]),
        a if a.starts_with("rsa") => {
            let bits = format!("rsa_keygen_bits:{}", &a[3..]);
            openssl(dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", &bits, "-out", p8s])
        }
        curve => {
            let c = format!("ec_paramgen_curve:{curve}");
            openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", &c, "-out", p8s])
        }
    }
    if traditional {
        openssl(dir, &["pkey", "-in", p8s, "-traditional", "-out", path.to_str().unwrap()]);
    } else {
        std::fs::copy(&p8, &path).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let label = text.lines().next().unwrap().to_string();
    match (alg, traditional) {
        (a, true) if a.starts_with("rsa") => assert_eq!(label, "-----BEGIN RSA PRIVATE KEY-----"),
        ("ed25519", _) | (_, false) => assert_eq!(label, "-----BEGIN PRIVATE KEY-----"),
        (_, true) => assert_eq!(label, "-----BEGIN EC PRIVATE KEY-----"),
    }
    chmod_600(&path);
    path
}

fn chmod_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A self-signed CA certificate for `key`.
fn ca_cert(dir: &Path, key: &Path) -> PathBuf {
    let out = key.with_extension("cer");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=Matrix CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            out.to_str().unwrap(),
        ],
    );
    out
}

/// A gateway certificate for `gw_key` signed by the CA with `sign` (openssl
/// options: a digest, PSS options), with the extensions `ext`.
fn gateway_cert(dir: &Path, ca: &(PathBuf, PathBuf), gw_key: &Path, sign: &[&str], ext: &str, out: &str) -> PathBuf {
    let csr = dir.join(format!("{out}.csr"));
    let cer = dir.join(format!("{out}.cer"));
    let extf = dir.join(format!("{out}.ext"));
    std::fs::write(&extf, ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            gw_key.to_str().unwrap(),
            "-subj",
            "/CN=gw.example.org",
            "-out",
            csr.to_str().unwrap(),
        ],
    );
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.0.to_str().unwrap(),
        "-CAkey",
        ca.1.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        extf.to_str().unwrap(),
        "-out",
        cer.to_str().unwrap(),
    ];
    args.extend_from_slice(sign);
    openssl(dir, &args);
    cer
}

const EXT: &str = "subjectAltName=DNS:gw.example.org,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";

/// Whether the apps connect to thingate with these files, for `host`: the
/// gateway's loader, a TCP listener, the apps' entry point and TLS setup.
fn real_connect(ca: &Path, cert: &Path, key: &Path, host: &str) -> Result<(), String> {
    let server = thin_protocol::tls::server_config(cert, key).map_err(|e| format!("thingate: {e}"))?;
    let ca_pem = std::fs::read_to_string(ca).unwrap();
    let authority = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let entry =
        thin_protocol::entry_point::EntryPoint::parse(&format!("{ca_pem}\nhttps://{authority}/thingate/\n"), "ep")
            .map_err(|e| format!("entry point: {e}"))?;
    let client = thin_protocol::tls::client_config(&entry.ca).map_err(|e| format!("apps: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(entry.url.host, host, "the apps connect to the URL's host");
        let name = rustls_pki_types::ServerName::try_from(entry.url.host.clone()).map_err(|e| e.to_string())?;
        let r = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await;
        let _ = srv.await;
        r.map(|_| ()).map_err(|e| format!("handshake: {e}"))
    })
}

/// `builder check`'s certificate verdict: the problems' lines.
fn check_verdict(ca: &Path, cert: &Path, key: &Path, host: &str, base: &Path) -> Result<(), String> {
    let c = CertPaths {
        ca_cert: ca.into(),
        ca_key: base.join("unused.key"),
        gateway_cert: cert.into(),
        gateway_key: key.into(),
    };
    let p = builder::certs::check::check(&c, Some(host), base);
    if p.is_empty() {
        Ok(())
    } else {
        Err(p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))
    }
}

/// One case: check and the real connection agree, and the verdict is `expect`;
/// a refusal names `reason`.
#[track_caller]
fn agree(case: &str, ca: &Path, cert: &Path, key: &Path, host: &str, base: &Path, expect: Result<(), &str>) {
    let real = real_connect(ca, cert, key, host);
    let check = check_verdict(ca, cert, key, host, base);
    assert_eq!(real.is_ok(), check.is_ok(), "{case}: the apps say {real:?}, the check says {check:?}");
    match (expect, &check) {
        (Ok(()), Ok(())) => {}
        (Err(reason), Err(text)) => assert!(text.contains(reason), "{case}: the reason {text:?} lacks {reason:?}"),
        _ => panic!("{case}: expected {expect:?}, the check says {check:?} (the apps: {real:?})"),
    }
}

#[test]
fn gateway_keys_in_every_form() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cas = [("ca-p256", "P-256"), ("ca-rsa2048", "rsa2048")].map(|(n, alg)| {
        let k = key(d, n, alg, false);
        (ca_cert(d, &k), k)
    });
    let ok = Ok(());
    let keys: Vec<(&str, &str, bool, Result<(), &str>)> = vec![
        ("rsa2048-pkcs1", "rsa2048", true, ok),
        ("rsa2048-pkcs8", "rsa2048", false, ok),
        ("rsa3072-pkcs1", "rsa3072", true, ok),
        ("rsa3072-pkcs8", "rsa3072", false, ok),
        ("rsa4096-pkcs1", "rsa4096", true, ok),
        ("rsa4096-pkcs8", "rsa4096", false, ok),
        ("p256-sec1", "P-256", true, ok),
        ("p256-pkcs8", "P-256", false, ok),
        ("p384-sec1", "P-384", true, ok),
        ("p384-pkcs8", "P-384", false, ok),
        ("ed25519", "ed25519", false, ok),
        (
            "rsa1024",
            "rsa1024",
            false,
            Err("the gateway key is an RSA key of 1024 bits; thingate signs with RSA keys of 2048 to 4096 bits only"),
        ),
        ("p521-sec1", "P-521", true, Err("ECDSA P-521, which thingate cannot sign with")),
    ];
    for (ca_cer, ca_key) in &cas {
        let ca_name = ca_cer.file_stem().unwrap().to_string_lossy().into_owned();
        for (name, alg, traditional, expect) in &keys {
            let k = key(d, &format!("{ca_name}-{name}"), alg, *traditional);
            let cer = gateway_cert(
                d,
                &(ca_cer.clone(), ca_key.clone()),
                &k,
                &["-sha256"],
                EXT,
                &format!("{ca_name}-{name}-gw"),
            );
            agree(&format!("{ca_name} / {name}"), ca_cer, &cer, &k, "gw.example.org", d, *expect);
        }
    }
    // An encrypted key: thingate cannot ask for the passphrase.
    let plain = key(d, "enc-plain", "P-256", false);
    let enc = d.join("enc.key");
    openssl(
        d,
        &["pkcs8", "-topk8", "-in", plain.to_str().unwrap(), "-passout", "pass:secret", "-out", enc.to_str().unwrap()],
    );
    chmod_600(&enc);
    let cer = gateway_cert(d, &(cas[0].0.clone(), cas[0].1.clone()), &plain, &["-sha256"], EXT, "enc-gw");
    agree("encrypted key", &cas[0].0, &cer, &enc, "gw.example.org", d, Err("encrypted with a passphrase"));
    // A key of another certificate.
    let other = key(d, "other", "P-256", true);
    agree("key mismatch", &cas[0].0, &cer, &other, "gw.example.org", d, Err("does not match the certificate"));
}

#[test]
fn signatures_by_every_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let gw = key(d, "gw", "P-256", false);
    let ok = Ok(());
    let cant = Err("which the apps cannot verify");
    let pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"];
    let pss_max = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:max"];
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, bool, Vec<(&str, Vec<&str>, Result<(), &str>)>)> = vec![
        (
            "rsa2048-pkcs1",
            "rsa2048",
            true,
            vec![
                ("sha256", vec!["-sha256"], ok),
                ("sha384", vec!["-sha384"], ok),
                ("sha512", vec!["-sha512"], ok),
                (
                    "sha224",
                    vec!["-sha224"],
                    Err("sha224WithRSAEncryption (1.2.840.113549.1.1.14), which the apps cannot verify"),
                ),
                ("sha1", vec!["-sha1"], Err("sha1WithRSAEncryption")),
                ("pss-sha256", [&["-sha256"][..], &pss[..]].concat(), ok),
                ("pss-sha256-max-salt", [&["-sha256"][..], &pss_max[..]].concat(), Err("RSASSA-PSS")),
            ],
        ),
        (
            "rsa3072",
            "rsa3072",
            false,
            vec![("sha256", vec!["-sha256"], ok), ("sha384", vec!["-sha384"], ok), ("sha224", vec!["-sha224"], cant)],
        ),
        ("rsa4096", "rsa4096", false, vec![("sha256", vec!["-sha256"], ok), ("sha512", vec!["-sha512"], ok)]),
        (
            "p256-sec1",
            "P-256",
            true,
            vec![
                ("sha256", vec!["-sha256"], ok),
                ("sha384", vec!["-sha384"], ok),
                (
                    "sha512",
                    vec!["-sha512"],
                    Err("ecdsa-with-SHA512 (1.2.840.10045.4.3.4), which the apps cannot verify"),
                ),
                ("sha224", vec!["-sha224"], cant),
                ("sha1", vec!["-sha1"], cant),
            ],
        ),
        (
            "p384",
            "P-384",
            false,
            vec![("sha256", vec!["-sha256"], ok), ("sha384", vec!["-sha384"], ok), ("sha512", vec!["-sha512"], cant)],
        ),
        ("ed25519", "ed25519", false, vec![("ed25519", vec![], ok)]),
        ("rsa1024", "rsa1024", false, vec![("sha256", vec!["-sha256"], Err("the CA key is an RSA key of 1024 bits"))]),
        ("p521", "P-521", false, vec![("sha256", vec!["-sha256"], Err("the CA key is ECDSA P-521"))]),
    ];
    for (ca_name, alg, traditional, sigs) in cases {
        let ca_key = key(d, &format!("ca-{ca_name}"), alg, traditional);
        let ca = (ca_cert(d, &ca_key), ca_key);
        for (sig, opts, expect) in sigs {
            let cer = gateway_cert(d, &ca, &gw, &opts, EXT, &format!("{ca_name}-{sig}"));
            agree(&format!("CA {ca_name} signs with {sig}"), &ca.0, &cer, &gw, "gw.example.org", d, expect);
        }
    }
}

#[test]
fn name_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca_key = key(d, "ca", "P-256", false);
    let ca = (ca_cert(d, &ca_key), ca_key);
    let gw = key(d, "gw", "P-256", false);
    let no_name = Err("not valid for the gateway URL's host");
    let ok = Ok(());
    let cases: Vec<(&str, &str, &str, Result<(), &str>)> = vec![
        ("dns", "subjectAltName=DNS:gw.example.org\n", "gw.example.org", ok),
        ("dns-case", "subjectAltName=DNS:GW.Example.org\n", "gw.example.org", ok),
        ("ip", "subjectAltName=IP:127.0.0.1\n", "127.0.0.1", ok),
        ("ipv6", "subjectAltName=IP:::1\n", "::1", ok),
        ("wildcard", "subjectAltName=DNS:*.example.org\n", "gw.example.org", ok),
        ("wildcard-two-labels", "subjectAltName=DNS:*.example.org\n", "a.gw.example.org", no_name),
        ("partial-wildcard", "subjectAltName=DNS:g*.example.org\n", "gw.example.org", no_name),
        ("common-name-only", "extendedKeyUsage=serverAuth\n", "gw.example.org", no_name),
        ("ip-as-dns-name", "subjectAltName=DNS:127.0.0.1\n", "127.0.0.1", no_name),
        ("other-host", "subjectAltName=DNS:other.example.org\n", "gw.example.org", Err("DNS:other.example.org")),
        (
            "client-auth-only",
            "subjectAltName=DNS:gw.example.org\nextendedKeyUsage=clientAuth\n",
            "gw.example.org",
            Err("serverAuth"),
        ),
    ];
    for (name, ext, host, expect) in cases {
        let cer = gateway_cert(d, &ca, &gw, &["-sha256"], ext, name);
        agree(&format!("name form {name}"), &ca.0, &cer, &gw, host, d, expect);
    }
}

#[test]
fn ca_regen_rsa_and_a_pkcs1_ca_key() {
    // `builder ca regen --key-type rsa` makes RSA 3072 keys that both ends use.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let c = CertPaths {
        ca_cert: d.join("certs/ca.cer"),
        ca_key: d.join("certs/ca.key"),
        gateway_cert: d.join("certs/ThinGate.cer"),
        gateway_key: d.join("certs/ThinGate.key"),
    };
    use builder::certs::issue::{write_gateway_cert, write_new_ca, KeyType};
    write_new_ca(&c, "Matrix", &["gw.example.org".into()], KeyType::Rsa).unwrap();
    let text = std::fs::read_to_string(&c.gateway_cert).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(thin_protocol::cert_policy::key_kind(cert.public_key()), thin_protocol::cert_policy::KeyKind::Rsa(3072));
    agree("ca regen --key-type rsa", &c.ca_cert, &c.gateway_cert, &c.gateway_key, "gw.example.org", d, Ok(()));
    // The CA key turned into PKCS#1, as an older openssl writes it: gateway-cert still works.
    openssl(
        d,
        &["pkey", "-in", c.ca_key.to_str().unwrap(), "-traditional", "-out", d.join("pkcs1.key").to_str().unwrap()],
    );
    std::fs::rename(d.join("pkcs1.key"), &c.ca_key).unwrap();
    write_gateway_cert(&c, &["gw.example.org".into()], Some(KeyType::Ecdsa)).unwrap();
    agree(
        "gateway-cert under a PKCS#1 CA key",
        &c.ca_cert,
        &c.gateway_cert,
        &c.gateway_key,
        "gw.example.org",
        d,
        Ok(()),
    );
}
