-- Unique jobs (SPEC §8): one row per unique key (template code and a hash of the
-- canonical context); see the PostgreSQL migration. Times are microseconds since the
-- epoch, as everywhere in the SQLite schema.
CREATE TABLE IF NOT EXISTS bildad_unique_keys (
    key TEXT PRIMARY KEY NOT NULL,
    job_run_identifier TEXT NOT NULL,
    inserted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bildad_unique_keys_expires ON bildad_unique_keys (expires_at);
