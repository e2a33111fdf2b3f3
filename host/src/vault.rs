//! Secrets at rest: each value is sealed with XChaCha20-Poly1305 under the
//! daemon's master key, with a fresh random nonce, and bound to its tenant
//! and name (the associated data), so a sealed value copied to another
//! secret does not open. The key comes from config/env (`secrets_key`) or a
//! key file (`<data-dir>/secrets.key`, created 0600 on first start).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Config;
use crate::model::SecretRecord;
use crate::permissions::read_or_create_private_file;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// The master key is malformed.
    #[error("the secrets master key {0}")]
    BadKey(String),
    /// The record does not open with this key (another key, or tampered).
    #[error("secret {0:?} does not open with this daemon's master key (was the key changed?)")]
    Unopenable(String),
}

/// Seals and opens secret values.
pub struct Vault {
    cipher: XChaCha20Poly1305,
    /// Derives per-tenant keys (webhook signing), never used to encrypt.
    derive: [u8; 32],
}

fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    format!("sandcron-secret\0{tenant}\0{name}").into_bytes()
}

/// Reads a key given as 64 hex digits or base64 of 32 bytes.
fn parse_key(text: &str) -> Result<[u8; 32], VaultError> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| STANDARD.decode(text).ok())
        .ok_or_else(|| VaultError::BadKey("is neither hex nor base64".to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| VaultError::BadKey(format!("is {} bytes; it must be 32", bytes.len())))
}

impl Vault {
    /// A vault over a 32-byte key.
    pub fn new(key: [u8; 32]) -> Vault {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes a key of any length");
        derive.update(b"sandcron-derive-v1");
        Vault {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
            derive: derive.finalize().into_bytes().into(),
        }
    }

    /// The key from config/env, else from the key file (made on first start).
    pub fn for_config(config: &Config) -> anyhow::Result<Vault> {
        if let Some(text) = &config.secrets_key {
            return Ok(Vault::new(parse_key(text)?));
        }
        Vault::from_file(&config.secrets_key_path())
    }

    /// The key in `path`, creating it (0600) if absent.
    pub fn from_file(path: &Path) -> anyhow::Result<Vault> {
        let text = read_or_create_private_file(path, "the secrets master key", || {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            hex::encode(key)
        })
        .map_err(|error| anyhow::anyhow!("cannot read the secrets key file {}: {error}", path.display()))?;
        let key = parse_key(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        Ok(Vault::new(key))
    }

    /// A key for `purpose` of `tenant`, derived from the master key (HMAC):
    /// the same for the same inputs, unrelated across tenants and purposes.
    pub fn derived_key(&self, purpose: &str, tenant: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.derive).expect("HMAC takes a key of any length");
        mac.update(format!("{purpose}\0{tenant}").as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seals `value` for (tenant, name): the record's nonce and sealed text.
    pub fn seal(&self, tenant: &str, name: &str, value: &str) -> (String, String) {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(tenant, name);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: &aad,
        };
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encrypts any message of this size");
        (STANDARD.encode(nonce), STANDARD.encode(sealed))
    }

    /// The value of a stored secret.
    pub fn open(&self, record: &SecretRecord) -> Result<String, VaultError> {
        let unopenable = || VaultError::Unopenable(record.name.clone());
        let nonce = STANDARD.decode(&record.nonce).map_err(|_| unopenable())?;
        let sealed = STANDARD.decode(&record.sealed).map_err(|_| unopenable())?;
        if nonce.len() != 24 {
            return Err(unopenable());
        }
        let aad = associated_data(&record.tenant, &record.name);
        let payload = Payload {
            msg: &sealed,
            aad: &aad,
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| unopenable())?;
        String::from_utf8(plain).map_err(|_| unopenable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(vault: &Vault, tenant: &str, name: &str, value: &str) -> SecretRecord {
        let (nonce, sealed) = vault.seal(tenant, name, value);
        SecretRecord {
            tenant: tenant.into(),
            name: name.into(),
            nonce,
            sealed,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_tenant_and_name() {
        let vault = Vault::new([7; 32]);
        let sealed = record(&vault, "acme", "db-password", "hunter2-correct-horse");
        assert!(!sealed.sealed.contains("hunter2"));
        assert_eq!(vault.open(&sealed).unwrap(), "hunter2-correct-horse");
        // Same value twice: different nonces, different ciphertexts.
        assert_ne!(
            record(&vault, "acme", "db-password", "hunter2-correct-horse").sealed,
            sealed.sealed
        );
        assert!(Vault::new([8; 32]).open(&sealed).is_err());
        let mut moved = sealed.clone();
        moved.tenant = "beta".into();
        assert!(vault.open(&moved).is_err());
        let mut renamed = sealed.clone();
        renamed.name = "other".into();
        assert!(vault.open(&renamed).is_err());
        let mut tampered = sealed;
        tampered.sealed.replace_range(0..2, "AA");
        assert!(vault.open(&tampered).is_err());
    }

    #[test]
    fn the_key_file_is_made_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = Vault::from_file(&path).unwrap();
        let sealed = record(&first, "t", "n", "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = Vault::from_file(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "v");
    }

    #[test]
    fn keys_are_read_as_hex_or_base64_of_32_bytes() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(parse_key(&STANDARD.encode([1u8; 32])).unwrap(), [1; 32]);
        assert!(parse_key("abcd").is_err());
        assert!(parse_key("not a key!").is_err());
    }
}
