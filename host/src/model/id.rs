//! Identifiers: new ones ordered by time, the derived id of a scheduled
//! fire's run, and the default tenant's name.

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
    use sha2::{Digest, Sha256};
    let millis = u64::try_from(scheduled_at.timestamp_millis()).unwrap_or(0);
    // The bytes of `{tenant}\0{job_id}\0{millis}`, hashed without formatting.
    let mut hasher = Sha256::new();
    let mut decimal = itoa::Buffer::new();
    for part in [
        tenant.as_bytes(),
        b"\0",
        job_id.as_bytes(),
        b"\0",
        decimal.format(millis).as_bytes(),
    ] {
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
