//! Jobs' hooks (what every run's end reads of its job: whether it is an
//! `after` job, its webhooks) kept in memory, as the sled store does: a
//! run's events would otherwise each cost a round trip to the database.
//! Another node's write of a job reaches this node as a notice; the cache
//! is trusted only while those notices are heard, and emptied by each of
//! them, so it is stale at most for the time a notice takes.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::records::JobHooks;
use crate::store::sled::job_cache::JobCache;

/// The cache.
#[derive(Default)]
pub struct HooksCache {
    cache: JobCache,
    /// Whether the other nodes' notices are heard.
    heard: AtomicBool,
}

/// The cache's key of a job.
pub fn key(tenant: &str, id: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0", id.as_bytes()].concat()
}

impl HooksCache {
    /// The hooks of the job under `key`, if held and trusted.
    pub fn get(&self, key: &[u8]) -> Option<JobHooks> {
        if self.heard.load(Ordering::SeqCst) {
            self.cache.hooks(key)
        } else {
            None
        }
    }

    /// The generation to hand back to [`HooksCache::fill`] after reading.
    pub fn generation(&self) -> u64 {
        self.cache.generation()
    }

    /// Remembers hooks read from the database, unless a write or a notice
    /// came since `seen`.
    pub fn fill(&self, key: Vec<u8>, hooks: &JobHooks, seen: u64) {
        if self.heard.load(Ordering::SeqCst) {
            self.cache.fill_hooks(key, hooks, seen);
        }
    }

    /// This node wrote the job.
    pub fn forget(&self, key: &[u8]) {
        self.cache.forget(key);
    }

    /// Another node wrote a job, or notices start or stop being heard.
    pub fn forget_all(&self, heard: bool) {
        self.heard.store(heard, Ordering::SeqCst);
        self.cache.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(after: bool) -> JobHooks {
        JobHooks {
            after,
            webhooks: Vec::new(),
            failures: 0,
        }
    }

    #[test]
    fn hooks_are_kept_only_while_notices_are_heard_and_a_notice_forgets_them() {
        let cache = HooksCache::default();
        let seen = cache.generation();
        cache.fill(key("t", "a"), &hooks(true), seen);
        assert_eq!(cache.get(&key("t", "a")), None, "not heard yet");
        cache.forget_all(true);
        let seen = cache.generation();
        cache.fill(key("t", "a"), &hooks(true), seen);
        assert_eq!(cache.get(&key("t", "a")), Some(hooks(true)));
        cache.forget_all(true);
        assert_eq!(cache.get(&key("t", "a")), None, "another node wrote a job");
        let seen = cache.generation();
        cache.forget(&key("t", "b"));
        cache.fill(key("t", "a"), &hooks(false), seen);
        assert_eq!(
            cache.get(&key("t", "a")),
            None,
            "a write came between the read and the fill"
        );
        let seen = cache.generation();
        cache.fill(key("t", "a"), &hooks(false), seen);
        cache.forget_all(false);
        let seen = cache.generation();
        cache.fill(key("t", "a"), &hooks(false), seen);
        assert_eq!(cache.get(&key("t", "a")), None, "no longer heard");
    }
}
