//! The watchdog of failing storage: every few seconds while the storage is
//! failing it looks whether writes could succeed again on the data volume
//! (at least `storage_min_free` bytes available, and a small file can be
//! written, synced and removed there), and when they could, marks the
//! storage recovered and returns so the daemon can reopen the database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::health::StorageHealth;

/// How often failing storage is looked at.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Bytes the probe writes: a few pages, so a volume with room for nothing
/// but metadata does not pass.
const PROBE_BYTES: usize = 64 << 10;

/// The probe's file in the data directory.
const PROBE_FILE: &str = ".storage-probe";

/// Bytes an unprivileged writer may still use on the volume holding `path`
/// (`statvfs`'s available blocks: the root-reserved ones are left out, so a
/// daemon running as root is not told of room only root has).
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and
    // `stat` points to writable memory of the struct statvfs fills.
    let result = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    // Both are u64 on 64-bit Linux; the conversion keeps 32-bit targets building.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(block_size))
}

/// Why writes could not succeed yet on the volume of `data_dir`, or None
/// when they could: enough room, and a probe file written and synced.
pub fn unwritable(data_dir: &Path, min_free: u64) -> Option<String> {
    match available_bytes(data_dir) {
        Ok(free) if free < min_free => {
            return Some(format!(
                "{free} bytes available on the data volume; waiting for at least {min_free} (storage_min_free)"
            ));
        }
        Ok(_) => {}
        Err(error) => return Some(format!("cannot read the data volume's free space: {error}")),
    }
    let probe = data_dir.join(PROBE_FILE);
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&probe);
    match (written, removed) {
        (Ok(()), Ok(())) => None,
        (Err(error), _) | (Ok(()), Err(error)) => Some(format!("a test write to the data volume failed: {error}")),
    }
}

/// Waits until the storage fails, then until writes could succeed again on
/// the volume of `data_dir`; marks the storage recovered and returns.
pub async fn recovered(health: Arc<StorageHealth>, data_dir: PathBuf, min_free: u64) {
    health.failing().await;
    let mut last_reason = String::new();
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        let dir = data_dir.clone();
        let reason = match tokio::task::spawn_blocking(move || unwritable(&dir, min_free)).await {
            Ok(reason) => reason,
            Err(error) => Some(format!("the storage check failed: {error}")),
        };
        match reason {
            None => {
                health.recovered();
                return;
            }
            // Said once per reason, at debug: the failure itself was logged.
            Some(reason) if reason != last_reason => {
                tracing::debug!(%reason, "storage still cannot take writes");
                last_reason = reason;
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_with_room_is_writable_and_the_probe_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_bytes(dir.path()).unwrap() > 0);
        assert_eq!(unwritable(dir.path(), 0), None);
        assert!(!dir.path().join(PROBE_FILE).exists());
    }

    #[test]
    fn too_little_room_is_not_writable_yet() {
        let dir = tempfile::tempdir().unwrap();
        let reason = unwritable(dir.path(), u64::MAX).expect("no volume has that much");
        assert!(reason.contains("storage_min_free"), "{reason}");
    }

    #[test]
    fn a_missing_directory_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let reason = unwritable(&dir.path().join("gone"), 0).expect("nothing to write to");
        assert!(reason.contains("data volume"), "{reason}");
    }
}
