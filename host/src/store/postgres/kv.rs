//! Each job's kv state in PostgreSQL; the tenant's kv bytes are kept by
//! the table's triggers (`kv_usage`) in the statement that changes them.

use super::database::{PgStore, big, count};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::KvStore;

/// The tenant's kv bytes as a transaction sees them.
async fn usage_of(client: &deadpool_postgres::Transaction<'_>, tenant: &str, lock: bool) -> StoreResult<u64> {
    let sql = if lock {
        "SELECT bytes FROM kv_usage WHERE tenant = $1 FOR UPDATE"
    } else {
        "SELECT bytes FROM kv_usage WHERE tenant = $1"
    };
    let row = client.query_opt(sql, &[&tenant]).await?;
    Ok(row.map_or(0, |row| count(row.get(0))))
}

impl KvStore for PgStore {
    fn kv_get(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT value FROM kv WHERE tenant = $1 AND job_id = $2 AND key = $3")
                .await?;
            let row = client.query_opt(&statement, &[&tenant, &job_id, &key]).await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn kv_set_under_quota(
        &self,
        tenant: &str,
        job_id: &str,
        key: &str,
        value: &[u8],
        max_bytes: Option<u64>,
    ) -> StoreResult<()> {
        let entry_bytes = (key.len() + value.len()) as u64;
        self.block(|| async {
            self.transact(async |transaction| {
                if let Some(limit) = max_bytes {
                    // The tenant's row, locked: two writes cannot both fit
                    // in the last room.
                    transaction
                        .execute(
                            "INSERT INTO kv_usage (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING",
                            &[&tenant],
                        )
                        .await?;
                    let used = usage_of(transaction, tenant, true).await?;
                    let old = transaction
                        .query_opt(
                            "SELECT octet_length(key) + octet_length(value) FROM kv
                             WHERE tenant = $1 AND job_id = $2 AND key = $3",
                            &[&tenant, &job_id, &key],
                        )
                        .await?
                        .map_or(0, |row| count(i64::from(row.get::<_, i32>(0))));
                    let after = used.saturating_sub(old) + entry_bytes;
                    if after > limit && after > used {
                        return Err(StoreError::QuotaExceeded(format!(
                            "kv_bytes: the tenant's kv state takes {used} bytes; this write would make it {after}, past its quota of {limit}"
                        )));
                    }
                }
                let statement = transaction
                    .prepare_cached(
                        "INSERT INTO kv (tenant, job_id, key, value) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (tenant, job_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .await?;
                transaction.execute(&statement, &[&tenant, &job_id, &key, &value]).await?;
                Ok(())
            })
            .await
        })
    }

    fn kv_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT bytes FROM kv_usage WHERE tenant = $1", &[&tenant])
                .await?;
            Ok(row.map_or(0, |row| count(row.get(0))))
        })
    }

    fn kv_delete(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<()> {
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "DELETE FROM kv WHERE tenant = $1 AND job_id = $2 AND key = $3",
                    &[&tenant, &job_id, &key],
                )
                .await?;
            Ok(())
        })
    }

    fn kv_keys(&self, tenant: &str, job_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT key FROM kv WHERE tenant = $1 AND job_id = $2 AND starts_with(key, $3)
                     ORDER BY key LIMIT $4",
                    &[&tenant, &job_id, &prefix, &big(limit as u64)],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}
