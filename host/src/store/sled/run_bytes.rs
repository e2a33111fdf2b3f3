//! What a tenant's run history weighs, for its `run_bytes` quota. A run is
//! charged its record as queued (the input is in it) while it waits or
//! runs, and once finished its whole record, its output, its log and the
//! tape of a recorded run. The
//! charge is a function of the record alone, so a write knows what it
//! changes from what it writes: queueing adds the queued charge, a
//! `running` mark changes nothing, an outcome moves the run from its queued
//! charge to its finished one, a deletion takes away the charge of the
//! record it deletes.
//!
//! Each tenant's total has two parts. The bytes of its finished runs are
//! stored beside the runs, written in the same atomic write as the outcomes
//! and deletions that change them, so a crash cannot part the two (one key
//! per tenant per batch of outcomes). The bytes of its unfinished runs are
//! kept in memory only and counted again at open from the runs the store
//! would recover, so queueing a run (and recording a fire) writes nothing
//! more. Both are held behind one lock across every write that changes
//! them: a sled batch cannot read a value and write it back atomically, so
//! the lock is what keeps two writes from losing each other's change.

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
        let tape = run.tape.map_or(0, |tape| tape.bytes);
        record.len() as u64 + run.output_size + run.log_size + tape
    } else {
        queued_charge_encoded(run, record)
    }
}

/// What `run` was charged before it finished: its record as queued.
pub fn queued_charge(run: &Run) -> u64 {
    queued_charge_encoded(run, &run_codec::encode(run))
}

/// [`queued_charge`] with the run's record already encoded.
pub fn queued_charge_encoded(run: &Run, record: &[u8]) -> u64 {
    let outcome = if run.has_outcome() {
        run_codec::outcome_len(run)
    } else {
        0
    };
    record.len().saturating_sub(outcome) as u64
}

/// Bytes added and taken away.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Change {
    added: u64,
    removed: u64,
}

impl Change {
    fn after(self, total: u64) -> u64 {
        total.saturating_add(self.added).saturating_sub(self.removed)
    }

    fn is_none(self) -> bool {
        self == Change::default()
    }
}

/// What one write changes in tenants' totals: per tenant, its finished and
/// its unfinished runs' (a write touches one tenant or a few).
#[derive(Debug, Default, Clone)]
pub struct Changes {
    by_tenant: Vec<(String, Change, Change)>,
}

impl Changes {
    fn entry(&mut self, tenant: &str, finished: bool) -> &mut Change {
        let index = match self.by_tenant.iter().position(|(name, _, _)| name == tenant) {
            Some(index) => index,
            None => {
                self.by_tenant
                    .push((tenant.to_string(), Change::default(), Change::default()));
                self.by_tenant.len() - 1
            }
        };
        let (_, done, waiting) = &mut self.by_tenant[index];
        if finished { done } else { waiting }
    }

    /// A record of `tenant` charged `bytes` is written: a finished run's
    /// or an unfinished one's.
    pub fn stored(&mut self, tenant: &str, finished: bool, bytes: u64) {
        self.entry(tenant, finished).added += bytes;
    }

    /// A record of `tenant` charged `bytes` is replaced or deleted.
    pub fn dropped(&mut self, tenant: &str, finished: bool, bytes: u64) {
        self.entry(tenant, finished).removed += bytes;
    }
}

/// Every tenant's totals, in memory.
#[derive(Debug, Default)]
pub struct Totals(Mutex<Parts>);

/// The two parts of the totals.
#[derive(Debug, Default)]
struct Parts {
    finished: HashMap<String, u64>,
    unfinished: HashMap<String, u64>,
}

/// The totals, held across a write that changes them.
pub struct Held<'a>(MutexGuard<'a, Parts>);

impl Totals {
    /// The finished runs' bytes as stored, and the unfinished runs' as
    /// counted at open.
    pub fn new(finished: HashMap<String, u64>, unfinished: HashMap<String, u64>) -> Totals {
        Totals(Mutex::new(Parts { finished, unfinished }))
    }

    /// Holds the totals: take it before the write's gate and keep it until
    /// the write is applied (or failed).
    pub fn hold(&self) -> Held<'_> {
        Held(self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

fn get(totals: &HashMap<String, u64>, tenant: &str) -> u64 {
    totals.get(tenant).copied().unwrap_or(0)
}

impl Held<'_> {
    /// A tenant's total: its finished and its unfinished runs.
    pub fn get(&self, tenant: &str) -> u64 {
        let (finished, unfinished) = self.parts(tenant);
        finished.saturating_add(unfinished)
    }

    /// A tenant's finished and unfinished runs' bytes apart: only the
    /// first can be trimmed.
    pub fn parts(&self, tenant: &str) -> (u64, u64) {
        (get(&self.0.finished, tenant), get(&self.0.unfinished, tenant))
    }

    /// The finished runs' bytes of each tenant whose finished runs
    /// `changes` touches, once they are applied: what the write stores.
    pub fn stored_after<'c>(&self, changes: &'c Changes) -> impl Iterator<Item = (&'c str, u64)> {
        let finished = &self.0.finished;
        changes
            .by_tenant
            .iter()
            .filter(|(_, done, _)| !done.is_none())
            .map(move |(tenant, done, _)| (tenant.as_str(), done.after(get(finished, tenant))))
    }

    /// The write with `changes` was applied.
    pub fn apply(&mut self, changes: &Changes) {
        let parts = &mut *self.0;
        for (tenant, done, waiting) in &changes.by_tenant {
            for (totals, change) in [(&mut parts.finished, done), (&mut parts.unfinished, waiting)] {
                if change.is_none() {
                    continue;
                }
                match totals.get_mut(tenant.as_str()) {
                    Some(total) => *total = change.after(*total),
                    None => {
                        totals.insert(tenant.clone(), change.after(0));
                    }
                }
            }
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
        // What a deletion takes away is what the outcome wrote.
        let decoded = run_codec::decode(&record, &finished.tenant, &finished.id).unwrap();
        assert_eq!(charge(&decoded), charge(&finished));
    }

    #[test]
    fn only_finished_bytes_are_stored_and_totals_never_go_below_zero() {
        let totals = Totals::new(
            HashMap::from([("a".to_string(), 100), ("b".to_string(), 50)]),
            HashMap::from([("a".to_string(), 10)]),
        );
        let mut held = totals.hold();
        assert_eq!((held.get("a"), held.parts("a")), (110, (100, 10)));
        let mut changes = Changes::default();
        // a: a run finishes (10 queued become 30 finished); b loses more
        // than it has; c queues a run.
        changes.dropped("a", false, 10);
        changes.stored("a", true, 30);
        changes.dropped("b", true, 80);
        changes.stored("c", false, 7);
        let mut stored: Vec<(&str, u64)> = held.stored_after(&changes).collect();
        stored.sort();
        assert_eq!(stored, [("a", 130), ("b", 0)], "c has nothing finished to store");
        // Nothing moves until the write is applied.
        assert_eq!(held.get("a"), 110);
        held.apply(&changes);
        assert_eq!(
            (held.get("a"), held.get("b"), held.get("c"), held.get("d")),
            (130, 0, 7, 0)
        );
    }
}
