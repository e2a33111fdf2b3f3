//! Tenants and their API tokens. A token's secret is shown once, when it is
//! made; only its sha256 is kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant: a namespace of plugins, jobs, runs, kv and secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its name (also its id).
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// An API token of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Its id (a ULID), to list and revoke it by.
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// sha256 of the secret, hex.
    pub hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Token {
    /// The token as the API shows it: never the hash.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "tenant": self.tenant,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        })
    }
}
