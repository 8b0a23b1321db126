//! `--sign`: Authenticode signatures with osslsigncode from the brand's PKCS#12,
//! each verified against the brand's signing certificate.

use crate::error::{Error, IoContext, Result};
use crate::manifest::Brand;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A ready signing identity.
#[derive(Debug)]
pub struct Signer {
    pkcs12: PathBuf,
    pass_file: PathBuf,
    cert: PathBuf,
    name: String,
}

fn tool(cmd: &mut Command, name: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| Error::Tool {
        tool: name.into(),
        msg: format!("cannot run ({e}); install it with `apt-get install {name}`"),
    })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(Error::Tool { tool: name.into(), msg: format!("failed ({}):\n{}", out.status, text.trim()) })
    }
}

impl Signer {
    /// Prepares signing for `b` (its `[codesign]` section and password variable);
    /// `scratch/codesign/` (0700) receives a 0600 password file and, if needed,
    /// the certificate.
    pub fn new(b: &Brand, scratch: &Path) -> Result<Self> {
        let cs = b.codesign.as_ref().ok_or_else(|| Error::Usage(format!(
            "--sign: {}/brand.toml has no [codesign] section; add pkcs12 and password_env (see brand/default/brand.toml), or make a test identity with `builder new --self-signed-codesign`",
            b.dir.display()
        )))?;
        let password = std::env::var(&cs.password_env).map_err(|_| Error::Usage(format!(
            "--sign: the environment variable {} (codesign.password_env) is not set; export it with the PKCS#12 password", cs.password_env
        )))?;
        // Absolute: makensis runs `!uninstfinalize` in the script's folder (the stage),
        // where a path relative to builder's working folder (`--brand s`) does not exist.
        let abs = |p: &Path| -> Result<PathBuf> {
            let a = std::path::absolute(p).at(p)?;
            match a.to_str() {
                Some(s) if !s.contains(['"', '\'', '`', '$', '\\', '%', '\n', '\r']) => Ok(a),
                _ => Err(Error::Usage(format!(
                    "--sign: {} has a character makensis's !uninstfinalize cannot pass on (\" ' ` $ \\ % or a newline, or it is not UTF-8); move or rename it",
                    a.display()
                ))),
            }
        };
        let pkcs12 = abs(&cs.pkcs12)?;
        let scratch = scratch.join("codesign");
        crate::fsutil::create_private_dir(&scratch)?;
        let pass_file = abs(&scratch.join("codesign.pass"))?;
        let given_cert = cs.cert.as_deref().map(abs).transpose()?;
        let scratch_cert = abs(&scratch.join("codesign.cer"))?;
        let _ = std::fs::remove_file(&pass_file);
        crate::fsutil::write_secret(&pass_file, password.as_bytes())?;
        let cert = match given_cert {
            Some(c) => c,
            None => {
                let c = scratch_cert;
                let text = tool(
                    Command::new("openssl")
                        .args(["pkcs12", "-nokeys", "-clcerts", "-passin"])
                        .arg(format!("file:{}", pass_file.display()))
                        .arg("-in")
                        .arg(&pkcs12),
                    "openssl",
                )?;
                crate::fsutil::write_generated(&c, text.as_bytes())?;
                c
            }
        };
        Ok(Self { pkcs12, pass_file, cert, name: b.product_name.clone() })
    }

    /// Signs `file` in place, then verifies it.
    pub fn sign(&self, file: &PathBuf) -> Result<()> {
        let signed = file.with_extension("signed.tmp");
        let _ = std::fs::remove_file(&signed);
        tool(
            Command::new("osslsigncode")
                .args(["sign", "-h", "sha256", "-n", &self.name, "-pkcs12"])
                .arg(&self.pkcs12)
                .arg("-readpass")
                .arg(&self.pass_file)
                .arg("-in")
                .arg(file)
                .arg("-out")
                .arg(&signed),
            "osslsigncode",
        )?;
        std::fs::rename(&signed, file).at(file)?;
        self.verify(file)
    }

    /// The command makensis runs on the uninstaller it builds (`!uninstfinalize`;
    /// `%1` is the file, in a temporary folder, run from the script's folder):
    /// signs it in place and verifies it, so the installed uninstaller is signed too.
    /// The template adds `= 0`: makensis ignores a failing command otherwise and
    /// would ship the unsigned uninstaller. The paths are absolute (see `new`).
    pub fn nsis_finalize_command(&self) -> String {
        let q = |p: &Path| format!("\"{}\"", p.display());
        format!(
            "osslsigncode sign -h sha256 -pkcs12 {} -readpass {} -in \"%1\" -out \"%1.signed\" && mv -f \"%1.signed\" \"%1\" && osslsigncode verify -CAfile {} -in \"%1\"",
            q(&self.pkcs12),
            q(&self.pass_file),
            q(&self.cert)
        )
    }

    /// Verifies `file` against the signing certificate.
    pub fn verify(&self, file: &Path) -> Result<()> {
        tool(
            Command::new("osslsigncode").arg("verify").arg("-CAfile").arg(&self.cert).arg("-in").arg(file),
            "osslsigncode",
        )
        .map(|_| ())
        .map_err(|e| Error::Tool { tool: "osslsigncode verify".into(), msg: format!("{}: {e}", file.display()) })
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pass_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uninstaller_is_signed_and_verified_with_absolute_paths() {
        let s = Signer {
            pkcs12: "/b/certs/codesign.p12".into(),
            pass_file: "/t/codesign.pass".into(),
            cert: "/t/codesign.cer".into(),
            name: "P".into(),
        };
        let c = s.nsis_finalize_command();
        assert!(c.starts_with("osslsigncode sign -h sha256 -pkcs12 \"/b/certs/codesign.p12\" -readpass \"/t/codesign.pass\" -in \"%1\""), "{c}");
        assert!(c.ends_with("&& osslsigncode verify -CAfile \"/t/codesign.cer\" -in \"%1\""), "{c}");
        assert!(!c.contains('\''), "the template quotes it with '': {c}");
    }
}
