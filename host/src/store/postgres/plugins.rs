//! Plugins in PostgreSQL: versions, and the component bytes they share by
//! digest across tenants (a digest's bytes go with its last version, in the
//! same transaction). Compiled code is this node's own: files in the data
//! dir, each with its compile record beside it, since nodes may run
//! different engines and the code is large.

use std::collections::BTreeSet;

use super::database::{PgStore, big, count, from_json, json};
use crate::model::{Artifact, PluginVersion};
use crate::store::code_files::{Kind, code_name};
use crate::store::error::StoreResult;
use crate::store::records::{AddedPlugin, DeletedPlugin, NewPluginVersion, StoredArtifact, check_plugin_quota};
use crate::store::traits::PluginStore;

/// The first key of the advisory lock a tenant's plugin writes take
/// (the second is the tenant's name hashed).
const PLUGIN_LOCK: i32 = 1;

/// The plugin versions of a query's rows (their records).
fn versions(rows: &[tokio_postgres::Row]) -> StoreResult<Vec<PluginVersion>> {
    rows.iter()
        .map(|row| from_json("a plugin version", row.get(0)))
        .collect()
}

impl PgStore {
    /// Writes this node's compiled code and its record.
    fn keep_code(&self, artifact: &Artifact, code: &[u8]) -> StoreResult<()> {
        let name = code_name(&artifact.digest, &artifact.engine);
        self.files.write(Kind::Code, &name, code)?;
        self.files.remove(Kind::Record, &name)?;
        self.files.write(Kind::Record, &name, &json(artifact))
    }

    /// Deletes this node's code (and records) compiled from `digests`.
    fn forget_code_of(&self, digests: &BTreeSet<String>) -> StoreResult<()> {
        for (name, _) in self.files.list(Kind::Record)? {
            if name.split_once('-').is_some_and(|(digest, _)| digests.contains(digest)) {
                self.files.remove(Kind::Code, &name)?;
                self.files.remove(Kind::Record, &name)?;
            }
        }
        Ok(())
    }

    /// The digests some version uses.
    async fn used_digests(&self) -> StoreResult<BTreeSet<String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT DISTINCT digest FROM plugin_versions", &[])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

impl PluginStore for PgStore {
    fn add_plugin_version_under_quota(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin> {
        let added = self.block(|| async {
            self.transact(async |transaction| {
                transaction
                    .execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&PLUGIN_LOCK, &new.tenant],
                    )
                    .await?;
                let same = transaction
                    .query_opt(
                        "SELECT record FROM plugin_versions WHERE tenant = $1 AND name = $2 AND digest = $3
                         ORDER BY version LIMIT 1",
                        &[&new.tenant, &new.name, &new.digest],
                    )
                    .await?;
                if let Some(row) = same {
                    return Ok(AddedPlugin {
                        version: from_json(new.name, row.get(0))?,
                        created: false,
                    });
                }
                let used: i64 = transaction
                    .query_one(
                        "SELECT coalesce(sum(size), 0)::bigint FROM plugin_versions WHERE tenant = $1",
                        &[&new.tenant],
                    )
                    .await?
                    .get(0);
                check_plugin_quota(count(used), new.bytes.len() as u64, max_total_bytes)?;
                let last: i32 = transaction
                    .query_one(
                        "SELECT coalesce(max(version), 0) FROM plugin_versions WHERE tenant = $1 AND name = $2",
                        &[&new.tenant, &new.name],
                    )
                    .await?
                    .get(0);
                let version = PluginVersion {
                    tenant: new.tenant.to_string(),
                    name: new.name.to_string(),
                    version: u32::try_from(last).unwrap_or(0) + 1,
                    digest: new.digest.to_string(),
                    size: new.bytes.len() as u64,
                    created_at: new.uploaded_at,
                };
                transaction
                    .execute(
                        "INSERT INTO plugin_bytes (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                        &[&new.digest, &new.bytes],
                    )
                    .await?;
                transaction
                    .execute(
                        "INSERT INTO plugin_versions (tenant, name, version, digest, size, record)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &new.tenant,
                            &new.name,
                            &(last + 1),
                            &new.digest,
                            &big(version.size),
                            &json(&version),
                        ],
                    )
                    .await?;
                Ok(AddedPlugin { version, created: true })
            })
            .await
        })?;
        if added.created
            && let Some((artifact, code)) = new.compiled
        {
            self.keep_code(artifact, code)?;
        }
        Ok(added)
    }

    fn plugin_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.block(|| async {
            let used: i64 = self
                .client()
                .await?
                .query_one(
                    "SELECT coalesce(sum(size), 0)::bigint FROM plugin_versions WHERE tenant = $1",
                    &[&tenant],
                )
                .await?
                .get(0);
            Ok(count(used))
        })
    }

    fn list_plugin_versions(&self, tenant: &str) -> StoreResult<Vec<PluginVersion>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT record FROM plugin_versions WHERE tenant = $1 ORDER BY name, version",
                    &[&tenant],
                )
                .await?;
            versions(&rows)
        })
    }

    fn plugin_versions(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT record FROM plugin_versions WHERE tenant = $1 AND name = $2 ORDER BY version",
                    &[&tenant, &name],
                )
                .await?;
            versions(&rows)
        })
    }

    fn plugin_version(&self, tenant: &str, name: &str, version: Option<u32>) -> StoreResult<Option<PluginVersion>> {
        let version = version.map(|version| i32::try_from(version).unwrap_or(i32::MAX));
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT record FROM plugin_versions
                     WHERE tenant = $1 AND name = $2 AND ($3::integer IS NULL OR version = $3)
                     ORDER BY version DESC LIMIT 1",
                )
                .await?;
            let rows = client.query(&statement, &[&tenant, &name, &version]).await?;
            Ok(versions(&rows)?.pop())
        })
    }

    fn delete_plugin(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin> {
        let deleted = self.block(|| async {
            self.transact(async |transaction| {
                transaction
                    .execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&PLUGIN_LOCK, &tenant],
                    )
                    .await?;
                let removed = transaction
                    .query(
                        "DELETE FROM plugin_versions WHERE tenant = $1 AND name = $2 RETURNING digest",
                        &[&tenant, &name],
                    )
                    .await?;
                let digests: Vec<String> = removed.iter().map(|row| row.get(0)).collect();
                let collected = transaction
                    .query(
                        "DELETE FROM plugin_bytes AS bytes WHERE digest = ANY($1)
                         AND NOT EXISTS (SELECT 1 FROM plugin_versions AS used WHERE used.digest = bytes.digest)
                         RETURNING digest",
                        &[&digests],
                    )
                    .await?;
                Ok(DeletedPlugin {
                    versions: removed.len(),
                    collected: collected.iter().map(|row| row.get(0)).collect(),
                })
            })
            .await
        })?;
        self.forget_code_of(&deleted.collected.iter().cloned().collect())?;
        Ok(deleted)
    }

    fn collect_plugins(&self) -> StoreResult<Vec<String>> {
        let (collected, used) = self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "DELETE FROM plugin_bytes AS bytes
                     WHERE NOT EXISTS (SELECT 1 FROM plugin_versions AS used WHERE used.digest = bytes.digest)
                     RETURNING digest",
                    &[],
                )
                .await?;
            let collected: BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
            Ok((collected, self.used_digests().await?))
        })?;
        // This node's code of digests no version uses, whenever they went.
        let mut unused = collected;
        for (name, _) in self
            .files
            .list(Kind::Record)?
            .into_iter()
            .chain(self.files.list(Kind::Code)?)
        {
            if let Some((digest, _)) = name.split_once('-')
                && !used.contains(digest)
            {
                unused.insert(digest.to_string());
            }
        }
        self.forget_code_of(&unused)?;
        for (name, _) in self.files.list(Kind::Code)? {
            if name.split_once('-').is_some_and(|(digest, _)| unused.contains(digest)) {
                self.files.remove(Kind::Code, &name)?;
            }
        }
        Ok(unused.into_iter().collect())
    }

    fn plugin_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT bytes FROM plugin_bytes WHERE digest = $1", &[&digest])
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn artifact(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>> {
        let name = code_name(digest, engine);
        let Some(record) = self.files.read(Kind::Record, &name)? else {
            return Ok(None);
        };
        let artifact: Artifact = from_json(&name, &record)?;
        Ok(self.files.read(Kind::Code, &name)?.map(|code| (artifact, code)))
    }

    fn has_artifact(&self, digest: &str, engine: &str) -> StoreResult<bool> {
        let name = code_name(digest, engine);
        Ok(self.files.exists(Kind::Record, &name)? && self.files.exists(Kind::Code, &name)?)
    }

    fn put_artifact(&self, artifact: &Artifact, bytes: &[u8]) -> StoreResult<bool> {
        let used = self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT 1 FROM plugin_versions WHERE digest = $1 LIMIT 1",
                    &[&artifact.digest],
                )
                .await?;
            Ok(row.is_some())
        })?;
        if used {
            self.keep_code(artifact, bytes)?;
        }
        Ok(used)
    }

    fn stored_artifacts(&self) -> StoreResult<Vec<StoredArtifact>> {
        let sizes: std::collections::HashMap<String, u64> = self.files.list(Kind::Code)?.into_iter().collect();
        let mut stored = Vec::new();
        for (name, _) in self.files.list(Kind::Record)? {
            // A record without its code file is no artifact.
            let Some(size) = sizes.get(&name) else {
                continue;
            };
            let Some(record) = self.files.read(Kind::Record, &name)? else {
                continue;
            };
            let artifact: Artifact = from_json(&name, &record)?;
            stored.push(StoredArtifact {
                digest: artifact.digest,
                engine: artifact.engine,
                compiled_at: artifact.compiled_at,
                size: *size,
            });
        }
        Ok(stored)
    }

    fn drop_artifact(&self, digest: &str, engine: &str) -> StoreResult<()> {
        let name = code_name(digest, engine);
        self.files.remove(Kind::Record, &name)?;
        self.files.remove(Kind::Code, &name)
    }
}
