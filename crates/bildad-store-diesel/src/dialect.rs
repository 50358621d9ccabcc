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
}

impl Dialect {
    /// `sql`, written with `$n` placeholders and `{now}`, in this dialect.
    pub(crate) fn sql(self, sql: &str) -> String {
        match self {
            Dialect::Postgres => sql.replace("{now}", "now()"),
            Dialect::Sqlite => {
                let sql = sql.replace("{now}", SQLITE_NOW);
                let mut out = String::with_capacity(sql.len());
                let mut chars = sql.chars().peekable();
                while let Some(c) = chars.next() {
                    let numbered = c == '$' && chars.peek().is_some_and(char::is_ascii_digit);
                    out.push(if numbered { '?' } else { c });
                }
                out
            }
        }
    }
}

/// One page of a listing: the rows' query and the total's, with their binds.
pub(crate) struct Listing {
    rows: String,
    count: String,
    /// `$1`…`$n`: the filters, NULL for none.
    filters: Vec<Option<String>>,
    /// `$n+1`, `$n+2` of the rows' query.
    limit: i64,
    offset: i64,
}

impl Listing {
    /// `SELECT select from_where ORDER BY order`, a page of it, and its total.
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
        Self {
            rows: d.sql(&format!(
                "SELECT {select} {from_where} ORDER BY {order} LIMIT ${l} OFFSET ${o}"
            )),
            count: d.sql(&format!("SELECT count(*) AS n {from_where}")),
            filters,
            limit,
            offset,
        }
    }

    /// The rows of the page.
    pub(crate) fn rows<DB>(&self) -> BoxedSqlQuery<'_, DB, SqlQuery>
    where
        DB: Backend + HasSqlType<Text> + HasSqlType<BigInt>,
        str: ToSql<Text, DB>,
        i64: ToSql<BigInt, DB>,
    {
        self.bind_filters(sql_query(&self.rows).into_boxed())
            .bind::<BigInt, _>(self.limit)
            .bind::<BigInt, _>(self.offset)
    }

    /// The total over every page (`n`).
    pub(crate) fn count<DB>(&self) -> BoxedSqlQuery<'_, DB, SqlQuery>
    where
        DB: Backend + HasSqlType<Text>,
        str: ToSql<Text, DB>,
    {
        self.bind_filters(sql_query(&self.count).into_boxed())
    }

    fn bind_filters<'a, DB>(
        &'a self,
        mut q: BoxedSqlQuery<'a, DB, SqlQuery>,
    ) -> BoxedSqlQuery<'a, DB, SqlQuery>
    where
        DB: Backend + HasSqlType<Text>,
        str: ToSql<Text, DB>,
    {
        for f in &self.filters {
            q = q.bind::<Nullable<Text>, _>(f.as_deref());
        }
        q
    }
}

/// `JobStore::mark_killed` of run `run`: appends `bildad_core::KILLED_SUFFIX` to its
/// reason when it ended `FAILED` with one of `bildad_core::HARD_KILL_REASONS`.
pub(crate) fn mark_killed<DB>(d: Dialect, run: i64) -> BoxedSqlQuery<'static, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
{
    let [a, b, c, e, f] = HARD_KILL_REASONS;
    sql_query(d.sql(
        "UPDATE bildad_runs SET reason = reason || $7
         WHERE id = $1 AND status = 'DONE' AND result = 'FAILED'
           AND reason IN ($2, $3, $4, $5, $6)",
    ))
    .into_boxed()
    .bind::<BigInt, _>(run)
    .bind::<Text, _>(a)
    .bind::<Text, _>(b)
    .bind::<Text, _>(c)
    .bind::<Text, _>(e)
    .bind::<Text, _>(f)
    .bind::<Text, _>(KILLED_SUFFIX)
}

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

/// The INSERT of a new template, returning it.
pub(crate) fn create_template<'a, DB>(
    d: Dialect,
    new: &'a NewTemplate,
) -> BoxedSqlQuery<'a, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Bool> + HasSqlType<Integer> + HasSqlType<DbJson>,
    str: ToSql<Text, DB>,
    bool: ToSql<Bool, DB>,
    i32: ToSql<Integer, DB>,
    Value: ToSql<DbJson, DB>,
{
    sql_query(d.sql(&format!(
        "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
             default_timeout_seconds, default_max_retries, context_schema,
             inserted_at, updated_at, queue)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {{now}}, {{now}}, $9)
         RETURNING {TEMPLATE_COLS}"
    )))
    .into_boxed()
    .bind::<Text, _>(new.code.as_str())
    .bind::<Text, _>(new.name.as_str())
    .bind::<Text, _>(new.job_type.as_str())
    .bind::<Bool, _>(new.active)
    .bind::<Integer, _>(new.display_order)
    .bind::<Integer, _>(new.default_timeout_seconds)
    .bind::<Integer, _>(new.default_max_retries)
    .bind::<DbJson, _>(&new.context_schema)
    .bind::<Text, _>(new.queue.as_str())
}

/// The UPDATE of the template `code` by `patch`, returning it. `updated_at` names the
/// schema version: it moves forward even within the clock's resolution.
pub(crate) fn update_template<'a, DB>(
    d: Dialect,
    code: &'a str,
    patch: &'a TemplatePatch,
) -> BoxedSqlQuery<'a, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Bool> + HasSqlType<Integer> + HasSqlType<DbJson>,
    str: ToSql<Text, DB>,
    bool: ToSql<Bool, DB>,
    i32: ToSql<Integer, DB>,
    Value: ToSql<DbJson, DB>,
{
    let next_version = match d {
        Dialect::Postgres => "greatest(now(), updated_at + interval '1 microsecond')",
        Dialect::Sqlite => "MAX({now}, updated_at + 1)",
    };
    sql_query(d.sql(&format!(
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
         RETURNING {TEMPLATE_COLS}"
    )))
    .into_boxed()
    .bind::<Text, _>(code)
    .bind::<Nullable<Text>, _>(patch.name.as_deref())
    .bind::<Nullable<Text>, _>(patch.job_type.as_deref())
    .bind::<Nullable<DbJson>, _>(patch.context_schema.as_ref())
    .bind::<Nullable<Bool>, _>(patch.active)
    .bind::<Nullable<Integer>, _>(patch.display_order)
    .bind::<Nullable<Integer>, _>(patch.default_timeout_seconds)
    .bind::<Nullable<Integer>, _>(patch.default_max_retries)
    .bind::<Nullable<Text>, _>(patch.queue.as_deref())
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
}
