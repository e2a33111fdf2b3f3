//! What each tenant may use, kept in memory for the paths that ask on every
//! request or run (the API's rate limit, the executor's concurrency share
//! and queue places, a run's HTTP cap, retention's run-bytes trim): the
//! tenant records are read once at start and replaced here whenever the
//! admin changes one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::model::{DEFAULT_TENANT, Quotas, Tenant};
use crate::store::{StoreResult, TenantStore};
use crate::throttle::Bucket;

/// The tenants' quotas and HTTP caps, and their request budgets.
pub struct Tenants {
    known: RwLock<HashMap<String, Tenant>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// The default tenant when no record was written for it: no quotas.
pub fn implicit_default() -> Tenant {
    Tenant {
        name: DEFAULT_TENANT.to_string(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        quotas: Quotas::default(),
        http_allow: None,
        digest: None,
        calendars: Default::default(),
    }
}

impl Tenants {
    /// Reads every tenant record.
    pub fn load(store: &dyn TenantStore) -> StoreResult<Tenants> {
        let known = store
            .list_tenants()?
            .into_iter()
            .map(|tenant| (tenant.name.clone(), tenant))
            .collect();
        Ok(Tenants {
            known: RwLock::new(known),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Reads every tenant record again (another node of the cluster wrote
    /// one).
    pub fn reload(&self, store: &dyn TenantStore) -> StoreResult<()> {
        for tenant in store.list_tenants()? {
            self.put(tenant);
        }
        Ok(())
    }

    /// The tenant by name (the default one exists without a record).
    pub fn get(&self, name: &str) -> Option<Tenant> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match known.get(name) {
            Some(tenant) => Some(tenant.clone()),
            None if name == DEFAULT_TENANT => Some(implicit_default()),
            None => None,
        }
    }

    /// A tenant's quotas (none for an unknown one).
    pub fn quotas(&self, name: &str) -> Quotas {
        self.get(name).map(|tenant| tenant.quotas).unwrap_or_default()
    }

    /// How many of its runs may execute at once.
    pub fn concurrency(&self, name: &str) -> Option<usize> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        known
            .get(name)
            .and_then(|tenant| tenant.quotas.concurrent_runs)
            .map(|runs| runs as usize)
    }

    /// Every tenant with a `concurrent_runs` quota, and the quota.
    pub fn concurrency_quotas(&self) -> HashMap<String, usize> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        known
            .values()
            .filter_map(|tenant| Some((tenant.name.clone(), tenant.quotas.concurrent_runs? as usize)))
            .collect()
    }

    /// How many of its runs may wait in the queue at once.
    pub fn queued_runs(&self, name: &str) -> Option<u64> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        known.get(name).and_then(|tenant| tenant.quotas.queued_runs)
    }

    /// How many bytes its run history may take.
    pub fn run_bytes(&self, name: &str) -> Option<u64> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        known.get(name).and_then(|tenant| tenant.quotas.run_bytes)
    }

    /// Every tenant with a `run_bytes` quota, and the quota.
    pub fn run_bytes_quotas(&self) -> Vec<(String, u64)> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        known
            .values()
            .filter_map(|tenant| Some((tenant.name.clone(), tenant.quotas.run_bytes?)))
            .collect()
    }

    /// Remembers a tenant record just written to the store (a changed
    /// request rate starts from a full budget).
    pub fn put(&self, tenant: Tenant) {
        let mut known = self.known.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let rate = |tenant: Option<&Tenant>| tenant.and_then(|tenant| tenant.quotas.requests_per_second);
        if rate(known.get(&tenant.name)) != rate(Some(&tenant)) {
            self.lock_buckets().remove(&tenant.name);
        }
        known.insert(tenant.name.clone(), tenant);
    }

    /// Every tenant (the default one included).
    pub fn all(&self) -> Vec<Tenant> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<Tenant> = known.values().cloned().collect();
        if !known.contains_key(DEFAULT_TENANT) {
            all.push(implicit_default());
        }
        all
    }

    fn lock_buckets(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one request from the tenant's budget: Err(how long until the
    /// next one is let through) when it is spent.
    pub fn admit(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.quotas(name).requests_per_second else {
            return Ok(());
        };
        // A tenant may spend two seconds' worth at once.
        let (rate, burst) = (f64::from(rate), f64::from(rate.max(1)) * 2.0);
        self.lock_buckets()
            .entry(name.to_string())
            .or_insert_with(|| Bucket::full(burst, now))
            .take(rate, burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants_with_rate(rate: Option<u32>) -> Tenants {
        let tenants = Tenants {
            known: RwLock::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        };
        tenants.put(Tenant {
            name: "acme".into(),
            created_at: chrono::Utc::now(),
            quotas: Quotas {
                requests_per_second: rate,
                ..Quotas::default()
            },
            http_allow: None,
            digest: None,
            calendars: Default::default(),
        });
        tenants
    }

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_requests_wait_for_refill() {
        let tenants = tenants_with_rate(Some(5));
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(tenants.admit("acme", start), Ok(()));
        }
        let wait = tenants.admit("acme", start).unwrap_err();
        assert!(
            wait > Duration::from_millis(150) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        // 200 ms later one token has come back, and only one.
        let later = start + Duration::from_millis(200);
        assert_eq!(tenants.admit("acme", later), Ok(()));
        assert!(tenants.admit("acme", later).is_err());
        // Idle for a minute refills to the burst, not beyond.
        let idle = later + Duration::from_secs(60);
        let admitted = (0..30).filter(|_| tenants.admit("acme", idle).is_ok()).count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn tenants_without_a_rate_and_unknown_ones_are_not_limited() {
        let tenants = tenants_with_rate(None);
        let now = Instant::now();
        assert!((0..1000).all(|_| tenants.admit("acme", now).is_ok()));
        assert!((0..1000).all(|_| tenants.admit("default", now).is_ok()));
        assert_eq!(tenants.concurrency("default"), None);
    }

    #[test]
    fn one_tenants_budget_is_not_anothers() {
        let tenants = tenants_with_rate(Some(1));
        let mut beta = implicit_default();
        beta.name = "beta".into();
        beta.quotas.requests_per_second = Some(1);
        tenants.put(beta);
        let now = Instant::now();
        assert!(tenants.admit("acme", now).is_ok() && tenants.admit("acme", now).is_ok());
        assert!(tenants.admit("acme", now).is_err());
        assert!(tenants.admit("beta", now).is_ok());
    }
}
