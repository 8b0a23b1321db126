//! `builder ca regen` and `builder ca gateway-cert`, and the test code-signing
//! identity of `builder new --self-signed-codesign`.

use crate::certs::issue::KeyType;
use crate::check::BrandRef;
use crate::error::{Error, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a `ca` command changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Where the previous files were moved.
    pub backup: Option<PathBuf>,
    /// Whether installed apps must be rebuilt (a new CA).
    pub rebuild_apps: bool,
}

impl std::fmt::Display for CaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.files {
            writeln!(f, "wrote {}", p.display())?;
        }
        if let Some(b) = &self.backup {
            writeln!(f, "the previous files are kept in {}", b.display())?;
        }
        if self.rebuild_apps {
            write!(f, "the CA changed: installed apps trust only the old CA, so rebuild (`builder build`) and reinstall them, and install the new ThinGate.cer/ThinGate.key on the gateway")
        } else {
            write!(f, "the CA is unchanged: installed apps keep working; install the new ThinGate.cer/ThinGate.key on the gateway and restart it")
        }
    }
}

/// Makes a new CA and gateway certificate of `kind`; the old ones go to a
/// dated backup. `hosts` defaults to the gateway URL's host.
pub fn regen(b: &BrandRef, hosts: &[String], kind: KeyType) -> Result<CaReport> {
    let (brand, problems) = b.manifest();
    let hosts = hosts_or_url(hosts, &brand, &problems)?;
    let (files, backup) = crate::certs::issue::write_new_ca(&brand.certs, &brand.system_name, &hosts, kind)?;
    Ok(CaReport { files, backup, rebuild_apps: true })
}

/// Re-issues only the gateway certificate under the existing CA; its key is of
/// `kind`, by default the CA key's type.
pub fn gateway_cert(b: &BrandRef, hosts: &[String], kind: Option<KeyType>) -> Result<CaReport> {
    crate::check::ensure_default_certs(b)?;
    let (brand, problems) = b.manifest();
    let hosts = hosts_or_url(hosts, &brand, &problems)?;
    let (files, backup) = crate::certs::issue::write_gateway_cert(&brand.certs, &hosts, kind)?;
    Ok(CaReport { files, backup, rebuild_apps: false })
}

fn hosts_or_url(hosts: &[String], brand: &crate::manifest::Brand, problems: &[crate::Problem]) -> Result<Vec<String>> {
    if !hosts.is_empty() {
        for h in hosts {
            thin_protocol::entry_point::GatewayUrl::parse(&format!("https://{h}/"))
                .map_err(|e| Error::Usage(format!("--host {h}: {e}")))?;
        }
        return Ok(hosts.to_vec());
    }
    match &brand.url {
        Some(u) => Ok(vec![u.host.clone()]),
        None => Err(Error::Invalid { dir: brand.dir.clone(), problems: crate::Problems(problems.to_vec()) }),
    }
}

/// Makes `codesign.cer`, `codesign.key` (0600), `codesign.p12` and
/// `codesign.password` (0600) in `dir`. Returns the files and the password file.
pub fn make_codesign_identity(dir: &Path, company: &str) -> Result<(Vec<PathBuf>, PathBuf)> {
    use rand::Rng;
    let (cert, key) = crate::certs::issue::make_codesign(company)?;
    let (cer, keyf, p12, pwf) =
        (dir.join("codesign.cer"), dir.join("codesign.key"), dir.join("codesign.p12"), dir.join("codesign.password"));
    if p12.exists() {
        return Err(Error::Exists(p12));
    }
    let password: String =
        rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(24).map(char::from).collect();
    fsutil::write_new(&cer, cert.as_bytes())?;
    fsutil::write_secret(&keyf, key.as_bytes())?;
    fsutil::write_secret(&pwf, password.as_bytes())?;
    // The PKCS#12 (it holds the key) comes back on stdout and is written 0600
    // from the start, not by openssl with the umask's mode.
    let out = Command::new("openssl")
        .args(["pkcs12", "-export", "-name", "codesign", "-passout", "env:THIN_P12_PASSWORD", "-in"])
        .arg(&cer)
        .arg("-inkey")
        .arg(&keyf)
        .env("THIN_P12_PASSWORD", &password)
        .output()
        .map_err(|e| Error::Tool {
            tool: "openssl".into(),
            msg: format!("cannot run it ({e}); install it with `apt-get install openssl`"),
        })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::Tool { tool: "openssl pkcs12".into(), msg: String::from_utf8_lossy(&out.stderr).into() });
    }
    fsutil::write_secret(&p12, &out.stdout)?;
    Ok((vec![cer, keyf, p12, pwf.clone()], pwf))
}
