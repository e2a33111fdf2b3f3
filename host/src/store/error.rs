//! Storage errors: [`StoreError`] with its result and future types, and
//! the [`Fault`] an I/O error of the data volume is classified as (which
//! [`health`](super::health) tracks), mapped both ways here.

use std::future::Future;
use std::io;
use std::pin::Pin;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (corruption, a bug).
    #[error("storage: {0}")]
    Backend(String),
    /// The data volume is full or its disk quota is used up: writes cannot
    /// succeed until there is room (see [`health`](super::health)).
    #[error("{0}")]
    NoSpace(String),
    /// Another I/O error of the data volume: writes cannot succeed until it
    /// works again (see [`health`](super::health)).
    #[error("{0}")]
    Unavailable(String),
    /// A stored record did not decode.
    #[error("stored record {key} is unreadable: {message}")]
    Corrupt {
        /// Which record.
        key: String,
        /// The decoder's complaint.
        message: String,
    },
    /// Another job of the tenant has this name.
    #[error("a job named {name:?} already exists")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// A tenant with this name exists.
    #[error("a tenant named {name:?} already exists")]
    TenantExists {
        /// The name.
        name: String,
    },
    /// A write would pass one of the tenant's quotas; the message names it.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The data directory is held by another process.
    #[error("{0}")]
    Locked(String),
    /// The database aborted a transaction to break a deadlock or a
    /// serialization conflict; it changed nothing and may run again.
    #[error("storage: {0}")]
    Retry(String),
    /// The record changed (or went) between read and write; plan again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached (down, restarting, the network cut):
    /// nothing was written; the same call may succeed once it is back.
    #[error("{0}")]
    Disconnected(String),
}

impl From<::sled::Error> for StoreError {
    fn from(error: ::sled::Error) -> Self {
        match &error {
            ::sled::Error::Io(io) => {
                let (fault, message) = describe(io);
                fault.error(message)
            }
            _ => StoreError::Backend(error.to_string()),
        }
    }
}

impl StoreError {
    /// Whether the storage fails for a while (a full or failing volume, an
    /// unreachable database): the error says nothing of the record asked
    /// for, and the same call may succeed later.
    pub fn is_outage(&self) -> bool {
        self.fault().is_some() || matches!(self, StoreError::Disconnected(_))
    }

    /// The storage fault behind this error, if it is one (the storage then
    /// counts as failing, see [`health`](super::health)).
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::NoSpace(_) => Some(Fault::NoSpace),
            StoreError::Unavailable(_) => Some(Fault::Io),
            _ => None,
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A boxed future of a store result.
pub type StoreFuture = Pin<Box<dyn Future<Output = StoreResult<()>> + Send>>;

/// What kind of storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The volume is full or the disk quota is used up (ENOSPC, EDQUOT).
    NoSpace,
    /// Any other I/O error (EIO, a read-only remount, a vanished device).
    Io,
}

impl Fault {
    /// The name used in `/healthz`, the metrics' `kind` label and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::NoSpace => "no_space",
            Fault::Io => "io",
        }
    }

    /// The store error of this fault with `message`.
    pub fn error(self, message: String) -> StoreError {
        match self {
            Fault::NoSpace => StoreError::NoSpace(message),
            Fault::Io => StoreError::Unavailable(message),
        }
    }
}

/// The fault of an I/O error. sled hands out copies of the error that
/// failed it which keep the error's kind but not its OS code, so both are
/// looked at.
pub fn classify(error: &io::Error) -> Fault {
    if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        return Fault::NoSpace;
    }
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Fault::NoSpace,
        _ => Fault::Io,
    }
}

/// The fault of an I/O error and a sentence saying what went wrong, without
/// sled's debug dump of the error.
pub fn describe(error: &io::Error) -> (Fault, String) {
    let fault = classify(error);
    let message = match (fault, error.kind()) {
        (Fault::NoSpace, io::ErrorKind::QuotaExceeded) => "the disk quota on the data volume is used up".to_string(),
        (Fault::NoSpace, _) => "no space left on the data volume".to_string(),
        (Fault::Io, kind) => match error.raw_os_error() {
            Some(_) => format!("an I/O error on the data volume: {error}"),
            None => format!("an I/O error on the data volume ({kind})"),
        },
    };
    (fault, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn a_full_volume_or_quota_is_no_space_and_anything_else_is_io() {
        assert_eq!(classify(&os_error(libc::ENOSPC)), Fault::NoSpace);
        assert_eq!(classify(&os_error(libc::EDQUOT)), Fault::NoSpace);
        assert_eq!(classify(&os_error(libc::EIO)), Fault::Io);
        assert_eq!(classify(&os_error(libc::EROFS)), Fault::Io);
        assert_eq!(classify(&io::Error::other("boom")), Fault::Io);
        // sled's copy of the error that failed it: the kind, no OS code.
        let copied = io::Error::new(io::ErrorKind::StorageFull, format!("{:?}", os_error(libc::ENOSPC)));
        assert_eq!(classify(&copied), Fault::NoSpace);
        let quota = io::Error::new(io::ErrorKind::QuotaExceeded, "copied");
        assert_eq!(classify(&quota), Fault::NoSpace);
    }

    #[test]
    fn descriptions_say_what_happened_without_debug_dumps() {
        let copied = io::Error::new(io::ErrorKind::StorageFull, format!("{:?}", os_error(libc::ENOSPC)));
        let (fault, message) = describe(&copied);
        assert_eq!(fault, Fault::NoSpace);
        assert_eq!(message, "no space left on the data volume");
        let (_, quota) = describe(&os_error(libc::EDQUOT));
        assert!(quota.contains("quota"), "{quota}");
        let (fault, message) = describe(&os_error(libc::EIO));
        assert_eq!(fault, Fault::Io);
        assert!(message.starts_with("an I/O error on the data volume: "), "{message}");
        assert!(!message.contains("Os {"), "{message}");
    }
}
