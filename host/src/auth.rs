//! Who is calling: bearer tokens to principals. Tokens are random 256-bit
//! values; only their sha256 is kept. The local admin token, written to
//! `<data-dir>/admin-token` (mode 0600) on first start, manages tenants and
//! acts on the default tenant; its hash is compared in constant time.
//! Tenant tokens are found by the hash of the secret shown (a lookup by a
//! sha256 key leaks nothing a caller could use: it cannot choose hashes).

use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::DEFAULT_TENANT;
use crate::store::TenantStore;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant whose objects the caller sees.
    pub tenant: String,
    /// True for the admin token.
    pub admin: bool,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error(
        "missing bearer token: send `Authorization: Bearer <token>` (the local admin token is in <data-dir>/admin-token)"
    )]
    Missing,
    /// A token that matches nothing.
    #[error("invalid or revoked token")]
    Invalid,
    /// The token store could not be read.
    #[error("reading tokens: {0}")]
    Store(String),
}

/// Known token hashes.
pub struct Auth {
    admin_hash: [u8; 32],
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex sha256 a token is kept as.
pub fn token_hash(token: &str) -> String {
    hex::encode(hash(token))
}

/// A new random token with a readable prefix.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

impl Auth {
    /// The admin token given in config, else the one in the data dir.
    pub fn for_config(config: &crate::config::Config) -> std::io::Result<Auth> {
        match &config.admin_token {
            Some(token) => Ok(Auth {
                admin_hash: hash(token.trim()),
            }),
            None => Auth::load_or_create(&config.admin_token_path()),
        }
    }

    /// Reads the admin token from `path`, creating it (0600) on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<Auth> {
        let token = crate::permissions::read_or_create_private_file(path, "the admin token", || new_token("sc_admin"))?;
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is empty; delete it to have a new admin token made", path.display()),
            ));
        }
        Ok(Auth {
            admin_hash: hash(&token),
        })
    }

    /// Resolves an `Authorization` header value to a principal: the admin
    /// token, or a tenant token in `store` that is not revoked.
    pub fn authenticate(&self, header: Option<&str>, store: &dyn TenantStore) -> Result<Principal, AuthError> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        if bool::from(hash(token).ct_eq(&self.admin_hash)) {
            return Ok(Principal {
                tenant: DEFAULT_TENANT.to_string(),
                admin: true,
            });
        }
        match store.token_by_hash(&token_hash(token)) {
            Ok(Some(found)) if found.revoked_at.is_none() => Ok(Principal {
                tenant: found.tenant,
                admin: false,
            }),
            Ok(_) => Err(AuthError::Invalid),
            Err(error) => Err(AuthError::Store(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        let auth = Auth::load_or_create(&path).unwrap();
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert!(token.len() > 64, "at least 256 bits of hex");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = Auth::load_or_create(&path).unwrap();
        let store = crate::store::SledStore::open(&dir.path().join("db")).unwrap();
        let header = format!("Bearer {token}");
        assert!(auth.authenticate(Some(&header), &store).unwrap().admin);
        assert!(again.authenticate(Some(&header), &store).is_ok());
        assert_eq!(auth.authenticate(None, &store), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(Some("Bearer nope"), &store), Err(AuthError::Invalid));
        assert_eq!(auth.authenticate(Some(&token), &store), Err(AuthError::Missing));
    }

    #[test]
    fn a_tenant_token_acts_for_its_tenant_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::load_or_create(&dir.path().join("admin-token")).unwrap();
        let store = crate::store::SledStore::open(&dir.path().join("db")).unwrap();
        let secret = new_token("sc");
        let now = chrono::Utc::now();
        let token = crate::model::Token {
            id: crate::model::new_id(),
            tenant: "acme".into(),
            hash: token_hash(&secret),
            created_at: now,
            revoked_at: None,
        };
        let tenant = crate::model::Tenant {
            name: "acme".into(),
            created_at: now,
            quotas: crate::model::Quotas::default(),
            http_allow: None,
            digest: None,
            calendars: Default::default(),
        };
        store.insert_tenant(&tenant, &token).unwrap();
        let header = format!("Bearer {secret}");
        assert_eq!(
            auth.authenticate(Some(&header), &store),
            Ok(Principal {
                tenant: "acme".into(),
                admin: false
            })
        );
        store.revoke_token("acme", &token.id, now).unwrap().unwrap();
        assert_eq!(auth.authenticate(Some(&header), &store), Err(AuthError::Invalid));
    }
}
