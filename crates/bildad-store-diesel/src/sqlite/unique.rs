//! Unique jobs on SQLite (SPEC §8): each unique entry takes its key with one upsert in
//! the enqueue's transaction. The key's primary key decides, not a read before the
//! write: a key younger than the new entry's window is not taken over, and the entry is
//! a duplicate.

use super::Tx;
use crate::errors::Fail;
use crate::rows::TextRow;
use crate::shared::PreparedEntry;
use bildad_core::StoreError;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{RunQueryDsl, SqliteConnection, sql_query};

/// Inserts the key, or takes over one whose age is at least the window (`?4` seconds);
/// returns the key when it did either, nothing for a duplicate.
const TAKE_KEY: &str = "
INSERT INTO bildad_unique_keys (key, job_run_identifier, inserted_at, expires_at)
VALUES (?1, ?2, ?3, ?3 + ?4 * 1000000)
ON CONFLICT (key) DO UPDATE
SET job_run_identifier = excluded.job_run_identifier,
    inserted_at = excluded.inserted_at,
    expires_at = excluded.expires_at
WHERE bildad_unique_keys.inserted_at <= ?3 - ?4 * 1000000
RETURNING key AS text";

/// The entry that holds a key.
const HOLDER: &str = "SELECT job_run_identifier AS text FROM bildad_unique_keys WHERE key = ?1";

/// Deletes the keys whose own window has passed (`?1`, µs): the history's pruning.
pub(super) const PRUNE_KEYS: &str = "DELETE FROM bildad_unique_keys WHERE expires_at <= ?1";

/// Takes the unique keys of `prepared` at `now` (µs), in the caller's transaction;
/// `Duplicate` for the first entry whose key is held within its window (the caller's
/// transaction then writes nothing).
pub(super) fn take_keys(c: &mut SqliteConnection, prepared: &[PreparedEntry], now: i64) -> Tx<()> {
    for (index, p) in prepared.iter().enumerate() {
        let Some((key, seconds)) = &p.unique else {
            continue;
        };
        let taken: Vec<TextRow> = sql_query(TAKE_KEY)
            .bind::<Text, _>(key)
            .bind::<Text, _>(&p.identifier)
            .bind::<BigInt, _>(now)
            .bind::<Integer, _>(*seconds)
            .load(c)?;
        if taken.is_empty() {
            let holder: TextRow = sql_query(HOLDER).bind::<Text, _>(key).get_result(c)?;
            return Err(Fail(StoreError::Duplicate {
                index,
                job_run_identifier: holder.text,
            }));
        }
    }
    Ok(())
}
