//! `thingate cluster import` and `export`: a single-host
//! `MachineDatabase.config` into a cluster's etcd and back. Import never
//! overwrites: a machine or a computer ID the cluster already has differently
//! is reported, not changed.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::etcd_link::{decode, encode, EtcdError, EtcdLink};
use crate::machine_db::{Machine, MachineDb};

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

/// Machines per transaction of a batch (two keys each; etcd allows 128
/// operations per transaction by default).
const BATCH: usize = 50;

/// Writes every machine of `db` that the cluster does not have yet, each with
/// its computer ID (both keys absent, or nothing is written). Machines go in
/// batches of [`BATCH`] in one transaction; a batch that meets anything the
/// cluster has goes again machine by machine.
pub async fn import(link: &EtcdLink, db: &MachineDb) -> Result<ImportReport, EtcdError> {
    let mut report = ImportReport::default();
    let all: Vec<&Machine> = db.iter().collect();
    for batch in all.chunks(BATCH) {
        let mut when = Vec::new();
        let mut ops = Vec::new();
        for m in batch {
            let (mkey, pkey) = (link.keys.machine(&m.msid), link.keys.pcid(&m.pcid));
            when.push(Compare::version(mkey.as_str(), CompareOp::Equal, 0));
            when.push(Compare::version(pkey.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(mkey.as_str(), encode(m), None));
            ops.push(TxnOp::put(pkey.as_str(), m.msid.as_str(), None));
        }
        if link.call(link.client.kv_client().txn(Txn::new().when(when).and_then(ops))).await?.succeeded() {
            report.imported += batch.len();
        } else {
            one_by_one(link, batch, &mut report).await?;
        }
    }
    Ok(report)
}

async fn one_by_one(link: &EtcdLink, batch: &[&Machine], report: &mut ImportReport) -> Result<(), EtcdError> {
    for m in batch {
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
    Ok(())
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
