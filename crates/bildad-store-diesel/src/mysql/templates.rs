//! Templates on MariaDB: create, read, update, delete (guarded against entries that
//! still use them) and list. MariaDB has no `UPDATE … RETURNING`: a write reads its row
//! back in the same transaction.

use super::MysqlStore;
use crate::dialect::{self, Dialect};
use crate::errors::{
    Fail, is_unique_violation, not_found_is_none, template_exists, template_not_found,
};
use crate::rows::{TEMPLATE_COLS, TemplateRow};
use bildad_core::{JobTemplate, NewTemplate, StoreResult, TemplatePatch};
use diesel::mysql::Mysql;
use diesel::sql_query;
use diesel::sql_types::Text;
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

crate::pooled::pooled_templates!(MysqlStore, diesel::mysql::Mysql, Dialect::Mysql);
