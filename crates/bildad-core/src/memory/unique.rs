//! `MemoryStore`'s unique keys (SPEC §8): the same rule the SQL stores apply with their
//! `bildad_unique_keys` upsert, under the store's one lock.

use super::state::State;
use crate::NewEntry;
use crate::error::{StoreError, StoreResult};
use crate::model::Timestamp;
use crate::unique::check_repeated_keys;

/// A unique key taken by an enqueue.
#[derive(Debug, Clone)]
pub(super) struct UniqueKey {
    job_run_identifier: String,
    inserted_at: Timestamp,
    /// The end of its own window: pruned after it.
    expires_at: Timestamp,
}

impl State {
    /// Takes the unique keys of a batch whose entries get `identifiers`, all or none:
    /// `Conflict` when two entries share a key, `Duplicate` (the first, by index) when a
    /// key was taken within the new entry's window. Called after every other check, so
    /// that a taken key means the entries are written.
    pub(super) fn take_unique_keys(
        &mut self,
        new: &[NewEntry],
        identifiers: &[&str],
        now: Timestamp,
    ) -> StoreResult<()> {
        let keys: Vec<Option<(String, i32)>> = new
            .iter()
            .map(|n| n.unique_key().zip(n.unique_for_seconds))
            .collect();
        check_repeated_keys(keys.iter().map(|k| k.as_ref().map(|(k, _)| k.as_str())))?;
        let window = |secs: i32| chrono::Duration::seconds(i64::from(secs));
        for (index, (key, secs)) in keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((i, k.as_ref()?)))
        {
            if let Some(held) = self
                .unique_keys
                .get(key)
                .filter(|held| held.inserted_at > now - window(*secs))
            {
                return Err(StoreError::Duplicate {
                    index,
                    job_run_identifier: held.job_run_identifier.clone(),
                });
            }
        }
        for ((key, secs), identifier) in keys
            .into_iter()
            .zip(identifiers)
            .filter_map(|(k, i)| Some((k?, i)))
        {
            let held = UniqueKey {
                job_run_identifier: (*identifier).to_owned(),
                inserted_at: now,
                expires_at: now + window(secs),
            };
            self.unique_keys.insert(key, held);
        }
        Ok(())
    }

    /// Forgets the keys whose own window has passed (the history's pruning).
    pub(super) fn prune_unique_keys(&mut self, now: Timestamp) {
        self.unique_keys.retain(|_, k| k.expires_at > now);
    }
}
