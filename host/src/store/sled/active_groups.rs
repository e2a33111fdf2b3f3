//! One active marker per fire pass instead of one per run. A queued run
//! must be found again after a crash, so each has a key in the active
//! space, written with the run and removed with its outcome: two of the
//! seven sled key writes of a scheduled run (a new key costs 12-20 µs
//! here, a removal 5-10). The runs one pass of the scheduler records share
//! one group key instead, whose value lists their record keys; this keeps
//! the count of each group's unfinished runs and says when the last one's
//! outcome may remove the group key, in the same batch.
//!
//! The group key may outlive its runs (a withdrawal removes it in a write
//! of its own, a crash between leaves it), never the other way round: at
//! start-up a group is read back, its unfinished runs counted again and a
//! group with none left removed.
//!
//! The runs queued on their own (with their own markers) are held here too
//! while unfinished, so a run's outcome knows, without a read, whether it
//! replaces an unfinished record (what its tenant's run bytes count, see
//! `run_bytes`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A group's key in the runs tree.
pub type GroupKey = Arc<[u8]>;

/// The unfinished runs of each group.
#[derive(Default)]
pub struct ActiveGroups {
    /// The group of each unfinished grouped run, by its record key.
    group_of: HashMap<Vec<u8>, GroupKey>,
    /// Unfinished runs per group.
    remaining: HashMap<GroupKey, usize>,
    /// Unfinished runs with their own marker, by record key.
    alone: HashSet<Vec<u8>>,
}

/// What settling some runs would do, computed before the write and
/// applied after it succeeded (see [`ActiveGroups::plan`]).
#[derive(Default)]
pub struct Settling {
    /// The grouped runs settled, by record key.
    runs: Vec<Vec<u8>>,
    /// The runs with their own marker settled, by record key.
    alone: Vec<Vec<u8>>,
    /// Groups left with no unfinished run: their keys go in the same write.
    pub emptied: Vec<GroupKey>,
}

impl ActiveGroups {
    /// Counts `runs` (record keys) as the unfinished runs of `group`; a
    /// run already counted is left where it is.
    pub fn add(&mut self, group: &GroupKey, runs: impl IntoIterator<Item = Vec<u8>>) {
        let mut added = 0;
        for run in runs {
            if let std::collections::hash_map::Entry::Vacant(entry) = self.group_of.entry(run) {
                entry.insert(group.clone());
                added += 1;
            }
        }
        if added > 0 {
            *self.remaining.entry(group.clone()).or_default() += added;
        }
    }

    /// True if the run (record key) belongs to a group.
    pub fn is_grouped(&self, run: &[u8]) -> bool {
        self.group_of.contains_key(run)
    }

    /// Counts a run (record key) with its own marker as unfinished.
    pub fn add_alone(&mut self, run: Vec<u8>) {
        self.alone.insert(run);
    }

    /// True if the run (record key) is counted as unfinished with its own
    /// marker.
    pub fn is_alone(&self, run: &[u8]) -> bool {
        self.alone.contains(run)
    }

    /// What settling `runs` (record keys; repeats and runs not counted
    /// are ignored) would do, without doing it.
    pub fn plan<'a>(&self, runs: impl IntoIterator<Item = &'a [u8]>) -> Settling {
        let mut settling = Settling::default();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut taken: HashMap<&GroupKey, usize> = HashMap::new();
        for run in runs {
            let Some(group) = self.group_of.get(run) else {
                if self.alone.contains(run) && seen.insert(run) {
                    settling.alone.push(run.to_vec());
                }
                continue;
            };
            if !seen.insert(run) {
                continue;
            }
            settling.runs.push(run.to_vec());
            *taken.entry(group).or_default() += 1;
        }
        for (group, count) in taken {
            if self.remaining.get(group).copied().unwrap_or(0) <= count {
                settling.emptied.push(group.clone());
            }
        }
        settling
    }

    /// The write `settling` was planned for succeeded.
    pub fn apply(&mut self, settling: Settling) {
        for run in &settling.alone {
            self.alone.remove(run);
        }
        for run in settling.runs {
            let Some(group) = self.group_of.remove(&run) else {
                continue;
            };
            if let Some(left) = self.remaining.get_mut(&group) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.remaining.remove(&group);
                }
            }
        }
    }
}

/// A group key's value: the record keys of its runs, each after its length
/// (u16 big-endian).
pub fn encode_members<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut value = Vec::new();
    for record in records {
        let length = u16::try_from(record.len()).unwrap_or(u16::MAX);
        value.extend_from_slice(&length.to_be_bytes());
        value.extend_from_slice(&record[..usize::from(length)]);
    }
    value
}

/// The record keys a group key's value lists (a torn tail is ignored).
pub fn decode_members(mut value: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while let Some((length, rest)) = value.split_first_chunk::<2>() {
        let length = usize::from(u16::from_be_bytes(*length));
        let Some(record) = rest.get(..length) else { break };
        records.push(record.to_vec());
        value = &rest[length..];
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> GroupKey {
        Arc::from(name.as_bytes())
    }

    #[test]
    fn a_group_empties_with_its_last_run_and_not_before() {
        let mut groups = ActiveGroups::default();
        let (first, second) = (group("g1"), group("g2"));
        groups.add(&first, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        groups.add(&second, [b"d".to_vec()]);
        // Counted once, in its first group.
        groups.add(&second, [b"a".to_vec()]);
        let settling = groups.plan([&b"a"[..], b"a", b"d", b"x"]);
        assert_eq!(settling.emptied, vec![second.clone()]);
        groups.apply(settling);
        assert!(!groups.is_grouped(b"a") && groups.is_grouped(b"b"));
        let settling = groups.plan([&b"b"[..]]);
        assert!(settling.emptied.is_empty(), "c is still unfinished");
        groups.apply(settling);
        // A plan that is not applied (its write failed) changes nothing.
        assert_eq!(groups.plan([&b"c"[..]]).emptied, vec![first.clone()]);
        assert_eq!(groups.plan([&b"c"[..]]).emptied, vec![first]);
    }

    #[test]
    fn runs_alone_are_unfinished_until_settled_and_touch_no_group() {
        let mut groups = ActiveGroups::default();
        groups.add(&group("g"), [b"a".to_vec()]);
        groups.add_alone(b"m".to_vec());
        assert!(groups.is_grouped(b"a") && !groups.is_alone(b"a"));
        assert!(groups.is_alone(b"m") && !groups.is_grouped(b"m") && !groups.is_alone(b"x"));
        let settling = groups.plan([&b"m"[..], b"m"]);
        assert!(settling.emptied.is_empty());
        assert!(groups.is_alone(b"m"), "not before the write is applied");
        groups.apply(settling);
        assert!(!groups.is_alone(b"m") && groups.is_grouped(b"a"));
    }

    #[test]
    fn members_read_back_and_a_torn_tail_is_ignored() {
        let records: [&[u8]; 3] = [b"Rt\0run-1", b"", b"Rtenant\0run-22"];
        let value = encode_members(records);
        assert_eq!(decode_members(&value), records.map(<[u8]>::to_vec));
        assert_eq!(decode_members(&value[..value.len() - 3]).len(), 2);
    }
}
