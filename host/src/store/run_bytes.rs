//! What a tenant's run history weighs, for its `run_bytes` quota. A run is
//! charged its record as queued (the input is in it) while it waits or
//! runs, and once finished its whole record, its output and its log. The
//! charge is a function of the record alone, so a write knows what it
//! changes without reading what it replaces (a read per run would cost
//! more than the rest of the accounting): queueing adds the queued charge,
//! a `running` mark changes nothing, an outcome adds the difference
//! between the finished and the queued charge, a deletion takes away the
//! charge of the record it deletes.
//!
//! The store keeps each tenant's total beside its runs, written in the same
//! atomic write as they are, so a crash cannot part the two; and in memory,
//! behind one lock held across every write that changes a total: a sled
//! batch cannot read a value and write it back atomically, so the lock is
//! what keeps two writes from losing each other's change.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::run_codec;
use crate::model::Run;

/// What `run` is charged, stored as it is now.
pub fn charge(run: &Run) -> u64 {
    charge_encoded(run, &run_codec::encode(run))
}

/// [`charge`] with the run's record already encoded.
pub fn charge_encoded(run: &Run, record: &[u8]) -> u64 {
    if run.status.is_finished() {
        record.len() as u64 + run.output_size + run.log_size
    } else if run.has_outcome() {
        queued_charge(run)
    } else {
        record.len() as u64
    }
}

/// What `run` was charged before it finished: its record as queued.
pub fn queued_charge(run: &Run) -> u64 {
    if !run.has_outcome() {
        return run_codec::encode(run).len() as u64;
    }
    let mut queued = run.clone();
    queued.clear_outcome();
    run_codec::encode(&queued).len() as u64
}

/// What one write changes in tenants' totals.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Bytes added and bytes taken away, per tenant.
    by_tenant: HashMap<String, (u64, u64)>,
}

impl Changes {
    /// `bytes` more for `tenant`.
    pub fn add(&mut self, tenant: &str, bytes: u64) {
        self.entry(tenant).0 += bytes;
    }

    /// `bytes` fewer for `tenant`.
    pub fn remove(&mut self, tenant: &str, bytes: u64) {
        self.entry(tenant).1 += bytes;
    }

    fn entry(&mut self, tenant: &str) -> &mut (u64, u64) {
        if !self.by_tenant.contains_key(tenant) {
            self.by_tenant.insert(tenant.to_string(), (0, 0));
        }
        self.by_tenant.get_mut(tenant).expect("just inserted")
    }
}

/// A tenant's total after `added` and `removed` (never below zero).
fn after(total: u64, (added, removed): (u64, u64)) -> u64 {
    total.saturating_add(added).saturating_sub(removed)
}

/// Every tenant's total, in memory.
#[derive(Debug, Default)]
pub struct Totals(Mutex<HashMap<String, u64>>);

/// The totals, held across a write that changes them.
pub struct Held<'a>(MutexGuard<'a, HashMap<String, u64>>);

impl Totals {
    /// The totals as read from the store.
    pub fn new(totals: HashMap<String, u64>) -> Totals {
        Totals(Mutex::new(totals))
    }

    /// Holds the totals: take it before the write's gate and keep it until
    /// the write is applied (or failed).
    pub fn hold(&self) -> Held<'_> {
        Held(self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Held<'_> {
    /// A tenant's total.
    pub fn get(&self, tenant: &str) -> u64 {
        self.0.get(tenant).copied().unwrap_or(0)
    }

    /// The total of each tenant `changes` touches, once they are applied:
    /// what the write stores beside its runs.
    pub fn after(&self, changes: &Changes) -> Vec<(String, u64)> {
        changes
            .by_tenant
            .iter()
            .map(|(tenant, change)| (tenant.clone(), after(self.get(tenant), *change)))
            .collect()
    }

    /// The write with `changes` was applied.
    pub fn apply(&mut self, changes: &Changes) {
        for (tenant, change) in &changes.by_tenant {
            let total = after(self.get(tenant), *change);
            self.0.insert(tenant.clone(), total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunStatus, Trigger};

    fn queued(input: &[u8]) -> Run {
        let mut run = Run::sample("01kbgz8m7yq3d5v2c8n6r4t1wz", "job", chrono::Utc::now());
        run.trigger = Trigger::Manual;
        run.input = input.to_vec();
        run
    }

    #[test]
    fn a_queued_run_is_charged_its_record_with_its_input() {
        let small = queued(b"{}");
        let large = queued(&[b'x'; 1000]);
        assert_eq!(charge(&small), run_codec::encode(&small).len() as u64);
        assert_eq!(
            charge(&large) - charge(&small),
            998 + 1,
            "the input and a longer length prefix"
        );
        assert_eq!(queued_charge(&large), charge(&large));
    }

    #[test]
    fn an_outcome_adds_what_the_finished_charge_has_beyond_the_queued_one() {
        let run = queued(b"{\"a\": 1}");
        let before = charge(&run);
        let mut running = run.clone();
        running.status = RunStatus::Running;
        running.started_at = Some(chrono::Utc::now());
        running.lateness_ms = Some(3);
        assert_eq!(charge(&running), before, "a running mark changes nothing");
        let mut finished = running.clone();
        finished.fuel_consumed = Some(12345);
        finished.output_size = 700;
        finished.log_size = 2048;
        finished.finish(RunStatus::Succeeded, None, chrono::Utc::now());
        assert_eq!(
            queued_charge(&finished),
            before,
            "the queued charge is found again from the outcome"
        );
        let record = run_codec::encode(&finished);
        assert_eq!(charge(&finished), record.len() as u64 + 700 + 2048);
        // What retention takes away is what the writes added.
        let decoded = run_codec::decode(&record, &finished.tenant, &finished.id).unwrap();
        assert_eq!(
            charge(&decoded),
            before + (charge(&finished) - queued_charge(&finished))
        );
    }

    #[test]
    fn totals_change_only_where_a_write_touches_and_never_go_below_zero() {
        let totals = Totals::new(HashMap::from([("a".to_string(), 100), ("b".to_string(), 50)]));
        let mut held = totals.hold();
        let mut changes = Changes::default();
        changes.add("a", 30);
        changes.remove("a", 10);
        changes.remove("b", 80);
        changes.add("c", 7);
        let mut after = held.after(&changes);
        after.sort();
        assert_eq!(
            after,
            [("a".to_string(), 120), ("b".to_string(), 0), ("c".to_string(), 7)]
        );
        // Nothing moves until the write is applied.
        assert_eq!(held.get("a"), 100);
        held.apply(&changes);
        assert_eq!(
            (held.get("a"), held.get("b"), held.get("c"), held.get("d")),
            (120, 0, 7, 0)
        );
    }
}
