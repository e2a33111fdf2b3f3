//! Decoded jobs kept in memory, so the reads every run makes of its job
//! (the scheduler planning a fire, the executor after a run, webhooks)
//! skip sled and the JSON decoder; and, for many more jobs, only their
//! [`JobHooks`] (what every run's end reads). Bounded: past its capacity
//! each map starts over. Every write of a job puts the new value (or
//! forgets the key) after it committed; a read that missed fills the cache
//! only if no write came between its look in sled and its fill (a
//! generation count), so a stale job never replaces a newer one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::model::Job;
use crate::store::records::JobHooks;

/// Jobs held at most. The reads it saves come close together (a fire and
/// its run's end, within `fire_ahead` and the run), so a small cache serves
/// them, and a run's end reads only a job's hooks when it misses. A decoded
/// job takes a few KiB: with 10,000 cron jobs the daemon held 53-72 MiB
/// with 4,096 cached and 45-49 MiB with 1,024 (glibc's malloc); under
/// mimalloc 62-68 MiB with 1,024 and 61-63 with 256. Thousands of jobs
/// firing in turn miss a cache of either size.
const CAPACITY: usize = 256;

/// Jobs whose hooks are held at most. An entry takes ~100 bytes (the key
/// and a webhook-less [`JobHooks`]), so 10,000 jobs firing in turn keep
/// ~1 MiB; each entry saves a run's end (the executor's `after` check and
/// the webhook notifier, for each of the run's events) a sled read and a
/// partial JSON decode (5 % of the daemon's samples with 10,000 jobs
/// firing every second, docs/benchmarks.md).
const HOOKS_CAPACITY: usize = 65_536;

/// The cache.
#[derive(Default)]
pub struct JobCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<Vec<u8>, Job>,
    hooks: HashMap<Vec<u8>, JobHooks>,
    /// Bumped by every write.
    generation: u64,
}

/// Inserts into a map that starts over when it would pass `capacity`.
fn insert_bounded<T>(map: &mut HashMap<Vec<u8>, T>, capacity: usize, key: Vec<u8>, value: T) {
    if map.len() >= capacity && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl Inner {
    fn insert(&mut self, key: Vec<u8>, job: &Job) {
        insert_bounded(&mut self.hooks, HOOKS_CAPACITY, key.clone(), JobHooks::of(job));
        insert_bounded(&mut self.jobs, CAPACITY, key, job.clone());
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
        self.inner().jobs.get(key).cloned()
    }

    /// The hooks of the job under `key`, from its hooks or its whole record.
    pub fn hooks(&self, key: &[u8]) -> Option<JobHooks> {
        let inner = self.inner();
        inner
            .hooks
            .get(key)
            .cloned()
            .or_else(|| inner.jobs.get(key).map(JobHooks::of))
    }

    /// Remembers a job's hooks read from sled, unless a write came since
    /// `seen`.
    pub fn fill_hooks(&self, key: Vec<u8>, hooks: &JobHooks, seen: u64) {
        let mut inner = self.inner();
        if inner.generation == seen {
            insert_bounded(&mut inner.hooks, HOOKS_CAPACITY, key, hooks.clone());
        }
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

    /// Any job may have changed (another process wrote it).
    pub fn forget_all(&self) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.jobs.clear();
        inner.hooks.clear();
    }

    /// A write deleted the job, or may have changed it.
    pub fn forget(&self, key: &[u8]) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.jobs.remove(key);
        inner.hooks.remove(key);
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
        // The hooks of every job put are still held.
        assert_eq!(cache.inner().hooks.len(), CAPACITY + 1);
        for index in 0..=CAPACITY {
            assert!(cache.hooks(&index.to_be_bytes()).is_some());
        }
    }

    #[test]
    fn hooks_follow_writes_and_a_stale_fill_of_them_is_dropped() {
        let cache = JobCache::default();
        let mut hooked = job("hooked");
        hooked.webhooks = vec![crate::model::job::Webhook {
            url: "https://example.com/hook".into(),
            on: Vec::new(),
        }];
        cache.put(b"k".to_vec(), &hooked);
        assert_eq!(cache.hooks(b"k"), Some(JobHooks::of(&hooked)));
        // A write forgets them; a fill from a read made before it is dropped.
        let seen = cache.generation();
        cache.forget(b"k");
        cache.fill_hooks(b"k".to_vec(), &JobHooks::of(&hooked), seen);
        assert_eq!(cache.hooks(b"k"), None);
        let plain = JobHooks::of(&job("plain"));
        let seen = cache.generation();
        cache.fill_hooks(b"k".to_vec(), &plain, seen);
        assert_eq!(cache.hooks(b"k"), Some(plain));
    }
}
