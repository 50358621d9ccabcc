//! The pages both dialects read alike — templates, entries and runs, in their order, with
//! a total — as one SQL text and one set of binds. The text is written with PostgreSQL's
//! `$n` placeholders; [`Dialect::sql`] gives SQLite's `?n`. Every filter is a nullable
//! text (NULL: no filter), so the backends differ only in how they run the queries.

use crate::rows::{ENTRY_COLS, RUN_COLS, TEMPLATE_COLS};
use crate::shared::limit_offset;
use bildad_core::{EntryStatus, PageRequest, RunFilter, TemplateFilter};
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_query;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};

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
    /// `sql`, written with `$n` placeholders, in this dialect.
    pub(crate) fn sql(self, sql: &str) -> String {
        match self {
            Dialect::Postgres => sql.to_string(),
            Dialect::Sqlite => {
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

/// Entries in run order, of a status and a template's code (each optional).
pub(crate) fn entries(
    d: Dialect,
    status: Option<EntryStatus>,
    template: Option<String>,
    page: PageRequest,
) -> Listing {
    Listing::new(
        d,
        ENTRY_COLS,
        "FROM bildad_queue e
         JOIN bildad_templates t ON t.id = e.template_id
         WHERE ($1 IS NULL OR e.status = $1) AND ($2 IS NULL OR t.code = $2)",
        "e.priority, e.inserted_at, e.id",
        vec![status.map(|s| s.as_str().to_string()), template],
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
           AND ($5 IS NULL OR node = $5 OR node_name = $5)",
        "started_at DESC, id DESC",
        vec![
            filter.identifier,
            filter.status.map(|s| s.as_str().to_string()),
            filter.result.map(|s| s.as_str().to_string()),
            filter.template,
            filter.node,
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
    }
}
