//! Checks of single manifest fields. Each returns the fixed value or
//! `(what is wrong, the fix)`.

use thin_protocol::entry_point::GatewayUrl;

/// `(what, fix)` of a bad field.
pub type Bad = (String, String);

/// AppId: 1-8 ASCII letters or digits.
pub fn app_id(v: &str) -> Result<String, Bad> {
    if v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let why = if v.len() > 8 {
            format!("{v:?} is {} characters long", v.chars().count())
        } else {
            format!("{v:?} contains characters other than ASCII letters and digits")
        };
        let why = if v.is_empty() { "the AppId is empty".to_string() } else { why };
        return Err((why, "use 1 to 8 ASCII letters or digits, e.g. app_id = \"Mikaka\"".into()));
    }
    Ok(v.to_string())
}

/// A display text used in installers (product, company, system name).
pub fn display_text(name: &str, v: &str) -> Result<String, Bad> {
    let fix = format!("give {name} 1 to 64 characters without control characters or any of \" $ < > & `");
    if v.trim().is_empty() {
        return Err((format!("{name} is empty"), fix));
    }
    if v.chars().count() > 64 {
        return Err((format!("{name} is {} characters long", v.chars().count()), fix));
    }
    if let Some(c) = v.chars().find(|c| c.is_control() || "\"$<>&`".contains(*c)) {
        return Err((format!("{name} contains {c:?}, which the installer scripts cannot carry"), fix));
    }
    Ok(v.trim().to_string())
}

/// Version `major.minor.patch` within the limits of Windows and MSI versions.
pub fn version(v: &str) -> Result<[u16; 3], Bad> {
    let fix =
        "write major.minor.patch with major and minor at most 255 and patch at most 65535, e.g. version = \"1.0.0\"";
    let parts: Vec<&str> = v.split('.').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse::<u32>().ok().filter(|_| !p.is_empty())).collect();
    match nums {
        Some(n) if n.len() == 3 && n[0] <= 255 && n[1] <= 255 && n[2] <= 65535 => {
            Ok([n[0] as u16, n[1] as u16, n[2] as u16])
        }
        _ => Err((format!("version {v:?} is not major.minor.patch within the MSI limits"), fix.into())),
    }
}

/// Gateway URL: https, a host or IP, optional port, a path. A cluster lists
/// its gateways separated by commas, in the order the apps try them; the
/// first is the one this build's gateway bundle is (`docs/cluster.md`).
pub fn gateway_url(v: &str) -> Result<GatewayUrl, Bad> {
    let fix = "write https://HOST[:PORT]/thingate/ with the gateway's DNS name or IP address, e.g. https://gw.example.org/thingate/".to_string();
    let mut first = None;
    for one in v.split(',').map(str::trim) {
        if one.is_empty() {
            return Err((format!("gateway URL list {v:?} has an empty entry"), fix));
        }
        if !one.to_ascii_lowercase().starts_with("https://") {
            return Err((format!("gateway URL {one:?} is not https"), fix));
        }
        let url = GatewayUrl::parse(one).map_err(|e| (e.to_string(), fix.clone()))?;
        first.get_or_insert(url);
    }
    first.ok_or((format!("gateway URL {v:?} is empty"), fix))
}

/// RPC port: 1024-65535, not 3389 (RDP) nor 3459 (URDP).
pub fn rpc_port(v: i64) -> Result<u16, Bad> {
    let fix =
        "choose a port from 1024 to 65535 other than 3389 and 3459, different for each brand, e.g. rpc_port = 9826"
            .to_string();
    match v {
        3389 => Err(("3389 is the Remote Desktop port".into(), fix)),
        3459 => Err(("3459 is the URDP port, which must not be changed".into(), fix)),
        1024..=65535 => Ok(v as u16),
        _ => Err((format!("{v} is outside 1024-65535"), fix)),
    }
}

/// Languages: a non-empty list of `ja` and `en`, without repeats.
pub fn languages(v: &[String]) -> Result<Vec<crate::manifest::Lang>, Bad> {
    let fix = "write languages = [\"ja\", \"en\"] or a subset".to_string();
    let mut out = Vec::new();
    for l in v {
        let lang =
            crate::manifest::Lang::from_code(l).ok_or_else(|| (format!("unknown language {l:?}"), fix.clone()))?;
        if out.contains(&lang) {
            return Err((format!("language {l:?} is listed twice"), fix));
        }
        out.push(lang);
    }
    if out.is_empty() {
        return Err(("no language is listed".into(), fix));
    }
    Ok(out)
}

/// Environment variable name (for the code-signing password).
pub fn env_name(v: &str) -> Result<String, Bad> {
    let ok =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !v.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(v.to_string())
    } else {
        Err((
            format!("{v:?} is not an environment variable name"),
            "use letters, digits and _, e.g. password_env = \"THIN_CODESIGN_PASSWORD\"".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules() {
        assert!(app_id("Private").is_ok());
        assert!(app_id("TooLongId9").is_err());
        assert!(app_id("a-b").is_err());
        assert_eq!(rpc_port(9826).unwrap(), 9826);
        assert!(rpc_port(3389).is_err() && rpc_port(3459).is_err() && rpc_port(80).is_err());
        assert_eq!(version("1.2.3").unwrap(), [1, 2, 3]);
        assert!(version("1.2").is_err() && version("256.0.0").is_err() && version("1..2").is_err());
        assert!(gateway_url("http://h/").is_err());
        assert_eq!(gateway_url("https://h:8443/thingate/").unwrap().port, 8443);
        let cluster = gateway_url("https://gw1.example.org/thingate/, https://gw2.example.org:8443/thingate/").unwrap();
        assert_eq!((cluster.host.as_str(), cluster.port), ("gw1.example.org", 443), "the first is the bundle's");
        assert!(gateway_url("https://gw1.example.org/, http://gw2.example.org/").is_err());
        assert!(gateway_url("https://gw1.example.org/,,https://gw2.example.org/").is_err());
        assert!(display_text("company", "A & B").is_err());
    }
}
