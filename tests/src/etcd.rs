//! A real etcd for the cluster edition's tests. The helper itself lives with
//! the gateway's registry tests (`gateway/tests/support/etcd_server.rs`) and
//! is compiled here too, so there is one copy of it.

#[path = "../../gateway/tests/support/etcd_server.rs"]
mod etcd_server;

pub use etcd_server::EtcdServer;

/// `ThinGate.ini` lines that make a gateway a member of cluster `name` on
/// `etcd`, reached at `https://gwN.test/`.
pub fn member_ini(etcd: &EtcdServer, name: &str, n: usize) -> String {
    format!(
        "StandaloneMode 0\nClusterEtcdEndpoints {}\nClusterPublicUrl https://gw{n}.test/\nClusterName {name}\n\
         ClusterLeaseTtl 2000\nClusterEtcdTimeout 1000",
        etcd.url
    )
}
