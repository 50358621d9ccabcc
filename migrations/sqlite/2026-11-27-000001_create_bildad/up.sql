-- Bildad's tables (SPEC §1) for embedded SQLite. Released migrations are never edited.
-- Every statement is IF NOT EXISTS: an app that applied the copy `cargo xtask install`
-- gave it (under its own version) can still let the store run its embedded copy, and
-- whichever runs second changes nothing.
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), taken from SQLite's
-- clock in SQL, so ordering and arithmetic stay in the database.
-- AUTOINCREMENT: an id is never reused, because a run id is a lease.

CREATE TABLE IF NOT EXISTS bildad_templates (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    code                    TEXT NOT NULL UNIQUE,
    name                    TEXT NOT NULL,
    job_type                TEXT NOT NULL,
    active                  INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    display_order           INTEGER NOT NULL DEFAULT 0,
    default_timeout_seconds INTEGER NOT NULL DEFAULT 3600 CHECK (default_timeout_seconds > 0),
    default_max_retries     INTEGER NOT NULL DEFAULT 3 CHECK (default_max_retries >= 0),
    context_schema          TEXT NOT NULL CHECK (json_valid(context_schema)),
    inserted_at             INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS bildad_templates_listing ON bildad_templates (display_order, code);

CREATE TABLE IF NOT EXISTS bildad_queue (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    job_run_identifier TEXT NOT NULL UNIQUE,
    template_id        INTEGER NOT NULL REFERENCES bildad_templates (id) ON DELETE RESTRICT,
    status             TEXT NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'RUNNING')),
    priority           INTEGER NOT NULL DEFAULT 5,
    timeout_seconds    INTEGER NOT NULL CHECK (timeout_seconds > 0),
    max_retries        INTEGER NOT NULL CHECK (max_retries >= 0),
    context            TEXT NOT NULL CHECK (json_valid(context)),
    run_at             INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    current_run_id     INTEGER,
    node               TEXT,
    timeout_at         INTEGER,
    expires_at         INTEGER,
    inserted_at        INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK ((status = 'RUNNING') = (current_run_id IS NOT NULL)),
    CHECK (status = 'AVAILABLE'
           OR (node IS NOT NULL AND timeout_at IS NOT NULL AND expires_at IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS bildad_queue_claim ON bildad_queue (priority, inserted_at, id)
    WHERE status = 'AVAILABLE';
CREATE INDEX IF NOT EXISTS bildad_queue_kill ON bildad_queue (node, timeout_at)
    WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_expire ON bildad_queue (expires_at)
    WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_template ON bildad_queue (template_id);

CREATE TABLE IF NOT EXISTS bildad_runs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id           INTEGER NOT NULL,
    job_run_identifier TEXT NOT NULL,
    template           TEXT NOT NULL,
    job_type           TEXT NOT NULL,
    retry              INTEGER NOT NULL CHECK (retry >= 0),
    process_name       TEXT NOT NULL UNIQUE,
    node               TEXT NOT NULL,
    node_name          TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'DONE')),
    result             TEXT CHECK (result IN ('SUCCEEDED', 'FAILED')),
    reason             TEXT CHECK (length(CAST(reason AS BLOB)) <= 4096),
    context            TEXT NOT NULL,
    output             TEXT,
    started_at         INTEGER NOT NULL,
    timeout_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    ended_at           INTEGER,
    UNIQUE (job_run_identifier, retry),
    CHECK ((status = 'RUNNING') = (result IS NULL) AND (status = 'RUNNING') = (ended_at IS NULL))
);

CREATE INDEX IF NOT EXISTS bildad_runs_history ON bildad_runs (started_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS bildad_nodes (
    instance_id       TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    last_heartbeat_at INTEGER NOT NULL,
    stopped_at        INTEGER
);
