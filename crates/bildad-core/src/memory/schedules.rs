//! `MemoryStore`'s schedules (SPEC §9). The one lock makes each evaluation atomic: the
//! advance and its entries are written together, or not at all.

use super::MemoryStore;
use super::state::paginate;
use crate::error::{StoreError, StoreResult};
use crate::model::{Page, PageRequest, Timestamp};
use crate::schedule::{
    EvaluateSchedules, NewSchedule, Schedule, ScheduleEvaluation, SchedulePatch,
    check_schedule_template, plan_evaluation,
};

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("schedule {name:?}"))
}

impl MemoryStore {
    pub(super) fn schedule_create(&self, new: NewSchedule) -> StoreResult<Schedule> {
        let mut v = Vec::new();
        let (firing, sample) = new.check(&mut v);
        let mut st = self.lock();
        let template = st.template_by_code(&sample.template);
        let firing = check_schedule_template(&self.schemas, template, &sample, firing, v)?;
        if st.schedules.contains_key(&new.name) {
            return Err(StoreError::Conflict(format!(
                "a schedule named {:?} exists",
                new.name
            )));
        }
        let now = st.now();
        let s = Schedule {
            name: new.name,
            cron: new.cron,
            timezone: new.timezone,
            template: new.template,
            context: new.context,
            options: new.options,
            active: new.active,
            last_fire_at: None,
            next_fire_at: firing.next_after(now),
            inserted_at: now,
            updated_at: now,
        };
        st.schedules.insert(s.name.clone(), s.clone());
        Ok(s)
    }

    pub(super) fn schedule_get(&self, name: &str) -> StoreResult<Schedule> {
        self.lock()
            .schedules
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    pub(super) fn schedule_list(&self, page: PageRequest) -> Page<Schedule> {
        paginate(self.lock().schedules.values().cloned().collect(), page)
    }

    pub(super) fn schedule_update(
        &self,
        name: &str,
        patch: SchedulePatch,
    ) -> StoreResult<Schedule> {
        let mut st = self.lock();
        let mut s = st
            .schedules
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let mut v = Vec::new();
        let (firing, sample, reclock) = patch.apply(&mut s, &mut v);
        let template = st.template_by_code(&sample.template);
        let firing = check_schedule_template(&self.schemas, template, &sample, firing, v)?;
        let now = st.now();
        if reclock {
            s.next_fire_at = firing.next_after(now);
        }
        s.updated_at = now;
        st.schedules.insert(s.name.clone(), s.clone());
        Ok(s)
    }

    pub(super) fn schedule_delete(&self, name: &str) -> StoreResult<()> {
        self.lock()
            .schedules
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    pub(super) fn schedule_rewind(&self, name: &str, from: Timestamp) -> StoreResult<Schedule> {
        let mut st = self.lock();
        let s = st.schedules.get_mut(name).ok_or_else(|| not_found(name))?;
        s.next_fire_at = s.firing()?.next_after(from);
        Ok(s.clone())
    }

    pub(super) fn schedule_evaluate(
        &self,
        req: EvaluateSchedules,
    ) -> StoreResult<ScheduleEvaluation> {
        let mut out = ScheduleEvaluation::default();
        let mut st = self.lock();
        let now = match req.at {
            Some(t) => t,
            None => st.now(),
        };
        let mut due: Vec<(Timestamp, String)> = st
            .schedules
            .values()
            .filter(|s| s.active)
            .filter_map(|s| {
                s.next_fire_at
                    .filter(|t| *t <= now)
                    .map(|t| (t, s.name.clone()))
            })
            .collect();
        due.sort();
        out.more = due.len() > req.max_schedules as usize;
        due.truncate(req.max_schedules as usize);
        for (_, name) in due {
            let Some((plan, entries)) = plan_evaluation(&st.schedules[&name], now, &req) else {
                continue;
            };
            let outcome = self.insert_entries(&mut st, entries);
            out.record(
                &name,
                &plan.fires,
                outcome.map(|_| ()).map_err(|e| e.to_string()),
            );
            let s = st.schedules.get_mut(&name).expect("schedule exists");
            s.last_fire_at = Some(plan.last_fire_at);
            s.next_fire_at = plan.next_fire_at;
        }
        if !out.fired.is_empty() {
            self.enqueued.notify();
        }
        Ok(out)
    }
}
