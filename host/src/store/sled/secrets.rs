//! The secret subject of [`SledStore`]: sealed secrets under
//! `tenant \0 name`, as JSON.

use super::database::SledStore;
use super::encoding::{encode, key, prefix};
use crate::model::SecretRecord;
use crate::store::error::StoreResult;
use crate::store::traits::SecretStore;

impl SecretStore for SledStore {
    fn put_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        let gate = self.writing();
        self.secrets
            .insert(key(&[secret.tenant.as_bytes(), secret.name.as_bytes()]), encode(secret))
            .map_err(|error| gate.note(error))?;
        Ok(())
    }

    fn secret(&self, tenant: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        Self::get(&self.secrets, &key(&[tenant.as_bytes(), name.as_bytes()]))
    }

    fn list_secrets(&self, tenant: &str) -> StoreResult<Vec<SecretRecord>> {
        Self::scan(&self.secrets, &prefix(&[tenant.as_bytes()]))
    }

    fn delete_secret(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        let gate = self.writing();
        Ok(self
            .secrets
            .remove(key(&[tenant.as_bytes(), name.as_bytes()]))
            .map_err(|error| gate.note(error))?
            .is_some())
    }
}
