//! Templates on PostgreSQL: create, read, update, delete (guarded against entries that
//! still use them) and list.

use super::PgStore;
use super::prepared::Cached;
use super::sql::TEMPLATE_USED;
use crate::errors::{
    Fail, db_error, is_unique_violation, not_found_is_none, template_exists, template_in_use,
    template_not_found,
};
use crate::listing::{self, Dialect};
use crate::rows::{CountRow, IdRow, TEMPLATE_COLS, TemplateRow};
use bildad_core::{
    JobTemplate, NewTemplate, Page, PageRequest, StoreResult, TemplateFilter, TemplatePatch,
};
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

pub(super) async fn create_template(store: &PgStore, new: NewTemplate) -> StoreResult<JobTemplate> {
    new.validate()?;
    let mut conn = store.conn().await?;
    let row: TemplateRow = sql_query(format!(
        "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
            default_timeout_seconds, default_max_retries, context_schema,
            inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now())
         RETURNING {TEMPLATE_COLS}"
    ))
    .bind::<Text, _>(&new.code)
    .bind::<Text, _>(&new.name)
    .bind::<Text, _>(&new.job_type)
    .bind::<Bool, _>(new.active)
    .bind::<Integer, _>(new.display_order)
    .bind::<Integer, _>(new.default_timeout_seconds)
    .bind::<Integer, _>(new.default_max_retries)
    .bind::<Jsonb, _>(&new.context_schema)
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
    // updated_at names the schema version: it must change even within a microsecond.
    let row: Option<TemplateRow> = sql_query(format!(
        "UPDATE bildad_templates SET
            name = COALESCE($2, name),
            job_type = COALESCE($3, job_type),
            context_schema = COALESCE($4, context_schema),
            active = COALESCE($5, active),
            display_order = COALESCE($6, display_order),
            default_timeout_seconds = COALESCE($7, default_timeout_seconds),
            default_max_retries = COALESCE($8, default_max_retries),
            updated_at = greatest(now(), updated_at + interval '1 microsecond')
         WHERE code = $1
         RETURNING {TEMPLATE_COLS}"
    ))
    .bind::<Text, _>(code)
    .bind::<Nullable<Text>, _>(patch.name)
    .bind::<Nullable<Text>, _>(patch.job_type)
    .bind::<Nullable<Jsonb>, _>(patch.context_schema)
    .bind::<Nullable<Bool>, _>(patch.active)
    .bind::<Nullable<Integer>, _>(patch.display_order)
    .bind::<Nullable<Integer>, _>(patch.default_timeout_seconds)
    .bind::<Nullable<Integer>, _>(patch.default_max_retries)
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
    let l = listing::templates(Dialect::Postgres, filter, page);
    let (rows, total) = store.listing::<TemplateRow>(&l).await?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        page,
    ))
}
