//! The home PC's state on Windows, over WMI (the `wmi` crate; each call on
//! the calling thread, which it joins to COM's multi-threaded apartment):
//! - antivirus products from Security Center, `root\SecurityCenter2`
//!   `AntiVirusProduct` (`displayName`, `productState`), decoded by
//!   [`crate::inspection::decode_product_state`];
//! - the installed updates from `root\cimv2` `Win32_QuickFixEngineering`
//!   (`InstalledOn`), the latest of them;
//! - the system's name from `Win32_OperatingSystem` (`Caption`, `Version`).
//!
//! These calls can block for long (a busy or broken WMI service): the caller
//! runs them on threads of their own and stops waiting at a deadline
//! (`crate::inspection`).

use serde::Deserialize;
use wmi::WMIConnection;

/// One `AntiVirusProduct` instance.
#[derive(Deserialize)]
struct AntiVirusProduct {
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "productState")]
    product_state: Option<u32>,
}

/// One `Win32_QuickFixEngineering` instance.
#[derive(Deserialize)]
struct QuickFix {
    #[serde(rename = "InstalledOn")]
    installed_on: Option<String>,
}

/// One `Win32_OperatingSystem` instance.
#[derive(Deserialize)]
struct OperatingSystem {
    #[serde(rename = "Caption")]
    caption: Option<String>,
    #[serde(rename = "Version")]
    version: Option<String>,
}

/// Security Center's antivirus products: `(displayName, productState)`.
pub fn antivirus_products() -> Result<Vec<(String, u32)>, String> {
    let con = WMIConnection::with_namespace_path(r"ROOT\SecurityCenter2").map_err(|e| {
        let e = e.to_string();
        // WBEM_E_INVALID_NAMESPACE: no Security Center (Windows Server, Wine).
        let why = if e.contains("0x8004100E") { " (no Windows Security Center on this system)" } else { "" };
        format!(r"WMI namespace root\SecurityCenter2: {e}{why}")
    })?;
    let rows: Vec<AntiVirusProduct> = con
        .raw_query("SELECT displayName, productState FROM AntiVirusProduct")
        .map_err(|e| format!("WMI AntiVirusProduct: {e}"))?;
    Ok(rows.into_iter().map(|r| (r.display_name.unwrap_or_default(), r.product_state.unwrap_or(0))).collect())
}

/// The `InstalledOn` texts of the installed updates, as WMI gives them.
pub fn update_install_dates() -> Result<Vec<String>, String> {
    let con = WMIConnection::new().map_err(|e| format!(r"WMI namespace root\cimv2: {e}"))?;
    let rows: Vec<QuickFix> = con
        .raw_query("SELECT InstalledOn FROM Win32_QuickFixEngineering")
        .map_err(|e| format!("WMI Win32_QuickFixEngineering: {e}"))?;
    Ok(rows.into_iter().filter_map(|r| r.installed_on).collect())
}

/// The system's name and version (`Microsoft Windows 11 Pro 10.0.22631`).
pub fn os_name() -> Result<String, String> {
    let con = WMIConnection::new().map_err(|e| format!(r"WMI namespace root\cimv2: {e}"))?;
    let rows: Vec<OperatingSystem> = con
        .raw_query("SELECT Caption, Version FROM Win32_OperatingSystem")
        .map_err(|e| format!("WMI Win32_OperatingSystem: {e}"))?;
    let os = rows.into_iter().next().ok_or("WMI Win32_OperatingSystem: no instance")?;
    let name = [os.caption, os.version].into_iter().flatten().map(|s| s.trim().to_string()).collect::<Vec<_>>();
    Ok(name.join(" ").trim().to_string())
}
