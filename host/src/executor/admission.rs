//! The `queued_runs` quota: how many runs of each tenant wait in the queue
//! (queued, not running; retries waiting out their backoff and fires
//! recorded ahead included), and places taken for runs about to be
//! queued, so runs queued at once (requests racing, a scheduler pass with
//! many fires of one tenant) cannot together pass the quota. A tenant
//! without the quota takes no place and costs no lock.

use std::collections::HashMap;

/// Waiting runs and taken places per tenant, kept by the run queue under
/// its lock.
#[derive(Debug, Default)]
pub struct Admission {
    waiting: HashMap<String, usize>,
    taken: HashMap<String, usize>,
}

/// Adds `count` to a tenant's entry.
pub(super) fn add(counts: &mut HashMap<String, usize>, tenant: &str, count: usize) {
    match counts.get_mut(tenant) {
        Some(value) => *value = value.saturating_add(count),
        None => {
            counts.insert(tenant.to_string(), count);
        }
    }
}

/// Takes `count` from a tenant's entry, dropping it at zero.
pub(super) fn subtract(counts: &mut HashMap<String, usize>, tenant: &str, count: usize) {
    if let Some(value) = counts.get_mut(tenant) {
        *value = value.saturating_sub(count);
        if *value == 0 {
            counts.remove(tenant);
        }
    }
}

impl Admission {
    /// A run of `tenant` went into the queue.
    pub fn arrived(&mut self, tenant: &str) {
        add(&mut self.waiting, tenant, 1);
    }

    /// A run of `tenant` left the queue (it started, or was taken out).
    pub fn left(&mut self, tenant: &str) {
        subtract(&mut self.waiting, tenant, 1);
    }

    /// Runs of `tenant` waiting in the queue.
    pub fn waiting(&self, tenant: &str) -> usize {
        self.waiting.get(tenant).copied().unwrap_or(0)
    }

    /// Takes up to `wanted` places for runs of `tenant` under a quota of
    /// `limit` waiting runs; returns how many it took.
    pub fn take(&mut self, tenant: &str, wanted: usize, limit: u64) -> usize {
        self.take_beside(tenant, wanted, limit, self.waiting(tenant))
    }

    /// [`Admission::take`], with `waiting` runs of the tenant counted
    /// elsewhere (a cluster's, in its database) instead of this queue's.
    pub fn take_beside(&mut self, tenant: &str, wanted: usize, limit: u64, waiting: usize) -> usize {
        let used = waiting + self.taken.get(tenant).copied().unwrap_or(0);
        let free = usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(used);
        let granted = wanted.min(free);
        if granted > 0 {
            add(&mut self.taken, tenant, granted);
        }
        granted
    }

    /// Gives back places taken (their runs are in the queue by now, or
    /// were never written).
    pub fn give_back(&mut self, tenant: &str, count: usize) {
        subtract(&mut self.taken, tenant, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_what_the_quota_leaves_beside_waiting_runs_and_other_places() {
        let mut admission = Admission::default();
        admission.arrived("a");
        admission.arrived("a");
        assert_eq!(admission.take("a", 5, 3), 1, "two wait: one place of three left");
        assert_eq!(admission.take("a", 1, 3), 0, "the place taken counts");
        assert_eq!(admission.take("b", 2, 3), 2, "another tenant's runs do not");
        // The run of the place arrives, then the place is given back.
        admission.arrived("a");
        admission.give_back("a", 1);
        assert_eq!(admission.take("a", 1, 3), 0);
        admission.left("a");
        assert_eq!(admission.waiting("a"), 2);
        assert_eq!(admission.take("a", 1, 3), 1, "a run started: room again");
        admission.give_back("a", 1);
        for _ in 0..5 {
            admission.left("a");
        }
        assert_eq!(admission.waiting("a"), 0, "never below zero");
        assert_eq!(admission.take("a", usize::MAX, u64::MAX), usize::MAX);
    }
}
