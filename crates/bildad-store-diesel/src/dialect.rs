//! The statements both dialects write alike, as one SQL text and one set of binds: the
//! pages of templates, entries and runs (in their order, with a total), and the writes of
//! templates. The text is written with PostgreSQL's `$n` placeholders ([`Dialect::sql`]
//! gives SQLite's `?n`) and `{now}` for the database clock; the backends differ only in
//! how they run the queries. Every page filter is a nullable text (NULL: no filter).

use crate::rows::{DbJson, ENTRY_COLS, RUN_COLS, TEMPLATE_COLS};
use crate::shared::limit_offset;
use bildad_core::{
    EntryFilter, HARD_KILL_REASONS, KILLED_SUFFIX, NewTemplate, PageRequest, RunFilter,
    TemplateFilter, TemplatePatch,
};
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Integer, Nullable, Text};
use serde_json::Value;

/// SQLite's clock in microseconds. Its resolution is a millisecond; ties in run order are
/// broken by id. Stable within one statement.
pub(crate) const SQLITE_NOW: &str = "(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)";

/// How a backend writes its placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$1`, `$2`, …
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
    /// `?1`, `?2`, …
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// `?`, bound once per occurrence (MySQL numbers no placeholder: see [`Stmt`]).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Mysql,
}

/// MySQL's clock: UTC with microseconds, stable within one statement.
pub(crate) const MYSQL_NOW: &str = "UTC_TIMESTAMP(6)";

impl Dialect {
    /// `sql`, written with `$n` placeholders and `{now}`, in this dialect. On MySQL each
    /// `$n` must appear once, in order (else build a [`Stmt`], which binds repeats).
    pub(crate) fn sql(self, sql: &str) -> String {
        let (text, order) = self.numbered(sql);
        debug_assert!(
            self != Dialect::Mysql || order.iter().copied().eq(0..order.len()),
            "MySQL placeholders out of order: {sql}"
        );
        text
    }

    /// `sql` in this dialect, and the 0-based argument that each placeholder reads, in
    /// the order they appear (what MySQL's positional `?` needs bound).
    pub(crate) fn numbered(self, sql: &str) -> (String, Vec<usize>) {
        let sql = match self {
            Dialect::Postgres => sql.replace("{now}", "now()"),
            Dialect::Sqlite => sql.replace("{now}", SQLITE_NOW),
            Dialect::Mysql => sql
                .replace("{now}", MYSQL_NOW)
                .replace("AS BIGINT)", "AS SIGNED)"),
        };
        let mut out = String::with_capacity(sql.len());
        let mut order = Vec::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
                out.push(c);
                continue;
            }
            let mut n = 0usize;
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                chars.next();
                digits.push(d);
                n = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
            }
            order.push(n.saturating_sub(1));
            match self {
                Dialect::Postgres => out.push('$'),
                Dialect::Sqlite => out.push('?'),
                Dialect::Mysql => {
                    out.push('?');
                    continue;
                }
            }
            out.push_str(&digits);
        }
        (out, order)
    }

    /// `a` followed by `b` (two text expressions).
    pub(crate) fn concat(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Mysql => format!("CONCAT({a}, {b})"),
            _ => format!("{a} || {b}"),
        }
    }
}

/// One argument of a [`Stmt`] (`None`: SQL NULL).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    BigInt(Option<i64>),
    Int(Option<i32>),
    Bool(Option<bool>),
    Json(Option<Value>),
}

/// A statement written once with `$n` placeholders, and its arguments, bound in the
/// order its dialect reads them: by number on PostgreSQL and SQLite, once per
/// occurrence on MySQL (where `$1 IS NULL OR x = $1` binds the first argument twice).
pub(crate) struct Stmt {
    sql: String,
    /// The argument each placeholder reads, in the order they are bound.
    order: Vec<usize>,
    args: Vec<Arg>,
}

impl Stmt {
    /// `sql` (with `$n` and `{now}`) in dialect `d`, with `args` (`$1` is `args[0]`).
    pub(crate) fn new(d: Dialect, sql: &str, args: Vec<Arg>) -> Self {
        let (sql, occurrences) = d.numbered(sql);
        let order = match d {
            Dialect::Mysql => occurrences,
            _ => (0..args.len()).collect(),
        };
        debug_assert!(order.iter().all(|&i| i < args.len()), "{sql}");
        Self { sql, order, args }
    }

    /// The statement with its arguments bound.
    pub(crate) fn query<DB>(&self) -> BoxedSqlQuery<'_, DB, SqlQuery>
    where
        DB: Backend
            + HasSqlType<Text>
            + HasSqlType<BigInt>
            + HasSqlType<Integer>
            + HasSqlType<Bool>
            + HasSqlType<DbJson>,
        str: ToSql<Text, DB>,
        i64: ToSql<BigInt, DB>,
        i32: ToSql<Integer, DB>,
        bool: ToSql<Bool, DB>,
        Value: ToSql<DbJson, DB>,
    {
        let mut q = sql_query(self.sql.as_str()).into_boxed();
        for &i in &self.order {
            q = match &self.args[i] {
                Arg::Text(v) => q.bind::<Nullable<Text>, _>(v.as_deref()),
                Arg::BigInt(v) => q.bind::<Nullable<BigInt>, _>(*v),
                Arg::Int(v) => q.bind::<Nullable<Integer>, _>(*v),
                Arg::Bool(v) => q.bind::<Nullable<Bool>, _>(*v),
                Arg::Json(v) => q.bind::<Nullable<DbJson>, _>(v.as_ref()),
            };
        }
        q
    }
}

/// One page of a listing: the rows' query and the total's, with their binds.
pub(crate) struct Listing {
    rows: Stmt,
    count: Stmt,
}

impl Listing {
    /// `SELECT select from_where ORDER BY order`, a page of it, and its total. The
    /// filters are `$1`…`$n` (NULL for none).
    fn new(
        d: Dialect,
        select: &str,
        from_where: &str,
        order: &str,
        filters: Vec<Option<String>>,
        page: PageRequest,
    ) -> Self {
        let (limit, offset) = limit_offset(page);
        let (l, o) = (filters.len() + 1, filters.len() + 2);
        let filters: Vec<Arg> = filters.into_iter().map(Arg::Text).collect();
        let mut paged = filters.clone();
        paged.push(Arg::BigInt(Some(limit)));
        paged.push(Arg::BigInt(Some(offset)));
        Self {
            rows: Stmt::new(
                d,
                &format!("SELECT {select} {from_where} ORDER BY {order} LIMIT ${l} OFFSET ${o}"),
                paged,
            ),
            count: Stmt::new(d, &format!("SELECT count(*) AS n {from_where}"), filters),
        }
    }

    /// The rows of the page.
    pub(crate) fn rows(&self) -> &Stmt {
        &self.rows
    }

    /// The total over every page (`n`).
    pub(crate) fn count(&self) -> &Stmt {
        &self.count
    }
}

/// `JobStore::mark_killed` of run `run`: appends `bildad_core::KILLED_SUFFIX` to its
/// reason when it ended `FAILED` with one of `bildad_core::HARD_KILL_REASONS`.
pub(crate) fn mark_killed(d: Dialect, run: i64) -> Stmt {
    let mut args = vec![Arg::BigInt(Some(run))];
    args.extend(HARD_KILL_REASONS.map(|r| Arg::Text(Some(r.to_owned()))));
    args.push(Arg::Text(Some(KILLED_SUFFIX.to_owned())));
    Stmt::new(
        d,
        &format!(
            "UPDATE bildad_runs SET reason = {}
             WHERE id = $1 AND status = 'DONE' AND result = 'FAILED'
               AND reason IN ($2, $3, $4, $5, $6)",
            d.concat("reason", "$7")
        ),
        args,
    )
}

/// Whether an entry (waiting, or running: its run) uses the template `$1` (a scan that
/// stops at the first: see docs/STORAGE.md).
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) const TEMPLATE_USED: &str = "
SELECT count(*) AS n FROM (
    SELECT 1 AS x FROM bildad_queue WHERE template_id = $1
    UNION ALL
    SELECT 1 FROM bildad_runs WHERE status = 'RUNNING' AND template_id = $1
    LIMIT 1) used";

/// Every node, the most recently heard first.
pub(crate) const NODES: &str = "
SELECT instance_id, name, started_at, last_heartbeat_at, stopped_at
FROM bildad_nodes ORDER BY last_heartbeat_at DESC";

/// An entry's status and how many `AVAILABLE` entries come before it in run order.
/// Entries are read from the view `bildad_entries_v2` (migrations 000005, 000006): the waiting ones
/// are the queue's rows, the running ones their `RUNNING` runs.
pub(crate) fn position(d: Dialect) -> String {
    d.sql(
        "SELECT e.status,
                (SELECT count(*) FROM bildad_queue o
                 WHERE o.status = 'AVAILABLE'
                   AND (o.priority, o.inserted_at, o.id) < (e.priority, e.inserted_at, e.id)
                ) AS ahead
         FROM bildad_entries_v2 e WHERE e.job_run_identifier = $1",
    )
}

/// The queue's and the history's counts, at one instant of the database clock.
pub(crate) fn stats(d: Dialect) -> String {
    d.sql(
        "SELECT
            (SELECT count(*) FROM bildad_queue
             WHERE status = 'AVAILABLE' AND run_at <= {now}) AS available,
            (SELECT count(*) FROM bildad_queue
             WHERE status = 'AVAILABLE' AND run_at > {now}) AS scheduled,
            (SELECT count(*) FROM bildad_runs WHERE status = 'RUNNING') AS running,
            (SELECT count(*) FROM bildad_runs WHERE result = 'SUCCEEDED') AS succeeded,
            (SELECT count(*) FROM bildad_runs WHERE result = 'FAILED') AS failed,
            (SELECT count(*) FROM bildad_templates) AS templates",
    )
}

/// The INSERT of a new template; `RETURNING` it where the dialect can (MySQL reads it
/// back by code).
pub(crate) fn create_template(d: Dialect, new: &NewTemplate) -> Stmt {
    let returning = match d {
        Dialect::Mysql => String::new(),
        _ => format!("RETURNING {TEMPLATE_COLS}"),
    };
    Stmt::new(
        d,
        &format!(
            "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
                 default_timeout_seconds, default_max_retries, context_schema,
                 inserted_at, updated_at, queue)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {{now}}, {{now}}, $9)
             {returning}"
        ),
        vec![
            Arg::Text(Some(new.code.clone())),
            Arg::Text(Some(new.name.clone())),
            Arg::Text(Some(new.job_type.clone())),
            Arg::Bool(Some(new.active)),
            Arg::Int(Some(new.display_order)),
            Arg::Int(Some(new.default_timeout_seconds)),
            Arg::Int(Some(new.default_max_retries)),
            Arg::Json(Some(new.context_schema.clone())),
            Arg::Text(Some(new.queue.clone())),
        ],
    )
}

/// The UPDATE of the template `code` by `patch`; `RETURNING` it where the dialect can.
/// `updated_at` names the schema version: it moves forward even within the clock's
/// resolution.
pub(crate) fn update_template(d: Dialect, code: &str, patch: &TemplatePatch) -> Stmt {
    let (next_version, returning) = match d {
        Dialect::Postgres => (
            "greatest(now(), updated_at + interval '1 microsecond')",
            format!("RETURNING {TEMPLATE_COLS}"),
        ),
        Dialect::Sqlite => (
            "MAX({now}, updated_at + 1)",
            format!("RETURNING {TEMPLATE_COLS}"),
        ),
        Dialect::Mysql => (
            "GREATEST({now}, updated_at + INTERVAL 1 MICROSECOND)",
            String::new(),
        ),
    };
    Stmt::new(
        d,
        &format!(
            "UPDATE bildad_templates SET
                 name = COALESCE($2, name),
                 job_type = COALESCE($3, job_type),
                 context_schema = COALESCE($4, context_schema),
                 active = COALESCE($5, active),
                 display_order = COALESCE($6, display_order),
                 default_timeout_seconds = COALESCE($7, default_timeout_seconds),
                 default_max_retries = COALESCE($8, default_max_retries),
                 queue = COALESCE($9, queue),
                 updated_at = {next_version}
             WHERE code = $1
             {returning}"
        ),
        vec![
            Arg::Text(Some(code.to_owned())),
            Arg::Text(patch.name.clone()),
            Arg::Text(patch.job_type.clone()),
            Arg::Json(patch.context_schema.clone()),
            Arg::Bool(patch.active),
            Arg::Int(patch.display_order),
            Arg::Int(patch.default_timeout_seconds),
            Arg::Int(patch.default_max_retries),
            Arg::Text(patch.queue.clone()),
        ],
    )
}

/// Templates by display order, then code.
pub(crate) fn templates(d: Dialect, filter: TemplateFilter, page: PageRequest) -> Listing {
    let predicate = match filter {
        TemplateFilter::Active => "active",
        TemplateFilter::Inactive => "NOT active",
        TemplateFilter::All => "TRUE",
    };
    Listing::new(
        d,
        TEMPLATE_COLS,
        &format!("FROM bildad_templates WHERE {predicate}"),
        "display_order, code",
        Vec::new(),
        page,
    )
}

/// Entries in run order, of a status, a template's code and a queue (each optional).
pub(crate) fn entries(d: Dialect, filter: EntryFilter, page: PageRequest) -> Listing {
    Listing::new(
        d,
        ENTRY_COLS,
        "FROM bildad_entries_v2 e
         JOIN bildad_templates t ON t.id = e.template_id
         WHERE ($1 IS NULL OR e.status = $1) AND ($2 IS NULL OR t.code = $2)
           AND ($3 IS NULL OR e.queue = $3)",
        "e.priority, e.inserted_at, e.id",
        vec![
            filter.status.map(|s| s.as_str().to_string()),
            filter.template,
            filter.queue,
        ],
        page,
    )
}

/// Runs, newest first, by identifier, status, result, template and node (instance id or
/// name), each optional.
pub(crate) fn runs(d: Dialect, filter: RunFilter, page: PageRequest) -> Listing {
    Listing::new(
        d,
        RUN_COLS,
        "FROM bildad_runs
         WHERE ($1 IS NULL OR job_run_identifier = $1)
           AND ($2 IS NULL OR status = $2)
           AND ($3 IS NULL OR result = $3)
           AND ($4 IS NULL OR template = $4)
           AND ($5 IS NULL OR node = $5 OR node_name = $5)
           AND ($6 IS NULL OR queue = $6)",
        "started_at DESC, id DESC",
        vec![
            filter.identifier,
            filter.status.map(|s| s.as_str().to_string()),
            filter.result.map(|s| s.as_str().to_string()),
            filter.template,
            filter.node,
            filter.queue,
        ],
        page,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_numbers_its_placeholders_with_a_question_mark() {
        assert_eq!(
            Dialect::Sqlite.sql("a = $1 OR b = $12 AND c = '$x'"),
            "a = ?1 OR b = ?12 AND c = '$x'"
        );
        assert_eq!(Dialect::Postgres.sql("a = $1"), "a = $1");
        assert_eq!(Dialect::Postgres.sql("t < {now}"), "t < now()");
        assert_eq!(
            Dialect::Sqlite.sql("t < {now}"),
            format!("t < {SQLITE_NOW}")
        );
    }

    #[test]
    fn mysql_binds_each_occurrence() {
        let (sql, order) =
            Dialect::Mysql.numbered("($1 IS NULL OR a = $1) AND b = $12 AND c = '$x'");
        assert_eq!(sql, "(? IS NULL OR a = ?) AND b = ? AND c = '$x'");
        assert_eq!(order, vec![0, 0, 11]);
        assert_eq!(
            Dialect::Mysql.sql("CAST(x AS BIGINT) < {now}"),
            format!("CAST(x AS SIGNED) < {MYSQL_NOW}")
        );
    }
}
