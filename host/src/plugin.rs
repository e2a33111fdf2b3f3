//! Plugins: accept uploaded bytes only when they are a component that
//! implements the `job` world, version them per name, and keep compiled
//! artifacts (in the store, by digest and engine fingerprint, and in memory as
//! ready-to-instantiate `JobPre`s, least recently used first out past a
//! byte budget) so neither a run nor a restart compiles again.
//!
//! An upload is judged before anything costly: its size, its header and
//! the tenant's quota come before compiling, compiles run a few at a time,
//! and what is compiled is written only with the version that uses it.
//!
//! Beside the uploads, every tenant has the built-in plugins ([`builtin`]):
//! resolved, listed and run like the others, never stored.

mod artifacts;
pub mod builtin;
mod cache;
mod digest;
mod error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{OnceCell, Semaphore};

use crate::metrics::Metrics;
use crate::model::validate::check_name;
use crate::model::{Artifact, PluginRef, PluginVersion};
use crate::sandbox::{EngineKind, Metering, PreparedJob, Sandbox};
use crate::store::{NewPluginVersion, Store, check_plugin_quota};

use cache::ByteLru;
pub use digest::digest;
pub use error::PluginError;

/// What an upload did.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The version holding the bytes.
    pub version: PluginVersion,
    /// False when identical bytes already were a version of this name.
    pub created: bool,
}

/// How much the registry may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Largest upload, bytes.
    pub max_bytes: u64,
    /// Compilations at once, uploads and runs together.
    pub concurrent_compiles: usize,
    /// Compiled plugins kept in memory, in bytes of their serialized code.
    pub cache_bytes: u64,
    /// Compiled code kept on disk, bytes.
    pub artifact_bytes: u64,
}

/// A compiled plugin in memory: its engine kind and digest (as bytes, so a
/// run's lookup does not allocate).
type CacheKey = (EngineKind, [u8; 32]);

fn cache_key(digest: &str, kind: EngineKind) -> Option<CacheKey> {
    let mut raw = [0; 32];
    hex::decode_to_slice(digest, &mut raw).ok()?;
    Some((kind, raw))
}

/// What compiling gave.
struct Compiled {
    prepared: PreparedJob,
    artifact: Artifact,
    /// The serialized code, for the artifact cache.
    code: Vec<u8>,
    /// The component bytes it was compiled from, handed back.
    bytes: Vec<u8>,
}

/// The plugin registry and compile cache.
pub struct Plugins {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    max_bytes: u64,
    metrics: Arc<Metrics>,
    /// Compiled plugins by kind and digest: a plugin is compiled for
    /// the metered engines only once a job with a fuel budget runs it.
    prepared: Mutex<ByteLru<CacheKey, Arc<PreparedJob>>>,
    /// Loads under way: concurrent misses of one plugin wait for the first
    /// instead of loading or compiling it again.
    loading: Mutex<HashMap<CacheKey, Arc<OnceCell<Arc<PreparedJob>>>>>,
    /// Permits to compile (CPU- and memory-heavy: a few at a time).
    compiles: Arc<Semaphore>,
    /// The compiled code on disk, within its budget.
    artifacts: artifacts::ArtifactBudget,
    /// Uploads under way by digest: the same new bytes uploaded at once by
    /// two tenants (or to two names) are compiled once, the second upload
    /// waiting for the first's artifact.
    uploading: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// References resolved since the last upload or delete (every fire
    /// resolves its job's plugin).
    resolved: Mutex<Resolved>,
    /// The built-ins' compiled code by kind and digest: compiled on
    /// first use and kept (never dropped, so never compiled twice).
    builtins: Mutex<HashMap<CacheKey, Arc<OnceCell<Arc<PreparedJob>>>>>,
}

/// An upload's turn among the uploads of the same bytes.
struct UploadTurn {
    _held: tokio::sync::OwnedMutexGuard<()>,
    lock: Arc<tokio::sync::Mutex<()>>,
    uploading: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    digest: String,
}

impl Drop for UploadTurn {
    fn drop(&mut self) {
        let mut uploading = self.uploading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Ours and the map's: nobody else waits, the entry can go.
        if Arc::strong_count(&self.lock) <= 3 {
            uploading.remove(&self.digest);
        }
    }
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

impl Plugins {
    /// A registry over `store`, compiling with `sandbox`.
    pub fn new(store: Arc<dyn Store>, sandbox: Arc<Sandbox>, metrics: Arc<Metrics>, limits: PluginLimits) -> Plugins {
        Plugins {
            store,
            sandbox,
            max_bytes: limits.max_bytes,
            metrics,
            prepared: Mutex::new(ByteLru::new(limits.cache_bytes)),
            loading: Mutex::new(HashMap::new()),
            compiles: Arc::new(Semaphore::new(limits.concurrent_compiles.max(1))),
            artifacts: artifacts::ArtifactBudget::new(limits.artifact_bytes),
            uploading: Arc::new(Mutex::new(HashMap::new())),
            resolved: Mutex::new(Resolved::default()),
            builtins: Mutex::new(HashMap::new()),
        }
    }

    /// The upload cap in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of the compiled plugins held in memory.
    pub fn cache_bytes(&self) -> u64 {
        self.memory().held()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, ByteLru<CacheKey, Arc<PreparedJob>>> {
        self.prepared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, key: &CacheKey) -> Option<Arc<PreparedJob>> {
        self.memory().get(key)
    }

    fn remember(&self, key: CacheKey, prepared: Arc<PreparedJob>, bytes: u64) {
        let dropped = self.memory().insert(key, prepared, bytes);
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "compiled plugins dropped from memory, least recently used first"
            );
        }
    }

    /// Forgets the compiled code of digests whose bytes went.
    fn forget(&self, digests: &[String]) {
        let mut memory = self.memory();
        for digest in digests {
            for kind in EngineKind::ALL {
                if let Some(key) = cache_key(digest, kind) {
                    memory.remove(&key);
                }
            }
        }
    }

    /// Refuses an upload that says it is `declared` bytes long before its
    /// body is read, when no body of that length fits the tenant's quota,
    /// unless a version of `name` has that very size (its same bytes would
    /// be given back, not stored). [`Plugins::upload`] checks the bytes
    /// themselves again.
    pub fn check_declared_size(
        &self,
        tenant: &str,
        name: &str,
        declared: u64,
        max_total_bytes: Option<u64>,
    ) -> Result<(), PluginError> {
        builtin::check_upload(name)?;
        if max_total_bytes.is_none() || check_name(name).is_err() {
            return Ok(());
        }
        let existing = self.store.plugin_versions(tenant, name)?;
        if existing.iter().any(|version| version.size == declared) {
            return Ok(());
        }
        check_plugin_quota(self.store.plugin_usage(tenant)?, declared, max_total_bytes)?;
        Ok(())
    }

    /// Validates, compiles and stores `bytes` as the next version of `name`
    /// (or returns the version that already holds them). Durable on return.
    /// A new version is refused with a quota error when the tenant's plugin
    /// versions would take more than `max_total_bytes` together; that, the
    /// size and the header are checked before anything is compiled or
    /// written.
    pub async fn upload(
        &self,
        tenant: &str,
        name: &str,
        bytes: Vec<u8>,
        max_total_bytes: Option<u64>,
    ) -> Result<Uploaded, PluginError> {
        builtin::check_upload(name)?;
        check_name(name).map_err(PluginError::InvalidName)?;
        if bytes.is_empty() {
            return Err(PluginError::Empty);
        }
        if bytes.len() as u64 > self.max_bytes {
            return Err(PluginError::TooLarge { limit: self.max_bytes });
        }
        crate::sandbox::check_header(&bytes)?;
        let digest = digest(&bytes);
        let existing = self.store.plugin_versions(tenant, name)?;
        if let Some(version) = existing.into_iter().find(|version| version.digest == digest) {
            return Ok(Uploaded {
                version,
                created: false,
            });
        }
        // The store checks the quota again, under its lock, as it writes.
        check_plugin_quota(self.store.plugin_usage(tenant)?, bytes.len() as u64, max_total_bytes)?;
        // Validated and compiled for the default (unmetered) engines, unless
        // these bytes were (an artifact is stored only for bytes that passed);
        // the metered code is made when a job with a fuel budget names it.
        let _same_bytes = self.upload_turn(&digest).await;
        let engine = self.sandbox.fingerprint(Metering::Unmetered);
        let (compiled, bytes) = if self.store.has_artifact(&digest, engine)? {
            (None, bytes)
        } else {
            let mut compiled = self.compile(digest.clone(), bytes, Metering::Unmetered.into()).await?;
            let bytes = std::mem::take(&mut compiled.bytes);
            (Some(compiled), bytes)
        };
        let new = NewPluginVersion {
            tenant,
            name,
            digest: &digest,
            bytes: &bytes,
            uploaded_at: Utc::now(),
            compiled: compiled
                .as_ref()
                .map(|compiled| (&compiled.artifact, compiled.code.as_slice())),
        };
        let added = self.store.add_plugin_version_under_quota(&new, max_total_bytes)?;
        self.resolved().changed();
        if let (true, Some(compiled)) = (added.created, &compiled) {
            self.stored_code(&digest, &compiled.artifact.engine);
        }
        if let (true, Some(compiled), Some(key)) =
            (added.created, compiled, cache_key(&digest, Metering::Unmetered.into()))
        {
            self.remember(key, Arc::new(compiled.prepared), compiled.code.len() as u64);
        }
        self.store.flush_async().await?;
        if added.created {
            tracing::info!(tenant, plugin = %added.version.reference(), %digest, "plugin uploaded");
        }
        Ok(Uploaded {
            version: added.version,
            created: added.created,
        })
    }

    /// Waits for the uploads of the same bytes under way; the turn ends
    /// when the guard drops.
    async fn upload_turn(&self, digest: &str) -> UploadTurn {
        let lock = self
            .uploading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(digest.to_string())
            .or_default()
            .clone();
        UploadTurn {
            _held: lock.clone().lock_owned().await,
            lock,
            uploading: self.uploading.clone(),
            digest: digest.to_string(),
        }
    }

    /// Compiles off the async runtime, at most `concurrent_compiles` at
    /// once, and checks the `job` world.
    async fn compile(&self, digest: String, bytes: Vec<u8>, kind: EngineKind) -> Result<Compiled, PluginError> {
        let permit = self
            .compiles
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| PluginError::Internal(format!("the compile permits are gone: {error}")))?;
        let (sandbox, metrics) = (self.sandbox.clone(), self.metrics.clone());
        tokio::task::spawn_blocking(move || {
            // Held by the compile itself, so a caller that goes away does
            // not let another start beside it.
            let _permit = permit;
            let started = Instant::now();
            let component = sandbox.compile(&bytes, kind)?;
            let prepared = sandbox.prepare(&component, kind)?;
            let compile_ms = started.elapsed().as_millis() as u64;
            let code = sandbox
                .serialize(&component)
                .map_err(|error| PluginError::Internal(error.to_string()))?;
            let artifact = Artifact {
                digest: digest.clone(),
                engine: sandbox.fingerprint(kind).to_string(),
                compiled_at: Utc::now(),
                compile_ms,
                artifact_digest: self::digest(&code),
            };
            tracing::info!(%digest, compile_ms, ?kind, "plugin compiled");
            metrics.compiled(started.elapsed().as_secs_f64());
            Ok(Compiled {
                prepared,
                artifact,
                code,
                bytes,
            })
        })
        .await
        .map_err(|error| PluginError::Internal(format!("the compile task failed: {error}")))?
    }

    /// Gets the plugin `reference` of `tenant` ready for runs of `kind`
    /// in the background: a job just asked for it, and its first run should
    /// not wait for a compile (a Python plugin takes tens of seconds, the
    /// first metered run of any plugin compiles its metered code).
    pub fn prepare_soon(self: &Arc<Self>, tenant: &str, reference: &str, kind: EngineKind) {
        let digest = match self.resolve(tenant, reference) {
            Ok(version) => version.digest,
            Err(_) => return,
        };
        // Ready in memory already: nothing to do (and no cache hit to count:
        // no run asked).
        if cache_key(&digest, kind).is_none_or(|key| self.cached(&key).is_some() || self.builtin_ready(&key)) {
            return;
        }
        let plugins = self.clone();
        tokio::spawn(async move {
            if let Err(error) = plugins.prepared(&digest, kind).await {
                tracing::warn!(%digest, ?kind, %error, "preparing a plugin for its job failed");
            }
        });
    }

    /// The ready-to-instantiate plugin with this digest for runs of this
    /// kind: from memory, else from the artifact cache, else compiled
    /// from the stored bytes.
    pub async fn prepared(&self, digest: &str, kind: impl Into<EngineKind>) -> Result<Arc<PreparedJob>, PluginError> {
        let kind = kind.into();
        let key = cache_key(digest, kind)
            .ok_or_else(|| PluginError::Internal(format!("{digest:?} is not a sha256 digest")))?;
        if let Some(builtin) = builtin::with_digest(digest) {
            return self.builtin_prepared(builtin, kind, key).await;
        }
        if let Some(prepared) = self.cached(&key) {
            self.metrics.cache_hit("memory");
            return Ok(prepared);
        }
        let loading = self.loading(key);
        let prepared = loading.get_or_try_init(|| self.load(digest, kind, key)).await.cloned();
        self.loaded(key, &loading);
        prepared
    }

    /// The load of `key` under way, or a new one.
    fn loading(&self, key: CacheKey) -> Arc<OnceCell<Arc<PreparedJob>>> {
        self.loading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// The load of `key` is over (those waiting on it hold it still).
    fn loaded(&self, key: CacheKey, loading: &Arc<OnceCell<Arc<PreparedJob>>>) {
        let mut under_way = self.loading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if under_way.get(&key).is_some_and(|current| Arc::ptr_eq(current, loading)) {
            under_way.remove(&key);
        }
    }

    async fn load(&self, digest: &str, kind: EngineKind, key: CacheKey) -> Result<Arc<PreparedJob>, PluginError> {
        // A load that just ended may have left it in memory.
        if let Some(prepared) = self.cached(&key) {
            self.metrics.cache_hit("memory");
            return Ok(prepared);
        }
        if let Some((prepared, size)) = self.load_artifact(digest, kind).await? {
            self.artifacts.touch(digest, self.sandbox.fingerprint(kind));
            self.metrics.cache_hit("artifact");
            let prepared = Arc::new(prepared);
            self.remember(key, prepared.clone(), size);
            return Ok(prepared);
        }
        let bytes = self
            .store
            .plugin_bytes(digest)?
            .ok_or_else(|| PluginError::Internal(format!("the bytes of plugin {digest} are missing from the store")))?;
        let compiled = self.compile(digest.to_string(), bytes, kind).await?;
        if self.store.put_artifact(&compiled.artifact, &compiled.code)? {
            self.stored_code(digest, &compiled.artifact.engine);
        } else {
            tracing::info!(%digest, "no plugin version uses these bytes any more; their code is not stored");
        }
        let prepared = Arc::new(compiled.prepared);
        self.remember(key, prepared.clone(), compiled.code.len() as u64);
        Ok(prepared)
    }

    /// The stored artifact of `digest` for `kind`, loaded, with its size.
    async fn load_artifact(&self, digest: &str, kind: EngineKind) -> Result<Option<(PreparedJob, u64)>, PluginError> {
        let Some((artifact, bytes)) = self.store.artifact(digest, self.sandbox.fingerprint(kind))? else {
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
            let component = match unsafe { sandbox.deserialize(&bytes, kind) } {
                Ok(component) => component,
                Err(error) => {
                    tracing::warn!(%digest, %error, "cached artifact does not load; compiling again");
                    return Ok(None);
                }
            };
            let prepared = sandbox.prepare(&component, kind)?;
            tracing::info!(%digest, load_us = started.elapsed().as_micros() as u64, "plugin loaded from the artifact cache");
            Ok(Some((prepared, bytes.len() as u64)))
        })
        .await
        .map_err(|error| PluginError::Internal(format!("the load task failed: {error}")))?
    }

    /// New compiled code of `digest` for `engine` is on disk: the code used
    /// longest ago goes if the whole is past `artifact_cache_bytes` (a
    /// failure to delete is logged: the code stays, nothing is lost).
    fn stored_code(&self, digest: &str, engine: &str) {
        self.artifacts.touch(digest, engine);
        if let Err(error) = self.artifacts.trim(self.store.as_ref(), (digest, engine)) {
            tracing::warn!(%error, "cannot keep compiled code within artifact_cache_bytes");
        }
    }

    /// Deletes the bytes and artifacts no plugin version uses (kept by a
    /// daemon from before they went with their last version); returns how
    /// many digests went.
    pub fn collect(&self) -> Result<usize, PluginError> {
        let collected = self.store.collect_plugins()?;
        self.forget(&collected);
        if !collected.is_empty() {
            tracing::info!(digests = collected.len(), "collected plugin code no version uses");
        }
        Ok(collected.len())
    }

    /// The version a reference (`name` or `name@3`) points at; a built-in's
    /// name means the built-in.
    pub fn resolve(&self, tenant: &str, reference: &str) -> Result<PluginVersion, PluginError> {
        if let Some(resolved) = builtin::resolve(tenant, reference) {
            return resolved;
        }
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

    /// Every version of every plugin of the tenant, the built-ins first.
    /// (A version stored under a built-in's name by a daemon from before
    /// that built-in is hidden by it.)
    pub fn list(&self, tenant: &str) -> Result<Vec<PluginVersion>, PluginError> {
        let builtins = builtin::all().iter().map(|builtin| builtin.version_of(tenant));
        let uploaded = self.store.list_plugin_versions(tenant)?;
        let uploaded = uploaded
            .into_iter()
            .filter(|version| builtin::named(&version.name).is_none());
        Ok(builtins.chain(uploaded).collect())
    }

    /// The versions of one plugin, oldest first.
    pub fn versions(&self, tenant: &str, name: &str) -> Result<Vec<PluginVersion>, PluginError> {
        if let Some(builtin) = builtin::named(name) {
            return Ok(vec![builtin.version_of(tenant)]);
        }
        let versions = self.store.plugin_versions(tenant, name)?;
        if versions.is_empty() {
            return Err(PluginError::NotFound { name: name.to_string() });
        }
        Ok(versions)
    }

    /// Deletes every version of a plugin no job uses, and the bytes and
    /// compiled code of those no other version (of any tenant) uses.
    /// Durable on return.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<(), PluginError> {
        builtin::check_delete(name)?;
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
        if deleted.versions == 0 {
            return Err(PluginError::NotFound { name: name.to_string() });
        }
        self.forget(&deleted.collected);
        self.store.flush_async().await?;
        if !deleted.collected.is_empty() {
            tracing::info!(
                tenant,
                plugin = name,
                digests = deleted.collected.len(),
                "plugin bytes and code deleted with their last version"
            );
        }
        Ok(())
    }
}

impl Plugins {
    /// Is this built-in code compiled already?
    fn builtin_ready(&self, key: &CacheKey) -> bool {
        let builtins = self.builtins.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        builtins.get(key).is_some_and(|cell| cell.initialized())
    }

    /// A built-in's code for `kind`: compiled from the embedded bytes by
    /// the first run that needs it (others wait for that compile), then kept.
    async fn builtin_prepared(
        &self,
        builtin: &'static builtin::Builtin,
        kind: EngineKind,
        key: CacheKey,
    ) -> Result<Arc<PreparedJob>, PluginError> {
        let cell = self
            .builtins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_default()
            .clone();
        if let Some(prepared) = cell.get() {
            self.metrics.cache_hit("memory");
            return Ok(prepared.clone());
        }
        let compile = || async {
            let compiled = self
                .compile(builtin.digest().to_string(), builtin.bytes.to_vec(), kind)
                .await?;
            tracing::info!(
                plugin = builtin.name,
                compile_ms = compiled.artifact.compile_ms,
                ?kind,
                "built-in plugin compiled"
            );
            Ok::<_, PluginError>(Arc::new(compiled.prepared))
        };
        cell.get_or_try_init(compile).await.cloned()
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
