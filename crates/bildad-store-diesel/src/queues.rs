//! Queues (SPEC §8) on both backends: the settings rows, the listing with counts, the
//! upsert of a change, and what a claim needs to know of the limited queues it serves.
//! The SQL is written once with `$n` and `{now}` (see [`Dialect::sql`]).

use crate::dialect::{Arg, Dialect, Stmt};
use bildad_core::{QueueInfo, QueuePatch, QueueSettings, RateLimit};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};

/// Every queue that has settings, waiting entries or running runs (or only `$1`, when
/// not NULL), with its settings and counts, by name.
const QUEUES: &str = "
WITH w AS (
    SELECT queue AS name,
           SUM(CASE WHEN run_at <= {now} THEN 1 ELSE 0 END) AS available,
           SUM(CASE WHEN run_at > {now} THEN 1 ELSE 0 END) AS scheduled,
           0 AS running
    FROM bildad_queue
    WHERE status = 'AVAILABLE' AND ($1 IS NULL OR queue = $1)
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, count(*) FROM bildad_runs
    WHERE status = 'RUNNING' AND ($1 IS NULL OR queue = $1)
    GROUP BY queue
    UNION ALL
    SELECT name, 0, 0, 0 FROM bildad_queues WHERE $1 IS NULL OR name = $1
)
SELECT w.name, q.paused, q.global_limit, q.rate_allowed, q.rate_period_seconds,
       CAST(SUM(w.available) AS BIGINT) AS available,
       CAST(SUM(w.scheduled) AS BIGINT) AS scheduled,
       CAST(SUM(w.running) AS BIGINT) AS running
FROM w LEFT JOIN bildad_queues q ON q.name = w.name
GROUP BY w.name, q.paused, q.global_limit, q.rate_allowed, q.rate_period_seconds
ORDER BY w.name";

/// The upsert of a queue's settings: `$2` paused (NULL keeps it), `$3` whether to set
/// the global limit to `$4`, `$5` whether to set the rate limit to `$6`/`$7`. One
/// statement, so that two changes of different fields never undo each other.
const UPDATE_QUEUE: &str = "
INSERT INTO bildad_queues (name, paused, global_limit, rate_allowed, rate_period_seconds,
    updated_at)
VALUES ($1, COALESCE($2, FALSE), CASE WHEN $3 THEN $4 END, CASE WHEN $5 THEN $6 END,
        CASE WHEN $5 THEN $7 END, {now})
ON CONFLICT (name) DO UPDATE SET
    paused = COALESCE($2, bildad_queues.paused),
    global_limit = CASE WHEN $3 THEN $4 ELSE bildad_queues.global_limit END,
    rate_allowed = CASE WHEN $5 THEN $6 ELSE bildad_queues.rate_allowed END,
    rate_period_seconds = CASE WHEN $5 THEN $7 ELSE bildad_queues.rate_period_seconds END,
    updated_at = {now}";

/// The names of the queues whose settings restrict a claim (paused or limited): the
/// claim's fast path skips their entries.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) const RESTRICTED: &str = "SELECT name AS text FROM bildad_queues
    WHERE paused OR global_limit IS NOT NULL OR rate_allowed IS NOT NULL ORDER BY name";

/// The names of the limited queues (paused or not): PostgreSQL's claim counts them in
/// its bounded path. A queue that is only paused needs no count: the fast path skips it.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const LIMITED: &str = "SELECT name AS text FROM bildad_queues
    WHERE global_limit IS NOT NULL OR rate_allowed IS NOT NULL ORDER BY name";

/// A queue's settings as a row holds them (every column NULL: no settings row).
#[derive(QueryableByName)]
pub(crate) struct SettingsRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Bool>)]
    paused: Option<bool>,
    #[diesel(sql_type = Nullable<Integer>)]
    global_limit: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    rate_allowed: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    rate_period_seconds: Option<i32>,
}

impl From<SettingsRow> for QueueSettings {
    fn from(r: SettingsRow) -> Self {
        QueueSettings {
            name: r.name,
            paused: r.paused.unwrap_or(false),
            global_limit: r.global_limit,
            rate_limit: match (r.rate_allowed, r.rate_period_seconds) {
                (Some(allowed), Some(period_seconds)) => Some(RateLimit {
                    allowed,
                    period_seconds,
                }),
                _ => None,
            },
        }
    }
}

/// A queue with its settings and counts, as [`QUEUES`] reads it.
#[derive(QueryableByName)]
pub(crate) struct QueueRow {
    #[diesel(embed)]
    settings: SettingsRow,
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    scheduled: i64,
    #[diesel(sql_type = BigInt)]
    running: i64,
}

impl From<QueueRow> for QueueInfo {
    fn from(r: QueueRow) -> Self {
        let count = crate::shared::count;
        QueueInfo {
            settings: r.settings.into(),
            available: count(r.available),
            scheduled: count(r.scheduled),
            running: count(r.running),
        }
    }
}

/// A limited queue's settings with what its room depends on: its running runs and the
/// runs started in its rate limit's window.
#[derive(QueryableByName)]
pub(crate) struct LimitRow {
    #[diesel(embed)]
    settings: SettingsRow,
    #[diesel(sql_type = BigInt)]
    running: i64,
    #[diesel(sql_type = BigInt)]
    started: i64,
}

impl LimitRow {
    /// The queue's name and the room its settings leave a claim now.
    pub(crate) fn room(self) -> (String, Option<u64>) {
        let s = QueueSettings::from(self.settings);
        let room = s.room(
            crate::shared::count(self.running),
            crate::shared::count(self.started),
        );
        (s.name, room)
    }
}

/// The limited queues among `$1` (a list of names: an array on PostgreSQL, a JSON array
/// on SQLite), with their running runs and their starts within the window ending at
/// `{now}`. `window_start` is the dialect's `{now}` minus the period.
pub(crate) fn limits(d: Dialect, names: &str, window_start: &str) -> String {
    d.sql(&format!(
        "SELECT q.name, q.paused, q.global_limit, q.rate_allowed, q.rate_period_seconds,
            (SELECT count(*) FROM bildad_runs r
             WHERE r.status = 'RUNNING' AND r.queue = q.name) AS running,
            (SELECT count(*) FROM bildad_runs r
             WHERE q.rate_allowed IS NOT NULL AND r.queue = q.name
               AND r.started_at > {window_start}) AS started
         FROM bildad_queues q WHERE q.name IN ({names})
         ORDER BY q.name"
    ))
}

/// [`UPDATE_QUEUE`] as MySQL writes an upsert (`$n` as there: see [`update_stmt`]).
/// MySQL applies the assignments left to right; none reads a column set before it.
const UPDATE_QUEUE_MYSQL: &str = "
INSERT INTO bildad_queues (name, paused, global_limit, rate_allowed, rate_period_seconds,
    updated_at)
VALUES ($1, COALESCE($2, FALSE), CASE WHEN $3 THEN $4 END, CASE WHEN $5 THEN $6 END,
        CASE WHEN $5 THEN $7 END, {now})
ON DUPLICATE KEY UPDATE
    paused = COALESCE($2, paused),
    global_limit = CASE WHEN $3 THEN $4 ELSE global_limit END,
    rate_allowed = CASE WHEN $5 THEN $6 ELSE rate_allowed END,
    rate_period_seconds = CASE WHEN $5 THEN $7 ELSE rate_period_seconds END,
    updated_at = {now}";

/// [`QUEUES`] of every queue (`None`) or of one, as a statement with its argument.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn queues_stmt(d: Dialect, name: Option<&str>) -> Stmt {
    Stmt::new(d, QUEUES, vec![Arg::Text(name.map(str::to_owned))])
}

/// The upsert of queue `name`'s settings by `b`, as a statement with its arguments.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn update_stmt(d: Dialect, name: &str, b: &UpdateBinds) -> Stmt {
    let sql = match d {
        Dialect::Mysql => UPDATE_QUEUE_MYSQL,
        _ => UPDATE_QUEUE,
    };
    Stmt::new(
        d,
        sql,
        vec![
            Arg::Text(Some(name.to_owned())),
            Arg::Bool(b.paused),
            Arg::Bool(Some(b.set_global)),
            Arg::Int(b.global_limit),
            Arg::Bool(Some(b.set_rate)),
            Arg::Int(b.rate_allowed),
            Arg::Int(b.rate_period),
        ],
    )
}

/// [`QUEUES`] in dialect `d`.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn queues_sql(d: Dialect) -> String {
    d.sql(QUEUES)
}

/// [`UPDATE_QUEUE`] in dialect `d`.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn update_sql(d: Dialect) -> String {
    d.sql(UPDATE_QUEUE)
}

/// The binds of [`UPDATE_QUEUE`] after the name, from a patch.
pub(crate) struct UpdateBinds {
    pub(crate) paused: Option<bool>,
    pub(crate) set_global: bool,
    pub(crate) global_limit: Option<i32>,
    pub(crate) set_rate: bool,
    pub(crate) rate_allowed: Option<i32>,
    pub(crate) rate_period: Option<i32>,
}

impl From<&QueuePatch> for UpdateBinds {
    fn from(p: &QueuePatch) -> Self {
        let rate = p.rate_limit.flatten();
        Self {
            paused: p.paused,
            set_global: p.global_limit.is_some(),
            global_limit: p.global_limit.flatten(),
            set_rate: p.rate_limit.is_some(),
            rate_allowed: rate.map(|r| r.allowed),
            rate_period: rate.map(|r| r.period_seconds),
        }
    }
}

/// Binds `$1`…`$7` of [`UPDATE_QUEUE`] to `q`.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
macro_rules! bind_update {
    ($q:expr, $name:expr, $b:expr) => {
        $q.bind::<diesel::sql_types::Text, _>($name)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Bool>, _>($b.paused)
            .bind::<diesel::sql_types::Bool, _>($b.set_global)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Integer>, _>($b.global_limit)
            .bind::<diesel::sql_types::Bool, _>($b.set_rate)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Integer>, _>($b.rate_allowed)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Integer>, _>($b.rate_period)
    };
}
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use bind_update;

/// The names of the queues a claim treats apart: those whose settings restrict them
/// (`restricted`, read with [`RESTRICTED`]) and those the node caps, among the queues
/// it serves, each once, by name.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn special_names(
    req: &bildad_core::ClaimRequest,
    restricted: Vec<crate::rows::TextRow>,
) -> Vec<String> {
    restricted
        .into_iter()
        .map(|r| r.text)
        .chain(req.queue_caps.keys().cloned())
        .filter(|q| bildad_core::serves(req.queues.as_deref(), q))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Each queue a claim treats apart, with the room it leaves (0 left out).
pub(crate) type Rooms = Vec<(String, u64)>;

/// The room of each queue a claim treats apart (limited by settings, or capped by the
/// node), the node's caps applied; `rooms` holds the settings' rooms of limited queues.
pub(crate) fn special_rooms(
    req: &bildad_core::ClaimRequest,
    rooms: Vec<(String, Option<u64>)>,
) -> Rooms {
    let mut out: std::collections::BTreeMap<String, Option<u64>> = req
        .queue_caps
        .iter()
        .filter(|(q, _)| bildad_core::serves(req.queues.as_deref(), q))
        .map(|(q, _)| (q.clone(), None))
        .collect();
    out.extend(rooms);
    out.into_iter()
        .filter_map(|(q, room)| {
            let r = bildad_core::claim_room(&req.queue_caps, &q, room)?;
            Some((q, r.min(u64::from(req.limit))))
        })
        .filter(|(_, r)| *r > 0)
        .collect()
}
