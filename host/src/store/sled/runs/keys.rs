//! The keys of the `runs` tree (one namespace byte, then the NUL-joined
//! parts) and reading a run record from under its key: what the run writes,
//! their byte counts (`usage`) and the job subject's deletions share.

use crate::model::Run;
use crate::store::error::StoreResult;
use crate::store::sled::database::SledStore;
use crate::store::sled::encoding::{corrupt, key, prefix};
use crate::store::sled::run_codec;

/// Namespaces of the `runs` tree.
pub mod run_space {
    /// `R tenant \0 run_id` -> the run record.
    pub const RECORD: u8 = b'R';
    /// `J tenant \0 job_id \0 run_id` -> (), runs of a job.
    pub const BY_JOB: u8 = b'J';
    /// `A tenant \0 run_id` -> (), queued or running runs.
    pub const ACTIVE: u8 = b'A';
    /// `G group id` -> the record keys of the runs one fire pass queued,
    /// while any of them is unfinished (see `active_groups`).
    pub const GROUP: u8 = b'G';
    /// `O tenant \0 run_id` -> the output bytes.
    pub const OUTPUT: u8 = b'O';
    /// `L tenant \0 run_id` -> the captured log.
    pub const LOG: u8 = b'L';
    /// `T tenant \0 run_id` -> a recorded run's tape.
    pub const TAPE: u8 = b'T';
    /// What a finished run has under its `tenant \0 run_id`, all deleted
    /// with it.
    pub const OF_A_RUN: [u8; 4] = [RECORD, OUTPUT, LOG, TAPE];
    /// `W tenant \0 workflow_run_id` -> a workflow run's record (JSON),
    /// here so it is written in the same batch as its steps' runs.
    pub const WORKFLOW_RUN: u8 = b'W';
    /// `D tenant \0 job_id` -> the join of a job with `after_jobs` (JSON),
    /// written with the outcomes that move it.
    pub const JOIN: u8 = b'D';
    /// `H tenant` -> the bytes of the tenant's finished runs, its run
    /// history (u64 big-endian); `H` alone marks that every tenant's are
    /// counted. Between the group markers and the job index, away from the
    /// end of the records where new ones land: on that page its update
    /// with each batch of outcomes cost five times as much.
    pub const USAGE: u8 = b'H';
}

/// The key of `parts` in the `space` namespace of the `runs` tree.
pub fn run_key(space: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut spaced = vec![space];
    spaced.extend_from_slice(&key(parts));
    spaced
}

/// The key of a run's record.
pub fn record_key(run: &Run) -> Vec<u8> {
    run_key(run_space::RECORD, &[run.tenant.as_bytes(), run.id.as_bytes()])
}

/// The key of a run in its job's index.
pub fn by_job_key(run: &Run) -> Vec<u8> {
    run_key(
        run_space::BY_JOB,
        &[run.tenant.as_bytes(), run.job_id.as_bytes(), run.id.as_bytes()],
    )
}

/// The key of a run's own active marker (one queued outside a fire pass).
pub(super) fn active_key(run: &Run) -> Vec<u8> {
    run_key(run_space::ACTIVE, &[run.tenant.as_bytes(), run.id.as_bytes()])
}

/// The prefix of every key under `parts` in the `space` namespace.
pub fn run_prefix(space: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut spaced = vec![space];
    spaced.extend_from_slice(&prefix(parts));
    spaced
}

/// A run record under its key `R tenant \0 id` (see `run_codec`: the
/// record leaves the tenant and id to its key).
pub(super) fn decode_run(key: &[u8], bytes: &[u8]) -> StoreResult<Run> {
    let (tenant, id) = key
        .get(1..)
        .and_then(|rest| {
            let split = rest.iter().position(|byte| *byte == 0)?;
            Some((
                std::str::from_utf8(&rest[..split]).ok()?,
                std::str::from_utf8(&rest[split + 1..]).ok()?,
            ))
        })
        .ok_or_else(|| corrupt(key, "the key is not `R tenant NUL id`".to_string()))?;
    run_codec::decode(bytes, tenant, id).map_err(|message| corrupt(key, message))
}

impl SledStore {
    /// The run record under `record_key`.
    pub(super) fn run_at(&self, record_key: &[u8]) -> StoreResult<Option<Run>> {
        self.runs
            .get(record_key)?
            .map(|value| decode_run(record_key, &value))
            .transpose()
    }
}
