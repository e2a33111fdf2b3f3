//! The plugin side of [`SledStore`]: versions, the bytes and compiled code
//! they share by digest (across tenants; kept as files, see `code_files`),
//! and the count of versions using each digest, kept in the same
//! transaction as every write that adds or removes a version, so the last
//! version's delete takes the digest's bytes and code with it.

use std::collections::{BTreeMap, BTreeSet};

use sled::IVec;
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::database::SledStore;
use super::encoding::{decode, encode, key, prefix, read_count, transaction_error};
use crate::model::{Artifact, PluginVersion};
use crate::store::code_files::{Kind, code_name};
use crate::store::error::{StoreError, StoreResult};
use crate::store::records::{AddedPlugin, DeletedPlugin, NewPluginVersion, StoredArtifact, check_plugin_quota};
use crate::store::traits::{Durability, PluginStore};

/// The key of `plugin_refs` saying the counts were built (a digest is never
/// empty): a database from before they were kept gets them built on its
/// first open.
const COUNTED: &[u8] = b"";

/// What the plugin records and files hold, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStorage {
    /// Plugin versions of every tenant.
    pub versions: usize,
    /// Summaries whose bytes are kept.
    pub digests: usize,
    /// Files of compiled code kept (one per digest and engine).
    pub artifacts: usize,
    /// Bytes of the kept plugin bytes and compiled code together.
    pub bytes: u64,
}

/// The parts of an artifact key, `digest \0 engine`.
fn artifact_parts(artifact_key: &[u8]) -> (String, String) {
    let mut parts = artifact_key.splitn(2, |byte| *byte == 0);
    let digest = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let engine = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (digest, engine)
}

impl SledStore {
    /// Builds the per-digest version counts of a database from before they
    /// were kept (a crash before the marker is written has it done again),
    /// and moves bytes and code older versions kept in sled to files.
    pub(super) fn prepare_plugins(&self) -> StoreResult<()> {
        if !self.plugin_refs.contains_key(COUNTED)? {
            let mut refs: BTreeMap<String, u64> = BTreeMap::new();
            for version in Self::scan::<PluginVersion>(&self.plugins, &[])? {
                *refs.entry(version.digest).or_default() += 1;
            }
            let mut batch = sled::Batch::default();
            for (digest, count) in refs {
                batch.insert(digest.as_bytes(), &count.to_be_bytes());
            }
            batch.insert(COUNTED, &[] as &[u8]);
            let gate = self.writing();
            self.plugin_refs.apply_batch(batch).map_err(|error| gate.note(error))?;
        }
        // Each key goes once its file is written and synced.
        for (tree, kind) in [(&self.plugin_bytes, Kind::Bytes), (&self.artifact_bytes, Kind::Code)] {
            for entry in tree.iter() {
                let (stored_key, value) = entry?;
                let name = match kind {
                    Kind::Bytes => String::from_utf8_lossy(&stored_key).into_owned(),
                    Kind::Code => {
                        let (digest, engine) = artifact_parts(&stored_key);
                        code_name(&digest, &engine)
                    }
                    Kind::Record => continue,
                };
                self.files.write(kind, &name, &value)?;
                let gate = self.writing();
                tree.remove(stored_key).map_err(|error| gate.note(error))?;
            }
        }
        Ok(())
    }

    /// The digests some version uses.
    fn used_digests(&self) -> StoreResult<BTreeSet<String>> {
        self.plugin_refs
            .iter()
            .keys()
            .filter(|digest| !matches!(digest, Ok(digest) if digest.as_ref() == COUNTED))
            .map(|digest| Ok(String::from_utf8_lossy(&digest?).into_owned()))
            .collect()
    }

    /// Deletes the artifact records, code and bytes files of digests no
    /// version uses, and files no record names; returns those digests.
    pub(super) fn collect_unused(&self) -> StoreResult<Vec<String>> {
        let _counting = self.counting();
        let used = self.used_digests()?;
        let mut collected = BTreeSet::new();
        let mut named = BTreeSet::new();
        let mut batch = sled::Batch::default();
        for artifact_key in self.artifacts.iter().keys() {
            let artifact_key = artifact_key?;
            let (digest, engine) = artifact_parts(&artifact_key);
            if used.contains(&digest) {
                named.insert(code_name(&digest, &engine));
            } else {
                batch.remove(artifact_key);
                collected.insert(digest);
            }
        }
        {
            let gate = self.writing();
            self.artifacts.apply_batch(batch).map_err(|error| gate.note(error))?;
        }
        // A record without its code file reads as no artifact, so the
        // records' removal need not be durable before the files go.
        for (name, _) in self.files.list(Kind::Code)? {
            if !named.contains(&name) {
                self.files.remove(Kind::Code, &name)?;
                if let Some((digest, _)) = name.split_once('-')
                    && !used.contains(digest)
                {
                    collected.insert(digest.to_string());
                }
            }
        }
        for (digest, _) in self.files.list(Kind::Bytes)? {
            if !used.contains(&digest) {
                self.files.remove(Kind::Bytes, &digest)?;
                collected.insert(digest);
            }
        }
        Ok(collected.into_iter().collect())
    }

    pub(super) fn add_plugin(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin> {
        let _counting = self.counting();
        let existing = self.versions_of(new.tenant, new.name)?;
        if let Some(version) = existing.iter().find(|version| version.digest == new.digest) {
            return Ok(AddedPlugin {
                version: version.clone(),
                created: false,
            });
        }
        check_plugin_quota(self.usage_of(new.tenant)?, new.bytes.len() as u64, max_total_bytes)?;
        let next = existing.last().map_or(1, |version| version.version + 1);
        let version = PluginVersion {
            tenant: new.tenant.to_string(),
            name: new.name.to_string(),
            version: next,
            digest: new.digest.to_string(),
            size: new.bytes.len() as u64,
            created_at: new.uploaded_at,
        };
        let record_key = key(&[new.tenant.as_bytes(), new.name.as_bytes(), &next.to_be_bytes()]);
        let record = encode(&version);
        let compiled = new.compiled.map(|(artifact, code)| {
            let artifact_key = key(&[artifact.digest.as_bytes(), artifact.engine.as_bytes()]);
            (
                artifact_key,
                encode(artifact),
                code_name(&artifact.digest, &artifact.engine),
                code,
            )
        });
        let digest = new.digest.as_bytes();
        let users_before = read_count(self.plugin_refs.get(digest)?);
        // The files first: the records naming them come after.
        self.files.write(Kind::Bytes, new.digest, new.bytes)?;
        if let Some((_, _, name, code)) = &compiled {
            self.files.write(Kind::Code, name, code)?;
        }
        let written = {
            let gate = self.writing();
            (&self.plugins, &self.plugin_refs, &self.artifacts)
                .transaction(|(plugins, plugin_refs, artifacts)| {
                    // Two uploads racing for the same next version: the second aborts.
                    if plugins.get(record_key.as_slice())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(StoreError::Backend(
                            "a concurrent upload took this version; try again".to_string(),
                        )));
                    }
                    plugins.insert(record_key.as_slice(), record.as_slice())?;
                    let users = read_count(plugin_refs.get(digest)?);
                    plugin_refs.insert(digest, &(users + 1).to_be_bytes()[..])?;
                    if let Some((artifact_key, record, _, _)) = &compiled {
                        artifacts.insert(artifact_key.as_slice(), record.as_slice())?;
                    }
                    Ok(())
                })
                .map_err(|error| gate.note(transaction_error(error)))
        };
        if let Err(error) = written {
            if users_before == 0 {
                self.files.remove(Kind::Bytes, new.digest)?;
                if let Some((_, _, name, _)) = &compiled {
                    self.files.remove(Kind::Code, name)?;
                }
            }
            return Err(error);
        }
        Ok(AddedPlugin { version, created: true })
    }

    pub(super) fn usage_of(&self, tenant: &str) -> StoreResult<u64> {
        Ok(
            Self::scan::<PluginVersion>(&self.plugins, &prefix(&[tenant.as_bytes()]))?
                .iter()
                .map(|version| version.size)
                .sum(),
        )
    }

    pub(super) fn versions_of(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>> {
        Self::scan(&self.plugins, &prefix(&[tenant.as_bytes(), name.as_bytes()]))
    }

    pub(super) fn version_of(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> StoreResult<Option<PluginVersion>> {
        let (tenant, name) = (tenant.as_bytes(), name.as_bytes());
        match version {
            Some(version) => Self::get(&self.plugins, &key(&[tenant, name, &version.to_be_bytes()])),
            // Versions are big-endian u32s: the last key is the newest.
            None => match self.plugins.scan_prefix(prefix(&[tenant, name])).next_back() {
                Some(entry) => {
                    let (key, value) = entry?;
                    decode(&key, &value).map(Some)
                }
                None => Ok(None),
            },
        }
    }

    pub(super) fn delete_versions(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin> {
        let _counting = self.counting();
        let mut record_keys = Vec::new();
        let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
        for entry in self.plugins.scan_prefix(prefix(&[tenant.as_bytes(), name.as_bytes()])) {
            let (record_key, value) = entry?;
            let version: PluginVersion = decode(&record_key, &value)?;
            *dropped.entry(version.digest).or_default() += 1;
            record_keys.push(record_key);
        }
        if record_keys.is_empty() {
            return Ok(DeletedPlugin::default());
        }
        // No artifact is written meanwhile: that takes the quota lock too.
        let mut artifact_keys: BTreeMap<&str, Vec<IVec>> = BTreeMap::new();
        for digest in dropped.keys() {
            let keys = self
                .artifacts
                .scan_prefix(prefix(&[digest.as_bytes()]))
                .keys()
                .collect::<Result<_, _>>()?;
            artifact_keys.insert(digest, keys);
        }
        let collected = {
            let gate = self.writing();
            (&self.plugins, &self.plugin_refs, &self.artifacts)
                .transaction(|(plugins, plugin_refs, artifacts)| {
                    for record_key in &record_keys {
                        plugins.remove(record_key.clone())?;
                    }
                    let mut collected = Vec::new();
                    for (digest, versions) in &dropped {
                        let users = read_count(plugin_refs.get(digest.as_bytes())?).saturating_sub(*versions);
                        if users > 0 {
                            plugin_refs.insert(digest.as_bytes(), &users.to_be_bytes()[..])?;
                            continue;
                        }
                        plugin_refs.remove(digest.as_bytes())?;
                        for artifact_key in artifact_keys.get(digest.as_str()).into_iter().flatten() {
                            artifacts.remove(artifact_key.clone())?;
                        }
                        collected.push(digest.clone());
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(collected)
                })
                .map_err(|error| gate.note(transaction_error(error)))?
        };
        if !collected.is_empty() {
            // The files go only once no durable record names them.
            self.flush()?;
            for digest in &collected {
                self.files.remove(Kind::Bytes, digest)?;
                for artifact_key in artifact_keys.get(digest.as_str()).into_iter().flatten() {
                    let (digest, engine) = artifact_parts(artifact_key);
                    self.files.remove(Kind::Code, &code_name(&digest, &engine))?;
                }
            }
        }
        Ok(DeletedPlugin {
            versions: record_keys.len(),
            collected,
        })
    }

    pub(super) fn bytes_of(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.files.read(Kind::Bytes, digest)
    }

    pub(super) fn artifact_of(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>> {
        let artifact_key = key(&[digest.as_bytes(), engine.as_bytes()]);
        let Some(artifact) = Self::get::<Artifact>(&self.artifacts, &artifact_key)? else {
            return Ok(None);
        };
        Ok(self
            .files
            .read(Kind::Code, &code_name(digest, engine))?
            .map(|code| (artifact, code)))
    }

    pub(super) fn has_artifact_of(&self, digest: &str, engine: &str) -> StoreResult<bool> {
        let artifact_key = key(&[digest.as_bytes(), engine.as_bytes()]);
        Ok(self.artifacts.contains_key(&artifact_key)? && self.files.exists(Kind::Code, &code_name(digest, engine))?)
    }

    pub(super) fn put_used_artifact(&self, artifact: &Artifact, code: &[u8]) -> StoreResult<bool> {
        let _counting = self.counting();
        // The last version went while this was compiled for a run.
        if !self.plugin_refs.contains_key(artifact.digest.as_bytes())? {
            return Ok(false);
        }
        let name = code_name(&artifact.digest, &artifact.engine);
        self.files.write(Kind::Code, &name, code)?;
        let artifact_key = key(&[artifact.digest.as_bytes(), artifact.engine.as_bytes()]);
        let gate = self.writing();
        self.artifacts
            .insert(artifact_key, encode(artifact))
            .map_err(|error| gate.note(error))?;
        Ok(true)
    }

    pub(super) fn artifacts_on_disk(&self) -> StoreResult<Vec<StoredArtifact>> {
        let sizes: std::collections::HashMap<String, u64> = self.files.list(Kind::Code)?.into_iter().collect();
        let mut stored = Vec::new();
        for entry in self.artifacts.iter() {
            let (artifact_key, record) = entry?;
            let (digest, engine) = artifact_parts(&artifact_key);
            // A record without its code file is no artifact.
            let Some(size) = sizes.get(&code_name(&digest, &engine)) else {
                continue;
            };
            let artifact: Artifact = decode(&artifact_key, &record)?;
            stored.push(StoredArtifact {
                digest,
                engine,
                compiled_at: artifact.compiled_at,
                size: *size,
            });
        }
        Ok(stored)
    }

    pub(super) fn drop_artifact_of(&self, digest: &str, engine: &str) -> StoreResult<()> {
        let _counting = self.counting();
        let artifact_key = key(&[digest.as_bytes(), engine.as_bytes()]);
        {
            let gate = self.writing();
            self.artifacts.remove(artifact_key).map_err(|error| gate.note(error))?;
        }
        // A record without its code file reads as no artifact, so the file
        // may go before the record's removal is durable.
        self.files.remove(Kind::Code, &code_name(digest, engine))
    }

    /// Counts what the plugin records and files hold (for diagnostics and
    /// tests).
    pub fn plugin_storage(&self) -> StoreResult<PluginStorage> {
        let bytes = self.files.list(Kind::Bytes)?;
        let code = self.files.list(Kind::Code)?;
        Ok(PluginStorage {
            versions: self.plugins.len(),
            digests: bytes.len(),
            artifacts: code.len(),
            bytes: bytes.iter().chain(&code).map(|(_, size)| size).sum(),
        })
    }
}

impl PluginStore for SledStore {
    fn add_plugin_version_under_quota(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin> {
        self.add_plugin(new, max_total_bytes)
    }

    fn plugin_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.usage_of(tenant)
    }

    fn list_plugin_versions(&self, tenant: &str) -> StoreResult<Vec<PluginVersion>> {
        Self::scan(&self.plugins, &prefix(&[tenant.as_bytes()]))
    }

    fn plugin_versions(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>> {
        self.versions_of(tenant, name)
    }

    fn plugin_version(&self, tenant: &str, name: &str, version: Option<u32>) -> StoreResult<Option<PluginVersion>> {
        self.version_of(tenant, name, version)
    }

    fn delete_plugin(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin> {
        self.delete_versions(tenant, name)
    }

    fn collect_plugins(&self) -> StoreResult<Vec<String>> {
        self.collect_unused()
    }

    fn plugin_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bytes_of(digest)
    }

    fn artifact(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>> {
        self.artifact_of(digest, engine)
    }

    fn has_artifact(&self, digest: &str, engine: &str) -> StoreResult<bool> {
        self.has_artifact_of(digest, engine)
    }

    fn put_artifact(&self, artifact: &Artifact, bytes: &[u8]) -> StoreResult<bool> {
        self.put_used_artifact(artifact, bytes)
    }

    fn stored_artifacts(&self) -> StoreResult<Vec<StoredArtifact>> {
        self.artifacts_on_disk()
    }

    fn drop_artifact(&self, digest: &str, engine: &str) -> StoreResult<()> {
        self.drop_artifact_of(digest, engine)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::traits::PluginStore;

    fn artifact(digest: &str, engine: &str) -> Artifact {
        Artifact {
            digest: digest.to_string(),
            engine: engine.to_string(),
            compiled_at: Utc::now(),
            compile_ms: 1,
            artifact_digest: "x".to_string(),
        }
    }

    fn add(
        store: &SledStore,
        tenant: &str,
        name: &str,
        digest: &str,
        compiled: Option<&Artifact>,
    ) -> StoreResult<AddedPlugin> {
        let new = NewPluginVersion {
            tenant,
            name,
            digest,
            bytes: digest.as_bytes(),
            uploaded_at: Utc::now(),
            compiled: compiled.map(|artifact| (artifact, b"code".as_slice())),
        };
        store.add_plugin_version_under_quota(&new, Some(100))
    }

    #[test]
    fn the_last_version_of_a_digest_takes_its_bytes_and_artifacts_and_a_shared_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        add(&store, "t", "p", "aa", Some(&artifact("aa", "e1"))).unwrap();
        add(&store, "t", "p", "bb", Some(&artifact("bb", "e1"))).unwrap();
        // Another tenant uploads the same bytes (the artifact exists already).
        add(&store, "u", "q", "aa", None).unwrap();
        assert!(store.put_artifact(&artifact("aa", "e2"), b"metered").unwrap());
        let deleted = store.delete_plugin("t", "p").unwrap();
        assert_eq!(deleted.versions, 2);
        assert_eq!(deleted.collected, vec!["bb".to_string()], "aa is still u's");
        assert_eq!(store.plugin_bytes("aa").unwrap().as_deref(), Some(b"aa".as_slice()));
        assert!(store.has_artifact("aa", "e1").unwrap() && store.has_artifact("aa", "e2").unwrap());
        assert_eq!(store.plugin_bytes("bb").unwrap(), None);
        assert!(!store.has_artifact("bb", "e1").unwrap());

        let deleted = store.delete_plugin("u", "q").unwrap();
        assert_eq!(deleted.collected, vec!["aa".to_string()]);
        assert_eq!(store.plugin_storage().unwrap(), PluginStorage::default());
        // A compile for a run that ends after the delete stores nothing.
        assert!(!store.put_artifact(&artifact("aa", "e1"), b"late").unwrap());
        assert!(!store.has_artifact("aa", "e1").unwrap());
        assert_eq!(store.delete_plugin("u", "q").unwrap(), DeletedPlugin::default());
    }

    #[test]
    fn an_upload_over_the_quota_writes_neither_bytes_nor_code() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let big = "b".repeat(101);
        let refused = add(&store, "t", "p", &big, Some(&artifact(&big, "e1")));
        assert!(matches!(refused, Err(StoreError::QuotaExceeded(_))), "{refused:?}");
        assert_eq!(store.plugin_storage().unwrap(), PluginStorage::default());
        assert_eq!(store.plugin_usage("t").unwrap(), 0);
    }

    #[test]
    fn a_database_from_before_the_counts_and_files_gets_them_and_loses_what_no_version_uses() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            add(&store, "t", "p", "aa", None).unwrap();
            add(&store, "u", "p", "aa", None).unwrap();
            // As an older daemon left it: bytes and code in sled (among
            // them a deleted plugin's), and no counts.
            std::fs::remove_dir_all(dir.path().join("plugins")).unwrap();
            store.plugin_bytes.insert("aa", b"aa".as_slice()).unwrap();
            store
                .artifacts
                .insert(key(&[b"aa", b"e1"]), encode(&artifact("aa", "e1")))
                .unwrap();
            store
                .artifact_bytes
                .insert(key(&[b"aa", b"e1"]), b"code".as_slice())
                .unwrap();
            store.plugin_bytes.insert("zz", b"zz".as_slice()).unwrap();
            store
                .artifacts
                .insert(key(&[b"zz", b"e1"]), encode(&artifact("zz", "e1")))
                .unwrap();
            store
                .artifact_bytes
                .insert(key(&[b"zz", b"e1"]), b"code".as_slice())
                .unwrap();
            store.db.drop_tree("plugin_refs").unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(
            store.plugin_bytes.is_empty() && store.artifact_bytes.is_empty(),
            "moved to files"
        );
        assert_eq!(
            store.artifact("aa", "e1").unwrap().map(|(_, code)| code),
            Some(b"code".to_vec())
        );
        assert_eq!(store.collect_plugins().unwrap(), vec!["zz".to_string()]);
        assert_eq!(store.plugin_bytes("zz").unwrap(), None);
        assert!(!store.has_artifact("zz", "e1").unwrap());
        let storage = store.plugin_storage().unwrap();
        assert_eq!((storage.versions, storage.digests, storage.artifacts), (2, 1, 1));
        // The counts were rebuilt: aa goes only with its second version.
        assert!(store.delete_plugin("t", "p").unwrap().collected.is_empty());
        assert_eq!(store.delete_plugin("u", "p").unwrap().collected, vec!["aa".to_string()]);
        assert_eq!(store.plugin_storage().unwrap(), PluginStorage::default());
        // Files no record names (a crash between writing them and the
        // record) go at the next collection.
        store.files.write(Kind::Bytes, "yy", b"yy").unwrap();
        store.files.write(Kind::Code, &code_name("yy", "e1"), b"code").unwrap();
        assert_eq!(store.collect_plugins().unwrap(), vec!["yy".to_string()]);
        assert_eq!(store.plugin_storage().unwrap(), PluginStorage::default());
    }

    #[test]
    fn same_bytes_give_back_the_same_version_and_new_bytes_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let first = store.add_plugin_version("t", "p", "aa", b"one", now).unwrap();
        assert!(first.created);
        assert_eq!(first.version.version, 1);
        let again = store.add_plugin_version("t", "p", "aa", b"one", now).unwrap();
        assert!(!again.created);
        assert_eq!(again.version.version, 1);
        let second = store.add_plugin_version("t", "p", "bb", b"two", now).unwrap();
        assert_eq!(second.version.version, 2);
        // Another tenant's versions are its own.
        assert_eq!(
            store
                .add_plugin_version("u", "p", "bb", b"two", now)
                .unwrap()
                .version
                .version,
            1
        );
        assert_eq!(store.plugin_versions("t", "p").unwrap().len(), 2);
    }

    #[test]
    fn one_plugin_version_reads_without_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        for (index, digest) in ["aa", "bb", "cc"].into_iter().enumerate() {
            store.add_plugin_version("t", "p", digest, &[index as u8], now).unwrap();
        }
        // A name that extends this one is another plugin.
        store.add_plugin_version("t", "p2", "dd", b"x", now).unwrap();
        store.add_plugin_version("u", "p", "ee", b"y", now).unwrap();
        let read = |name: &str, version| store.plugin_version("t", name, version).unwrap();
        assert_eq!(read("p", None).map(|version| version.digest), Some("cc".to_string()));
        assert_eq!(read("p", Some(2)).map(|version| version.digest), Some("bb".to_string()));
        assert_eq!(read("p", Some(9)), None);
        assert_eq!(read("p2", None).map(|version| version.version), Some(1));
        assert_eq!(read("q", None), None);
        assert_eq!(read("q", Some(1)), None);
    }
}
