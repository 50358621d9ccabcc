//! Templates on MariaDB: create, read, update, delete (guarded against entries that
//! still use them) and list. MariaDB has no `UPDATE … RETURNING`: a write reads its row
//! back in the same transaction.

use super::MysqlStore;
use super::sql::TEMPLATE_USED;
use crate::dialect::{self, Dialect};
use crate::errors::{
    Fail, is_unique_violation, not_found_is_none, template_exists, template_in_use,
    template_not_found,
};
use crate::rows::{CountRow, IdRow, TEMPLATE_COLS, TemplateRow};
use bildad_core::{
    JobTemplate, NewTemplate, Page, PageRequest, StoreResult, TemplateFilter, TemplatePatch,
};
use diesel::mysql::Mysql;
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

/// The template `code`, if any.
async fn read(c: &mut AsyncMysqlConnection, code: &str) -> Result<Option<TemplateRow>, Fail> {
    Ok(sql_query(format!(
        "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ?"
    ))
    .bind::<Text, _>(code)
    .get_result(c)
    .await
    .map(Some)
    .or_else(not_found_is_none)?)
}

pub(super) async fn create_template(
    store: &MysqlStore,
    new: NewTemplate,
) -> StoreResult<JobTemplate> {
    new.validate()?;
    let mut conn = store.conn().await?;
    let row = conn
        .transaction::<_, Fail, _>(async |c| {
            dialect::create_template(Dialect::Mysql, &new)
                .query::<Mysql>()
                .execute(c)
                .await
                .map_err(|e| match e {
                    e if is_unique_violation(&e) => Fail(template_exists(&new.code)),
                    e => Fail::from(e),
                })?;
            read(c, &new.code)
                .await?
                .ok_or_else(|| Fail(template_not_found(&new.code)))
        })
        .await
        .map_err(|f| f.0)?;
    Ok(row.into())
}

pub(super) async fn get_template(store: &MysqlStore, code: &str) -> StoreResult<JobTemplate> {
    let mut conn = store.conn().await?;
    let row = read(&mut conn, code).await.map_err(|f| f.0)?;
    row.map(Into::into).ok_or_else(|| template_not_found(code))
}

pub(super) async fn update_template(
    store: &MysqlStore,
    code: &str,
    patch: TemplatePatch,
) -> StoreResult<JobTemplate> {
    patch.validate()?;
    let mut conn = store.conn().await?;
    let row = conn
        .transaction::<_, Fail, _>(async |c| {
            dialect::update_template(Dialect::Mysql, code, &patch)
                .query::<Mysql>()
                .execute(c)
                .await?;
            read(c, code).await
        })
        .await
        .map_err(|f| f.0)?;
    row.map(Into::into).ok_or_else(|| template_not_found(code))
}

pub(super) async fn delete_template(store: &MysqlStore, code: &str) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    // No foreign key guards the queue's template_id. Lock the template first: FOR UPDATE
    // waits for every enqueue holding it LOCK IN SHARE MODE and keeps new ones out; the
    // next statement (READ COMMITTED) then sees every entry those enqueues committed.
    conn.transaction::<_, Fail, _>(async |c| {
        let id = sql_query("SELECT id FROM bildad_templates WHERE code = ? FOR UPDATE")
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
            .bind::<BigInt, _>(id)
            .get_result(c)
            .await?;
        if used.n > 0 {
            return Err(Fail(template_in_use(code)));
        }
        sql_query("DELETE FROM bildad_templates WHERE id = ?")
            .bind::<BigInt, _>(id)
            .execute(c)
            .await?;
        Ok(())
    })
    .await
    .map_err(|f| f.0)
}

pub(super) async fn list_templates(
    store: &MysqlStore,
    filter: TemplateFilter,
    page: PageRequest,
) -> StoreResult<Page<JobTemplate>> {
    let l = dialect::templates(Dialect::Mysql, filter, page);
    let (rows, total) = store.listing::<TemplateRow>(&l).await?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        page,
    ))
}
