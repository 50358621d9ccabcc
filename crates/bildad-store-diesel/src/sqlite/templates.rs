//! Templates on SQLite: create, read, update, delete (the foreign key guards entries
//! that still use them) and list.

use super::{SqliteStore, optional};
use crate::dialect::{self, Dialect};
use crate::errors::{
    Fail, is_foreign_key_violation, is_unique_violation, template_exists, template_in_use,
    template_not_found,
};
use crate::rows::{CountRow, TEMPLATE_COLS, TemplateRow};
use bildad_core::{
    JobTemplate, NewTemplate, Page, PageRequest, StoreResult, TemplateFilter, TemplatePatch,
};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use diesel::{RunQueryDsl, sql_query};

pub(super) async fn create_template(
    store: &SqliteStore,
    new: NewTemplate,
) -> StoreResult<JobTemplate> {
    new.validate()?;
    store
        .run(move |c| {
            let row: TemplateRow = dialect::create_template(Dialect::Sqlite, &new)
                .query::<Sqlite>()
                .get_result(c)
                .map_err(|e| match e {
                    e if is_unique_violation(&e) => Fail(template_exists(&new.code)),
                    e => e.into(),
                })?;
            Ok(row.into())
        })
        .await
}

pub(super) async fn get_template(store: &SqliteStore, code: &str) -> StoreResult<JobTemplate> {
    let code = code.to_string();
    store
        .run(move |c| {
            optional(
                sql_query(format!(
                    "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ?1"
                ))
                .bind::<Text, _>(&code)
                .get_result::<TemplateRow>(c),
            )?
            .map(Into::into)
            .ok_or_else(|| Fail(template_not_found(&code)))
        })
        .await
}

pub(super) async fn update_template(
    store: &SqliteStore,
    code: &str,
    patch: TemplatePatch,
) -> StoreResult<JobTemplate> {
    patch.validate()?;
    let code = code.to_string();
    store
        .run(move |c| {
            optional(
                dialect::update_template(Dialect::Sqlite, &code, &patch)
                    .query::<Sqlite>()
                    .get_result::<TemplateRow>(c),
            )?
            .map(Into::into)
            .ok_or_else(|| Fail(template_not_found(&code)))
        })
        .await
}

pub(super) async fn delete_template(store: &SqliteStore, code: &str) -> StoreResult<()> {
    let code = code.to_string();
    store
        .write(move |c| {
            // A running entry is its run, which the queue's FOREIGN KEY does not see.
            let running: CountRow = sql_query(
                "SELECT count(*) AS n FROM bildad_runs
                 WHERE status = 'RUNNING'
                   AND template_id = (SELECT id FROM bildad_templates WHERE code = ?1)",
            )
            .bind::<Text, _>(&code)
            .get_result(c)?;
            if running.n > 0 {
                return Err(Fail(template_in_use(&code)));
            }
            let n = sql_query("DELETE FROM bildad_templates WHERE code = ?1")
                .bind::<Text, _>(&code)
                .execute(c)
                .map_err(|e| match e {
                    e if is_foreign_key_violation(&e) => Fail(template_in_use(&code)),
                    e => e.into(),
                })?;
            if n == 0 {
                return Err(Fail(template_not_found(&code)));
            }
            Ok(())
        })
        .await
}

pub(super) async fn list_templates(
    store: &SqliteStore,
    filter: TemplateFilter,
    page: PageRequest,
) -> StoreResult<Page<JobTemplate>> {
    let l = dialect::templates(Dialect::Sqlite, filter, page);
    store
        .run(move |c| {
            let (rows, total) = super::listing::<TemplateRow>(c, &l)?;
            Ok(Page::new(
                rows.into_iter().map(Into::into).collect(),
                total,
                page,
            ))
        })
        .await
}
