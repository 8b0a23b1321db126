//! `brand.toml` as written: every field optional, each remembering where it was
//! written so that a problem can name its line.

use serde::Deserialize;
use toml::Spanned;

/// An optional field with its position in the file.
pub type Field<T> = Option<Spanned<T>>;

/// The manifest exactly as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// 1-8 ASCII letters or digits; names the install folder, service, registry key.
    pub app_id: Field<String>,
    /// Name shown to users ("Mikaka Telework").
    pub product_name: Field<String>,
    /// Company, for the version resource and the installer.
    pub company: Field<String>,
    /// System name (the `SYSTEM:` line of `EntryPoint.dat`).
    pub system_name: Field<String>,
    /// `major.minor.patch`.
    pub version: Field<String>,
    /// `https://host[:port]/thingate/`.
    pub gateway_url: Field<String>,
    /// Local RPC port of the server app.
    pub rpc_port: Field<i64>,
    /// Languages of the string tables (`ja`, `en`).
    pub languages: Field<Vec<String>>,
    /// String-table patches.
    #[serde(default)]
    pub strings: RawStrings,
    /// Artwork.
    #[serde(default)]
    pub artwork: RawArtwork,
    /// CA and gateway certificate files.
    #[serde(default)]
    pub certs: RawCerts,
    /// Optional code-signing identity.
    pub codesign: Option<RawCodesign>,
}

/// `[strings]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStrings {
    /// Japanese patch file.
    pub ja: Field<String>,
    /// English patch file.
    pub en: Field<String>,
}

/// `[artwork]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtwork {
    /// Folder holding the BMP files.
    pub dir: Field<String>,
}

/// `[certs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCerts {
    /// CA certificate (PEM) compiled into the apps.
    pub ca_cert: Field<String>,
    /// CA private key (PEM), used by `builder ca gateway-cert`.
    pub ca_key: Field<String>,
    /// Gateway certificate (PEM).
    pub gateway_cert: Field<String>,
    /// Gateway private key (PEM).
    pub gateway_key: Field<String>,
}

/// `[codesign]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodesign {
    /// PKCS#12 file with the signing certificate and key.
    pub pkcs12: Field<String>,
    /// Name of the environment variable holding the PKCS#12 password.
    pub password_env: Field<String>,
    /// Certificate (PEM) to verify signatures against; defaults to the one in the PKCS#12.
    pub cert: Field<String>,
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
