//! Plugins: accept uploaded bytes only when they are a component that
//! implements the `job` world, version them per name, and keep compiled
//! artifacts (in sled, by digest and engine fingerprint, and in memory as
//! ready-to-instantiate `JobPre`s) so neither a run nor a restart compiles
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::model::validate::check_name;
use crate::model::{Artifact, PluginRef, PluginVersion};
use crate::sandbox::{ComponentError, Metering, PreparedJob, Sandbox};
use crate::store::{Store, StoreError};

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No bytes were sent.
    #[error("the request body is empty; send the component's bytes")]
    Empty,
    /// More bytes than the configured cap.
    #[error("the plugin is larger than the {limit}-byte upload limit")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// The `name` is missing or malformed.
    #[error("name: {0}")]
    InvalidName(String),
    /// Not a usable component.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// No plugin of that name.
    #[error("no plugin named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name exists but not that version.
    #[error("plugin {name:?} has no version {version}")]
    VersionNotFound {
        /// The name.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// Jobs still use the plugin.
    #[error("plugin {name:?} is used by jobs: {}", jobs.join(", "))]
    InUse {
        /// The name.
        name: String,
        /// Names of the jobs using it.
        jobs: Vec<String>,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Compiling or loading failed on the host side.
    #[error("{0}")]
    Internal(String),
}

/// What an upload did.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The version holding the bytes.
    pub version: PluginVersion,
    /// False when identical bytes already were a version of this name.
    pub created: bool,
}

/// The plugin registry and compile cache.
pub struct Plugins {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    max_bytes: u64,
    metrics: Arc<Metrics>,
    /// By metering, then digest (looked up per run without allocating): a
    /// plugin is compiled for the metered engines only once a job with a
    /// fuel budget runs it.
    prepared: RwLock<HashMap<Metering, HashMap<String, Arc<PreparedJob>>>>,
    /// References resolved since the last upload or delete (every fire
    /// resolves its job's plugin).
    resolved: Mutex<Resolved>,
}

/// Resolved references by tenant, then reference as the job names it.
/// Any upload or delete empties it and moves the generation on, so a
/// lookup that read the store before the change does not keep its answer.
#[derive(Default)]
struct Resolved {
    generation: u64,
    versions: HashMap<String, HashMap<String, PluginVersion>>,
    count: usize,
}

/// Resolved references kept at most; past it the map starts again.
const RESOLVED_CAPACITY: usize = 4096;

impl Resolved {
    fn get(&self, tenant: &str, reference: &str) -> Option<PluginVersion> {
        self.versions.get(tenant)?.get(reference).cloned()
    }

    /// Keeps `version` if nothing changed since `generation` was read.
    fn put(&mut self, generation: u64, tenant: &str, reference: &str, version: &PluginVersion) {
        if generation != self.generation {
            return;
        }
        if self.count >= RESOLVED_CAPACITY {
            self.versions.clear();
            self.count = 0;
        }
        let of_tenant = self.versions.entry(tenant.to_string()).or_default();
        if of_tenant.insert(reference.to_string(), version.clone()).is_none() {
            self.count += 1;
        }
    }

    fn changed(&mut self) {
        self.generation += 1;
        self.versions.clear();
        self.count = 0;
    }
}

/// sha256 of bytes as lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Plugins {
    /// A registry over `store`, compiling with `sandbox`.
    pub fn new(store: Arc<dyn Store>, sandbox: Arc<Sandbox>, max_bytes: u64, metrics: Arc<Metrics>) -> Plugins {
        Plugins {
            store,
            sandbox,
            max_bytes,
            metrics,
            prepared: RwLock::new(HashMap::new()),
            resolved: Mutex::new(Resolved::default()),
        }
    }

    /// The upload cap in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn cached(&self, digest: &str, metering: Metering) -> Option<Arc<PreparedJob>> {
        self.prepared
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&metering)
            .and_then(|prepared| prepared.get(digest))
            .cloned()
    }

    fn remember(&self, digest: &str, metering: Metering, prepared: Arc<PreparedJob>) {
        self.prepared
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(metering)
            .or_default()
            .insert(digest.to_string(), prepared);
    }

    /// Validates, compiles and stores `bytes` as the next version of `name`
    /// (or returns the version that already holds them). Durable on return.
    /// A new version is refused with a quota error when the tenant's plugin
    /// versions would take more than `max_total_bytes` together.
    pub async fn upload(
        &self,
        tenant: &str,
        name: &str,
        bytes: Vec<u8>,
        max_total_bytes: Option<u64>,
    ) -> Result<Uploaded, PluginError> {
        check_name(name).map_err(PluginError::InvalidName)?;
        if bytes.is_empty() {
            return Err(PluginError::Empty);
        }
        if bytes.len() as u64 > self.max_bytes {
            return Err(PluginError::TooLarge { limit: self.max_bytes });
        }
        let digest = digest(&bytes);
        // Validated and compiled for the default (unmetered) engines; the
        // metered code is made when a job with a fuel budget first runs it.
        if self.cached(&digest, Metering::Unmetered).is_none() {
            let (prepared, artifact, serialized) =
                self.compile(digest.clone(), bytes.clone(), Metering::Unmetered).await?;
            self.store.put_artifact(&artifact, &serialized)?;
            self.remember(&digest, Metering::Unmetered, Arc::new(prepared));
        }
        let added = self
            .store
            .add_plugin_version_within(tenant, name, &digest, &bytes, Utc::now(), max_total_bytes)?;
        self.resolved().changed();
        self.store.flush_async().await?;
        if added.created {
            tracing::info!(tenant, plugin = %added.version.reference(), %digest, "plugin uploaded");
        }
        Ok(Uploaded {
            version: added.version,
            created: added.created,
        })
    }

    /// Compiles off the async runtime and checks the `job` world.
    async fn compile(
        &self,
        digest: String,
        bytes: Vec<u8>,
        metering: Metering,
    ) -> Result<(PreparedJob, Artifact, Vec<u8>), PluginError> {
        let (sandbox, metrics) = (self.sandbox.clone(), self.metrics.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let component = sandbox.compile(&bytes, metering)?;
            let prepared = sandbox.prepare(&component, metering)?;
            let compile_ms = started.elapsed().as_millis() as u64;
            let serialized = sandbox
                .serialize(&component)
                .map_err(|error| PluginError::Internal(error.to_string()))?;
            let artifact = Artifact {
                digest: digest.clone(),
                engine: sandbox.fingerprint(metering).to_string(),
                compiled_at: Utc::now(),
                compile_ms,
                artifact_digest: self::digest(&serialized),
            };
            tracing::info!(%digest, compile_ms, ?metering, "plugin compiled");
            metrics.compiled(started.elapsed().as_secs_f64());
            Ok((prepared, artifact, serialized))
        })
        .await
        .map_err(|error| PluginError::Internal(format!("the compile task failed: {error}")))?
    }

    /// The ready-to-instantiate plugin with this digest for runs of this
    /// metering: from memory, else from the artifact cache, else compiled
    /// from the stored bytes.
    pub async fn prepared(&self, digest: &str, metering: Metering) -> Result<Arc<PreparedJob>, PluginError> {
        if let Some(prepared) = self.cached(digest, metering) {
            self.metrics.cache_hit("memory");
            return Ok(prepared);
        }
        if let Some(prepared) = self.load_artifact(digest, metering).await? {
            self.metrics.cache_hit("artifact");
            let prepared = Arc::new(prepared);
            self.remember(digest, metering, prepared.clone());
            return Ok(prepared);
        }
        let bytes = self
            .store
            .plugin_bytes(digest)?
            .ok_or_else(|| PluginError::Internal(format!("the bytes of plugin {digest} are missing from the store")))?;
        let (prepared, artifact, serialized) = self.compile(digest.to_string(), bytes, metering).await?;
        self.store.put_artifact(&artifact, &serialized)?;
        let prepared = Arc::new(prepared);
        self.remember(digest, metering, prepared.clone());
        Ok(prepared)
    }

    async fn load_artifact(&self, digest: &str, metering: Metering) -> Result<Option<PreparedJob>, PluginError> {
        let Some((artifact, bytes)) = self.store.artifact(digest, self.sandbox.fingerprint(metering))? else {
            return Ok(None);
        };
        if self::digest(&bytes) != artifact.artifact_digest {
            tracing::warn!(%digest, "cached artifact does not match its checksum; compiling again");
            return Ok(None);
        }
        let sandbox = self.sandbox.clone();
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            // SAFETY: these bytes were produced by `Sandbox::serialize` of an
            // engine with this fingerprint and match the sha256 recorded when
            // they were stored.
            let component = match unsafe { sandbox.deserialize(&bytes, metering) } {
                Ok(component) => component,
                Err(error) => {
                    tracing::warn!(%digest, %error, "cached artifact does not load; compiling again");
                    return Ok(None);
                }
            };
            let prepared = sandbox.prepare(&component, metering)?;
            tracing::info!(%digest, load_us = started.elapsed().as_micros() as u64, "plugin loaded from the artifact cache");
            Ok(Some(prepared))
        })
        .await
        .map_err(|error| PluginError::Internal(format!("the load task failed: {error}")))?
    }

    /// The compile record of a digest, if it was compiled by this daemon's
    /// default (unmetered) engines.
    pub fn artifact(&self, digest: &str) -> Result<Option<Artifact>, PluginError> {
        Ok(self
            .store
            .artifact(digest, self.sandbox.fingerprint(Metering::Unmetered))?
            .map(|(artifact, _)| artifact))
    }

    /// The version a reference (`name` or `name@3`) points at.
    pub fn resolve(&self, tenant: &str, reference: &str) -> Result<PluginVersion, PluginError> {
        let generation = {
            let resolved = self.resolved();
            if let Some(found) = resolved.get(tenant, reference) {
                return Ok(found);
            }
            resolved.generation
        };
        let named = reference;
        let reference = PluginRef::parse(reference).map_err(PluginError::InvalidName)?;
        if let Some(found) = self.store.plugin_version(tenant, &reference.name, reference.version)? {
            self.resolved().put(generation, tenant, named, &found);
            return Ok(found);
        }
        match reference.version {
            Some(version) if self.store.plugin_version(tenant, &reference.name, None)?.is_some() => {
                Err(PluginError::VersionNotFound {
                    name: reference.name,
                    version,
                })
            }
            _ => Err(PluginError::NotFound { name: reference.name }),
        }
    }

    fn resolved(&self) -> std::sync::MutexGuard<'_, Resolved> {
        self.resolved.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every version of every plugin of the tenant.
    pub fn list(&self, tenant: &str) -> Result<Vec<PluginVersion>, PluginError> {
        Ok(self.store.list_plugin_versions(tenant)?)
    }

    /// The versions of one plugin, oldest first.
    pub fn versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>, PluginError> {
        let versions = self.store.plugin_versions(tenant, name)?;
        if versions.is_empty() {
            return Err(PluginError::NotFound { name: name.to_string() });
        }
        Ok(versions)
    }

    /// Deletes every version of a plugin no job uses. Durable on return.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<(), PluginError> {
        let users: Vec<String> = self
            .store
            .list_jobs(tenant)?
            .into_iter()
            .filter(|job| PluginRef::parse(&job.plugin).is_ok_and(|reference| reference.name == name))
            .map(|job| job.name)
            .collect();
        if !users.is_empty() {
            return Err(PluginError::InUse {
                name: name.to_string(),
                jobs: users,
            });
        }
        let deleted = self.store.delete_plugin(tenant, name)?;
        self.resolved().changed();
        if deleted == 0 {
            return Err(PluginError::NotFound { name: name.to_string() });
        }
        self.store.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: u32) -> PluginVersion {
        PluginVersion {
            tenant: "t".into(),
            name: "tool".into(),
            version: number,
            digest: format!("d{number}"),
            size: 1,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_resolution_read_before_a_change_is_not_kept() {
        let mut resolved = Resolved::default();
        let before = resolved.generation;
        resolved.put(before, "t", "tool", &version(1));
        assert_eq!(resolved.get("t", "tool").map(|found| found.version), Some(1));
        assert_eq!(resolved.get("other", "tool"), None);
        // An upload lands while a lookup that read version 1 is on its way.
        resolved.changed();
        assert_eq!(resolved.get("t", "tool"), None);
        resolved.put(before, "t", "tool", &version(1));
        assert_eq!(resolved.get("t", "tool"), None, "a stale answer was kept");
        resolved.put(resolved.generation, "t", "tool", &version(2));
        assert_eq!(resolved.get("t", "tool").map(|found| found.version), Some(2));
    }

    #[test]
    fn resolutions_past_the_capacity_start_the_map_again() {
        let mut resolved = Resolved::default();
        for index in 0..=RESOLVED_CAPACITY {
            resolved.put(0, "t", &format!("tool{index}"), &version(1));
        }
        assert_eq!(resolved.count, 1);
        assert!(resolved.get("t", &format!("tool{RESOLVED_CAPACITY}")).is_some());
    }
}
