//! Every generated text file comes from a handlebars template in `templates/`,
//! addressed by a constant here. Strict mode (a missing variable is an error)
//! and no HTML escaping (nothing rendered is HTML; XML values are escaped by
//! the caller with [`xml`]).

use crate::error::{Error, Result};
use handlebars::Handlebars;
use serde::Serialize;

/// A template: name and source, compiled into the builder.
pub type Template = (&'static str, &'static str);

macro_rules! template {
    ($id:ident, $file:literal) => {
        #[doc = concat!("`templates/", $file, "`.")]
        pub const $id: Template = ($file, include_str!(concat!("../../templates/", $file)));
    };
}

template!(BRAND_TOML, "brand.toml.hbs");
template!(ENTRY_POINT, "EntryPoint.dat.hbs");
template!(THINGATE_INI, "ThinGate.ini.hbs");
template!(SYSTEMD_UNIT, "thingate.service.hbs");
template!(SYSCTL, "sysctl.conf.hbs");
template!(LIMITS, "limits.conf.hbs");
template!(INSTALL_SH, "install.sh.hbs");
template!(APPS_SYSTEMD_UNIT, "thinsvr.service.hbs");
template!(APPS_INSTALL_SH, "install-apps.sh.hbs");
template!(SYSUSERS, "sysusers.conf.hbs");
template!(NSIS, "setup.nsi.hbs");
template!(WIX, "product.wxs.hbs");
template!(CI_SCRIPT, "ci-build.sh.hbs");
template!(CI_GITHUB, "ci-github.yml.hbs");
template!(CI_GITLAB, "ci-gitlab.yml.hbs");

/// Every template, for the test that loads them all.
pub const ALL: [Template; 15] = [
    BRAND_TOML,
    ENTRY_POINT,
    THINGATE_INI,
    SYSTEMD_UNIT,
    SYSCTL,
    LIMITS,
    INSTALL_SH,
    APPS_SYSTEMD_UNIT,
    APPS_INSTALL_SH,
    SYSUSERS,
    NSIS,
    WIX,
    CI_SCRIPT,
    CI_GITHUB,
    CI_GITLAB,
];

/// A strict, non-escaping registry with every template.
pub fn registry() -> Result<Handlebars<'static>> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(handlebars::no_escape);
    for (name, src) in ALL {
        h.register_template_string(name, src).map_err(|e| Error::Template { name: name.into(), msg: e.to_string() })?;
    }
    Ok(h)
}

/// Renders one template.
pub fn render(t: Template, data: &impl Serialize) -> Result<String> {
    registry()?.render(t.0, data).map_err(|e| Error::Template { name: t.0.into(), msg: e.to_string() })
}

/// Escapes text for an XML attribute or element.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        super::registry().unwrap();
    }

    #[test]
    fn windows_paths_keep_their_backslash() {
        let v = serde_json::json!({"app_id": "X", "product_name": "P", "company": "C", "system_name": "S", "version": "1.0.0", "build": 7, "file_version": "1.0.0.7", "msi_version": "1.0.7",
            "package": "server", "display_name": "P Server", "uninstall_key": "X", "per_user": false, "has_client": false, "has_server": true, "reg_root": "HKLM",
            "upgrade_code": "U", "guid_client": "1", "guid_server": "2", "guid_registry": "3", "guid_shortcuts": "4", "service_name": "XThinServer",
            "service_args": "service", "client_title": "P Client", "server_title": "P Server", "rpc_port": 9826});
        let wxs = super::render(super::WIX, &v).unwrap();
        assert!(wxs.contains(r#"Key="Software\X""#), "{wxs}");
        assert!(!wxs.contains("{{"), "{wxs}");
    }

    #[test]
    fn missing_variables_are_errors() {
        let err = super::render(super::ENTRY_POINT, &serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("EntryPoint.dat.hbs"), "{err}");
    }
}
