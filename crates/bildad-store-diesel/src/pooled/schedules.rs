//! Schedules' reads and changes that PostgreSQL and MySQL write alike, as the macro each
//! backend expands (the evaluation and the insert stay each backend's).

/// Schedules' reads and changes (the evaluation and the insert are each backend's). The
/// expanding module supplies `write(c, &schedule) -> Result<Schedule, Fail>` (every
/// changeable column, read back) and `db_now(c)` (the database clock).
macro_rules! pooled_schedules {
    ($store:ty, $conn:ty, $db:ty, $d:expr) => {
        /// The template named by a schedule, unless its code already failed the field
        /// checks (a code with a NUL cannot even be looked up).
        async fn template_of(
            c: &mut $conn,
            code: &str,
            v: &[bildad_core::Violation],
        ) -> bildad_core::StoreResult<Option<bildad_core::JobTemplate>> {
            use diesel_async::RunQueryDsl;
            if v.iter().any(|x| x.pointer == "/template") {
                return Ok(None);
            }
            let row: Option<$crate::rows::TemplateRow> = $crate::dialect::Stmt::new(
                $d,
                &format!(
                    "SELECT {} FROM bildad_templates WHERE code = $1",
                    $crate::rows::TEMPLATE_COLS
                ),
                vec![$crate::dialect::Arg::Text(Some(code.to_owned()))],
            )
            .query::<$db>()
            .get_result(c)
            .await
            .map(Some)
            .or_else($crate::errors::not_found_is_none)?;
            Ok(row.map(Into::into))
        }

        /// The schedule `name`, locked until the transaction ends when `lock`.
        async fn read(
            c: &mut $conn,
            name: &str,
            lock: bool,
        ) -> bildad_core::StoreResult<bildad_core::Schedule> {
            use diesel_async::RunQueryDsl;
            let row: Option<$crate::schedules::ScheduleRow> = $crate::dialect::Stmt::new(
                $d,
                &format!(
                    "SELECT {} FROM bildad_schedules WHERE name = $1 {}",
                    $crate::schedules::SCHEDULE_COLS,
                    if lock { "FOR UPDATE" } else { "" }
                ),
                vec![$crate::dialect::Arg::Text(Some(name.to_owned()))],
            )
            .query::<$db>()
            .get_result(c)
            .await
            .map(Some)
            .or_else($crate::errors::not_found_is_none)?;
            row.map(Into::into)
                .ok_or_else(|| $crate::schedules::schedule_not_found(name))
        }

        pub(super) async fn get_schedule(
            store: &$store,
            name: &str,
        ) -> bildad_core::StoreResult<bildad_core::Schedule> {
            read(&mut *store.conn().await?, name, false).await
        }

        pub(super) async fn list_schedules(
            store: &$store,
            page: bildad_core::PageRequest,
        ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::Schedule>> {
            use diesel_async::RunQueryDsl;
            use $crate::dialect::{Arg, Stmt};
            let mut conn = store.conn().await?;
            let (limit, offset) = $crate::shared::limit_offset(page);
            let rows: Vec<$crate::schedules::ScheduleRow> = Stmt::new(
                $d,
                &format!(
                    "SELECT {} FROM bildad_schedules ORDER BY name LIMIT $1 OFFSET $2",
                    $crate::schedules::SCHEDULE_COLS
                ),
                vec![Arg::BigInt(Some(limit)), Arg::BigInt(Some(offset))],
            )
            .query::<$db>()
            .load(&mut conn)
            .await
            .map_err($crate::errors::db_error)?;
            let total: $crate::rows::CountRow =
                diesel::sql_query("SELECT count(*) AS n FROM bildad_schedules")
                    .get_result(&mut conn)
                    .await
                    .map_err($crate::errors::db_error)?;
            Ok(bildad_core::Page::new(
                rows.into_iter().map(Into::into).collect(),
                $crate::shared::count(total.n),
                page,
            ))
        }

        pub(super) async fn update_schedule(
            store: &$store,
            name: &str,
            patch: bildad_core::SchedulePatch,
        ) -> bildad_core::StoreResult<bildad_core::Schedule> {
            use diesel_async::AsyncConnection;
            let mut conn = store.conn().await?;
            let schemas = &store.schemas;
            conn.transaction::<_, $crate::errors::Fail, _>(async |c| {
                let mut s = read(c, name, true).await?;
                let mut v = Vec::new();
                let (firing, sample, reclock) = patch.apply(&mut s, &mut v);
                let template = template_of(c, &s.template, &v).await?;
                let firing = bildad_core::schedule::check_schedule_template(
                    schemas,
                    template.as_ref(),
                    &sample,
                    firing,
                    v,
                )?;
                if reclock {
                    s.next_fire_at = firing.next_after(db_now(c).await?);
                }
                write(c, &s).await
            })
            .await
            .map_err(|f| f.0)
        }

        pub(super) async fn delete_schedule(
            store: &$store,
            name: &str,
        ) -> bildad_core::StoreResult<()> {
            use diesel_async::RunQueryDsl;
            let n = $crate::dialect::Stmt::new(
                $d,
                "DELETE FROM bildad_schedules WHERE name = $1",
                vec![$crate::dialect::Arg::Text(Some(name.to_owned()))],
            )
            .query::<$db>()
            .execute(&mut *store.conn().await?)
            .await
            .map_err($crate::errors::db_error)?;
            if n == 0 {
                return Err($crate::schedules::schedule_not_found(name));
            }
            Ok(())
        }

        pub(super) async fn rewind_schedule(
            store: &$store,
            name: &str,
            from: bildad_core::Timestamp,
        ) -> bildad_core::StoreResult<bildad_core::Schedule> {
            use diesel_async::AsyncConnection;
            let mut conn = store.conn().await?;
            conn.transaction::<_, $crate::errors::Fail, _>(async |c| {
                let mut s = read(c, name, true).await?;
                s.next_fire_at = s.firing()?.next_after(from);
                write(c, &s).await
            })
            .await
            .map_err(|f| f.0)
        }
    };
}
pub(crate) use pooled_schedules;
