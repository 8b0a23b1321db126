//! `EntryPoint.dat` (`protocol/src/entry_point.rs`): the CA, gateway URL and
//! system name compiled into the apps, and the gateway URL parser on its own
//! (`GatewayUrl::parse`, also used by the builder's manifest check).
//!
//! Input: the file's text; its last line also goes to `GatewayUrl::parse`.
//!
//! Checks: no panic; allocation bounded; errors name a line of the file; a
//! parsed URL prints to text that parses to the same URL; an accepted file,
//! rendered again (`EntryPoint::render` with its CAs as PEM), parses to the
//! same CAs, URL and system name.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thin_protocol::entry_point::{EntryPoint, EntryPointError, GatewayUrl};

fn url_round_trip(u: &GatewayUrl) {
    let shown = u.to_string();
    let back =
        GatewayUrl::parse(&shown).unwrap_or_else(|e| panic!("{u:?} prints as {shown:?}, which does not parse: {e}"));
    assert_eq!(&back, u, "{shown:?}");
    assert!(u.port != 0 && !u.host.is_empty() && u.path.starts_with('/'));
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = Budget::start(budget_for(data.len()));
    let lines = text.lines().count();
    if let Some(last) = text.lines().last() {
        if let Ok(u) = GatewayUrl::parse(last) {
            url_round_trip(&u);
        }
    }
    match EntryPoint::parse(text, "EntryPoint.dat") {
        Ok(ep) => {
            url_round_trip(&ep.url);
            assert!(!ep.ca.is_empty());
            let ca: String = ep.ca.iter().map(|c| pem(c)).collect();
            let system = ep.system_name.clone().unwrap_or_default();
            let again = EntryPoint::render(&ca, &ep.url.to_string(), &system);
            let back = EntryPoint::parse(&again, "again")
                .unwrap_or_else(|e| panic!("a rendered entry point does not parse: {e}\n{again}"));
            assert_eq!(back.ca, ep.ca);
            assert_eq!(back.url, ep.url);
            assert_eq!(back.system_name.unwrap_or_default(), system);
        }
        Err(EntryPointError::BadUrl { line, .. } | EntryPointError::PlainHttp { line, .. }) => {
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
        Err(_) => {}
    }
    budget.check("entry_point");
});
