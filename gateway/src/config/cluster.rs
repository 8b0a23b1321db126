//! The cluster edition's keys (`StandaloneMode 0`; `docs/cluster.md`): where
//! the etcd cluster is, how to reach it, and who this member is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, Ini, CLUSTER_KEYS};

/// TLS to etcd (`ClusterEtcdCaFile`, `ClusterEtcdCertFile`, `ClusterEtcdKeyFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificates (PEM) trusted for the etcd members.
    pub ca_file: PathBuf,
    /// This member's client certificate and key (PEM), when etcd asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How a cluster member reaches etcd and announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `ClusterEtcdEndpoints`: URLs of the etcd members.
    pub endpoints: Vec<String>,
    /// `ClusterPublicUrl`: this gateway's URL as the apps reach it.
    pub public_url: String,
    /// `ClusterName`: the cluster's keys live under `/thintelework/<name>/`.
    pub name: String,
    /// TLS to etcd; `None` with `http://` endpoints.
    pub tls: Option<EtcdTls>,
    /// `ClusterEtcdTimeout` (3000 ms): the longest one etcd call may take.
    pub timeout: Duration,
    /// `ClusterLeaseTtl` (10000 ms): how long this member's sessions stay
    /// announced after it stops renewing them.
    pub lease_ttl: Duration,
}

impl ClusterSettings {
    /// Settings for an etcd reached over plain `http://` (tests, one host).
    pub fn plain(endpoints: Vec<String>, public_url: &str, name: &str) -> ClusterSettings {
        ClusterSettings {
            endpoints,
            public_url: public_url.into(),
            name: name.into(),
            tls: None,
            timeout: Duration::from_millis(3_000),
            lease_ttl: Duration::from_millis(10_000),
        }
    }
}

/// Reads the cluster keys when `StandaloneMode` is 0; `None` for a standalone gateway.
pub(super) fn read(ini: &Ini<'_>, dir: &Path) -> Result<Option<ClusterSettings>, ConfigError> {
    if ini.flag("StandaloneMode")? {
        return Ok(None);
    }
    let mode_line = ini.raw("StandaloneMode").0;
    let needed = |key: &str| {
        ini.text(key).ok_or_else(|| {
            ini.bad(
                key,
                mode_line,
                format!(
                    "unset, but StandaloneMode 0 (the cluster edition) needs {}; set them (docs/cluster.md), \
                     or set \"StandaloneMode 1\" for a standalone gateway",
                    CLUSTER_KEYS.join(", ")
                ),
            )
        })
    };
    let (eline, evalue) = needed("ClusterEtcdEndpoints")?;
    let (uline, uvalue) = needed("ClusterPublicUrl")?;
    let (nline, name) = needed("ClusterName")?;

    let mut endpoints = Vec::new();
    for e in evalue.split(',').map(str::trim) {
        let ok = url::Url::parse(e).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.port().is_some() && u.path() == "/"
        });
        if ok.is_none() {
            return Err(ini.bad(
                "ClusterEtcdEndpoints",
                eline,
                format!(
                    "{e:?} is not an etcd URL; write URLs with scheme, host and port separated by commas, \
                     e.g. https://10.0.0.1:2379, https://10.0.0.2:2379"
                ),
            ));
        }
        endpoints.push(e.to_string());
    }
    let https = endpoints[0].starts_with("https://");
    if endpoints.iter().any(|e| e.starts_with("https://") != https) {
        return Err(ini.bad(
            "ClusterEtcdEndpoints",
            eline,
            "mixes http:// and https:// URLs; use https:// for every member (or http:// for every member)".into(),
        ));
    }

    let public_ok = url::Url::parse(uvalue).ok().is_some_and(|u| u.scheme() == "https" && u.host().is_some());
    if !public_ok {
        return Err(ini.bad(
            "ClusterPublicUrl",
            uline,
            format!("{uvalue:?} is not an https:// URL; write the URL the apps reach this gateway at, e.g. https://gw2.example.org:443/"),
        ));
    }
    let name_ok = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(ini.bad(
            "ClusterName",
            nline,
            format!("{name:?} is not a cluster name; use up to 64 letters, digits, '-', '_' or '.', e.g. tokyo-1"),
        ));
    }

    let file = |key| ini.text(key).map(|(line, v)| (line, dir.join(v)));
    let (ca, cert, key) = (file("ClusterEtcdCaFile"), file("ClusterEtcdCertFile"), file("ClusterEtcdKeyFile"));
    let tls = match (https, ca) {
        (false, _) => {
            if let Some(k) = ["ClusterEtcdCaFile", "ClusterEtcdCertFile", "ClusterEtcdKeyFile"]
                .into_iter()
                .find(|k| ini.text(k).is_some())
            {
                return Err(ini.bad(
                    k,
                    ini.raw(k).0,
                    "is set, but ClusterEtcdEndpoints are http:// URLs; write https:// endpoints, or remove it".into(),
                ));
            }
            None
        }
        (true, None) => return Err(ini.bad(
            "ClusterEtcdCaFile",
            eline,
            "unset, but ClusterEtcdEndpoints are https:// URLs; name the CA certificate (PEM) of the etcd members, \
                 e.g. \"ClusterEtcdCaFile etcd-ca.pem\""
                .into(),
        )),
        (true, Some((_, ca_file))) => {
            let identity = match (cert, key) {
                (Some((_, c)), Some((_, k))) => Some((c, k)),
                (None, None) => None,
                (Some((line, _)), None) => return Err(ini.bad(
                    "ClusterEtcdKeyFile",
                    line,
                    "unset, but ClusterEtcdCertFile is set; name the certificate's private key (PEM), or remove both"
                        .into(),
                )),
                (None, Some((line, _))) => {
                    return Err(ini.bad(
                        "ClusterEtcdCertFile",
                        line,
                        "unset, but ClusterEtcdKeyFile is set; name the client certificate (PEM), or remove both"
                            .into(),
                    ))
                }
            };
            Some(EtcdTls { ca_file, identity })
        }
    };
    let ms = |key, min, max| ini.num(key, min, max, "a time in milliseconds").map(Duration::from_millis);
    Ok(Some(ClusterSettings {
        endpoints,
        public_url: uvalue.to_string(),
        name: name.to_string(),
        tls,
        timeout: ms("ClusterEtcdTimeout", 100, 60_000)?,
        lease_ttl: ms("ClusterLeaseTtl", 2_000, 600_000)?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::GateConfig;
    use std::path::Path;

    const OK: &str = "StandaloneMode 0\nClusterEtcdEndpoints http://127.0.0.1:2379, http://127.0.0.2:2379\n\
                      ClusterPublicUrl https://gw2.example.org/\nClusterName tokyo-1\n";

    fn err(extra: &str) -> String {
        let p = Path::new("/x/ThinGate.ini");
        GateConfig::parse(&format!("{OK}{extra}"), p).unwrap_err().to_string()
    }

    #[test]
    fn a_cluster_member_reads_its_keys() {
        let p = Path::new("/x/ThinGate.ini");
        let c = GateConfig::parse(OK, p).unwrap().cluster.unwrap();
        assert_eq!(c.endpoints, ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]);
        assert_eq!(
            (c.public_url.as_str(), c.name.as_str(), c.tls.is_none()),
            ("https://gw2.example.org/", "tokyo-1", true)
        );
        assert_eq!((c.timeout.as_millis(), c.lease_ttl.as_millis()), (3_000, 10_000));
        let tls = OK.replace("http://", "https://")
            + "ClusterEtcdCaFile ca.pem\nClusterEtcdCertFile c.pem\nClusterEtcdKeyFile k.pem\n";
        let c = GateConfig::parse(&tls, p).unwrap().cluster.unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.ca_file, Path::new("/x/ca.pem"));
        assert_eq!(t.identity, Some((Path::new("/x/c.pem").into(), Path::new("/x/k.pem").into())));
        assert!(GateConfig::parse("", p).unwrap().cluster.is_none());
        let standalone = GateConfig::parse(&OK.replace("StandaloneMode 0", "StandaloneMode 1"), p).unwrap();
        assert!(standalone.cluster.is_none());
        assert_eq!(standalone.warnings.len(), 1, "{:?}", standalone.warnings);
        assert!(standalone.warnings[0]
            .starts_with("/x/ThinGate.ini:2: ClusterEtcdEndpoints is ignored while StandaloneMode is 1"));
    }

    #[test]
    fn bad_cluster_values_name_the_key_and_the_fix() {
        let p = Path::new("/x/ThinGate.ini");
        let e = GateConfig::parse("StandaloneMode 0\nClusterEtcdEndpoints http://e:2379\n", p).unwrap_err().to_string();
        assert!(e.starts_with("/x/ThinGate.ini:1: ClusterPublicUrl: unset, but StandaloneMode 0"), "{e}");
        let e = GateConfig::parse(&OK.replace("http://127.0.0.2:2379", "127.0.0.2"), p).unwrap_err().to_string();
        assert!(e.starts_with("/x/ThinGate.ini:2: ClusterEtcdEndpoints: \"127.0.0.2\" is not an etcd URL"), "{e}");
        let e = GateConfig::parse(&OK.replace("http://127.0.0.2", "https://127.0.0.2"), p).unwrap_err().to_string();
        assert!(e.contains("ClusterEtcdEndpoints: mixes http:// and https://"), "{e}");
        let e = GateConfig::parse(&OK.replace("https://gw2", "http://gw2"), p).unwrap_err().to_string();
        assert!(
            e.starts_with("/x/ThinGate.ini:3: ClusterPublicUrl: \"http://gw2.example.org/\" is not an https:// URL"),
            "{e}"
        );
        let e = GateConfig::parse(&OK.replace("tokyo-1", "tokyo/1"), p).unwrap_err().to_string();
        assert!(e.contains(":4: ClusterName: \"tokyo/1\" is not a cluster name"), "{e}");
        let e = err("ClusterEtcdCaFile ca.pem\n");
        assert!(e.contains(":5: ClusterEtcdCaFile: is set, but ClusterEtcdEndpoints are http:// URLs"), "{e}");
        let e = GateConfig::parse(&OK.replace("http://", "https://"), p).unwrap_err().to_string();
        assert!(e.contains("ClusterEtcdCaFile: unset, but ClusterEtcdEndpoints are https:// URLs"), "{e}");
        let tls = OK.replace("http://", "https://") + "ClusterEtcdCaFile ca.pem\nClusterEtcdCertFile c.pem\n";
        let e = GateConfig::parse(&tls, p).unwrap_err().to_string();
        assert!(e.contains(":6: ClusterEtcdKeyFile: unset, but ClusterEtcdCertFile is set"), "{e}");
        let e = err("ClusterLeaseTtl 500\n");
        assert!(e.contains(":5: ClusterLeaseTtl: \"500\" is not a time in milliseconds (2000-600000)"), "{e}");
    }
}
