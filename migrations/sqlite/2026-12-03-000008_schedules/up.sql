-- Schedules (SPEC §9); see the PostgreSQL migration. Timestamps are integer
-- microseconds, JSON is text. Re-runnable (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS bildad_schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    template     TEXT NOT NULL,
    context      TEXT NOT NULL CHECK (json_valid(context)),
    options      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(options)),
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    last_fire_at INTEGER,
    next_fire_at INTEGER,
    inserted_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS bildad_schedules_due ON bildad_schedules (next_fire_at)
    WHERE active = 1;
