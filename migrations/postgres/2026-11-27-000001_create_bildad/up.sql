-- Bildad's tables (SPEC §1). Released migrations are never edited: add a new one.
-- Every statement is IF NOT EXISTS: an app that applied the copy `cargo xtask install`
-- gave it (under its own version) can still let the store run its embedded copy, and
-- whichever runs second changes nothing.

CREATE TABLE IF NOT EXISTS bildad_templates (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                    TEXT NOT NULL CONSTRAINT bildad_templates_code_key UNIQUE,
    name                    TEXT NOT NULL,
    job_type                TEXT NOT NULL,
    active                  BOOLEAN NOT NULL DEFAULT TRUE,
    display_order           INTEGER NOT NULL DEFAULT 0,
    default_timeout_seconds INTEGER NOT NULL DEFAULT 3600 CHECK (default_timeout_seconds > 0),
    default_max_retries     INTEGER NOT NULL DEFAULT 3 CHECK (default_max_retries >= 0),
    context_schema          JSONB NOT NULL,
    inserted_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS bildad_templates_listing ON bildad_templates (display_order, code);

-- Queue entries. While an entry is RUNNING it carries its run's id, node instance,
-- timeout_at and expires_at, so that the killer's and the engine's lookups stay on this
-- small table and never probe the (large) history.
CREATE TABLE IF NOT EXISTS bildad_queue (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_run_identifier TEXT NOT NULL CONSTRAINT bildad_queue_identifier_key UNIQUE,
    template_id        BIGINT NOT NULL CONSTRAINT bildad_queue_template_fkey
                           REFERENCES bildad_templates (id) ON DELETE RESTRICT,
    status             TEXT NOT NULL DEFAULT 'AVAILABLE'
                           CHECK (status IN ('AVAILABLE', 'RUNNING')),
    priority           INTEGER NOT NULL DEFAULT 5,
    timeout_seconds    INTEGER NOT NULL CHECK (timeout_seconds > 0),
    max_retries        INTEGER NOT NULL CHECK (max_retries >= 0),
    context            JSONB NOT NULL,
    run_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    current_run_id     BIGINT,
    node               TEXT,
    timeout_at         TIMESTAMPTZ,
    expires_at         TIMESTAMPTZ,
    inserted_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT bildad_queue_running_has_run CHECK (
        (status = 'RUNNING') = (current_run_id IS NOT NULL)
        AND (status = 'AVAILABLE'
             OR (node IS NOT NULL AND timeout_at IS NOT NULL AND expires_at IS NOT NULL))
    )
);

-- The claim: run order among available entries.
CREATE INDEX IF NOT EXISTS bildad_queue_claim ON bildad_queue (priority, inserted_at, id)
    WHERE status = 'AVAILABLE';
-- The killer: this node's runs past timeout_at.
CREATE INDEX IF NOT EXISTS bildad_queue_kill ON bildad_queue (node, timeout_at)
    WHERE status = 'RUNNING';
-- The engine's expiry: runs past expires_at.
CREATE INDEX IF NOT EXISTS bildad_queue_expire ON bildad_queue (expires_at)
    WHERE status = 'RUNNING';
-- Deleting a template checks the foreign key through this index.
CREATE INDEX IF NOT EXISTS bildad_queue_template ON bildad_queue (template_id);

-- Job runs: the history. Finalize changes only unindexed columns, and fillfactor 90
-- leaves room on the page, so that finalize is a HOT update. There is deliberately no
-- index on status: a partial index on RUNNING would make every finalize non-HOT.
CREATE TABLE IF NOT EXISTS bildad_runs (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id           BIGINT NOT NULL,
    job_run_identifier TEXT NOT NULL,
    template           TEXT NOT NULL,
    job_type           TEXT NOT NULL,
    retry              INTEGER NOT NULL CHECK (retry >= 0),
    process_name       TEXT NOT NULL CONSTRAINT bildad_runs_process_name_key UNIQUE,
    node               TEXT NOT NULL,
    node_name          TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'DONE')),
    result             TEXT CHECK (result IN ('SUCCEEDED', 'FAILED')),
    reason             TEXT CHECK (octet_length(reason) <= 4096),
    context            JSONB NOT NULL,
    output             JSONB,
    started_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    timeout_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    ended_at           TIMESTAMPTZ,
    CONSTRAINT bildad_runs_identifier_retry_key UNIQUE (job_run_identifier, retry),
    CONSTRAINT bildad_runs_done_has_result CHECK (
        (status = 'RUNNING') = (result IS NULL) AND (status = 'RUNNING') = (ended_at IS NULL)
    )
) WITH (fillfactor = 90);

-- History, newest first.
CREATE INDEX IF NOT EXISTS bildad_runs_history ON bildad_runs (started_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS bildad_nodes (
    instance_id       TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at        TIMESTAMPTZ
);
