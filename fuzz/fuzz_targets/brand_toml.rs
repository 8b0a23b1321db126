//! `brand.toml` (`builder/src/manifest/`): the brand manifest the builder
//! checks before it builds anything, with the default brand's manifest behind
//! it (`builder::manifest::parse`, what `manifest::load` does after reading the
//! file).
//!
//! Checks: no panic; allocation bounded; problems name lines of the file; a
//! manifest without problems resolves to fields within their rules (AppId,
//! version, RPC port, gateway URL, languages).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = Budget::start(budget_for(data.len()));
    let lines = text.split('\n').count();
    let (brand, problems) = builder::manifest::parse(text, Path::new("/nonexistent/brand"), None);
    for p in &problems {
        if let Some(line) = p.line {
            assert!((1..=lines).contains(&line), "problem on line {line} of {lines}: {p:?}");
        }
    }
    if problems.is_empty() {
        use builder::manifest::fields;
        assert_eq!(fields::app_id(&brand.app_id).as_deref(), Ok(brand.app_id.as_str()));
        assert_eq!(fields::version(&brand.version), Ok(brand.version_parts));
        assert_eq!(fields::rpc_port(brand.rpc_port.into()), Ok(brand.rpc_port));
        let url = brand.url.as_ref().expect("no problems, but no gateway URL");
        assert_eq!(fields::gateway_url(&brand.gateway_url).as_ref(), Ok(url));
        assert!(!brand.languages.is_empty());
    }
    budget.check("brand_toml");
});
