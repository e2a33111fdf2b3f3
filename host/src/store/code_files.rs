//! Plugin bytes and compiled code as files beside the database, one per
//! name (a digest), so deleting one gives its disk back at once: sled 0.34
//! keeps a value over a quarter of its 512 KiB log segment in a blob file
//! that it deletes only when its log moves on to a new segment, which a
//! quiet daemon may not do for days, and never for removals a restart
//! forgot. The database holds the records naming these files; a file is
//! written (and synced) before the record naming it, and deleted only once
//! the write removing its last record is durable, so a crash can leave an
//! unnamed file (collected at the next start) but never a record without
//! its file.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::error::{Fault, StoreError, StoreResult, classify, describe};

/// Which files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Component bytes, by their sha256.
    Bytes,
    /// Serialized compiled code, by the component's sha256 and the engine.
    Code,
    /// The compile record of a code file, by the code file's name (kept
    /// here where the database is shared and the code is not).
    Record,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::Code => "code",
            Kind::Record => "records",
        }
    }
}

/// The file name of the code compiled from `digest` by `engine`.
pub fn code_name(digest: &str, engine: &str) -> String {
    use sha2::{Digest, Sha256};
    let engine = hex::encode(Sha256::digest(engine.as_bytes()));
    format!("{digest}-{}", &engine[..16])
}

/// Files being written start with this, then this process's mark (see
/// [`life`]); one with another mark is a leftover of a crash.
const PARTIAL: &str = ".partial-";

/// A mark of this process, random per start: a file being written carries
/// it, so a listing tells this life's writes under way (kept) from a
/// crashed life's leftovers (deleted). Not the process id, which a
/// container gives again at every start.
fn life() -> &'static str {
    static LIFE: OnceLock<String> = OnceLock::new();
    LIFE.get_or_init(|| format!("{:016x}", rand::random::<u64>()))
}

/// The temporary name of one write of `name`: two writes of the same file
/// at once (the same code compiled by two callers) each have their own.
fn partial_name(name: &str) -> String {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    format!("{PARTIAL}{}-{write}-{name}", life())
}

/// True for a file a write of this life is making now.
fn is_ours(file_name: &str) -> bool {
    file_name
        .strip_prefix(PARTIAL)
        .is_some_and(|rest| rest.starts_with(life()) && rest[life().len()..].starts_with('-'))
}

/// A file's I/O error as the store's: a full volume is `NoSpace` (the
/// storage then counts as failing, as for the database's own writes).
fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    match classify(&error) {
        Fault::NoSpace => {
            let (fault, message) = describe(&error);
            fault.error(message)
        }
        Fault::Io => StoreError::Backend(format!("{}: {error}", path.display())),
    }
}

/// The two folders.
#[derive(Debug)]
pub struct CodeFiles {
    root: PathBuf,
}

impl CodeFiles {
    /// The folders of plugin bytes and code under `root`, made if missing.
    pub fn open(root: &Path) -> StoreResult<CodeFiles> {
        CodeFiles::open_kinds(root, &[Kind::Bytes, Kind::Code])
    }

    /// The folders of `kinds` under `root`, made if missing.
    pub fn open_kinds(root: &Path, kinds: &[Kind]) -> StoreResult<CodeFiles> {
        let files = CodeFiles {
            root: root.to_path_buf(),
        };
        for &kind in kinds {
            let folder = files.folder(kind);
            fs::create_dir_all(&folder).map_err(|error| io_error(&folder, error))?;
        }
        Ok(files)
    }

    fn folder(&self, kind: Kind) -> PathBuf {
        self.root.join(kind.folder())
    }

    /// The path of a file; names are made by the store (hex digests), but
    /// one that could leave the folder is refused all the same.
    fn path(&self, kind: Kind, name: &str) -> StoreResult<PathBuf> {
        if name.is_empty() || !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
            return Err(StoreError::Backend(format!("{name:?} is not a plugin file name")));
        }
        Ok(self.folder(kind).join(name))
    }

    /// Whether the file exists.
    pub fn exists(&self, kind: Kind, name: &str) -> StoreResult<bool> {
        let path = self.path(kind, name)?;
        path.try_exists().map_err(|error| io_error(&path, error))
    }

    /// Writes the file durably (a synced temporary renamed into place, and
    /// the folder synced), unless it exists already.
    pub fn write(&self, kind: Kind, name: &str, bytes: &[u8]) -> StoreResult<()> {
        let path = self.path(kind, name)?;
        if self.exists(kind, name)? {
            return Ok(());
        }
        let folder = self.folder(kind);
        let partial = folder.join(partial_name(name));
        let written = File::create(&partial)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&partial, &path))
            .and_then(|()| File::open(&folder)?.sync_all());
        if let Err(error) = written {
            let _ = fs::remove_file(&partial);
            return Err(io_error(&path, error));
        }
        Ok(())
    }

    /// The file's bytes, None if it is missing.
    pub fn read(&self, kind: Kind, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let path = self.path(kind, name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// Deletes the file; a missing one is no error.
    pub fn remove(&self, kind: Kind, name: &str) -> StoreResult<()> {
        let path = self.path(kind, name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// The names of the files of `kind` with their sizes; leftovers of
    /// writes a crash interrupted are deleted on the way (writes of this
    /// process under way are left alone).
    pub fn list(&self, kind: Kind) -> StoreResult<Vec<(String, u64)>> {
        let folder = self.folder(kind);
        let entries = fs::read_dir(&folder).map_err(|error| io_error(&folder, error))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| io_error(&folder, error))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PARTIAL) {
                if !is_ours(&name) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let size = entry.metadata().map_err(|error| io_error(&entry.path(), error))?.len();
            files.push((name, size));
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_read_listed_and_removed_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = CodeFiles::open(dir.path()).unwrap();
        files.write(Kind::Bytes, "aa", b"one").unwrap();
        // Written once: the same name again keeps the first.
        files.write(Kind::Bytes, "aa", b"two").unwrap();
        assert_eq!(
            files.read(Kind::Bytes, "aa").unwrap().as_deref(),
            Some(b"one".as_slice())
        );
        assert_eq!(files.read(Kind::Code, "aa").unwrap(), None);
        std::fs::write(dir.path().join("bytes").join(".partial-bb"), b"torn").unwrap();
        assert_eq!(files.list(Kind::Bytes).unwrap(), vec![("aa".to_string(), 3)]);
        assert!(!dir.path().join("bytes").join(".partial-bb").exists(), "leftovers go");
        files.remove(Kind::Bytes, "aa").unwrap();
        files.remove(Kind::Bytes, "aa").unwrap();
        assert!(!files.exists(Kind::Bytes, "aa").unwrap());
        for bad in ["", "..", "a/b", "a\0b"] {
            assert!(files.write(Kind::Bytes, bad, b"x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_listing_keeps_this_processs_writes_under_way_and_deletes_a_crashed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let files = CodeFiles::open(dir.path()).unwrap();
        let folder = dir.path().join("code");
        let ours = folder.join(partial_name("aa"));
        std::fs::write(&ours, b"being written").unwrap();
        let crashed = folder.join(format!("{PARTIAL}0123456789abcdef-7-aa"));
        std::fs::write(&crashed, b"torn").unwrap();
        assert_eq!(files.list(Kind::Code).unwrap(), Vec::<(String, u64)>::new());
        assert!(ours.exists(), "a write under way is not a leftover");
        assert!(!crashed.exists(), "a crashed life's leftover goes");
    }

    #[test]
    fn writes_of_the_same_file_at_once_beside_listings_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let files = std::sync::Arc::new(CodeFiles::open(dir.path()).unwrap());
        let code = vec![7u8; 1 << 20];
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for round in 0..20 {
                        let name = format!("d{round}-e1");
                        files.write(Kind::Code, &name, &code).expect("a write beside others");
                        files.list(Kind::Code).expect("a listing");
                    }
                });
            }
        });
        assert_eq!(files.list(Kind::Code).unwrap().len(), 20);
        assert_eq!(files.read(Kind::Code, "d3-e1").unwrap(), Some(code));
    }
}
