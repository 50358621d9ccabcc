//! Templates on PostgreSQL: create, read, update, delete (guarded against entries that
//! still use them) and list.

use super::PgStore;
use super::prepared::Cached;
use super::sql::TEMPLATE_USED;
use crate::dialect::{self, Dialect};
use crate::errors::{
    Fail, db_error, is_unique_violation, not_found_is_none, template_exists, template_in_use,
    template_not_found,
};
use crate::rows::{CountRow, IdRow, TEMPLATE_COLS, TemplateRow};
use bildad_core::{
    JobTemplate, NewTemplate, Page, PageRequest, StoreResult, TemplateFilter, TemplatePatch,
};
use diesel::pg::Pg;
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

pub(super) async fn create_template(store: &PgStore, new: NewTemplate) -> StoreResult<JobTemplate> {
    new.validate()?;
    let mut conn = store.conn().await?;
    let row: TemplateRow = dialect::create_template(Dialect::Postgres, &new)
        .query::<Pg>()
        .get_result(&mut conn)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => template_exists(&new.code),
            e => db_error(e),
        })?;
    Ok(row.into())
}

pub(super) async fn get_template(store: &PgStore, code: &str) -> StoreResult<JobTemplate> {
    let mut conn = store.conn().await?;
    let row: Option<TemplateRow> = Cached(
        sql_query(format!(
            "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = $1"
        ))
        .bind::<Text, _>(code),
    )
    .get_result(&mut conn)
    .await
    .map(Some)
    .or_else(not_found_is_none)?;
    row.map(Into::into).ok_or_else(|| template_not_found(code))
}

pub(super) async fn update_template(
    store: &PgStore,
    code: &str,
    patch: TemplatePatch,
) -> StoreResult<JobTemplate> {
    patch.validate()?;
    let mut conn = store.conn().await?;
    let row: Option<TemplateRow> = dialect::update_template(Dialect::Postgres, code, &patch)
        .query::<Pg>()
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
    row.map(Into::into).ok_or_else(|| template_not_found(code))
}

pub(super) async fn delete_template(store: &PgStore, code: &str) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    // No foreign key guards the queue's template_id (migration 000003). Lock the
    // template first: FOR UPDATE waits for every enqueue holding it FOR KEY SHARE
    // and keeps new ones out; then the next statement's fresh snapshot sees every
    // entry those enqueues committed.
    conn.transaction::<_, Fail, _>(async |c| {
        let id = sql_query("SELECT id FROM bildad_templates WHERE code = $1 FOR UPDATE")
            .bind::<Text, _>(code)
            .get_result::<IdRow>(c)
            .await
            .map(|r| r.id)
            .map_err(|e| match e {
                DieselError::NotFound => Fail(template_not_found(code)),
                e => Fail::from(e),
            })?;
        let used: CountRow = sql_query(TEMPLATE_USED)
            .bind::<BigInt, _>(id)
            .get_result(c)
            .await?;
        if used.n > 0 {
            return Err(Fail(template_in_use(code)));
        }
        sql_query("DELETE FROM bildad_templates WHERE id = $1")
            .bind::<BigInt, _>(id)
            .execute(c)
            .await?;
        Ok(())
    })
    .await
    .map_err(|f| f.0)
}

pub(super) async fn list_templates(
    store: &PgStore,
    filter: TemplateFilter,
    page: PageRequest,
) -> StoreResult<Page<JobTemplate>> {
    let l = dialect::templates(Dialect::Postgres, filter, page);
    let (rows, total) = store.listing::<TemplateRow>(&l).await?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        page,
    ))
}
