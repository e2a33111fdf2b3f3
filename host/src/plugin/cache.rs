//! A least-recently-used map bounded by bytes: the compiled plugins kept in
//! memory. Each entry states its own size; inserting past the budget drops
//! the entries used longest ago, and an entry larger than the whole budget
//! is not kept at all.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// An entry with its size and when it was last used.
struct Entry<V> {
    value: V,
    bytes: u64,
    used: u64,
}

/// The map. Not synchronized: the owner holds it under a lock.
pub struct ByteLru<K, V> {
    capacity: u64,
    held: u64,
    entries: HashMap<K, Entry<V>>,
    /// Keys by their last use, oldest first.
    order: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    /// An empty map holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> ByteLru<K, V> {
        ByteLru {
            capacity,
            held: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Bytes of the entries held.
    pub fn held(&self) -> u64 {
        self.held
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value under `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let used = self.tick();
        let entry = self.entries.get_mut(key)?;
        let key = self
            .order
            .remove(&entry.used)
            .expect("every entry has its place in the order");
        entry.used = used;
        self.order.insert(used, key);
        Some(entry.value.clone())
    }

    /// Keeps `value` under `key` as `bytes` bytes, dropping the least
    /// recently used entries until everything fits; returns how many were
    /// dropped. A value larger than the capacity is not kept.
    pub fn insert(&mut self, key: K, value: V, bytes: u64) -> usize {
        self.remove(&key);
        if bytes > self.capacity {
            return 0;
        }
        let mut dropped = 0;
        while self.held + bytes > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.held -= entry.bytes;
                dropped += 1;
            }
        }
        let used = self.tick();
        self.order.insert(used, key.clone());
        self.entries.insert(key, Entry { value, bytes, used });
        self.held += bytes;
        dropped
    }

    /// Drops the entry under `key`, if any.
    pub fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.used);
            self.held -= entry.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_past_the_byte_budget_go_least_recently_used_first() {
        let mut lru = ByteLru::new(100);
        assert_eq!(lru.insert("a", 1, 40), 0);
        assert_eq!(lru.insert("b", 2, 40), 0);
        assert_eq!(lru.held(), 80);
        // Using "a" makes "b" the oldest.
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.insert("c", 3, 30), 1, "b goes: 40 + 40 + 30 > 100");
        assert_eq!(lru.get(&"b"), None);
        assert_eq!((lru.get(&"a"), lru.get(&"c")), (Some(1), Some(3)));
        assert_eq!(lru.held(), 70);
        // One big entry pushes out as many as it must, oldest first.
        assert_eq!(lru.insert("d", 4, 90), 2);
        assert_eq!(lru.entries.len(), 1);
        assert_eq!(lru.held(), 90);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_kept_and_keeps_the_others() {
        let mut lru = ByteLru::new(100);
        lru.insert("small", 1, 10);
        assert_eq!(lru.insert("huge", 2, 101), 0);
        assert_eq!(lru.get(&"huge"), None);
        assert_eq!(lru.get(&"small"), Some(1));
        let mut none: ByteLru<&str, i32> = ByteLru::new(0);
        none.insert("any", 1, 1);
        assert!(none.entries.is_empty());
    }

    #[test]
    fn replacing_and_removing_keep_the_byte_count() {
        let mut lru = ByteLru::new(100);
        lru.insert("a", 1, 60);
        lru.insert("a", 2, 30);
        assert_eq!((lru.held(), lru.get(&"a")), (30, Some(2)));
        lru.remove(&"a");
        lru.remove(&"absent");
        assert_eq!((lru.held(), lru.entries.len(), lru.order.len()), (0, 0, 0));
        lru.insert("b", 3, 100);
        assert_eq!(lru.get(&"b"), Some(3));
    }
}
