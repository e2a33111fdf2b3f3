//! The kv subject of [`SledStore`]: each job's values under
//! `tenant \0 job \0 key`, and each tenant's kv bytes (keys and values)
//! kept in the same transaction as every write, for its `kv_bytes` quota.

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::database::SledStore;
use super::encoding::{key, prefix, read_count, transaction_error};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::KvStore;

impl SledStore {
    /// Counts each tenant's kv bytes in a database from before the count
    /// was kept.
    pub(super) fn count_kv_usage(&self) -> StoreResult<()> {
        let mut usage: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
        for entry in self.kv.iter() {
            let (full, value) = entry?;
            let mut parts = full.splitn(3, |byte| *byte == 0);
            let (Some(tenant), Some(_job), Some(user_key)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            *usage.entry(tenant.to_vec()).or_default() += (user_key.len() + value.len()) as u64;
        }
        let mut batch = sled::Batch::default();
        for (tenant, bytes) in usage {
            batch.insert(tenant, &bytes.to_be_bytes());
        }
        let gate = self.writing();
        self.kv_usage.apply_batch(batch).map_err(|error| gate.note(error))?;
        Ok(())
    }
}

impl KvStore for SledStore {
    fn kv_get(&self, tenant: &str, job_id: &str, kv_key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .kv
            .get(key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]))?
            .map(|bytes| bytes.to_vec()))
    }

    fn kv_set_under_quota(
        &self,
        tenant: &str,
        job_id: &str,
        kv_key: &str,
        value: &[u8],
        max_bytes: Option<u64>,
    ) -> StoreResult<()> {
        let full = key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]);
        let entry_bytes = (kv_key.len() + value.len()) as u64;
        let gate = self.writing();
        (&self.kv, &self.kv_usage)
            .transaction(|(kv, kv_usage)| {
                let old = kv.get(full.as_slice())?.map_or(0, |old| (kv_key.len() + old.len()) as u64);
                let used = read_count(kv_usage.get(tenant.as_bytes())?);
                let after = used.saturating_sub(old) + entry_bytes;
                if let Some(limit) = max_bytes
                    && after > limit
                    && after > used
                {
                    return Err(ConflictableTransactionError::Abort(StoreError::QuotaExceeded(format!(
                        "kv_bytes: the tenant's kv state takes {used} bytes; this write would make it {after}, past its quota of {limit}"
                    ))));
                }
                kv.insert(full.as_slice(), value)?;
                kv_usage.insert(tenant.as_bytes(), &after.to_be_bytes())?;
                Ok(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn kv_delete(&self, tenant: &str, job_id: &str, kv_key: &str) -> StoreResult<()> {
        let full = key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]);
        let gate = self.writing();
        (&self.kv, &self.kv_usage)
            .transaction(|(kv, kv_usage)| {
                if let Some(old) = kv.remove(full.as_slice())? {
                    let used = read_count(kv_usage.get(tenant.as_bytes())?);
                    let freed = (kv_key.len() + old.len()) as u64;
                    kv_usage.insert(tenant.as_bytes(), &used.saturating_sub(freed).to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn kv_usage(&self, tenant: &str) -> StoreResult<u64> {
        Ok(read_count(self.kv_usage.get(tenant.as_bytes())?))
    }

    fn kv_keys(&self, tenant: &str, job_id: &str, kv_prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let scope = prefix(&[tenant.as_bytes(), job_id.as_bytes()]);
        let start = [scope.as_slice(), kv_prefix.as_bytes()].concat();
        self.kv
            .scan_prefix(start)
            .keys()
            .take(limit)
            .map(|entry| {
                let full = entry?;
                Ok(String::from_utf8_lossy(&full[scope.len()..]).into_owned())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_keys_are_scoped_to_tenant_and_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.kv_set("t", "j1", "a/1", b"x").unwrap();
        store.kv_set("t", "j1", "a/2", b"y").unwrap();
        store.kv_set("t", "j2", "a/3", b"z").unwrap();
        store.kv_set("u", "j1", "a/4", b"w").unwrap();
        assert_eq!(store.kv_keys("t", "j1", "a/", 10).unwrap(), ["a/1", "a/2"]);
        assert_eq!(store.kv_keys("t", "j1", "", 1).unwrap(), ["a/1"]);
        assert_eq!(store.kv_get("u", "j1", "a/1").unwrap(), None);
    }
}
