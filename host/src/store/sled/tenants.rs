//! The tenant subject of [`SledStore`]: tenants by name, tokens by the
//! hash of their secret, and each tenant's tokens by id (to list and revoke
//! them), a tenant and its first token written in one transaction.

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::database::SledStore;
use super::encoding::{encode, key, prefix, transaction_error};
use crate::model::{Tenant, Token};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::TenantStore;

impl TenantStore for SledStore {
    fn insert_tenant(&self, tenant: &Tenant, token: &Token) -> StoreResult<()> {
        let record = encode(tenant);
        let token_record = encode(token);
        let index_key = key(&[token.tenant.as_bytes(), token.id.as_bytes()]);
        let gate = self.writing();
        (&self.tenants, &self.tokens, &self.tenant_tokens)
            .transaction(|(tenants, tokens, tenant_tokens)| {
                if tenants.get(tenant.name.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::TenantExists {
                        name: tenant.name.clone(),
                    }));
                }
                tenants.insert(tenant.name.as_bytes(), record.as_slice())?;
                tokens.insert(token.hash.as_bytes(), token_record.as_slice())?;
                tenant_tokens.insert(index_key.as_slice(), token.hash.as_bytes())?;
                Ok(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let gate = self.writing();
        self.tenants
            .insert(tenant.name.as_bytes(), encode(tenant))
            .map_err(|error| gate.note(error))?;
        Ok(())
    }

    fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        Self::get(&self.tenants, name.as_bytes())
    }

    fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        Self::scan(&self.tenants, &[])
    }

    fn insert_token(&self, token: &Token) -> StoreResult<()> {
        let record = encode(token);
        let index_key = key(&[token.tenant.as_bytes(), token.id.as_bytes()]);
        let gate = self.writing();
        (&self.tokens, &self.tenant_tokens)
            .transaction(|(tokens, tenant_tokens)| {
                tokens.insert(token.hash.as_bytes(), record.as_slice())?;
                tenant_tokens.insert(index_key.as_slice(), token.hash.as_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<Token>> {
        Self::get(&self.tokens, hash.as_bytes())
    }

    fn list_tokens(&self, tenant: &str) -> StoreResult<Vec<Token>> {
        let mut tokens = Vec::new();
        for entry in self.tenant_tokens.scan_prefix(prefix(&[tenant.as_bytes()])) {
            let (_, hash) = entry?;
            if let Some(token) = Self::get(&self.tokens, &hash)? {
                tokens.push(token);
            }
        }
        Ok(tokens)
    }

    fn revoke_token(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Token>> {
        let Some(hash) = self.tenant_tokens.get(key(&[tenant.as_bytes(), id.as_bytes()]))? else {
            return Ok(None);
        };
        let Some(mut token) = Self::get::<Token>(&self.tokens, &hash)? else {
            return Ok(None);
        };
        if token.revoked_at.is_none() {
            token.revoked_at = Some(at);
            let gate = self.writing();
            self.tokens
                .insert(&hash, encode(&token))
                .map_err(|error| gate.note(error))?;
        }
        Ok(Some(token))
    }
}
