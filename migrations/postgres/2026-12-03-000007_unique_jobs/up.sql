-- Unique jobs (SPEC §8): one row per unique key (template code and a hash of the
-- canonical context). The enqueue that writes an entry of a unique job takes its key in
-- the same transaction; a key younger than the new enqueue's window makes it a
-- duplicate. The primary key is what makes racing enqueues create one entry. A key
-- outlives its entry (a finished job still counts) and is pruned once `expires_at`
-- (its own window's end) has passed.
-- IF NOT EXISTS: running this twice changes nothing.
CREATE TABLE IF NOT EXISTS bildad_unique_keys (
    key text PRIMARY KEY,
    job_run_identifier text NOT NULL,
    inserted_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS bildad_unique_keys_expires ON bildad_unique_keys (expires_at);
