-- Bildad on MySQL/MariaDB: the whole schema at once, in the shape the PostgreSQL and SQLite
-- schemas reached after their migration 000009 (a running job is one row, its run;
-- queues, unique jobs, schedules, trace context). Timestamps are DATETIME(6) in UTC (the
-- store's sessions are UTC and it writes UTC_TIMESTAMP(6)); text that is compared or
-- indexed is binary and NO PAD (utf8mb4_nopad_bin), so that 'a' and 'A ' are two
-- identifiers, as on the other backends. Needs MariaDB 10.6+ (SKIP LOCKED, RETURNING):
-- docs/STORAGE.md.

CREATE TABLE bildad_templates (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    code VARCHAR(255) NOT NULL,
    name TEXT NOT NULL,
    job_type VARCHAR(255) NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    display_order INT NOT NULL DEFAULT 0,
    default_timeout_seconds INT NOT NULL DEFAULT 3600,
    default_max_retries INT NOT NULL DEFAULT 3,
    context_schema JSON NOT NULL,
    inserted_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    queue VARCHAR(255) NOT NULL DEFAULT 'default',
    CONSTRAINT bildad_templates_code_key UNIQUE (code),
    CONSTRAINT bildad_templates_timeout_check CHECK (default_timeout_seconds > 0),
    CONSTRAINT bildad_templates_max_retries_check CHECK (default_max_retries >= 0),
    INDEX bildad_templates_listing (display_order, code)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The waiting entries. A running job is its run (bildad_runs); `status` is always
-- 'AVAILABLE' here and kept so that the statements all backends share read alike.
CREATE TABLE bildad_queue (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_run_identifier VARCHAR(255) NOT NULL,
    template_id BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'AVAILABLE',
    priority INT NOT NULL DEFAULT 5,
    timeout_seconds INT NOT NULL,
    max_retries INT NOT NULL,
    context JSON NOT NULL,
    run_at DATETIME(6) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    uncounted_runs INT NOT NULL DEFAULT 0,
    inserted_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    queue VARCHAR(255) NOT NULL DEFAULT 'default',
    trace_context TEXT NULL,
    CONSTRAINT bildad_queue_identifier_key UNIQUE (job_run_identifier),
    CONSTRAINT bildad_queue_status_check CHECK (status = 'AVAILABLE'),
    CONSTRAINT bildad_queue_timeout_check CHECK (timeout_seconds > 0),
    CONSTRAINT bildad_queue_max_retries_check CHECK (max_retries >= 0),
    CONSTRAINT bildad_queue_attempts_check CHECK (attempts >= 0),
    -- The claim walks this index in run order and stops at its LIMIT.
    INDEX bildad_queue_claim (priority, inserted_at, id),
    INDEX bildad_queue_template (template_id),
    INDEX bildad_queue_queue (queue, run_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE bildad_runs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry_id BIGINT NOT NULL,
    job_run_identifier VARCHAR(255) NOT NULL,
    template VARCHAR(255) NOT NULL,
    job_type VARCHAR(255) NOT NULL,
    retry INT NOT NULL,
    process_name TEXT NOT NULL,
    node VARCHAR(255) NOT NULL,
    node_name TEXT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'RUNNING',
    result VARCHAR(16) NULL,
    reason TEXT NULL,
    context JSON NOT NULL,
    output JSON NULL,
    started_at DATETIME(6) NOT NULL,
    timeout_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    ended_at DATETIME(6) NULL,
    -- What the entry carried while its job runs (NULL once DONE is allowed, not used).
    template_id BIGINT NULL,
    priority INT NULL,
    timeout_seconds INT NULL,
    max_retries INT NULL,
    uncounted_runs INT NULL,
    entry_run_at DATETIME(6) NULL,
    entry_inserted_at DATETIME(6) NULL,
    queue VARCHAR(255) NOT NULL DEFAULT 'default',
    trace_context TEXT NULL,
    CONSTRAINT bildad_runs_identifier_retry_key UNIQUE (job_run_identifier, retry),
    CONSTRAINT bildad_runs_status_check CHECK (status IN ('RUNNING', 'DONE')),
    CONSTRAINT bildad_runs_result_check CHECK (result IN ('SUCCEEDED', 'FAILED')),
    CONSTRAINT bildad_runs_retry_check CHECK (retry >= 0),
    CONSTRAINT bildad_runs_reason_check CHECK (octet_length(reason) <= 4096),
    CONSTRAINT bildad_runs_done_has_result CHECK (
        (status = 'RUNNING') = (result IS NULL) AND (status = 'RUNNING') = (ended_at IS NULL)),
    CONSTRAINT bildad_runs_running_carries_entry CHECK (
        status = 'DONE' OR (template_id IS NOT NULL AND priority IS NOT NULL
            AND timeout_seconds IS NOT NULL AND max_retries IS NOT NULL
            AND uncounted_runs IS NOT NULL AND entry_run_at IS NOT NULL
            AND entry_inserted_at IS NOT NULL)),
    INDEX bildad_runs_history (started_at, id),
    -- MySQL has no partial index: `status` leads, so the running runs are one short range.
    INDEX bildad_runs_running (status, node, timeout_at),
    INDEX bildad_runs_expire (status, expires_at),
    INDEX bildad_runs_entry (status, entry_id),
    INDEX bildad_runs_queue (queue, status, started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Entries as the API shows them: the waiting ones, and the running ones (their runs).
CREATE VIEW bildad_entries_v2 AS
SELECT id, job_run_identifier, template_id, status, priority, timeout_seconds, max_retries,
       context, run_at, attempts, uncounted_runs, CAST(NULL AS SIGNED) AS current_run_id,
       inserted_at, updated_at, queue
FROM bildad_queue
UNION ALL
SELECT entry_id, job_run_identifier, template_id, 'RUNNING', priority, timeout_seconds,
       max_retries, context, entry_run_at, retry + 1, uncounted_runs, id, entry_inserted_at,
       started_at, queue
FROM bildad_runs WHERE status = 'RUNNING';

CREATE TABLE bildad_nodes (
    instance_id VARCHAR(255) NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    started_at DATETIME(6) NOT NULL,
    last_heartbeat_at DATETIME(6) NOT NULL,
    stopped_at DATETIME(6) NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE bildad_queues (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    global_limit INT NULL,
    rate_allowed INT NULL,
    rate_period_seconds INT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT bildad_queues_global_limit_check CHECK (global_limit >= 1),
    CONSTRAINT bildad_queues_rate_allowed_check CHECK (rate_allowed >= 1),
    CONSTRAINT bildad_queues_rate_period_check CHECK (rate_period_seconds >= 1),
    CONSTRAINT bildad_queues_rate_limit_whole CHECK (
        (rate_allowed IS NULL) = (rate_period_seconds IS NULL))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE bildad_unique_keys (
    `key` VARCHAR(255) NOT NULL PRIMARY KEY,
    job_run_identifier VARCHAR(255) NOT NULL,
    inserted_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    INDEX bildad_unique_keys_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE bildad_schedules (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    cron TEXT NOT NULL,
    timezone VARCHAR(255) NOT NULL DEFAULT 'UTC',
    template VARCHAR(255) NOT NULL,
    context JSON NOT NULL,
    options JSON NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    last_fire_at DATETIME(6) NULL,
    next_fire_at DATETIME(6) NULL,
    inserted_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    INDEX bildad_schedules_due (active, next_fire_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
