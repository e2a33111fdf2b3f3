//! Making room for a run asked for within its tenant's `run_bytes` quota,
//! the same on every backend: what the run needs, whether the tenant's
//! unfinished runs (never deleted) leave it any, and deleting the oldest
//! finished runs, a bounded write at a time, until it fits.

use super::error::{StoreError, StoreResult};
use super::records::no_run_room;
use super::traits::RunStore;
use crate::model::Run;

/// Runs deleted per write while making room for a new run.
const MAKE_ROOM_BATCH: usize = 2_000;

/// The run bytes the tenant's history may hold before `run` is queued
/// (`need` of its own), given `unfinished` bytes of queued and running runs;
/// refused when no deletion could make it fit.
pub fn room_for(need: u64, unfinished: u64, max_bytes: u64) -> StoreResult<u64> {
    let Some(room) = max_bytes.checked_sub(need) else {
        return Err(StoreError::QuotaExceeded(format!(
            "run_bytes: this run's record and input take {need} bytes, more than the tenant's quota of {max_bytes}"
        )));
    };
    // Queued and running runs are never deleted: when they leave no room,
    // refuse without looking through the finished ones.
    if unfinished > room {
        return Err(no_run_room(need, unfinished, max_bytes));
    }
    Ok(room)
}

/// Deletes the tenant of `run`'s oldest finished runs until its run bytes
/// are at most `room` (or nothing more can go).
pub fn make_room<S: RunStore + ?Sized>(store: &S, run: &Run, room: u64) -> StoreResult<()> {
    while store.run_bytes(&run.tenant)? > room {
        if store.trim_runs(&run.tenant, room, MAKE_ROOM_BATCH)? == 0 {
            break;
        }
    }
    Ok(())
}
