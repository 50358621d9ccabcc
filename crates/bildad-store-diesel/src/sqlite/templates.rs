//! Templates on SQLite: create, read, update, delete (the foreign key guards entries
//! that still use them) and list.

use super::sql::NOW;
use super::{SqliteStore, optional};
use crate::errors::{
    Fail, is_foreign_key_violation, is_unique_violation, template_exists, template_in_use,
    template_not_found,
};
use crate::listing::{self, Dialect};
use crate::rows::{TEMPLATE_COLS, TemplateRow};
use bildad_core::{
    JobTemplate, NewTemplate, Page, PageRequest, StoreResult, TemplateFilter, TemplatePatch,
};
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel::{RunQueryDsl, sql_query};

pub(super) async fn create_template(
    store: &SqliteStore,
    new: NewTemplate,
) -> StoreResult<JobTemplate> {
    new.validate()?;
    store
        .run(move |c| {
            let row: TemplateRow = sql_query(format!(
                "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
                default_timeout_seconds, default_max_retries, context_schema,
                inserted_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, {NOW})
             RETURNING {TEMPLATE_COLS}"
            ))
            .bind::<Text, _>(&new.code)
            .bind::<Text, _>(&new.name)
            .bind::<Text, _>(&new.job_type)
            .bind::<Bool, _>(new.active)
            .bind::<Integer, _>(new.display_order)
            .bind::<Integer, _>(new.default_timeout_seconds)
            .bind::<Integer, _>(new.default_max_retries)
            .bind::<Text, _>(new.context_schema.to_string())
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
            // updated_at names the schema version: it must change even within the
            // clock's resolution.
            optional(
                sql_query(format!(
                    "UPDATE bildad_templates SET
                    name = COALESCE(?2, name),
                    job_type = COALESCE(?3, job_type),
                    context_schema = COALESCE(?4, context_schema),
                    active = COALESCE(?5, active),
                    display_order = COALESCE(?6, display_order),
                    default_timeout_seconds = COALESCE(?7, default_timeout_seconds),
                    default_max_retries = COALESCE(?8, default_max_retries),
                    updated_at = MAX({NOW}, updated_at + 1)
                 WHERE code = ?1
                 RETURNING {TEMPLATE_COLS}"
                ))
                .bind::<Text, _>(&code)
                .bind::<Nullable<Text>, _>(patch.name)
                .bind::<Nullable<Text>, _>(patch.job_type)
                .bind::<Nullable<Text>, _>(patch.context_schema.map(|s| s.to_string()))
                .bind::<Nullable<Bool>, _>(patch.active)
                .bind::<Nullable<Integer>, _>(patch.display_order)
                .bind::<Nullable<Integer>, _>(patch.default_timeout_seconds)
                .bind::<Nullable<Integer>, _>(patch.default_max_retries)
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
        .run(move |c| {
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
    let l = listing::templates(Dialect::Sqlite, filter, page);
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
