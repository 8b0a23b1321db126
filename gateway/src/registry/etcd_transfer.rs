//! `thingate cluster import` and `export`: a single-host
//! `MachineDatabase.config` into a cluster's etcd and back. Import never
//! overwrites: a machine or a computer ID the cluster already has differently
//! is reported, not changed.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::etcd_link::{decode, encode, EtcdError, EtcdLink};
use crate::machine_db::MachineDb;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Machines written to the cluster.
    pub imported: usize,
    /// Machines the cluster already had with the same computer ID (unchanged).
    pub already: usize,
    /// Machines left out: `PCID: why`.
    pub conflicts: Vec<String>,
}

/// Writes every machine of `db` that the cluster does not have yet, each with
/// its computer ID in one transaction (both keys absent, or nothing is written).
pub async fn import(link: &EtcdLink, db: &MachineDb) -> Result<ImportReport, EtcdError> {
    let mut report = ImportReport::default();
    for m in db.iter() {
        let (mkey, pkey) = (link.keys.machine(&m.msid), link.keys.pcid(&m.pcid));
        let txn = Txn::new()
            .when([
                Compare::version(mkey.as_str(), CompareOp::Equal, 0),
                Compare::version(pkey.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::put(mkey.as_str(), encode(m), None), TxnOp::put(pkey.as_str(), m.msid.as_str(), None)])
            .or_else([TxnOp::get(pkey.as_str(), None)]);
        let resp = link.call(link.client.kv_client().txn(txn)).await?;
        if resp.succeeded() {
            report.imported += 1;
            continue;
        }
        let holder = resp.op_responses().into_iter().find_map(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => {
                g.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            }
            _ => None,
        });
        match holder {
            Some(h) if h == m.msid => report.already += 1,
            Some(h) => report.conflicts.push(format!("{}: held in the cluster by machine {h}", m.pcid)),
            None => report
                .conflicts
                .push(format!("{}: machine {} is in the cluster under another computer ID", m.pcid, m.msid)),
        }
    }
    Ok(report)
}

/// Every machine of the cluster, as a database to be saved at `db`'s path.
pub async fn export(link: &EtcdLink, mut db: MachineDb) -> Result<MachineDb, EtcdError> {
    let (kvs, _) = link.get_prefix(&link.keys.machines()).await?;
    for kv in &kvs {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let m = decode(&key, kv.value())?;
        db.try_upsert(m).map_err(|e| EtcdError::BadValue { key, msg: e.to_string() })?;
    }
    Ok(db)
}
