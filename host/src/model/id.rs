//! Identifiers: new ones ordered by time, the derived ids of a scheduled
//! fire's run and of a workflow step's runs, and the default tenant's name.

/// The tenant every object belongs to until full tenancy arrives; keys and
/// queries carry the tenant from day one.
pub const DEFAULT_TENANT: &str = "default";

/// A new time-ordered identifier (ULID): sorting ids sorts by creation time.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// The id of the run a schedule fire of `job_id` at `scheduled_at` creates.
/// The same fire always gets the same id, so it can be recorded only once;
/// its time part is the fire's instant, so runs still sort by time.
pub fn scheduled_run_id(tenant: &str, job_id: &str, scheduled_at: chrono::DateTime<chrono::Utc>) -> String {
    let millis = u64::try_from(scheduled_at.timestamp_millis()).unwrap_or(0);
    let mut decimal = itoa::Buffer::new();
    // The bytes of `{tenant}\0{job_id}\0{millis}`, hashed without formatting.
    derived_id(
        millis,
        &[tenant.as_bytes(), job_id.as_bytes(), decimal.format(millis).as_bytes()],
    )
}

/// The id of a step's run in a workflow run: the same (workflow run, step,
/// round) always gets the same id; its time part is the workflow run's
/// start, so a workflow run's step runs sort together.
pub fn step_run_id(
    tenant: &str,
    workflow_run: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    step: &str,
    round: u32,
) -> String {
    let millis = u64::try_from(started_at.timestamp_millis()).unwrap_or(0);
    let mut decimal = itoa::Buffer::new();
    derived_id(
        millis,
        &[
            b"step",
            tenant.as_bytes(),
            workflow_run.as_bytes(),
            step.as_bytes(),
            decimal.format(round).as_bytes(),
        ],
    )
}

/// The id of the run of job `job_id` that the run `upstream` (of a job it
/// waits for) fired: the same end always fires the same run.
pub fn dependency_run_id(tenant: &str, job_id: &str, upstream: &str) -> String {
    let millis = ulid::Ulid::from_string(&upstream.to_ascii_uppercase()).map_or(0, |id| id.timestamp_ms());
    derived_id(
        millis,
        &[b"after", tenant.as_bytes(), job_id.as_bytes(), upstream.as_bytes()],
    )
}

/// The id of the attempt after the run `previous`: derived from it, with
/// its time part, so a retry recorded twice is the same run.
pub fn next_attempt_id(previous: &str) -> String {
    let millis = ulid::Ulid::from_string(&previous.to_ascii_uppercase()).map_or(0, |id| id.timestamp_ms());
    derived_id(millis, &[b"next", previous.as_bytes()])
}

/// A ULID of time part `millis` whose random part is the sha256 of the
/// parts joined by NUL bytes.
fn derived_id(millis: u64, parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (at, part) in parts.iter().enumerate() {
        if at > 0 {
            hasher.update(b"\0");
        }
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let ulid = ulid::Ulid::from_parts(millis, u128::from_be_bytes(random));
    ulid.to_string().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fires_run_id_is_the_ulid_of_its_instant_and_hash() {
        // sha256("t\0job-1\01795003200000"), its first ten bytes after the
        // instant's 48 bits: ids of fires recorded by older versions match.
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-18T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(scheduled_run_id("t", "job-1", at), "01m7q8ecg0ysw6yyd26mc89kn6");
        assert_ne!(scheduled_run_id("t", "job-2", at), scheduled_run_id("t", "job-1", at));
    }
}
