-- Schedules (SPEC §9): periodic jobs, evaluated by every node with no leader. An
-- evaluation reads only the due rows (the partial index on next_fire_at), and advances a
-- schedule with a compare-and-set on next_fire_at in the transaction that inserts its
-- entries, so exactly one node wins each fire time. Re-runnable (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS bildad_schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    template     TEXT NOT NULL,
    context      JSONB NOT NULL,
    options      JSONB NOT NULL DEFAULT '{}',
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    last_fire_at TIMESTAMPTZ,
    next_fire_at TIMESTAMPTZ,
    inserted_at  TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS bildad_schedules_due ON bildad_schedules (next_fire_at)
    WHERE active;
