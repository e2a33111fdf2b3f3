//! The compiled code kept on disk, within `artifact_cache_bytes`: compiled
//! code is about twice its component (a Python plugin's is 35 MB) and there
//! is one per engine family used, so past the budget the code used longest
//! ago is deleted. Its plugin's bytes stay; a run that needs it again
//! compiles it again. It decides what goes and asks the store to delete it;
//! it does not read or write files itself.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::store::{PluginStore, StoreResult, StoredArtifact};

/// When each compiled code was last loaded or stored by this daemon.
pub(super) struct ArtifactBudget {
    max_bytes: u64,
    used: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl ArtifactBudget {
    /// Compiled code on disk kept within `max_bytes`.
    pub fn new(max_bytes: u64) -> ArtifactBudget {
        ArtifactBudget {
            max_bytes,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), DateTime<Utc>>> {
        self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The code of `digest` for `engine` was loaded or stored now.
    pub fn touch(&self, digest: &str, engine: &str) {
        self.used().insert((digest.to_string(), engine.to_string()), Utc::now());
    }

    /// Deletes the code used longest ago until what stays fits the budget,
    /// never the code of `keep` (just stored for a run or an upload).
    /// Returns how many went.
    pub fn trim(&self, store: &dyn PluginStore, keep: (&str, &str)) -> StoreResult<usize> {
        let stored = store.stored_artifacts()?;
        let doomed: Vec<StoredArtifact> = {
            let used = self.used();
            let last_used = |artifact: &StoredArtifact| {
                used.get(&(artifact.digest.clone(), artifact.engine.clone()))
                    .copied()
                    .unwrap_or(artifact.compiled_at)
            };
            to_delete(&stored, last_used, self.max_bytes, keep)
                .into_iter()
                .cloned()
                .collect()
        };
        for artifact in &doomed {
            store.drop_artifact(&artifact.digest, &artifact.engine)?;
            self.used().remove(&(artifact.digest.clone(), artifact.engine.clone()));
            tracing::info!(
                digest = %artifact.digest,
                bytes = artifact.size,
                "compiled code past artifact_cache_bytes deleted; compiled again when needed"
            );
        }
        Ok(doomed.len())
    }
}

/// The code to delete so the rest fits `max_bytes`: least recently used
/// first, never `keep`.
fn to_delete<'a>(
    stored: &'a [StoredArtifact],
    last_used: impl Fn(&StoredArtifact) -> DateTime<Utc>,
    max_bytes: u64,
    keep: (&str, &str),
) -> Vec<&'a StoredArtifact> {
    let mut total: u64 = stored.iter().map(|artifact| artifact.size).sum();
    let mut candidates: Vec<&StoredArtifact> = stored
        .iter()
        .filter(|artifact| (artifact.digest.as_str(), artifact.engine.as_str()) != keep)
        .collect();
    candidates.sort_by_key(|artifact| last_used(artifact));
    let mut doomed = Vec::new();
    for artifact in candidates {
        if total <= max_bytes {
            break;
        }
        total = total.saturating_sub(artifact.size);
        doomed.push(artifact);
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(digest: &str, size: u64, minutes_ago: i64) -> StoredArtifact {
        StoredArtifact {
            digest: digest.to_string(),
            engine: "e".to_string(),
            compiled_at: Utc::now() - chrono::Duration::minutes(minutes_ago),
            size,
        }
    }

    #[test]
    fn the_code_used_longest_ago_goes_first_until_the_rest_fits_and_the_kept_one_stays() {
        let all = [
            stored("a", 40, 30),
            stored("b", 40, 20),
            stored("c", 40, 10),
            stored("d", 40, 0),
        ];
        let by_compile = |artifact: &StoredArtifact| artifact.compiled_at;
        let names = |doomed: Vec<&StoredArtifact>| doomed.iter().map(|a| a.digest.clone()).collect::<Vec<_>>();
        // 160 bytes against rows: (budget, kept, deleted).
        for (budget, keep, deleted) in [
            (160, "d", vec![]),
            (120, "d", vec!["a"]),
            (80, "d", vec!["a", "b"]),
            (80, "a", vec!["b", "c"]),
            (0, "d", vec!["a", "b", "c"]),
        ] {
            assert_eq!(
                names(to_delete(&all, by_compile, budget, (keep, "e"))),
                deleted,
                "{budget} {keep}"
            );
        }
        // A use since the compile counts: `a` loaded just now stays.
        let recently = |artifact: &StoredArtifact| {
            if artifact.digest == "a" {
                Utc::now()
            } else {
                artifact.compiled_at
            }
        };
        assert_eq!(names(to_delete(&all, recently, 120, ("d", "e"))), ["b"]);
    }
}
