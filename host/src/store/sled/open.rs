//! Opening [`SledStore`]: its trees, its caches and counts read (or built
//! once, for a database from before they were kept), and the plugin bytes
//! and code older versions kept in sled moved to files.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::active_groups::ActiveGroups;
use super::database::SledStore;
use super::gate::Broken;
use super::job_cache::JobCache;
use super::run_bytes::Totals;
use crate::store::code_files::CodeFiles;
use crate::store::error::{StoreError, StoreResult};
use crate::store::group_commit::GroupCommit;

impl SledStore {
    /// Opens (or creates) the database at `path`, flushing as soon as asked.
    /// A second process on the same path fails with [`StoreError::Locked`].
    pub fn open(path: &Path) -> StoreResult<SledStore> {
        SledStore::open_with(path, Duration::ZERO, crate::config::DEFAULT_DB_CACHE)
    }

    /// Opens the database with flushes at least `flush_interval` apart (see
    /// the group commit's durability window) and `cache_bytes` of sled's
    /// page cache. Plugin bytes and compiled code are files under
    /// `path/plugins`.
    pub fn open_with(path: &Path, flush_interval: Duration, cache_bytes: u64) -> StoreResult<SledStore> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        let db = config.open().map_err(|error| match &error {
            sled::Error::Io(io) if io.to_string().contains("lock") || io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(format!(
                    "the database {} is in use by another process (is another sandcron daemon running on this data dir?): {io}",
                    path.display()
                ))
            }
            _ => StoreError::Backend(format!("cannot open {}: {error}", path.display())),
        })?;
        let tree = |name: &str| db.open_tree(name);
        let had_tree = |name: &[u8]| db.tree_names().iter().any(|tree| tree.as_ref() == name);
        let (had_starters, had_kv_usage) = (had_tree(b"run_at_start"), had_tree(b"kv_usage"));
        let gate = Arc::new(RwLock::new(()));
        let broken = Arc::new(Broken::default());
        let group = GroupCommit::new(
            {
                let (db, gate, broken) = (db.clone(), gate.clone(), broken.clone());
                Arc::new(move || {
                    let _alone = gate.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                    broken.flush(&db)
                })
            },
            flush_interval,
        );
        let store = SledStore {
            plugins: tree("plugins")?,
            plugin_bytes: tree("plugin_bytes")?,
            plugin_refs: tree("plugin_refs")?,
            artifacts: tree("artifacts")?,
            artifact_bytes: tree("artifact_bytes")?,
            files: Arc::new(CodeFiles::open(&path.join("plugins"))?),
            jobs: tree("jobs")?,
            job_names: tree("job_names")?,
            due: tree("due")?,
            starters: tree("run_at_start")?,
            runs: tree("runs")?,
            kv: tree("kv")?,
            kv_usage: tree("kv_usage")?,
            secrets: tree("secrets")?,
            workflows: tree("workflows")?,
            counted: Arc::new(Mutex::new(())),
            tenants: tree("tenants")?,
            tokens: tree("tokens")?,
            tenant_tokens: tree("tenant_tokens")?,
            gate,
            broken,
            group,
            job_cache: Arc::new(JobCache::default()),
            active_groups: Arc::new(Mutex::new(ActiveGroups::default())),
            run_bytes: Arc::new(Totals::default()),
            db,
        };
        let unfinished = store.count_unfinished()?;
        let store = SledStore {
            run_bytes: Arc::new(Totals::new(store.read_run_bytes()?, unfinished.bytes)),
            ..store
        };
        for record_key in unfinished.alone {
            store.groups().add_alone(record_key);
        }
        if !had_starters {
            store.index_starters()?;
        }
        if !had_kv_usage {
            store.count_kv_usage()?;
        }
        store.prepare_plugins()?;
        Ok(store)
    }
}
