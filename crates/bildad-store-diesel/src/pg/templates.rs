//! Templates on PostgreSQL: create, read, update, delete (guarded against entries that
//! still use them) and list.

use super::PgStore;
use super::prepared::Cached;
use crate::dialect::{self, Dialect};
use crate::errors::{
    db_error, is_unique_violation, not_found_is_none, template_exists, template_not_found,
};
use crate::rows::{TEMPLATE_COLS, TemplateRow};
use bildad_core::{JobTemplate, NewTemplate, StoreResult, TemplatePatch};
use diesel::pg::Pg;
use diesel::sql_query;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

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

crate::pooled::pooled_templates!(PgStore, diesel::pg::Pg, Dialect::Postgres);
