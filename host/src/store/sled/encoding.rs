//! How values sit in sled's trees, shared by every subject: keys of
//! NUL-joined parts (`tenant \0 ...`, so a tenant's objects form one range),
//! JSON records, u64 big-endian counts, and the store errors of a record
//! that does not decode and of a failed transaction.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::TransactionError;

use crate::store::error::{StoreError, StoreResult};

/// The key of `parts` joined by NUL bytes (`tenant \0 ...`).
pub(super) fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|part| part.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

/// The key of `parts` with a NUL after the last: every key under them.
pub(super) fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut prefix = key(parts);
    prefix.push(0);
    prefix
}

/// A record as JSON, as [`from_json`] reads it.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialize")
}

/// A record under `key` that does not decode.
pub(super) fn corrupt(key: &[u8], message: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message,
    }
}

/// A record stored as JSON (every kind but jobs and runs).
pub(super) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|error| error.to_string())
}

/// A JSON record under `key`, [`corrupt`] when it does not decode.
pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> StoreResult<T> {
    from_json(bytes).map_err(|message| corrupt(key, message))
}

/// A count stored as u64 big-endian (absent is 0).
pub(super) fn read_count(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// The store error of a failed transaction: its own abort, or sled's.
pub(super) fn transaction_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => error.into(),
    }
}
