//! Where a daemon keeps its state: sled in the data dir, or PostgreSQL
//! when `database_url` is set, with this node joined to the cluster of
//! daemons sharing the database. And the node's id: the configured one,
//! else the one kept in the data dir, else a new one (the host name and a
//! random suffix) kept there for the next start, so a restarted node finds
//! its own runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::cluster::Cluster;
use crate::config::{Config, is_node_id};
use crate::store::health::StorageHealth;
use crate::store::{EventLog, PgStore, RunClaims, SledStore, Store, StoreError, WatchedStore, redacted_database_url};

/// The file in the data dir keeping a node id made at a first start.
const NODE_ID_FILE: &str = "node-id";

/// The store, and on PostgreSQL this node's part in the cluster.
pub struct Opened {
    /// The store, its failures watched by the storage health.
    pub store: Arc<dyn Store>,
    /// This node in the cluster (PostgreSQL only), joined.
    pub cluster: Option<Arc<Cluster>>,
    /// This node's id.
    pub node_id: String,
    /// The cluster's queue of runs (PostgreSQL only).
    pub claims: Option<Arc<dyn RunClaims>>,
    /// The cluster's event log (PostgreSQL only).
    pub event_log: Option<Arc<dyn EventLog>>,
}

/// Opens the store `config` names, watched by `storage`.
pub fn open_store(config: &Config, storage: &Arc<StorageHealth>) -> anyhow::Result<Opened> {
    let node_id = node_id(config)?;
    let Some(url) = &config.database_url else {
        let store = match SledStore::open_with(&config.database_path(), config.flush_interval, config.db_cache) {
            Ok(store) => store,
            Err(StoreError::Locked(message)) => anyhow::bail!("{message}"),
            Err(error) => return Err(error).context("opening the database"),
        };
        return Ok(Opened {
            store: Arc::new(WatchedStore::new(store, storage.clone())),
            cluster: None,
            node_id,
            claims: None,
            event_log: None,
        });
    };
    let store = PgStore::connect(url, &config.data_dir.join("compiled"), &node_id)
        .with_context(|| format!("opening the database at {}", redacted_database_url(url)))?;
    let cluster = Cluster::new(Arc::new(store.clone()));
    match cluster.join() {
        Ok(()) => {}
        Err(StoreError::Locked(message)) => anyhow::bail!("{message}"),
        Err(error) => return Err(error).context("joining the cluster"),
    }
    tracing::info!(node = %node_id, "joined the cluster of this database");
    Ok(Opened {
        store: Arc::new(WatchedStore::new(store.clone(), storage.clone())),
        cluster: Some(cluster),
        node_id,
        claims: Some(Arc::new(store.clone())),
        event_log: Some(Arc::new(store)),
    })
}

/// This node's id (see the module's docs).
fn node_id(config: &Config) -> anyhow::Result<String> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(kept) if is_node_id(kept.trim()) => return Ok(kept.trim().to_string()),
        Ok(_) => anyhow::bail!(
            "{} does not hold a node id; delete it or give --node-id",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    let id = new_node_id(&host_name());
    write_new(&path, &id).with_context(|| format!("keeping the node id in {}", path.display()))?;
    Ok(id)
}

/// A node id from a host name: its usable part and a random suffix.
fn new_node_id(host: &str) -> String {
    let host: String = host
        .chars()
        .filter(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-'))
        .take(80)
        .collect();
    let host = if host.is_empty() { "sandcron".to_string() } else { host };
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// The machine's host name, or "" when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// Writes `text` to a new file at `path` (never over one).
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_node_id_is_the_usable_part_of_the_host_name_and_a_suffix() {
        let id = new_node_id("db-1.example.com");
        assert!(id.starts_with("db-1.example.com-"), "{id}");
        assert!(is_node_id(&id), "{id}");
        assert!(is_node_id(&new_node_id("")));
        assert!(new_node_id("").starts_with("sandcron-"));
        assert!(is_node_id(&new_node_id("weird host/ñame")));
        assert_ne!(new_node_id("a"), new_node_id("a"), "the suffix is random");
    }
}
