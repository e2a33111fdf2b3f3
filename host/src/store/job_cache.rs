//! Decoded jobs kept in memory, so the reads every run makes of its job
//! (the scheduler planning a fire, the executor after a run, webhooks)
//! skip sled and the JSON decoder. Bounded: past its capacity it starts
//! over. Every write of a job puts the new value (or forgets the key) after
//! it committed; a read that missed fills the cache only if no write came
//! between its look in sled and its fill (a generation count), so a stale
//! job never replaces a newer one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::model::Job;

/// Jobs held at most. The reads it saves come close together (a fire and
/// its run's end, within `fire_ahead` and the run), so a small cache serves
/// them, and a run's end reads only a job's hooks when it misses. A decoded
/// job takes a few KiB: with 10,000 cron jobs the daemon held 53-72 MiB
/// with 4,096 cached and 45-49 MiB with 1,024 (glibc's malloc); under
/// mimalloc 62-68 MiB with 1,024 and 61-63 with 256. Thousands of jobs
/// firing in turn miss a cache of either size.
const CAPACITY: usize = 256;

/// The cache.
#[derive(Default)]
pub struct JobCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<Vec<u8>, Job>,
    /// Bumped by every write.
    generation: u64,
}

impl Inner {
    fn insert(&mut self, key: Vec<u8>, job: &Job) {
        if self.jobs.len() >= CAPACITY && !self.jobs.contains_key(&key) {
            self.jobs.clear();
        }
        self.jobs.insert(key, job.clone());
    }
}

impl JobCache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The generation to hand back to [`JobCache::fill`] after reading sled.
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// The cached job under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Job> {
        self.read(key, Job::clone)
    }

    /// What `read` takes from the cached job under `key`, without a copy
    /// of the whole job.
    pub fn read<T>(&self, key: &[u8], read: impl FnOnce(&Job) -> T) -> Option<T> {
        self.inner().jobs.get(key).map(read)
    }

    /// Remembers a job read from sled, unless a write came since `seen`.
    pub fn fill(&self, key: Vec<u8>, job: &Job, seen: u64) {
        let mut inner = self.inner();
        if inner.generation == seen {
            inner.insert(key, job);
        }
    }

    /// A write committed this job.
    pub fn put(&self, key: Vec<u8>, job: &Job) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.insert(key, job);
    }

    /// A write deleted the job, or may have changed it.
    pub fn forget(&self, key: &[u8]) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.jobs.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        let defaults = crate::config::Config::default().job_defaults();
        let spec = serde_json::json!({"name": name, "plugin": "p"});
        crate::model::validate::validate(
            crate::model::validate::parse_spec(&spec).unwrap(),
            "t",
            None,
            &defaults,
            chrono::Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn a_fill_after_a_write_is_dropped_so_a_stale_job_never_wins() {
        let cache = JobCache::default();
        let seen = cache.generation();
        // A write lands between the reader's look in sled and its fill.
        cache.put(b"k".to_vec(), &job("new"));
        cache.fill(b"k".to_vec(), &job("old"), seen);
        assert_eq!(cache.get(b"k").unwrap().name, "new");
        cache.forget(b"k");
        assert!(cache.get(b"k").is_none());
        let seen = cache.generation();
        cache.fill(b"k".to_vec(), &job("read"), seen);
        assert_eq!(cache.get(b"k").unwrap().name, "read");
    }

    #[test]
    fn past_its_capacity_the_cache_starts_over() {
        let cache = JobCache::default();
        let one = job("one");
        for index in 0..=CAPACITY {
            cache.put(index.to_be_bytes().to_vec(), &one);
        }
        assert_eq!(cache.inner().jobs.len(), 1);
    }
}
