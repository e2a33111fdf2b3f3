//! Tenants, their tokens and their secrets in PostgreSQL: JSON records
//! keyed by name, token hash and (tenant, name).

use chrono::{DateTime, Utc};

use super::database::{PgStore, from_json, is_unique_violation, json};
use super::listen::TENANTS_CHANNEL;
use crate::model::{SecretRecord, Tenant, Token};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::{SecretStore, TenantStore};

impl TenantStore for PgStore {
    fn insert_tenant(&self, tenant: &Tenant, token: &Token) -> StoreResult<()> {
        let (record, token_record) = (json(tenant), json(token));
        self.block(|| async {
            self.transact(async |transaction| {
                let inserted = transaction
                    .execute(
                        "INSERT INTO tenants (name, record) VALUES ($1, $2)",
                        &[&tenant.name, &record],
                    )
                    .await;
                match inserted {
                    Err(error) if is_unique_violation(&error) => {
                        return Err(StoreError::TenantExists {
                            name: tenant.name.clone(),
                        });
                    }
                    other => other?,
                };
                transaction
                    .execute(
                        "INSERT INTO tokens (hash, tenant, id, record) VALUES ($1, $2, $3, $4)",
                        &[&token.hash, &token.tenant, &token.id, &token_record],
                    )
                    .await?;
                transaction
                    .execute("SELECT pg_notify($1, $2)", &[&TENANTS_CHANNEL, &&*self.node])
                    .await?;
                Ok(())
            })
            .await
        })
    }

    fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let record = json(tenant);
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "WITH written AS (
                         INSERT INTO tenants (name, record) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET record = excluded.record)
                     SELECT pg_notify($3, $4)",
                    &[&tenant.name, &record, &TENANTS_CHANNEL, &&*self.node],
                )
                .await?;
            Ok(())
        })
    }

    fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT record FROM tenants WHERE name = $1", &[&name])
                .await?;
            row.map(|row| from_json(name, row.get(0))).transpose()
        })
    }

    fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query("SELECT name, record FROM tenants ORDER BY name", &[])
                .await?;
            rows.iter().map(|row| from_json(row.get(0), row.get(1))).collect()
        })
    }

    fn insert_token(&self, token: &Token) -> StoreResult<()> {
        let record = json(token);
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO tokens (hash, tenant, id, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (hash) DO UPDATE SET record = excluded.record",
                    &[&token.hash, &token.tenant, &token.id, &record],
                )
                .await?;
            Ok(())
        })
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<Token>> {
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT record FROM tokens WHERE hash = $1")
                .await?;
            let row = client.query_opt(&statement, &[&hash]).await?;
            row.map(|row| from_json("a token", row.get(0))).transpose()
        })
    }

    fn list_tokens(&self, tenant: &str) -> StoreResult<Vec<Token>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, record FROM tokens WHERE tenant = $1 ORDER BY id",
                    &[&tenant],
                )
                .await?;
            rows.iter().map(|row| from_json(row.get(0), row.get(1))).collect()
        })
    }

    fn revoke_token(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Token>> {
        self.block(|| async {
            self.transact(async |transaction| {
                let Some(row) = transaction
                    .query_opt(
                        "SELECT hash, record FROM tokens WHERE tenant = $1 AND id = $2 FOR UPDATE",
                        &[&tenant, &id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let hash: &str = row.get(0);
                let mut token: Token = from_json(id, row.get(1))?;
                if token.revoked_at.is_none() {
                    token.revoked_at = Some(at);
                    transaction
                        .execute("UPDATE tokens SET record = $2 WHERE hash = $1", &[&hash, &json(&token)])
                        .await?;
                }
                Ok(Some(token))
            })
            .await
        })
    }
}

impl SecretStore for PgStore {
    fn put_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        let record = json(secret);
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO secrets (tenant, name, record) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant, name) DO UPDATE SET record = excluded.record",
                    &[&secret.tenant, &secret.name, &record],
                )
                .await?;
            Ok(())
        })
    }

    fn secret(&self, tenant: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT record FROM secrets WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await?;
            row.map(|row| from_json(name, row.get(0))).transpose()
        })
    }

    fn list_secrets(&self, tenant: &str) -> StoreResult<Vec<SecretRecord>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT name, record FROM secrets WHERE tenant = $1 ORDER BY name",
                    &[&tenant],
                )
                .await?;
            rows.iter().map(|row| from_json(row.get(0), row.get(1))).collect()
        })
    }

    fn delete_secret(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        self.block(|| async {
            let deleted = self
                .client()
                .await?
                .execute("DELETE FROM secrets WHERE tenant = $1 AND name = $2", &[&tenant, &name])
                .await?;
            Ok(deleted > 0)
        })
    }
}
