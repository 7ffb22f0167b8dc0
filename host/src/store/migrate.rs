//! Moving a deployment from sled to PostgreSQL whole (`idfed admin migrate-store`): every tree's records
//! byte for byte — so secrets stay sealed under the same master key and the audit chain keeps its hashes —
//! and the plugin components from their files into the database. An empty target only: a database that
//! holds anything is refused before a row is written. Afterwards the target is opened as a replica
//! would open it (its secrets must open with the same key) and its audit chain verified.

use std::collections::BTreeMap;

use super::db::{Db, TxError};
use super::{DataStore, Store, StoreError};
use crate::audit::AuditLog;

/// Records copied per transaction.
const BATCH: usize = 500;

/// What a migration copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Records per tree.
    pub trees: BTreeMap<String, usize>,
    /// Plugin components.
    pub plugins: usize,
    /// Audit records the target's chain verified.
    pub audit_records: u64,
}

/// Copies `source` (sled) into `target` (an empty PostgreSQL database), then checks the copy: the
/// target opens with the same key (`open_target`) and its audit chain verifies.
pub fn copy_store(
    source: &DataStore,
    target: &Db,
    open_target: impl FnOnce() -> Result<DataStore, StoreError>,
) -> Result<Copied, StoreError> {
    let Db::Sled(sled) = source.db() else {
        return Err(StoreError::Invalid(
            "the source of a migration is a sled data directory".into(),
        ));
    };
    let Db::Postgres(pg) = target else {
        return Err(StoreError::Invalid(
            "the target of a migration is a PostgreSQL database".into(),
        ));
    };
    let rows = pg.row_count()?;
    if rows > 0 {
        return Err(StoreError::Conflict(format!(
            "the target database is not empty ({rows} records): a migration copies into an empty \
             database only"
        )));
    }
    // A damaged chain is not carried over (it would not verify there either, after the copy).
    let source_audit = AuditLog::open(source.db(), None)
        .map_err(|e| StoreError::Io(format!("the source's audit log: {e}")))?;
    let report = source_audit
        .verify()
        .map_err(|e| StoreError::Io(format!("the source's audit log: {e}")))?;
    if !report.is_intact() {
        return Err(StoreError::Invalid(format!(
            "the source's audit chain does not verify (idfed audit verify): {}",
            report.problems.join("; ")
        )));
    }
    let mut copied = Copied::default();
    for name in sled.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        // sled's own default tree holds nothing of idfed's.
        if name == "__sled__default" {
            continue;
        }
        let from = source.db().open_tree(&name)?;
        let to = target.open_tree(&name)?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut count = 0;
        let flush = |batch: &mut Vec<(sled::IVec, sled::IVec)>| -> Result<(), StoreError> {
            target.transaction([&to], |[t]| {
                for (key, value) in batch.iter() {
                    t.insert(key, value)?;
                }
                Ok::<_, TxError<StoreError>>(())
            })?;
            batch.clear();
            Ok(())
        };
        for entry in from.iter() {
            batch.push(entry?);
            count += 1;
            if batch.len() == BATCH {
                flush(&mut batch)?;
            }
        }
        flush(&mut batch)?;
        if count > 0 {
            copied.trees.insert(name, count);
        }
    }
    let components = target.open_tree(super::data_store::PLUGIN_COMPONENTS)?;
    for plugin in source.list_plugins()? {
        let Some(wasm) = source.get_plugin(&plugin.digest)? else {
            return Err(StoreError::NotFound(format!(
                "plugin {} is listed but its component file is missing",
                plugin.digest
            )));
        };
        components.insert(&plugin.digest, &wasm)?;
        copied.plugins += 1;
    }

    // The copy as a replica sees it: secrets open with the same key, the chain verifies.
    let opened = open_target()?;
    if opened.list_accounts()?.len() != source.list_accounts()?.len()
        || opened.list_connectors()?.len() != source.list_connectors()?.len()
        || opened.list_plugins()?.len() != source.list_plugins()?.len()
    {
        return Err(StoreError::Io(
            "the copy does not hold what the source does".into(),
        ));
    }
    for account in opened.list_accounts()? {
        opened.account_credentials(&account.name)?;
    }
    let audit = AuditLog::open(opened.db(), None)
        .map_err(|e| StoreError::Io(format!("the copied audit log: {e}")))?;
    let report = audit
        .verify()
        .map_err(|e| StoreError::Io(format!("the copied audit log: {e}")))?;
    if !report.is_intact() {
        return Err(StoreError::Io(format!(
            "the copied audit chain does not verify: {}",
            report.problems.join("; ")
        )));
    }
    copied.audit_records = report.records;
    Ok(copied)
}
