//! The content digest that names a plugin's bytes.

use sha2::{Digest, Sha256};

/// sha256 of bytes as lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
