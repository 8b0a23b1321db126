//! `builder check` on each invalid brand fixture: the message (file, field or
//! line, fix) is a reviewed snapshot.

mod common;
use builder::check::{check, BrandRef};
use common::Certs;

fn run(name: &str, certs: Certs) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    common::copy_dir(&common::fixture(name), &dir);
    common::write_certs(&dir, certs);
    match check(&BrandRef { dir: dir.clone(), cert_dir: None }) {
        Ok(_) => panic!("fixture {name} passed the check"),
        Err(builder::Error::Invalid { problems, .. }) => problems.to_string(),
        Err(e) => panic!("fixture {name}: unexpected error {e}"),
    }
}

macro_rules! fixture {
    ($name:ident) => {
        fixture!($name, Certs::Good);
    };
    ($name:ident, $certs:expr) => {
        #[test]
        fn $name() {
            let text = run(stringify!($name), $certs);
            insta::with_settings!({ filters => vec![(r"(expired on|before) [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [0-9]{4} \+00:00", "$1 [DATE]")] }, {
                insta::assert_snapshot!(stringify!($name), text);
            });
        }
    };
}

fixture!(app_id_too_long);
fixture!(app_id_not_alnum);
fixture!(app_id_missing);
fixture!(rpc_port_reserved);
fixture!(rpc_port_urdp);
fixture!(rpc_port_out_of_range);
fixture!(url_not_https);
fixture!(url_unparsable);
fixture!(toml_syntax);
fixture!(unknown_field);
fixture!(version_bad);
fixture!(ca_unreadable);
fixture!(ca_not_pem);
fixture!(ca_weak_rsa_sha1);
fixture!(ca_x509_v1);
fixture!(gateway_expired, Certs::Expired);
fixture!(gateway_wrong_host, Certs::WrongHost);
fixture!(gateway_other_ca, Certs::OtherCa);
fixture!(key_mismatch, Certs::KeyMismatch);
fixture!(patch_bad_syntax);
fixture!(patch_unknown_key);
fixture!(patch_unknown_key_en);
fixture!(artwork_not_bmp);
fixture!(artwork_wrong_size);
fixture!(many_problems);

#[test]
fn every_fixture_has_a_test() {
    let src = include_str!("check_fixtures.rs");
    for e in std::fs::read_dir(common::fixture("")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(src.contains(&format!("fixture!({name}")), "fixture {name} has no test");
    }
}
