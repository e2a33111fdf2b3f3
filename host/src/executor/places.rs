//! Places in tenants' queues held while runs are being queued (the
//! `queued_runs` quota, counted by [`Admission`](super::admission::Admission)).
//! In a cluster the waiting runs counted are every node's, read from the
//! database; the places held are this node's, so nodes queueing runs of a
//! tenant at the same instant may together pass its quota by those runs.

use std::collections::HashMap;
use std::sync::Mutex;

use super::admission::{add, subtract};
use super::queue::RunQueue;
use crate::store::RunClaims;
use crate::sync::lock;
use crate::tenancy::Tenants;

/// Places in tenants' queues held for runs being queued, given back when
/// dropped: hold it until the runs are handed to the queue.
pub struct QueuePlaces<'a> {
    tenants: &'a Tenants,
    /// The cluster's queue, whose waiting runs count (None: this queue's).
    claims: Option<&'a dyn RunClaims>,
    queue: &'a Mutex<RunQueue>,
    held: HashMap<String, usize>,
}

impl<'a> QueuePlaces<'a> {
    pub(super) fn new(
        tenants: &'a Tenants,
        claims: Option<&'a dyn RunClaims>,
        queue: &'a Mutex<RunQueue>,
    ) -> QueuePlaces<'a> {
        QueuePlaces {
            tenants,
            claims,
            queue,
            held: HashMap::new(),
        }
    }

    /// Takes up to `wanted` places for runs of `tenant` and returns how
    /// many: all of them when the tenant has no `queued_runs` quota.
    pub fn take(&mut self, tenant: &str, wanted: usize) -> usize {
        if wanted == 0 {
            return 0;
        }
        let Some(limit) = self.tenants.queued_runs(tenant) else {
            return wanted;
        };
        let granted = match self.claims.map(|claims| claims.waiting_runs(tenant)) {
            None => lock(self.queue).admission.take(tenant, wanted, limit),
            Some(Ok(waiting)) => lock(self.queue).admission.take_beside(tenant, wanted, limit, waiting),
            // The storage is failing: the runs' write will say so.
            Some(Err(_)) => return wanted,
        };
        if granted > 0 {
            add(&mut self.held, tenant, granted);
        }
        granted
    }

    /// Gives back `count` of the places held for runs of `tenant` (their
    /// runs will not be queued).
    pub fn give_back(&mut self, tenant: &str, count: usize) {
        let count = count.min(self.held.get(tenant).copied().unwrap_or(0));
        if count == 0 {
            return;
        }
        subtract(&mut self.held, tenant, count);
        lock(self.queue).admission.give_back(tenant, count);
    }
}

impl Drop for QueuePlaces<'_> {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut queue = lock(self.queue);
        for (tenant, count) in &self.held {
            queue.admission.give_back(tenant, *count);
        }
    }
}
