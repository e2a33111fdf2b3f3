//! What a run may use beyond its sandbox, decided in one place: its job's
//! kv store (scoped to tenant and job, within the tenant's `kv_bytes`), the
//! hosts it may reach (the job's `http_allow` under the tenant's cap; the
//! SSRF wall is the outbound client's), the secrets granted to it (opened
//! from the vault), and where `run-info` finds its job's zone. [`grant`] is
//! the decision as data, from the run and its tenant as they are when it
//! starts; [`Granter::capabilities`] turns it into what the sandbox takes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Run, Tenant};
use crate::outbound::{HttpGrant, Outbound};
use crate::sandbox::{Capabilities, KeyValue, ZoneSource};
use crate::store::Store;
use crate::tenancy::Tenants;
use crate::vault::Vault;

/// What a run may use, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its kv store.
    pub kv: KvScope,
    /// The hosts it may reach.
    pub http: HttpGrant,
    /// The names of the secrets it may read (the job's when it was queued).
    pub secrets: Vec<String>,
}

/// A job's kv store and the quota its writes stay within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvScope {
    /// The tenant.
    pub tenant: String,
    /// The job.
    pub job_id: String,
    /// The tenant's `kv_bytes` quota; None is no limit.
    pub max_bytes: Option<u64>,
}

/// What `run` may use, its tenant being `tenant` now (None: a tenant the
/// daemon does not know, which caps nothing).
pub fn grant(run: &Run, tenant: Option<&Tenant>) -> Grant {
    Grant {
        kv: KvScope {
            tenant: run.tenant.clone(),
            job_id: run.job_id.clone(),
            max_bytes: tenant.and_then(|tenant| tenant.quotas.kv_bytes),
        },
        http: HttpGrant {
            job: run.http_allow.clone(),
            tenant: tenant.and_then(|tenant| tenant.http_allow.clone()),
            any_host: false,
        },
        secrets: run.secrets.clone(),
    }
}

/// Turns runs into their capabilities.
pub struct Granter {
    store: Arc<dyn Store>,
    tenants: Arc<Tenants>,
    outbound: Arc<Outbound>,
    vault: Arc<Vault>,
}

impl Granter {
    /// A granter reading tenants, secrets and jobs as they are at each call.
    pub fn new(store: Arc<dyn Store>, tenants: Arc<Tenants>, outbound: Arc<Outbound>, vault: Arc<Vault>) -> Granter {
        Granter {
            store,
            tenants,
            outbound,
            vault,
        }
    }

    /// The tenants whose quotas and caps the grants follow.
    pub fn tenants(&self) -> &Arc<Tenants> {
        &self.tenants
    }

    /// What `run` may use, its tenant read now: an admin's change to a
    /// tenant applies from the next run that starts.
    pub fn grant(&self, run: &Run) -> Grant {
        grant(run, self.tenants.get(&run.tenant).as_ref())
    }

    /// The capabilities `run` starts with. A granted secret that is gone
    /// or cannot be opened reads as none (with a warning), as does one the
    /// plugin asks for without a grant.
    pub fn capabilities(&self, run: &Run) -> Capabilities {
        let grant = self.grant(run);
        Capabilities {
            secrets: self.open_secrets(run, &grant.secrets),
            kv: Arc::new(StoreKeyValue {
                store: self.store.clone(),
                scope: grant.kv,
            }),
            outbound: Some(self.outbound.clone()),
            http: grant.http,
            zone: ZoneSource::Lookup(Arc::new({
                let (store, tenant, job_id) = (self.store.clone(), run.tenant.clone(), run.job_id.clone());
                // The job as it is when the plugin asks; a job deleted
                // under its running run reads as UTC.
                move || match store.job(&tenant, &job_id) {
                    Ok(job) => Ok(job.map_or(chrono_tz::Tz::UTC, |job| job.timezone())),
                    Err(error) => Err(error.to_string()),
                }
            })),
        }
    }

    /// The values of the secrets `names` of the run's tenant.
    fn open_secrets(&self, run: &Run, names: &[String]) -> BTreeMap<String, String> {
        let mut secrets = BTreeMap::new();
        for name in names {
            match self.store.secret(&run.tenant, name) {
                Ok(Some(record)) => match self.vault.open(&record) {
                    Ok(value) => {
                        secrets.insert(name.clone(), value);
                    }
                    Err(error) => tracing::warn!(run_id = %run.id, %error, "a granted secret reads as none"),
                },
                Ok(None) => {}
                Err(error) => tracing::warn!(run_id = %run.id, %error, "a granted secret reads as none"),
            }
        }
        secrets
    }
}

/// A job's kv store over the store, within its scope's quota.
struct StoreKeyValue {
    store: Arc<dyn Store>,
    scope: KvScope,
}

impl KeyValue for StoreKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let KvScope { tenant, job_id, .. } = &self.scope;
        self.store
            .kv_get(tenant, job_id, key)
            .map_err(|error| error.to_string())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let KvScope {
            tenant,
            job_id,
            max_bytes,
        } = &self.scope;
        self.store
            .kv_set_under_quota(tenant, job_id, key, value, *max_bytes)
            .map_err(|error| format!("kv: {error}"))
    }
    fn delete(&self, key: &str) -> Result<(), String> {
        let KvScope { tenant, job_id, .. } = &self.scope;
        self.store
            .kv_delete(tenant, job_id, key)
            .map_err(|error| error.to_string())
    }
    fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, String> {
        let KvScope { tenant, job_id, .. } = &self.scope;
        self.store
            .kv_keys(tenant, job_id, prefix, limit)
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::SecretRecord;
    use crate::store::SledStore;

    fn run() -> Run {
        let mut run = Run::sample("r1", "job-1", chrono::Utc::now());
        run.tenant = "acme".into();
        run.http_allow = vec!["api.example.com".into()];
        run.secrets = vec!["token".into(), "missing".into(), "broken".into()];
        run
    }

    fn tenant(kv_bytes: Option<u64>, http_allow: Option<Vec<String>>) -> Tenant {
        let mut tenant = crate::tenancy::implicit_default();
        tenant.name = "acme".into();
        tenant.quotas.kv_bytes = kv_bytes;
        tenant.http_allow = http_allow;
        tenant
    }

    #[test]
    fn a_run_gets_its_jobs_hosts_and_secrets_under_its_tenants_cap_and_kv_quota() {
        let capped = tenant(Some(4096), Some(vec!["*.example.com".into()]));
        let grant = grant(&run(), Some(&capped));
        assert_eq!(
            grant,
            Grant {
                kv: KvScope {
                    tenant: "acme".into(),
                    job_id: "job-1".into(),
                    max_bytes: Some(4096),
                },
                http: HttpGrant {
                    job: vec!["api.example.com".into()],
                    tenant: Some(vec!["*.example.com".into()]),
                    any_host: false,
                },
                secrets: vec!["token".into(), "missing".into(), "broken".into()],
            }
        );
    }

    #[test]
    fn a_tenant_the_daemon_does_not_know_caps_nothing_and_a_run_without_grants_gets_none() {
        let mut bare = run();
        bare.http_allow.clear();
        bare.secrets.clear();
        let grant = grant(&bare, None);
        assert_eq!(grant.kv.max_bytes, None);
        assert_eq!(grant.http, HttpGrant::default());
        assert!(grant.secrets.is_empty());
    }

    #[test]
    fn capabilities_open_granted_secrets_and_leave_out_missing_or_unopenable_ones() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db")).expect("a store"));
        let vault = Arc::new(Vault::new([3; 32]));
        let now = chrono::Utc::now();
        let record = |name: &str, (nonce, sealed): (String, String)| SecretRecord {
            tenant: "acme".into(),
            name: name.into(),
            nonce,
            sealed,
            created_at: now,
            updated_at: now,
        };
        store
            .put_secret(&record("token", vault.seal("acme", "token", "s3cr3t")))
            .expect("a secret");
        // Sealed for another name: it does not open as this one.
        store
            .put_secret(&record("broken", vault.seal("acme", "other", "x")))
            .expect("a secret");
        // Another tenant's secret of the same name is not the run's.
        let mut foreign = record("missing", vault.seal("other", "missing", "y"));
        foreign.tenant = "other".into();
        store.put_secret(&foreign).expect("a secret");
        let tenants = Arc::new(Tenants::load(store.as_ref()).expect("tenants"));
        tenants.put(tenant(Some(1), None));
        let outbound = Arc::new(Outbound::new(Vec::new(), Default::default()).expect("an HTTP client"));
        let granter = Granter::new(store.clone(), tenants, outbound, vault);

        let capabilities = granter.capabilities(&run());
        assert_eq!(
            capabilities.secrets,
            BTreeMap::from([("token".to_string(), "s3cr3t".to_string())])
        );
        assert_eq!(capabilities.http.job, ["api.example.com"]);
        // The kv store is the job's, within the tenant's quota of 1 byte.
        capabilities.kv.set("k", b"").expect("an empty value fits");
        assert!(capabilities.kv.set("key", b"value").is_err(), "past kv_bytes");
        assert_eq!(store.kv_get("acme", "job-1", "k").expect("a read"), Some(Vec::new()));
    }
}
