//! Unique jobs on PostgreSQL (SPEC §8): the unique entries of an enqueue take their keys
//! with one upsert, in the enqueue's transaction and before its insert. The key's primary
//! key decides, not a read before the write: of two racing enqueues, the second waits on
//! the first's row lock and, once it commits, finds the key too young to take over.

use super::prepared::Cached;
use crate::rows::TextRow;
use crate::shared::PreparedEntry;
use bildad_core::StoreError;
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{Array, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Inserts each key (`$1`, for identifier `$2`, window `$3` seconds), or takes over one
/// whose age is at least the new window; returns the keys it inserted or took. Rows are
/// locked in key order, so that racing batches cannot deadlock on each other.
const TAKE_KEYS: &str = "
INSERT INTO bildad_unique_keys AS k (key, job_run_identifier, inserted_at, expires_at)
SELECT i.key, i.identifier, now(), now() + i.seconds * interval '1 second'
FROM unnest($1::text[], $2::text[], $3::int4[]) AS i(key, identifier, seconds)
ORDER BY i.key
ON CONFLICT (key) DO UPDATE
SET job_run_identifier = EXCLUDED.job_run_identifier,
    inserted_at = EXCLUDED.inserted_at,
    expires_at = EXCLUDED.expires_at
WHERE k.inserted_at <= now() - (EXCLUDED.expires_at - EXCLUDED.inserted_at)
RETURNING k.key AS text";

/// The entry that holds a key.
const HOLDER: &str = "SELECT job_run_identifier AS text FROM bildad_unique_keys WHERE key = $1";

/// Deletes the keys whose own window has passed, before the history's pruning (a CTE
/// of the one pruning statement).
pub(super) const PRUNE_KEYS: &str = "DELETE FROM bildad_unique_keys WHERE expires_at <= now()";

/// The unique entries of an enqueue: their place in the request, key, identifier and
/// window, as `TAKE_KEYS` binds them.
#[derive(Debug, Default)]
pub(super) struct Keys {
    indexes: Vec<usize>,
    keys: Vec<String>,
    identifiers: Vec<String>,
    seconds: Vec<i32>,
}

impl Keys {
    /// The keys of the unique entries of `prepared`.
    pub(super) fn of(prepared: &[PreparedEntry]) -> Self {
        let mut out = Self::default();
        for (i, p) in prepared.iter().enumerate() {
            if let Some((key, seconds)) = &p.unique {
                out.indexes.push(i);
                out.keys.push(key.clone());
                out.identifiers.push(p.identifier.clone());
                out.seconds.push(*seconds);
            }
        }
        out
    }

    /// True when no entry is unique (the enqueue then skips this step).
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Takes the keys, inside the caller's transaction. `Some(Duplicate)` for the first
    /// entry (in request order) whose key is held within its window: the caller rolls
    /// back, and nothing is written.
    pub(super) async fn take(
        &self,
        c: &mut AsyncPgConnection,
    ) -> Result<Option<StoreError>, DieselError> {
        let taken: Vec<TextRow> = Cached(
            sql_query(TAKE_KEYS)
                .bind::<Array<Text>, _>(&self.keys)
                .bind::<Array<Text>, _>(&self.identifiers)
                .bind::<Array<Integer>, _>(&self.seconds),
        )
        .load(c)
        .await?;
        if taken.len() == self.keys.len() {
            return Ok(None);
        }
        let Some((index, key)) = self
            .indexes
            .iter()
            .zip(&self.keys)
            .find(|(_, k)| !taken.iter().any(|t| &t.text == *k))
        else {
            return Ok(None);
        };
        let holder: TextRow = sql_query(HOLDER).bind::<Text, _>(key).get_result(c).await?;
        Ok(Some(StoreError::Duplicate {
            index: *index,
            job_run_identifier: holder.text,
        }))
    }
}
