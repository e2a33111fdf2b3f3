//! Keeping the data directory its owner's: every tenant's inputs, outputs,
//! logs, key-value data and secrets live there, so the daemon creates what
//! it writes readable by its own user only, and says so when an existing
//! directory or private file is open to others.

use std::io::Write;
use std::path::Path;

/// Group and other permission bits.
const OPEN_TO_OTHERS: u32 = 0o077;

/// Makes every file and directory the process creates from now on private
/// to its user (umask 0077): sled creates its files with the default mode,
/// which the umask would otherwise leave world-readable (0644).
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the data directory (and missing parents) with mode 0700, or
/// warns when an existing one lets group or others in.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        warn_if_open_to_others(path, "the data directory", "chmod -R go-rwx");
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Logs a warning when `path` can be read or written by group or others;
/// `fix` is the command that closes it (the path is appended).
pub fn warn_if_open_to_others(path: &Path, what: &str, fix: &str) {
    if let Some(mode) = open_mode(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "{what} can be read by other local users; run `{fix} {}`",
            path.display()
        );
    }
}

/// The permission bits of `path` when group or others have any.
fn open_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & OPEN_TO_OTHERS != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_and_its_missing_parents_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("parent").join("data");
        create_private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("parent")), 0o700);
        assert_eq!(open_mode(&data), None);
    }

    #[test]
    fn a_path_open_to_group_or_others_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "x").unwrap();
        for (bits, open) in [(0o600, false), (0o640, true), (0o604, true), (0o400, false)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(bits)).unwrap();
            assert_eq!(open_mode(&file).is_some(), open, "{bits:o}");
        }
        assert_eq!(open_mode(&dir.path().join("missing")), None);
    }
}

/// The trimmed text of a file only its owner may read, made by `make` and
/// written with mode 0600 when the file does not exist yet; an existing one
/// that group or others may read is used with a warning.
pub fn read_or_create_private_file(path: &Path, what: &str, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_open_to_others(path, &format!("the file holding {what}"), "chmod 600");
            Ok(text.trim().to_string())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = make();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(format!("{text}\n").as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created {what}");
            Ok(text)
        }
        Err(error) => Err(error),
    }
}
